//! Effects shared by the engine-level tests: a clock that never waits and a mount probe
//! that sees no mount.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use proxsave_restore::host::{Clock, MountProbe};

/// The system's time, and sleeps that return at once.
pub struct NoWait;

impl Clock for NoWait {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        chrono::Local::now()
    }
    fn sleep(&self, _d: Duration) {}
}

/// Nothing is a mount point.
pub struct NotMounted;

impl MountProbe for NotMounted {
    fn is_mount_point(&self, _p: &Path) -> bool {
        false
    }
}
