//! Reaching paths below a root through directory descriptors, one component at a time, never
//! following a symlink. The one path walker every part of proxsave that touches a root uses
//! (extraction, safety backups, comparisons, dedup repair).
//!
//! # Security
//! Every component is opened with `O_NOFOLLOW|O_DIRECTORY`: a symlink or any other
//! non-directory anywhere on the way (`ENOTDIR`) stops the walk. Only the root itself is opened
//! following symlinks, because it is the caller's choice.
//!
//! Probes that look at the target system the way it will see itself once booted (its host
//! name, whether it is a PVE or PBS host) use [`resolve_in_root`] instead: symbolic links are
//! followed with chroot semantics (an absolute target starts again at the root, `..` never
//! climbs above it), resolved by proxsave itself one `openat(O_NOFOLLOW)` at a time, so a link
//! pointing outside the root reaches the same path *inside* it and nothing outside the root is
//! ever opened. The same answer on every kernel (no `openat2` needed).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

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
/// `ENOTDIR` for anything but a directory, a symlink included (Linux; `ELOOP` on some
/// systems), `ENOENT`.
pub fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the regular file (or whatever it is, but never through a symlink) `name` in `dir`
/// for reading. Non-blocking, so a FIFO planted where a file is expected cannot hang the
/// caller (reads of regular files are unaffected); callers check the type with `fstat`.
///
/// # Errors
/// `ELOOP` for a symlink, `ENOENT`, permission errors.
pub fn open_file(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
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

/// A small cache of folder descriptors below one root, for walkers that look at many
/// entries of one folder in a row (tar order): the folder holding the previous entry is
/// reused, and a new folder is opened from its nearest cached ancestor, so a path costs one
/// `openat` per *new* folder instead of one per component per entry. A folder found missing
/// is cached as missing.
///
/// Every folder is opened as [`open_dir`] does (`O_NOFOLLOW|O_DIRECTORY`): a symlink is never
/// traversed. The cache assumes the tree it looks at is not rearranged while it is used (it
/// serves one read of an archive, during which the caller writes nothing there): a folder
/// replaced meanwhile is still seen through its old descriptor, and a folder created meanwhile
/// can stay "missing". Callers that write into the tree use a new cache afterwards.
#[derive(Debug)]
pub struct DirCache {
    map: std::collections::HashMap<ArchivePath, Option<std::sync::Arc<OwnedFd>>>,
    cap: usize,
}

impl DirCache {
    /// An empty cache holding at most `cap` folders (cleared when full).
    pub fn new(cap: usize) -> DirCache {
        DirCache {
            map: std::collections::HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// The folder `path` below `root`, never following a symlink; `Ok(None)` when a component
    /// is missing. (The root itself has no path: callers use `root`.)
    ///
    /// # Errors
    /// As [`open_dir`] (`ENOTDIR` or `ELOOP` for a symlink or a non-folder on the way), except
    /// `ENOENT`.
    pub fn dir(
        &mut self,
        root: BorrowedFd<'_>,
        path: &ArchivePath,
    ) -> rustix::io::Result<Option<std::sync::Arc<OwnedFd>>> {
        if let Some(hit) = self.map.get(path) {
            return Ok(hit.clone());
        }
        // Nearest cached ancestor (or the root), then down one component at a time.
        let mut todo = vec![path.clone()];
        let mut base: Option<std::sync::Arc<OwnedFd>> = None;
        while let Some(parent) = todo.last().and_then(ArchivePath::parent) {
            match self.map.get(&parent) {
                Some(Some(fd)) => {
                    base = Some(fd.clone());
                    break;
                }
                Some(None) => {
                    // Below a missing folder: missing too.
                    self.insert(path.clone(), None);
                    return Ok(None);
                }
                None => todo.push(parent),
            }
        }
        let mut cur = base;
        while let Some(p) = todo.pop() {
            let parent_fd = match &cur {
                Some(fd) => fd.as_fd(),
                None => root,
            };
            match open_dir(parent_fd, p.file_name()) {
                Ok(fd) => {
                    let fd = std::sync::Arc::new(fd);
                    self.insert(p, Some(fd.clone()));
                    cur = Some(fd);
                }
                Err(Errno::NOENT) => {
                    self.insert(p, None);
                    if !todo.is_empty() {
                        self.insert(path.clone(), None);
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    fn insert(&mut self, path: ArchivePath, fd: Option<std::sync::Arc<OwnedFd>>) {
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        self.map.insert(path, fd);
    }
}

/// Most symbolic links followed while resolving one path (the kernel's `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// A path resolved inside a root by [`resolve_in_root`]: never a symlink.
#[derive(Debug)]
pub struct Resolved {
    /// The folder holding it (inside the root).
    pub dir: OwnedFd,
    /// Its name in `dir` (`.` when the path is a folder reached through `..` or the root).
    pub name: Vec<u8>,
    /// Its metadata (`lstat`; it is not a symlink).
    pub stat: Stat,
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Resolves `path` (relative to `root`; a leading `/` is ignored) the way a process whose root
/// directory is `root` would: symbolic links are followed, an absolute link target starts again
/// at `root`, and `..` never climbs above `root` (it goes back along the folders opened, never
/// through the file system's own `..`). Every folder is opened with `O_NOFOLLOW`, so nothing
/// outside `root` is ever reached, even when the tree changes during the walk.
///
/// # Errors
/// `ENOENT` (also for an empty link), `ENOTDIR`, `ELOOP` after [`MAX_LINKS`] links, permission
/// errors.
pub fn resolve_in_root(root: BorrowedFd<'_>, path: &[u8]) -> rustix::io::Result<Resolved> {
    let mut stack: Vec<OwnedFd> = vec![rustix::io::dup(root)?];
    let mut pending: VecDeque<Vec<u8>> = components(path).map(<[u8]>::to_vec).collect();
    let mut links = 0usize;
    while let Some(comp) = pending.pop_front() {
        if comp == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let Some(dir) = stack.last() else {
            return Err(Errno::NOENT);
        };
        let name = OsStr::from_bytes(&comp);
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP);
            }
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes();
            if target.is_empty() {
                return Err(Errno::NOENT);
            }
            if target.first() == Some(&b'/') {
                stack.truncate(1);
            }
            for c in components(&target).rev() {
                pending.push_front(c.to_vec());
            }
            continue;
        }
        if pending.is_empty() {
            let dir = stack.pop().ok_or(Errno::NOENT)?;
            return Ok(Resolved {
                dir,
                name: comp,
                stat: st,
            });
        }
        // A folder on the way (if it became a link since the stat: ELOOP, never followed).
        let next = open_dir(dir.as_fd(), &comp)?;
        stack.push(next);
    }
    // The path ended on a folder reached through `..` (or is the root itself).
    let dir = stack.pop().ok_or(Errno::NOENT)?;
    let stat = rustix::fs::fstat(&dir)?;
    Ok(Resolved {
        dir,
        name: b".".to_vec(),
        stat,
    })
}

/// Metadata of `path` inside `root`, symlinks resolved as [`resolve_in_root`] does.
///
/// # Errors
/// As [`resolve_in_root`].
pub fn stat_in_root(root: BorrowedFd<'_>, path: &[u8]) -> rustix::io::Result<Stat> {
    resolve_in_root(root, path).map(|r| r.stat)
}

/// Reads the regular file `path` inside `root` (symlinks resolved as [`resolve_in_root`] does),
/// if it is at most `limit` bytes long.
///
/// # Errors
/// As [`resolve_in_root`]; `InvalidInput` for anything but a regular file, `FileTooLarge`
/// beyond `limit`.
pub fn read_in_root(root: BorrowedFd<'_>, path: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    let r = resolve_in_root(root, path)?;
    let fd = open_file(r.dir.as_fd(), &r.name)?;
    let st = rustix::fs::fstat(&fd)?;
    // Still the object resolved (not swapped since), and a regular file.
    if (st.st_dev, st.st_ino) != (r.stat.st_dev, r.stat.st_ino)
        || FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if st.st_size as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes"),
        ));
    }
    let mut out = Vec::new();
    File::from(fd).take(limit).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Lab {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        outside: std::path::PathBuf,
    }

    /// `outside/` holds `secret` (a file) and `pve/` (a folder); `root/` holds `etc/real`.
    fn lab() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(outside.join("pve")).unwrap();
        std::fs::write(outside.join("secret"), b"OUTSIDE-SECRET\n").unwrap();
        std::fs::write(root.join("etc/real"), b"inside\n").unwrap();
        Lab {
            _dir: dir,
            root,
            outside,
        }
    }

    fn read(lab: &Lab, path: &str) -> std::io::Result<Vec<u8>> {
        let fd = open_root(&lab.root).unwrap();
        read_in_root(fd.as_fd(), path.as_bytes(), 1 << 20)
    }

    #[test]
    fn links_inside_the_root_are_followed() {
        let lab = lab();
        symlink("real", lab.root.join("etc/rel")).unwrap();
        symlink("/etc/real", lab.root.join("etc/abs")).unwrap();
        symlink("../etc/./real", lab.root.join("etc/up")).unwrap();
        symlink("/etc", lab.root.join("etc2")).unwrap();
        for p in [
            "etc/real",
            "/etc/rel",
            "etc/abs",
            "etc/up",
            "etc2/real",
            "etc2/../etc/abs",
        ] {
            assert_eq!(read(&lab, p).unwrap(), b"inside\n", "{p}");
        }
    }

    #[test]
    fn nothing_outside_the_root_is_reached() {
        let lab = lab();
        let abs = lab.outside.join("secret");
        symlink(&abs, lab.root.join("etc/abs")).unwrap();
        symlink("../../outside/secret", lab.root.join("etc/rel")).unwrap();
        symlink(&lab.outside, lab.root.join("etc/dir")).unwrap();
        symlink("../../../../../../..", lab.root.join("etc/top")).unwrap();
        for p in [
            "etc/abs",
            "etc/rel",
            "etc/dir/secret",
            "etc/top/outside/secret",
            "../outside/secret",
            "etc/../../outside/secret",
        ] {
            let e = read(&lab, p).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{p}: {e}");
        }
        // The same names inside the root are what the links mean.
        let inside = lab.root.join(abs.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, b"inside too\n").unwrap();
        assert_eq!(read(&lab, "etc/abs").unwrap(), b"inside too\n");
        let fd = open_root(&lab.root).unwrap();
        let st = stat_in_root(fd.as_fd(), b"etc/dir").unwrap();
        assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Directory);
        let top = stat_in_root(fd.as_fd(), b"etc/top").unwrap();
        let root = rustix::fs::fstat(&fd).unwrap();
        assert_eq!((top.st_dev, top.st_ino), (root.st_dev, root.st_ino));
    }

    #[test]
    fn dir_cache_never_follows_links_and_reuses_folders() {
        let lab = lab();
        std::fs::create_dir_all(lab.root.join("etc/ssh")).unwrap();
        symlink(&lab.outside, lab.root.join("etc/out")).unwrap();
        let fd = open_root(&lab.root).unwrap();
        let mut cache = DirCache::new(4);
        let p = |s: &str| ArchivePath::from_user(s).unwrap();
        let ssh = cache.dir(fd.as_fd(), &p("etc/ssh")).unwrap().unwrap();
        let again = cache.dir(fd.as_fd(), &p("etc/ssh")).unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&ssh, &again));
        // A link to a folder outside the root is never opened, nor anything below it.
        for link in ["etc/out", "etc/out/pve"] {
            let e = cache.dir(fd.as_fd(), &p(link)).unwrap_err();
            assert!([Errno::NOTDIR, Errno::LOOP].contains(&e), "{link}: {e}");
        }
        // Missing folders (and anything below them) are missing.
        assert!(cache.dir(fd.as_fd(), &p("var/lib")).unwrap().is_none());
        assert!(cache.dir(fd.as_fd(), &p("var/lib/x/y")).unwrap().is_none());
        // Past its size the cache starts again; answers stay the same.
        for d in ["a", "b", "c", "d", "e"] {
            std::fs::create_dir(lab.root.join("etc").join(d)).unwrap();
            assert!(
                cache
                    .dir(fd.as_fd(), &p(&format!("etc/{d}")))
                    .unwrap()
                    .is_some()
            );
        }
        assert!(cache.dir(fd.as_fd(), &p("etc/ssh")).unwrap().is_some());
        assert!(cache.map.len() <= 4);
    }

    #[test]
    fn loops_and_non_files_are_errors() {
        let lab = lab();
        symlink("b", lab.root.join("etc/a")).unwrap();
        symlink("a", lab.root.join("etc/b")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            lab.root.join("etc/fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(
            read(&lab, "etc/a").unwrap_err().raw_os_error(),
            Some(Errno::LOOP.raw_os_error())
        );
        // A FIFO neither blocks nor counts as a file.
        assert_eq!(
            read(&lab, "etc/fifo").unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        assert_eq!(
            read(&lab, "etc").unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        let fd = open_root(&lab.root).unwrap();
        assert_eq!(
            read_in_root(fd.as_fd(), b"etc/real", 3).unwrap_err().kind(),
            std::io::ErrorKind::FileTooLarge
        );
    }
}
