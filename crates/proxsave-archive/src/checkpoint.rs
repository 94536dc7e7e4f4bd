//! Checkpoints: named points of long operations (one per entry staged, per operation
//! committed, per phase change), emitted as `tracing` events with the target
//! [`TARGET`] at `TRACE` level.
//!
//! They cost nothing without a subscriber. The `proxsave` binary counts them when asked
//! (`PROXSAVE_TEST_CHECKPOINTS`, `PROXSAVE_TEST_STOP_AT`), which is how the crash and signal
//! trials deliver a real `SIGKILL` or `SIGINT` at an exact, repeatable point of a run.

/// The `tracing` target of checkpoint events.
pub const TARGET: &str = "proxsave::checkpoint";

/// Emits one checkpoint: `phase` (a short stable word such as `stage`, `commit`, `safety`)
/// and a detail (an entry path, a unit name, …).
pub fn checkpoint(phase: &'static str, detail: &dyn std::fmt::Display) {
    tracing::trace!(target: "proxsave::checkpoint", phase, detail = %detail);
}
