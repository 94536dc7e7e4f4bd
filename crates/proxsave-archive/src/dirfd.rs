//! Reaching paths below a root through directory descriptors, one component at a time, never
//! following a symlink. The one path walker every part of proxsave that touches a root uses
//! (extraction, safety backups, comparisons, dedup repair).
//!
//! # Security
//! Every component is opened with `O_NOFOLLOW|O_DIRECTORY`: a symlink anywhere on the way
//! (`ELOOP`) or a non-directory (`ENOTDIR`) stops the walk. Only the root itself is opened
//! following symlinks, because it is the caller's choice.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::path::ArchivePath;

/// Opens the root folder (following symlinks in its own path).
///
/// # Errors
/// The path cannot be opened as a directory.
pub fn open_root(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` inside `dir`, refusing a symlink.
///
/// # Errors
/// `ELOOP` for a symlink, `ENOTDIR` for anything but a directory, `ENOENT`.
pub fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the regular file (or whatever it is, but never through a symlink) `name` in `dir`
/// for reading.
///
/// # Errors
/// `ELOOP` for a symlink, `ENOENT`, permission errors.
pub fn open_file(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory `path` below `root` (the root itself for an empty walk).
///
/// # Errors
/// As [`open_dir`] for the first component that fails.
pub fn walk(root: BorrowedFd<'_>, path: &ArchivePath) -> rustix::io::Result<OwnedFd> {
    let mut cur = rustix::io::dup(root)?;
    for comp in path.components() {
        cur = open_dir(cur.as_fd(), comp)?;
    }
    Ok(cur)
}

/// Opens the folder holding `path` below `root`.
///
/// # Errors
/// As [`walk`].
pub fn open_parent(root: BorrowedFd<'_>, path: &ArchivePath) -> rustix::io::Result<OwnedFd> {
    match path.parent() {
        Some(parent) => walk(root, &parent),
        None => rustix::io::dup(root),
    }
}
