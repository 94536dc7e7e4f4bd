//! `proxsave net status|commit|rollback-now [--root R]`: the network COMMIT window from
//! another shell. The window's state lives under the root
//! (`<root>/var/lib/proxsave/windows/<id>/`, see `proxsave_restore::commit`), so these work
//! whatever work folder the restore used, and after the restore itself died.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use proxsave_archive::progress::CancelToken;
use proxsave_restore::commit::{self, State, Window, WindowRecord};
use proxsave_restore::host::{Host, HostActions, SystemClock};
use serde::Serialize;

use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit};

/// `proxsave net …`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: NetAction,
}

/// The `net` actions.
#[derive(Debug, Subcommand)]
pub enum NetAction {
    /// Show the network COMMIT windows under the root: pending ones with the time left.
    Status(NetWindowArgs),
    /// Keep the live network configuration: end the pending window, stop its timer.
    Commit(NetWindowArgs),
    /// Roll back now: put the previous network files back and run `ifreload -a`.
    RollbackNow(NetWindowArgs),
}

/// Options of the `net` actions.
#[derive(Debug, Args)]
pub struct NetWindowArgs {
    /// The root the restore wrote to.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Shown {
    id: String,
    area: String,
    state: State,
    dir: PathBuf,
    seconds_left: u64,
    /// Pending with its deadline passed: the timer is late or gone.
    overdue: bool,
    deadline: String,
    timer: commit::Timer,
    settled_by: Option<String>,
    paths: Vec<String>,
    problems: Vec<String>,
}

fn shown(dir: PathBuf, r: WindowRecord, now_ms: i64) -> Shown {
    Shown {
        overdue: r.state == State::Pending && now_ms >= r.deadline_unix_ms,
        seconds_left: if r.state == State::Pending {
            r.left_at(now_ms).as_secs()
        } else {
            0
        },
        deadline: chrono::DateTime::from_timestamp_millis(r.deadline_unix_ms)
            .map(|d| d.with_timezone(&chrono::Local).to_rfc3339())
            .unwrap_or_default(),
        paths: r.paths.iter().map(|p| format!("/{}", p.path)).collect(),
        id: r.id,
        area: r.area,
        state: r.state,
        dir,
        timer: r.timer,
        settled_by: r.settled_by,
        problems: r.problems,
    }
}

/// Runs `proxsave net …`.
pub fn run(args: NetArgs) -> CmdResult {
    match args.action {
        NetAction::Status(a) => status(&a),
        NetAction::Commit(a) => settle(&a, true),
        NetAction::RollbackNow(a) => settle(&a, false),
    }
}

fn windows_of(a: &NetWindowArgs) -> Result<Vec<(PathBuf, WindowRecord)>, Exit> {
    let root = std::path::absolute(&a.root)
        .map_err(|e| Exit::Usage(format!("--root {}: {e}", a.root.display())))?;
    if !root.is_dir() {
        return Err(Exit::Usage(format!(
            "--root {}: not a folder",
            a.root.display()
        )));
    }
    Ok(commit::windows(&commit::root_windows_dir(&root)))
}

fn status(a: &NetWindowArgs) -> CmdResult {
    let now = chrono::Utc::now().timestamp_millis();
    let list: Vec<Shown> = windows_of(a)?
        .into_iter()
        .map(|(d, r)| shown(d, r, now))
        .collect();
    if a.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            windows: &'a [Shown],
        }
        print_json("net-status", &Doc { windows: &list })?;
        return Ok(());
    }
    if list.is_empty() {
        println!("No COMMIT window under {}.", a.root.display());
        return Ok(());
    }
    for w in &list {
        match w.state {
            State::Pending if w.overdue => println!(
                "{} ({}): PENDING, its deadline passed (at {}) and {} has not rolled it back yet: `proxsave net rollback-now` or `proxsave net commit` settles it",
                w.id, w.area, w.deadline, w.timer
            ),
            State::Pending => println!(
                "{} ({}): PENDING, rolls back in {}s (at {}) unless committed; {}",
                w.id, w.area, w.seconds_left, w.deadline, w.timer
            ),
            s => println!(
                "{} ({}): {} ({})",
                w.id,
                w.area,
                s.word(),
                w.settled_by.as_deref().unwrap_or("-")
            ),
        }
        for p in &w.problems {
            println!("  problem: {p}");
        }
    }
    Ok(())
}

fn settle(a: &NetWindowArgs, keep: bool) -> CmdResult {
    let pending: Vec<(PathBuf, WindowRecord)> = windows_of(a)?
        .into_iter()
        .filter(|(_, r)| r.state == State::Pending)
        .collect();
    let Some((dir, record)) = pending.last().cloned() else {
        eprintln!(
            "proxsave: no pending COMMIT window under {} (see `proxsave net status --root {}`)",
            a.root.display(),
            a.root.display()
        );
        return Err(Exit::Code(1));
    };
    let window = Window::load(&dir).map_err(|e| Exit::Failure(e.into()))?;
    let host = Host::new(
        record.root.clone(),
        HostActions::Run,
        Arc::new(ProcessRunner { path: None }),
        Arc::new(SystemClock),
        Arc::new(ProcMounts),
    );
    let cancel = CancelToken::new();
    let by = if keep {
        "net commit"
    } else {
        "net rollback-now"
    };
    let s = if keep {
        window.commit(&host, &cancel, by)
    } else {
        window.rollback(&host, &cancel, by)
    }
    .map_err(|e| Exit::Failure(e.into()))?;
    if a.json {
        print_json("net-settle", &s)?;
    }
    match (s.state, s.now) {
        (State::Committed, true) => {
            if !a.json {
                println!("{}: committed; the rollback timer is stopped.", record.id);
            }
            Ok(())
        }
        (State::RolledBack, true) => {
            if !a.json {
                println!(
                    "{}: rolled back; the previous network files are in place and reloaded.",
                    record.id
                );
                for p in &s.problems {
                    println!("  problem: {p}");
                }
            }
            if s.problems.is_empty() {
                Ok(())
            } else {
                Err(Exit::Code(1))
            }
        }
        (state, _) => {
            eprintln!(
                "proxsave: {}: too late, already {} ({})",
                record.id,
                state.word(),
                s.by
            );
            Err(Exit::Code(1))
        }
    }
}
