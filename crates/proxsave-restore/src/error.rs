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

    /// True when a needed decision was not given in a non-interactive run: exit code 2.
    pub fn is_missing_decision(&self) -> bool {
        matches!(
            self,
            RestoreError::Prompt(PromptError::Missing { .. })
                | RestoreError::Plan(PlanError::Missing(_))
        )
    }
}
