//! The one place with `unsafe` code: plain libc calls the standard library does not wrap
//! (the allocator's mmap threshold; blocking SIGINT/SIGTERM and taking them synchronously
//! with `sigwait` on a thread of our own). Each call's safety argument is next to it.
#![allow(unsafe_code)]

/// SIGINT and SIGTERM, blocked in the calling thread (and the threads it starts later).
pub struct BlockedSignals(libc::sigset_t);

/// Large buffers (xz blocks of 24 MiB) go straight to `mmap` and back to the system when
/// freed; glibc's default adaptive threshold otherwise keeps them in per-thread heaps and
/// peak memory creeps up with archive size (measured in docs/benchmarks.md).
pub fn tame_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Blocks SIGINT and SIGTERM in this thread; `None` if the mask cannot be changed.
pub fn block_interrupts() -> Option<BlockedSignals> {
    // SAFETY: plain libc calls on a local, zero-initialised sigset_t; pthread_sigmask only
    // changes this thread's mask. Child processes get an empty mask (std resets it on spawn).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return None;
        }
        Some(BlockedSignals(set))
    }
}

impl BlockedSignals {
    /// Waits for one of the blocked signals; `None` on an error (try again).
    pub fn wait(&self) -> Option<libc::c_int> {
        let mut sig: libc::c_int = 0;
        // SAFETY: the set is a valid, initialised signal set; `sig` is a valid out-pointer.
        (unsafe { libc::sigwait(&self.0, &mut sig) } == 0).then_some(sig)
    }

    /// Lets the signals act as usual again in this thread.
    pub fn unblock(&self) {
        // SAFETY: as in `block_interrupts`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.0, std::ptr::null_mut());
        }
    }
}
