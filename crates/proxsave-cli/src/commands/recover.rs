//! `proxsave restore --recover [--root R] [--work-dir W]`: starts the services a restore that
//! was killed (or left with a third Ctrl+C) left stopped, from the services journals it wrote
//! in the work folder. Every restore does the same first, for its root and work folder.
//!
//! Host commands always run here: a journal exists only because a run did stop services.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use proxsave_archive::progress::{CancelToken, Stage};
use proxsave_restore::host::{Host, HostActions, SystemClock};
use proxsave_restore::journal::{self, Found};
use proxsave_restore::runstate;
use proxsave_restore::services::{self, RecoveredHow, Recovery};
use proxsave_restore::workspace::Workspace;
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::console::Console;
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit, term};

/// The default work folder of `restore`.
pub const DEFAULT_WORK_DIR: &str = "/tmp/proxsave";

/// The command that recovers `root` from `work_dir`.
pub fn command(root: &Path, work_dir: &Path) -> String {
    format!(
        "proxsave restore --recover --root {} --work-dir {}",
        root.display(),
        work_dir.display()
    )
}

#[derive(Serialize)]
struct Document<'a> {
    root: &'a Path,
    work_dir: &'a Path,
    #[serde(flatten)]
    recovery: &'a Recovery,
    running: Vec<RunningJournal>,
    unreadable: Vec<(PathBuf, String)>,
    leftovers: &'a runstate::Recovery,
}

#[derive(Serialize)]
struct RunningJournal {
    path: PathBuf,
    pid: u32,
    root: PathBuf,
}

/// Runs the recovery of `root` from the journals found in `work_dir`, with the token's stage
/// set to restarting meanwhile.
fn recover(root: &Path, found: &Found, cancel: &CancelToken) -> Recovery {
    if found.dead.is_empty() {
        return Recovery::default();
    }
    let host = Host::new(
        root.to_path_buf(),
        HostActions::Run,
        Arc::new(ProcessRunner { path: None }),
        Arc::new(SystemClock),
        Arc::new(ProcMounts),
    );
    cancel.set_activity("recovering services");
    cancel.set_stage(Stage::Restarting);
    let rec = services::recover(&host, &found.dead);
    cancel.set_stage(Stage::Working);
    rec
}

/// Prints what [`recover`] did (and what it left alone); returns true if a start failed.
fn show(console: &Console, rec: &Recovery, found: &Found, root: &Path, work_dir: &Path) -> bool {
    let mut failed = false;
    for j in &rec.journals {
        if j.outcome == RecoveredHow::OtherRoot {
            console.line(&format!(
                "WARNING: {} is the services journal of an interrupted restore of {} (pid {}, started {}), not of {}: not applied{}. To recover it: {}",
                j.path.display(),
                j.root.display(),
                j.pid,
                j.started,
                root.display(),
                if j.units.is_empty() {
                    String::new()
                } else {
                    format!("; units recorded as stopped: {}", j.units.join(", "))
                },
                command(&j.root, work_dir)
            ));
            continue;
        }
        console.line(&format!(
            "Recovering services left stopped by the interrupted restore of {} (pid {}, started {}; journal {}):",
            j.root.display(),
            j.pid,
            j.started,
            j.path.display()
        ));
        if j.units.is_empty() {
            console.line("  no unit recorded as stopped");
        }
        if !j.unmounted.is_empty() {
            console.line(&format!(
                "  unmounted by that run: {} (pve-cluster mounts /etc/pve again when it starts)",
                j.unmounted.join(", ")
            ));
        }
        for a in &j.actions {
            match a.result.as_str() {
                "ok" => console.line(&format!("  started {}", a.target)),
                services::ALREADY_ACTIVE => {
                    console.line(&format!("  {} was already running", a.target))
                }
                why => {
                    failed = true;
                    console.line(&format!("  FAILED to start {}: {why}", a.target));
                }
            }
        }
        match j.outcome {
            RecoveredHow::Cleared => console.line("  every unit runs again; journal removed"),
            _ => console.line(&format!(
                "  some units are still stopped; journal kept: {}",
                j.path.display()
            )),
        }
    }
    for r in &found.running {
        console.line(&format!(
            "Note: a restore (pid {}) of {} is running with this work folder; its services are its own.",
            r.doc.pid,
            r.doc.root.display()
        ));
    }
    for (p, why) in &found.unreadable {
        console.line(&format!(
            "WARNING: cannot read the services journal {}: {why}",
            p.display()
        ));
    }
    failed
}

/// `restore --recover`.
pub fn run(args: &RestoreArgs, console: &Console, cancel: &CancelToken) -> CmdResult {
    let given = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let root = std::fs::canonicalize(&given)
        .with_context(|| format!("target root {}", given.display()))?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WORK_DIR));
    term::set_recover_hint(command(&root, &work_dir));
    // The lock of the work folder and the root (no restore may be running on either), then
    // what a dead run left there: stage folders, partial files, a half-done commit.
    let mut leftovers = runstate::Recovery::default();
    let mut _lock = None;
    if work_dir.exists() {
        // The same checks as for a restore: a folder others can write is not trusted.
        Workspace::ensure(&work_dir, String::new()).map_err(|e| Exit::Failure(e.into()))?;
        let lock = runstate::lock(&work_dir, Some(&root)).map_err(|e| {
            if e.is_busy() {
                Exit::Usage(e.to_string())
            } else {
                Exit::Failure(e.into())
            }
        })?;
        let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
        leftovers = runstate::recover(&lock, Some(&root), &stamp, true)
            .map_err(|e| Exit::Failure(e.into()))?;
        _lock = Some(lock);
    }
    let found = journal::scan(&work_dir);
    let rec = recover(&root, &found, cancel);
    if args.json {
        print_json(
            "recover",
            &Document {
                root: &root,
                work_dir: &work_dir,
                recovery: &rec,
                running: found
                    .running
                    .iter()
                    .map(|r| RunningJournal {
                        path: r.path.clone(),
                        pid: r.doc.pid,
                        root: r.doc.root.clone(),
                    })
                    .collect(),
                unreadable: found.unreadable.clone(),
                leftovers: &leftovers,
            },
        )?;
    }
    for l in leftovers.lines() {
        console.line(&l);
    }
    let failed = show(console, &rec, &found, &root, &work_dir);
    if rec.is_empty() && leftovers.is_empty() {
        console.line(&format!(
            "Nothing to recover: no leftovers and no services journal of an interrupted restore of {} in {}.",
            root.display(),
            work_dir.display()
        ));
    }
    if cancel.is_cancelled() {
        return Err(Exit::Aborted);
    }
    if failed || !found.unreadable.is_empty() {
        return Err(Exit::Code(1));
    }
    Ok(())
}

/// Before a restore of `root` with `work_dir`: recovers what earlier runs left stopped (only
/// reports it for a dry run) and says so.
pub fn before_restore(
    console: &Console,
    root: &Path,
    work_dir: &Path,
    dry_run: bool,
    cancel: &CancelToken,
) {
    term::set_recover_hint(command(root, work_dir));
    let found = journal::scan(work_dir);
    if found.dead.is_empty() && found.unreadable.is_empty() {
        return;
    }
    if dry_run {
        for lo in &found.dead {
            console.line(&format!(
                "WARNING: an interrupted restore of {} (pid {}) left units recorded as stopped: {}; a restore without --dry-run (or `{}`) starts them.",
                lo.doc.root.display(),
                lo.doc.pid,
                lo.doc.units_left().join(", "),
                command(&lo.doc.root, work_dir)
            ));
        }
        return;
    }
    let rec = recover(root, &found, cancel);
    if show(console, &rec, &found, root, work_dir) {
        console.line(
            "WARNING: some services left stopped by an earlier restore did not start; see above.",
        );
    }
}
