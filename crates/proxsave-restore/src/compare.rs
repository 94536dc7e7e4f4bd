//! Comparing an archive entry with what the target root holds now (for `--dry-run`, the
//! report's new/changed/unchanged, and `diff`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proxsave_archive::dirfd;
use proxsave_archive::entry::{EntryHeader, EntryKind};
use proxsave_archive::path::ArchivePath;
use rustix::fs::{AtFlags, FileType};
use serde::Serialize;

/// How an entry relates to the root's current content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Nothing there yet.
    New,
    /// There, with different content (or type, or link target).
    Changed,
    /// Same content, different mode, owner or time.
    Metadata,
    /// Identical.
    Unchanged,
}

impl Change {
    /// Word used in listings.
    pub fn word(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Metadata => "metadata",
            Change::Unchanged => "unchanged",
        }
    }
}

/// A read-only view of the target root through descriptors (never following symlinks).
pub struct RootReader {
    root: OwnedFd,
    compare_owner: bool,
}

impl RootReader {
    /// Opens `root`.
    ///
    /// # Errors
    /// The root cannot be opened as a directory.
    pub fn open(root: &Path) -> std::io::Result<RootReader> {
        let root = dirfd::open_root(root)?;
        Ok(RootReader {
            root,
            compare_owner: rustix::process::geteuid().is_root(),
        })
    }

    fn parent(&self, path: &ArchivePath) -> Option<OwnedFd> {
        dirfd::open_parent(self.root.as_fd(), path).ok()
    }

    /// Reads the current content of a regular file at `path` (no link followed), up to
    /// `limit` bytes. `None` if it is not a regular file or is larger.
    pub fn read_file(&self, path: &ArchivePath, limit: u64) -> Option<Vec<u8>> {
        let parent = self.parent(path)?;
        let fd = dirfd::open_file(parent.as_fd(), path.file_name()).ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_size as u64 > limit
        {
            return None;
        }
        let mut out = Vec::new();
        File::from(fd).take(limit).read_to_end(&mut out).ok()?;
        Some(out)
    }

    /// True if anything (not following links) exists at `path`.
    pub fn exists(&self, path: &ArchivePath) -> bool {
        self.parent(path).is_some_and(|parent| {
            rustix::fs::statat(
                &parent,
                OsStr::from_bytes(path.file_name()),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .is_ok()
        })
    }

    /// SHA-256 (hex) and mode of the regular file at `path` (no link followed).
    pub fn file_digest(&self, path: &ArchivePath) -> Option<(String, u32)> {
        let parent = self.parent(path)?;
        let fd = dirfd::open_file(parent.as_fd(), path.file_name()).ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return None;
        }
        let (hex, _) = proxsave_archive::checksum::sha256_of(File::from(fd)).ok()?;
        Some((hex, st.st_mode & 0o7777))
    }

    /// Compares the entry (whose file data is `data`) with what is at its path.
    pub fn compare(
        &self,
        path: &ArchivePath,
        header: &EntryHeader,
        data: Option<&mut dyn Read>,
    ) -> Change {
        let Some(parent) = self.parent(path) else {
            return Change::New;
        };
        let name = OsStr::from_bytes(path.file_name());
        let Ok(st) = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return Change::New;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        let same_meta = |with_time: bool| {
            (st.st_mode & 0o7777) == header.mode
                && (!self.compare_owner
                    || (u64::from(st.st_uid) == header.uid && u64::from(st.st_gid) == header.gid))
                && (!with_time
                    || (st.st_mtime == header.mtime.secs
                        && st.st_mtime_nsec as u32 == header.mtime.nanos))
        };
        match header.kind {
            EntryKind::Directory => {
                if ft != FileType::Directory {
                    Change::Changed
                } else if same_meta(true) {
                    Change::Unchanged
                } else {
                    Change::Metadata
                }
            }
            EntryKind::Symlink => {
                if ft != FileType::Symlink {
                    return Change::Changed;
                }
                let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                    .map(|t| t.into_bytes())
                    .unwrap_or_default();
                if Some(target.as_slice()) != header.link_target.as_deref() {
                    Change::Changed
                } else {
                    Change::Unchanged
                }
            }
            EntryKind::File | EntryKind::Hardlink => {
                if ft != FileType::RegularFile {
                    return Change::Changed;
                }
                if header.kind == EntryKind::File && st.st_size as u64 != header.size {
                    return Change::Changed;
                }
                let same_content = match data {
                    Some(d) => match dirfd::open_file(parent.as_fd(), path.file_name()) {
                        Ok(fd) => same_bytes(&mut File::from(fd), d),
                        Err(_) => false,
                    },
                    None => true,
                };
                if !same_content {
                    Change::Changed
                } else if same_meta(true) {
                    Change::Unchanged
                } else {
                    Change::Metadata
                }
            }
            _ => Change::Changed,
        }
    }
}

fn same_bytes(a: &mut dyn Read, b: &mut dyn Read) -> bool {
    let mut ba = vec![0u8; 64 << 10];
    let mut bb = vec![0u8; 64 << 10];
    loop {
        let na = match read_full(a, &mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        let nb = match read_full(b, &mut bb) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
