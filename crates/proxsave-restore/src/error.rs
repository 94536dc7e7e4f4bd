//! The engine's error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::plan::PlanError;
use crate::prompt::PromptError;

/// Anything that stops a restore.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading or extracting the backup failed.
    #[error(transparent)]
    Archive(#[from] proxsave_archive::Error),
    /// A question got no usable answer (aborted, or missing in a non-interactive run).
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// No plan could be built.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The work directory is unusable.
    #[error("work directory {}: {reason}", path.display())]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A service could not be stopped; nothing was written.
    #[error("cannot stop {unit}: {detail}; nothing was written")]
    ServiceStop {
        /// The unit.
        unit: String,
        /// What happened.
        detail: String,
    },
    /// The safety backup failed and the user chose not to continue.
    #[error("the safety backup could not be created: {0}")]
    SafetyBackup(String),
    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The user interrupted the run (Ctrl+C).
    #[error("interrupted")]
    Interrupted,
    /// An answer given to an applier's question is not acceptable (exit 2).
    #[error("answer to `{id}`: {reason}")]
    BadAnswer {
        /// The question id.
        id: &'static str,
        /// Why.
        reason: String,
    },
    /// An applier's preflight vetoed the whole run before anything was put in place.
    #[error("{applier}: preflight failed: {reason}; nothing was put in place")]
    Preflight {
        /// The applier.
        applier: String,
        /// Why.
        reason: String,
    },
    /// Another proxsave run holds the lock on the root or the work directory.
    #[error("{}", busy_message(what, path, *pid))]
    Busy {
        /// `the target root` or `the work directory`.
        what: &'static str,
        /// The locked folder.
        path: PathBuf,
        /// The holder's process id, when it can be found.
        pid: Option<u32>,
    },
    /// A filesystem has less free space than the restore needs; nothing was written.
    #[error(
        "not enough free space for {what} in {}: {} needed, {} free ({} short); nothing was written",
        dir.display(),
        human_bytes(*needed),
        human_bytes(*free),
        human_bytes(needed.saturating_sub(*free))
    )]
    NoSpace {
        /// The folder whose filesystem lacks space.
        dir: PathBuf,
        /// What needs the space (e.g. `the restored files and the safety backup`).
        what: String,
        /// Bytes needed, margin included.
        needed: u64,
        /// Bytes available to us.
        free: u64,
    },
    /// A filesystem has fewer free inodes than the restore creates entries.
    #[error(
        "not enough free inodes for {what} in {}: {needed} needed, {free} free; nothing was written",
        dir.display()
    )]
    NoInodes {
        /// The folder whose filesystem lacks inodes.
        dir: PathBuf,
        /// What needs them.
        what: String,
        /// Inodes needed.
        needed: u64,
        /// Inodes available.
        free: u64,
    },
}

fn busy_message(what: &str, path: &Path, pid: Option<u32>) -> String {
    let holder = match pid {
        Some(p) => format!("another proxsave run (pid {p})"),
        None => "another proxsave run".to_string(),
    };
    format!(
        "{holder} is using {what} {}; wait for it to finish (one restore at a time per root and per work directory)",
        path.display()
    )
}

/// `1.5 MiB`, `42 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl RestoreError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &Path, source: io::Error) -> RestoreError {
        RestoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the user aborted (Ctrl+C, `0`, `cancel`): exit code 130.
    pub fn is_abort(&self) -> bool {
        matches!(
            self,
            RestoreError::Interrupted
                | RestoreError::Prompt(PromptError::Aborted)
                | RestoreError::Archive(proxsave_archive::Error::Cancelled)
        )
    }

    /// True when another run holds a lock we need: exit code 2.
    pub fn is_busy(&self) -> bool {
        matches!(self, RestoreError::Busy { .. })
    }

    /// True when a needed decision was not given in a non-interactive run: exit code 2.
    pub fn is_missing_decision(&self) -> bool {
        matches!(
            self,
            RestoreError::Prompt(PromptError::Missing { .. })
                | RestoreError::Plan(PlanError::Missing(_))
                | RestoreError::BadAnswer { .. }
        )
    }
}
