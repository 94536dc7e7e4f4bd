//! COMMIT windows from the command line: `restore --rollback-status` and the internal
//! `restore --commit-fire DIR [--after N]` their timers run (see `proxsave_restore::commit`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxsave_archive::progress::CancelToken;
use proxsave_restore::commit::{self, State, Window};
use proxsave_restore::host::{Host, HostActions, SystemClock};
use serde::Serialize;

use super::settings::settings;
use crate::cli::RestoreArgs;
use crate::console::Console;
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit};

/// `<work>/commit`.
pub fn commit_dir(work_dir: &Path) -> std::path::PathBuf {
    work_dir.join("commit")
}

/// One pending window as listed.
#[derive(Serialize)]
struct Pending {
    id: String,
    area: String,
    root: std::path::PathBuf,
    dir: std::path::PathBuf,
    paths: Vec<String>,
    seconds_left: u64,
    deadline: String,
    timer: commit::Timer,
}

/// `restore --rollback-status`: the pending windows of the work folder; exit 0.
pub fn status(args: &RestoreArgs, console: &Console) -> CmdResult {
    let s = settings(args)?;
    let now = chrono::Local::now();
    // The work folder's windows, and those kept under the root (the network's).
    let mut all = commit::windows(&commit_dir(&s.work_dir));
    if let Ok(root) = std::path::absolute(&s.root) {
        all.extend(commit::windows(&commit::root_windows_dir(&root)));
    }
    all.sort_by_key(|(_, r)| r.armed_unix_ms);
    let list: Vec<Pending> = all
        .into_iter()
        .filter(|(_, r)| r.state == State::Pending)
        .map(|(dir, r)| Pending {
            seconds_left: r.left_at(now.timestamp_millis()).as_secs(),
            deadline: chrono::DateTime::from_timestamp_millis(r.deadline_unix_ms)
                .map(|d| d.with_timezone(&chrono::Local).to_rfc3339())
                .unwrap_or_default(),
            paths: r.paths.iter().map(|p| format!("/{}", p.path)).collect(),
            id: r.id,
            area: r.area,
            root: r.root,
            dir,
            timer: r.timer,
        })
        .collect();
    if args.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            pending: &'a [Pending],
        }
        print_json("rollback-status", &Doc { pending: &list })?;
        return Ok(());
    }
    if list.is_empty() {
        console.line("No pending COMMIT window.");
        return Ok(());
    }
    for w in &list {
        console.line(&format!(
            "{} ({}): rolls back in {}s unless committed; {}; root {}",
            w.id,
            w.area,
            w.seconds_left,
            w.timer,
            w.root.display()
        ));
        for p in &w.paths {
            console.line(&format!("  {p}"));
        }
    }
    Ok(())
}

/// `restore --commit-fire DIR [--after N]`: waits (a detached timer) then rolls back unless
/// the window was settled meanwhile; a `SIGTERM` while waiting (the commit stopping this
/// timer) ends it without firing. What it did is in the window's `rollback.log`.
pub fn fire(args: &RestoreArgs, dir: &Path, cancel: &CancelToken) -> CmdResult {
    if let Some(secs) = args.after {
        // The record's absolute deadline when it can be read (a waiter started late, or
        // slowed down, still fires on time), else N seconds from now.
        let by_record = Window::load(dir).ok().map(|w| {
            let left = w.record().deadline_unix_ms - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(u64::try_from(left).unwrap_or(0))
        });
        let deadline = Instant::now() + by_record.unwrap_or(Duration::from_secs(secs));
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // The timer itself (not a synchronisation): short steps so a SIGTERM is seen.
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }
    let window = Window::load(dir).map_err(|e| Exit::Failure(e.into()))?;
    let host = Host::new(
        window.record().root.clone(),
        HostActions::Run,
        Arc::new(ProcessRunner { path: None }),
        Arc::new(SystemClock),
        Arc::new(ProcMounts),
    );
    // A fresh token: the rollback and its commands run to their end once started.
    commit::fire(dir, &host, &CancelToken::new()).map_err(|e| Exit::Failure(e.into()))?;
    Ok(())
}
