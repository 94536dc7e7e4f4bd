//! Progress reporting and cancellation, the two things a long read shares with its caller.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Receives progress of a long read. The CLI draws a bar; the library only counts.
///
/// Called from the thread that reads the stored archive, hence `Send + Sync`.
pub trait Progress: Send + Sync {
    /// A read of `total` stored bytes begins; `label` names it (e.g. the archive name).
    fn start(&self, total: u64, label: &str);
    /// `bytes` more stored bytes were read.
    fn advance(&self, bytes: u64);
    /// The read ended (successfully or not).
    fn finish(&self);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: u64, _label: &str) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// What the holder of a [`CancelToken`] is doing to the host, so whoever cancels it (the
/// CLI's signal handling) can say what an interruption means and how hard to insist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    /// Nothing on the host needs putting back.
    #[default]
    Working,
    /// Services stopped by this run are (or may be) down; they are restarted after cleanup.
    ServicesDown,
    /// Services stopped by this run are being restarted.
    Restarting,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            1 => Stage::ServicesDown,
            2 => Stage::Restarting,
            _ => Stage::Working,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    cancelled: AtomicBool,
    stage: AtomicU8,
    notes: Mutex<Notes>,
}

#[derive(Debug, Default)]
struct Notes {
    activity: &'static str,
    cause: Option<&'static str>,
    during: Option<&'static str>,
}

/// A flag the caller sets (e.g. on Ctrl+C) to make long operations stop at the next entry
/// or buffer. Cloning shares the flag.
///
/// The token also carries two notes from the operation to the canceller: the current
/// activity (a short label such as `"extracting"`) and the [`Stage`]; and one note back: the
/// cause of the cancellation (e.g. `"SIGINT"`) with the activity it interrupted.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<Shared>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.0.notes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        let mut n = self.notes();
        if !self.0.cancelled.swap(true, Ordering::SeqCst) {
            n.during = Some(n.activity);
        }
    }

    /// Requests cancellation because of `cause` (e.g. `"SIGTERM"`); the first cause is kept,
    /// with the activity going on at that moment.
    pub fn cancel_by(&self, cause: &'static str) {
        let mut n = self.notes();
        if !self.0.cancelled.swap(true, Ordering::SeqCst) {
            n.during = Some(n.activity);
            n.cause = Some(cause);
        }
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// The cause given to [`CancelToken::cancel_by`], if any.
    pub fn cause(&self) -> Option<&'static str> {
        self.notes().cause
    }

    /// The activity that was going on when the token was cancelled (`""` if none was set).
    pub fn interrupted_during(&self) -> Option<&'static str> {
        self.notes().during
    }

    /// Sets the current activity label (shown in messages and logs).
    pub fn set_activity(&self, activity: &'static str) {
        self.notes().activity = activity;
    }

    /// The current activity label (`""` if none was set).
    pub fn activity(&self) -> &'static str {
        self.notes().activity
    }

    /// Sets the current [`Stage`].
    pub fn set_stage(&self, stage: Stage) {
        self.0.stage.store(stage as u8, Ordering::SeqCst);
    }

    /// The current [`Stage`].
    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.0.stage.load(Ordering::SeqCst))
    }

    /// `Err(Error::Cancelled)` once cancelled.
    ///
    /// # Errors
    /// [`crate::Error::Cancelled`].
    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_and_its_activity_are_kept_and_shared_by_clones() {
        let t = CancelToken::new();
        let other = t.clone();
        assert_eq!(t.stage(), Stage::Working);
        t.set_activity("stopping services");
        t.set_stage(Stage::ServicesDown);
        assert_eq!(other.stage(), Stage::ServicesDown);
        assert!(!other.is_cancelled() && other.cause().is_none());
        other.cancel_by("SIGTERM");
        t.set_activity("restarting services");
        t.cancel_by("SIGINT");
        assert!(t.is_cancelled());
        assert_eq!(t.cause(), Some("SIGTERM"));
        assert_eq!(t.interrupted_during(), Some("stopping services"));
        assert_eq!(t.activity(), "restarting services");
        assert!(!CancelToken::new().is_cancelled());
    }
}
