//! Progress reporting and cancellation, the two things a long read shares with its caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// A flag the caller sets (e.g. on Ctrl+C) to make long operations stop at the next entry
/// or buffer. Cloning shares the flag.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
