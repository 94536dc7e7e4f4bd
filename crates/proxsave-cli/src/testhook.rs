//! Test checkpoints: lets the crash and signal trials stop `proxsave` at an exact point.
//!
//! The library emits a `tracing` event at every checkpoint (see
//! `proxsave_archive::checkpoint`). When one of these variables is set, the binary counts
//! them:
//!
//! - `PROXSAVE_TEST_CHECKPOINTS=FILE`: appends `N<TAB>phase<TAB>detail` per checkpoint.
//! - `PROXSAVE_TEST_STOP_AT=N[,M…]`: at the N-th (M-th, …) checkpoint the process sends
//!   itself `SIGSTOP`; the test sees it stopped (`waitpid(WUNTRACED)`), delivers the signal
//!   it wants (`SIGKILL`, `SIGINT`, `SIGTERM`) and resumes it with `SIGCONT`. An item
//!   `phase:N` counts only the checkpoints of that phase (`extract:1`: the first entry
//!   extracted).
//!
//! Without them the layer is not installed, and the subscriber (see [`install`]) ignores
//! checkpoints.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The checkpoint counter (a `tracing` layer).
pub struct Checkpoints {
    count: AtomicU64,
    stop_at: Vec<u64>,
    /// (phase, n, seen so far)
    stop_at_phase: Mutex<Vec<(String, u64, u64)>>,
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
        let mut f = Fields::default();
        event.record(&mut f);
        if let Some(log) = &self.log {
            let detail = f.detail.replace(['\t', '\n'], " ");
            if let Ok(mut file) = log.lock() {
                let _ = writeln!(file, "{n}\t{}\t{detail}", f.phase);
                let _ = file.flush();
            }
        }
        let mut by_phase = false;
        if let Ok(mut list) = self.stop_at_phase.lock() {
            for (phase, at, seen) in list.iter_mut() {
                if *phase == f.phase {
                    *seen += 1;
                    by_phase |= *seen == *at;
                }
            }
        }
        if by_phase || self.stop_at.contains(&n) {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::STOP,
            );
        }
    }
}

/// The checkpoint counter, when the test variables ask for it.
pub fn layer() -> Option<Checkpoints> {
    let spec = std::env::var("PROXSAVE_TEST_STOP_AT").unwrap_or_default();
    let mut stop_at: Vec<u64> = Vec::new();
    let mut stop_at_phase = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        match item.split_once(':') {
            Some((phase, n)) => {
                if let Ok(n) = n.parse() {
                    stop_at_phase.push((phase.to_string(), n, 0));
                }
            }
            None => stop_at.extend(item.parse::<u64>().ok()),
        }
    }
    let log = std::env::var_os("PROXSAVE_TEST_CHECKPOINTS").and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
            .map(Mutex::new)
    });
    if stop_at.is_empty() && stop_at_phase.is_empty() && log.is_none() {
        return None;
    }
    Some(Checkpoints {
        count: AtomicU64::new(0),
        stop_at,
        stop_at_phase: Mutex::new(stop_at_phase),
        log,
    })
}

/// `PROXSAVE_TEST_COMMIT_TIMER=systemd|detached`: the kind of COMMIT-window timer to use
/// whatever PID 1 is (tests run both kinds; the systemd one against a fake `systemd-run`).
pub fn commit_timer() -> Option<String> {
    std::env::var("PROXSAVE_TEST_COMMIT_TIMER")
        .ok()
        .filter(|v| v == "systemd" || v == "detached")
}

/// `PROXSAVE_TEST_MOUNTINFO=FILE`: the mount table read instead of `/proc/self/mountinfo`
/// (the fake pmxcfs mount of `proxsave_testkit::fakes::FakeBin::model_pmxcfs`).
pub fn mountinfo() -> Option<std::path::PathBuf> {
    std::env::var_os("PROXSAVE_TEST_MOUNTINFO").map(std::path::PathBuf::from)
}

/// `PROXSAVE_TEST_CLOCK=virtual`: waits between probes and retries (stop escalation, the
/// post-restart checks) only move a virtual clock forward, so a test sees every deadline
/// expire at once without sleeping.
pub fn virtual_clock() -> bool {
    std::env::var("PROXSAVE_TEST_CLOCK").is_ok_and(|v| v == "virtual")
}

/// Installs the process's subscriber: one registry with the checkpoint counter (when the
/// test variables ask for it) and the restore log ([`proxsave_restore::log::RestoreLog`],
/// which writes `restore_*.log` in the work directory as a restore runs).
pub fn install() {
    let _ = tracing_subscriber::registry()
        .with(layer())
        .with(proxsave_restore::log::RestoreLog::new())
        .try_init();
}
