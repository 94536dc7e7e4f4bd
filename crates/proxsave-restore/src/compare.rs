//! Comparing an archive entry with what the target root holds now (for `--dry-run`, the
//! report's new/changed/unchanged, and `diff`).

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

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

/// A read-only view of the target root through descriptors, never following a symlink: it
/// describes what the restore will find at each path (the restore replaces a link, it never
/// writes through one), so a link is compared as a link and a path below a link (or below
/// anything but a folder) is "changed", never read.
///
/// The folders it looks in are kept open in a small [`dirfd::DirCache`], so the entries of one
/// folder cost one lookup each, not a walk from the root: a reader assumes the root does not
/// change while it is used (open a new one after writing).
pub struct RootReader {
    root: Arc<OwnedFd>,
    dirs: RefCell<dirfd::DirCache>,
    compare_owner: bool,
}

/// Folders a [`RootReader`] keeps open.
const READER_CACHED_DIRS: usize = 32;

impl RootReader {
    /// Opens `root`.
    ///
    /// # Errors
    /// The root cannot be opened as a directory.
    pub fn open(root: &Path) -> std::io::Result<RootReader> {
        let root = dirfd::open_root(root)?;
        Ok(RootReader {
            root: Arc::new(root),
            dirs: RefCell::new(dirfd::DirCache::new(READER_CACHED_DIRS)),
            compare_owner: rustix::process::geteuid().is_root(),
        })
    }

    fn parent(&self, path: &ArchivePath) -> Option<Arc<OwnedFd>> {
        self.parent_or_why(path).ok()
    }

    /// The folder holding `path`: `Err(true)` when a component is missing, `Err(false)` when
    /// something else (a symlink, a file) is in the way.
    fn parent_or_why(&self, path: &ArchivePath) -> Result<Arc<OwnedFd>, bool> {
        let Some(parent) = path.parent() else {
            return Ok(self.root.clone());
        };
        match self.dirs.borrow_mut().dir(self.root.as_fd(), &parent) {
            Ok(Some(fd)) => Ok(fd),
            Ok(None) => Err(true),
            Err(_) => Err(false),
        }
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

    /// True if anything (not following links) exists at `path`, or if something that is not
    /// a folder (a symlink, a file) stands where one of its parent folders should be.
    pub fn exists(&self, path: &ArchivePath) -> bool {
        match self.parent_or_why(path) {
            Ok(parent) => rustix::fs::statat(
                &parent,
                OsStr::from_bytes(path.file_name()),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .is_ok(),
            Err(missing) => !missing,
        }
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
        let parent = match self.parent_or_why(path) {
            Ok(p) => p,
            Err(true) => return Change::New,
            // A link or a file where a folder should be: not followed, and not "new" either.
            Err(false) => return Change::Changed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proxsave_archive::entry::Timestamp;
    use std::os::unix::fs::{MetadataExt, symlink};

    fn header(path: &str, data: &[u8], meta: &std::fs::Metadata) -> EntryHeader {
        EntryHeader {
            raw_path: path.as_bytes().to_vec(),
            kind: EntryKind::File,
            link_target: None,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            uname: None,
            gname: None,
            size: data.len() as u64,
            mtime: Timestamp {
                secs: meta.mtime(),
                nanos: meta.mtime_nsec() as u32,
            },
            atime: None,
            device: None,
            has_xattrs: false,
            offset: 0,
        }
    }

    /// Outside the root: `outside/hosts` and `outside/ssh/sshd_config` with the very bytes
    /// and metadata the "backup" has; inside, links to them.
    #[test]
    fn links_in_the_root_are_never_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(outside.join("ssh")).unwrap();
        let data = b"127.0.0.1 localhost\n";
        std::fs::write(outside.join("hosts"), data).unwrap();
        std::fs::write(outside.join("ssh/sshd_config"), data).unwrap();
        std::fs::write(root.join("etc/real"), data).unwrap();
        symlink(outside.join("hosts"), root.join("etc/hosts")).unwrap();
        symlink(outside.join("ssh"), root.join("etc/ssh")).unwrap();
        let r = RootReader::open(&root).unwrap();
        let p = |s: &str| ArchivePath::from_user(s).unwrap();
        let cmp = |path: &str| {
            let h = header(
                path,
                data,
                &std::fs::metadata(outside.join("hosts")).unwrap(),
            );
            r.compare(&p(path), &h, Some(&mut &data[..]))
        };
        assert_eq!(cmp("etc/hosts"), Change::Changed);
        assert_eq!(cmp("etc/ssh/sshd_config"), Change::Changed);
        assert_eq!(cmp("etc/missing/file"), Change::New);
        assert!(r.read_file(&p("etc/hosts"), 1 << 20).is_none());
        assert!(r.read_file(&p("etc/ssh/sshd_config"), 1 << 20).is_none());
        assert!(r.file_digest(&p("etc/hosts")).is_none());
        assert!(r.file_digest(&p("etc/ssh/sshd_config")).is_none());
        assert!(r.exists(&p("etc/hosts")) && r.exists(&p("etc/ssh/sshd_config")));
        assert!(!r.exists(&p("etc/missing/file")));
        // The same bytes inside the root are read.
        assert_eq!(r.read_file(&p("etc/real"), 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_fifo_where_a_file_is_expected_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("etc/hosts"),
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let r = RootReader::open(dir.path()).unwrap();
        let p = ArchivePath::from_user("etc/hosts").unwrap();
        assert!(r.read_file(&p, 1 << 20).is_none());
        assert!(r.file_digest(&p).is_none());
        assert!(r.exists(&p));
    }
}
