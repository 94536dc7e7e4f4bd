//! Test checkpoints: lets the crash and signal trials stop `proxsave` at an exact point.
//!
//! The library emits a `tracing` event at every checkpoint (see
//! `proxsave_archive::checkpoint`). When one of these variables is set, the binary counts
//! them:
//!
//! - `PROXSAVE_TEST_CHECKPOINTS=FILE`: appends `N<TAB>phase<TAB>detail` per checkpoint.
//! - `PROXSAVE_TEST_STOP_AT=N[,M…]`: at the N-th (M-th, …) checkpoint the process sends
//!   itself `SIGSTOP`; the test sees it stopped (`waitpid(WUNTRACED)`), delivers the signal
//!   it wants (`SIGKILL`, `SIGINT`, `SIGTERM`) and resumes it with `SIGCONT`.
//!
//! Without them nothing is installed and checkpoints cost a disabled `tracing` call.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

struct Checkpoints {
    count: AtomicU64,
    stop_at: Vec<u64>,
    log: Option<Mutex<File>>,
}

#[derive(Default)]
struct Fields {
    phase: String,
    detail: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "phase" => self.phase = value.to_string(),
            "detail" => self.detail = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        match field.name() {
            "phase" => self.phase = s.trim_matches('"').to_string(),
            "detail" => self.detail = s,
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Checkpoints {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != proxsave_archive::checkpoint::TARGET {
            return;
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &self.log {
            let mut f = Fields::default();
            event.record(&mut f);
            let detail = f.detail.replace(['\t', '\n'], " ");
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{n}\t{}\t{detail}", f.phase);
                let _ = file.flush();
            }
        }
        if self.stop_at.contains(&n) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::STOP,
            );
        }
    }
}

/// Installs the checkpoint counter when the test variables ask for it.
pub fn install() {
    let stop_at: Vec<u64> = std::env::var("PROXSAVE_TEST_STOP_AT")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let log = std::env::var_os("PROXSAVE_TEST_CHECKPOINTS").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(Mutex::new)
    });
    if stop_at.is_empty() && log.is_none() {
        return;
    }
    let layer = Checkpoints {
        count: AtomicU64::new(0),
        stop_at,
        log,
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}
