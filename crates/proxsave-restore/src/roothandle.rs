//! The target root as appliers see it: a [`cap_std::fs::Dir`] and safe file operations.
//!
//! Every operation walks from the root's descriptor one component at a time without
//! following a symlink (the [`proxsave_archive::dirfd`] walker the extractor uses), so an
//! applier cannot write outside the root or through a link, whatever the root's path.
//!
//! [`RootHandle::replace`] is the atomic replace every applier uses: a temporary file in the
//! same folder (`.proxsave-tmp-<pid>-…`, which crash recovery removes), written, owner and
//! mode set, `fsync`ed, renamed over the old name, folder `fsync`ed; owner and mode are kept
//! from the old file unless given; a `.bak-YYYYMMDD-HHMMSS` copy of the old file on request.
//! [`RootHandle::replace_all`] does that for several files all-or-nothing.
//!
//! # Security
//! The root itself is opened following symlinks in its own path (the caller's choice);
//! nothing below it is ever reached through a symlink.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;

/// The target root; see the module docs.
#[derive(Debug)]
pub struct RootHandle {
    dir: cap_std::fs::Dir,
    path: PathBuf,
}

/// Owner, mode and backup copy of a replaced file. `None` keeps the old file's value (or,
/// for a new file, mode 0644 and the caller's owner).
#[derive(Clone, Debug, Default)]
pub struct FileSpec {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Keep the old file as `<name>.bak-<stamp>` (stamp `YYYYMMDD-HHMMSS`).
    pub backup_stamp: Option<String>,
}

/// What a replace did.
#[derive(Clone, Debug, Serialize)]
pub struct Replaced {
    /// The path replaced (or created).
    pub path: ArchivePath,
    /// True when there was no file before.
    pub created: bool,
    /// The backup copy, when asked for and there was an old file.
    pub backup: Option<ArchivePath>,
}

/// Metadata of a path in the root (no link followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Type.
    pub kind: FileType,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
}

fn io_at(path: &Path, e: impl Into<std::io::Error>) -> std::io::Error {
    let e = e.into();
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl RootHandle {
    /// Opens the root folder.
    ///
    /// # Errors
    /// It cannot be opened as a folder.
    pub fn open(path: &Path) -> std::io::Result<RootHandle> {
        let dir = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(|e| io_at(path, e))?;
        Ok(RootHandle {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The root as a `cap_std` directory, for embedders that use the ecosystem's sandbox.
    pub fn dir(&self) -> &cap_std::fs::Dir {
        &self.dir
    }

    /// The root's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    fn shown(&self, p: &ArchivePath) -> PathBuf {
        self.path.join(p.as_os_str())
    }

    fn parent(&self, p: &ArchivePath) -> std::io::Result<OwnedFd> {
        dirfd::open_parent(self.fd(), p).map_err(|e| io_at(&self.shown(p), e))
    }

    /// Metadata of `p`, `None` when it (or a folder on the way) is missing.
    ///
    /// # Errors
    /// A symlink or a file on the way, permission errors.
    pub fn stat(&self, p: &ArchivePath) -> std::io::Result<Option<Meta>> {
        let parent = match dirfd::open_parent(self.fd(), p) {
            Ok(d) => d,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_at(&self.shown(p), e)),
        };
        match rustix::fs::statat(
            &parent,
            OsStr::from_bytes(p.file_name()),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(Some(Meta {
                kind: FileType::from_raw_mode(st.st_mode),
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                size: st.st_size as u64,
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_at(&self.shown(p), e)),
        }
    }

    /// The content of the regular file `p`, `None` when missing.
    ///
    /// # Errors
    /// A symlink, a non-file (never blocks on a FIFO), permission errors.
    pub fn read(&self, p: &ArchivePath) -> std::io::Result<Option<Vec<u8>>> {
        let parent = match dirfd::open_parent(self.fd(), p) {
            Ok(d) => d,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_at(&self.shown(p), e)),
        };
        let fd = match dirfd::open_file(parent.as_fd(), p.file_name()) {
            Ok(f) => f,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_at(&self.shown(p), e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| io_at(&self.shown(p), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io_at(
                &self.shown(p),
                std::io::Error::other("not a regular file"),
            ));
        }
        let mut out = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut out)
            .map_err(|e| io_at(&self.shown(p), e))?;
        Ok(Some(out))
    }

    /// True when something (a link included) is at `p`.
    pub fn exists(&self, p: &ArchivePath) -> bool {
        matches!(self.stat(p), Ok(Some(_)))
    }

    /// Creates the folder `p` and missing parents (mode `mode`, owner root), refusing links.
    ///
    /// # Errors
    /// A file or link on the way.
    pub fn create_dir_all(&self, p: &ArchivePath, mode: u32) -> std::io::Result<()> {
        let mut cur = rustix::io::dup(self.fd())?;
        for comp in p.components() {
            match rustix::fs::mkdirat(&cur, OsStr::from_bytes(comp), Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io_at(&self.shown(p), e)),
            }
            cur = dirfd::open_dir(cur.as_fd(), comp).map_err(|e| io_at(&self.shown(p), e))?;
        }
        Ok(())
    }

    /// Replaces (or creates) the file `p` with `bytes`, atomically; see the module docs.
    ///
    /// # Errors
    /// The parent is missing or reached through a link, the old path is a folder or a
    /// link, or writing fails (the old file is then untouched).
    pub fn replace(
        &self,
        p: &ArchivePath,
        bytes: &[u8],
        spec: &FileSpec,
    ) -> std::io::Result<Replaced> {
        let prepared = self.prepare(p, bytes, spec)?;
        let done = self.install(&prepared);
        // Without a `.bak` copy the link to the old inode was only kept for an undo.
        prepared.forget_old();
        done
    }

    /// Replaces several files all-or-nothing: every temporary file is written first; then
    /// they are renamed into place one by one; if one rename fails, the files already
    /// renamed are put back as they were.
    ///
    /// # Errors
    /// The first failure (nothing is left changed).
    pub fn replace_all(
        &self,
        files: &[(ArchivePath, Vec<u8>, FileSpec)],
    ) -> std::io::Result<Vec<Replaced>> {
        let mut prepared = Vec::new();
        for (p, bytes, spec) in files {
            match self.prepare(p, bytes, spec) {
                Ok(x) => prepared.push(x),
                Err(e) => {
                    for x in &prepared {
                        x.discard();
                    }
                    return Err(e);
                }
            }
        }
        let mut done: Vec<(usize, Replaced)> = Vec::new();
        for (i, x) in prepared.iter().enumerate() {
            match self.install(x) {
                Ok(r) => done.push((i, r)),
                Err(e) => {
                    // Put back what was already renamed, newest first.
                    for (j, _) in done.iter().rev() {
                        prepared[*j].undo();
                    }
                    for x in &prepared[i..] {
                        x.discard();
                    }
                    return Err(e);
                }
            }
        }
        for x in &prepared {
            x.forget_old();
        }
        Ok(done.into_iter().map(|(_, r)| r).collect())
    }

    fn prepare(&self, p: &ArchivePath, bytes: &[u8], spec: &FileSpec) -> std::io::Result<Prepared> {
        let shown = self.shown(p);
        let parent = self.parent(p)?;
        let name = OsStr::from_bytes(p.file_name()).to_os_string();
        let old = match rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(io_at(
                        &shown,
                        std::io::Error::other("not a regular file; left as it is"),
                    ));
                }
                Some(st)
            }
            Err(Errno::NOENT) => None,
            Err(e) => return Err(io_at(&shown, e)),
        };
        let pid = std::process::id();
        let tag = p
            .file_name()
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    *b as char
                } else {
                    '_'
                }
            })
            .take(40)
            .collect::<String>();
        let tmp = format!("{}{pid}-new-{tag}", crate::runstate::COMMIT_TMP_PREFIX);
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
        let fd = rustix::fs::openat(
            &parent,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_at(&shown, e))?;
        let mut file = std::fs::File::from(fd);
        let result = (|| -> std::io::Result<()> {
            file.write_all(bytes)?;
            let mode = spec
                .mode
                .or(old.map(|st| st.st_mode & 0o7777))
                .unwrap_or(0o644);
            let uid = spec.uid.or(old.map(|st| st.st_uid));
            let gid = spec.gid.or(old.map(|st| st.st_gid));
            if uid.is_some() || gid.is_some() {
                rustix::fs::fchown(
                    &file,
                    uid.map(rustix::fs::Uid::from_raw),
                    gid.map(rustix::fs::Gid::from_raw),
                )?;
            }
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
            file.sync_all()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
            return Err(io_at(&shown, e));
        }
        // Keep a link to the old inode: the `.bak` copy, or the undo of `replace_all`.
        let keep = old.map(|_| match &spec.backup_stamp {
            Some(stamp) => {
                let mut n = name.clone();
                n.push(format!(".bak-{stamp}"));
                (n, true)
            }
            None => (
                format!("{}{pid}-old-{tag}", crate::runstate::COMMIT_TMP_PREFIX).into(),
                false,
            ),
        });
        if let Some((k, _)) = &keep {
            let _ = rustix::fs::unlinkat(&parent, k.as_os_str(), AtFlags::empty());
            if let Err(e) =
                rustix::fs::linkat(&parent, &name, &parent, k.as_os_str(), AtFlags::empty())
            {
                let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
                return Err(io_at(&shown, e));
            }
        }
        Ok(Prepared {
            path: p.clone(),
            parent,
            name,
            tmp,
            keep,
            created: old.is_none(),
        })
    }

    fn install(&self, x: &Prepared) -> std::io::Result<Replaced> {
        rustix::fs::renameat(&x.parent, x.tmp.as_str(), &x.parent, &x.name)
            .map_err(|e| io_at(&self.shown(&x.path), e))?;
        let _ = rustix::fs::fsync(&x.parent);
        let backup = match &x.keep {
            Some((k, true)) => x
                .path
                .parent()
                .map(|par| format!("{par}/{}", k.to_string_lossy()))
                .or_else(|| Some(k.to_string_lossy().into_owned()))
                .and_then(|s| ArchivePath::from_user(&s).ok()),
            _ => None,
        };
        Ok(Replaced {
            path: x.path.clone(),
            created: x.created,
            backup,
        })
    }
}

struct Prepared {
    path: ArchivePath,
    parent: OwnedFd,
    name: std::ffi::OsString,
    tmp: String,
    /// (name of the link to the old inode, true when it is a requested `.bak` copy)
    keep: Option<(std::ffi::OsString, bool)>,
    created: bool,
}

impl Prepared {
    fn discard(&self) {
        let _ = rustix::fs::unlinkat(&self.parent, self.tmp.as_str(), AtFlags::empty());
        self.forget_old();
    }

    fn forget_old(&self) {
        if let Some((k, false)) = &self.keep {
            let _ = rustix::fs::unlinkat(&self.parent, k.as_os_str(), AtFlags::empty());
        }
    }

    fn undo(&self) {
        match &self.keep {
            Some((k, is_bak)) => {
                if *is_bak {
                    // The backup copy stays; the old inode goes back under its name.
                    let _ = rustix::fs::linkat(
                        &self.parent,
                        k.as_os_str(),
                        &self.parent,
                        self.tmp.as_str(),
                        AtFlags::empty(),
                    );
                }
                let from: &OsStr = if *is_bak {
                    OsStr::new(self.tmp.as_str())
                } else {
                    k.as_os_str()
                };
                let _ = rustix::fs::renameat(&self.parent, from, &self.parent, &self.name);
            }
            None => {
                let _ = rustix::fs::unlinkat(&self.parent, &self.name, AtFlags::empty());
            }
        }
        let _ = rustix::fs::fsync(&self.parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn ap(s: &str) -> ArchivePath {
        ArchivePath::from_user(s).expect("path")
    }

    #[test]
    fn replace_keeps_owner_and_mode_and_makes_a_backup_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        let f = dir.path().join("etc/fstab");
        std::fs::write(&f, b"old\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let root = RootHandle::open(dir.path()).expect("open");
        let spec = FileSpec {
            backup_stamp: Some("20261205-010203".into()),
            ..FileSpec::default()
        };
        let r = root
            .replace(&ap("etc/fstab"), b"new\n", &spec)
            .expect("replace");
        assert!(!r.created);
        assert_eq!(r.backup, Some(ap("etc/fstab.bak-20261205-010203")));
        assert_eq!(std::fs::read(&f).expect("read"), b"new\n");
        assert_eq!(std::fs::metadata(&f).expect("meta").mode() & 0o7777, 0o640);
        assert_eq!(
            std::fs::read(dir.path().join("etc/fstab.bak-20261205-010203")).expect("bak"),
            b"old\n"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path().join("etc"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn replace_refuses_a_link_on_the_way_and_a_link_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("etc")).expect("link");
        let root = RootHandle::open(dir.path()).expect("open");
        assert!(
            root.replace(&ap("etc/passwd"), b"x", &FileSpec::default())
                .is_err()
        );
        assert!(
            std::fs::read_dir(outside.path())
                .expect("ls")
                .next()
                .is_none()
        );
        std::fs::remove_file(dir.path().join("etc")).expect("rm");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink(outside.path().join("x"), dir.path().join("etc/passwd"))
            .expect("link");
        assert!(
            root.replace(&ap("etc/passwd"), b"x", &FileSpec::default())
                .is_err()
        );
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn replace_all_puts_everything_back_when_one_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("mkdir");
        std::fs::write(dir.path().join("etc/passwd"), b"old passwd\n").expect("w");
        std::fs::write(dir.path().join("etc/group"), b"old group\n").expect("w");
        let root = RootHandle::open(dir.path()).expect("open");
        // The third target's folder does not exist: preparing it fails, nothing changes.
        let files = vec![
            (
                ap("etc/passwd"),
                b"new passwd\n".to_vec(),
                FileSpec::default(),
            ),
            (
                ap("etc/group"),
                b"new group\n".to_vec(),
                FileSpec::default(),
            ),
            (ap("etc/missing/shadow"), b"x".to_vec(), FileSpec::default()),
        ];
        assert!(root.replace_all(&files).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("etc/passwd")).expect("r"),
            b"old passwd\n"
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/group")).expect("r"),
            b"old group\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("etc"))
                .expect("ls")
                .count(),
            2
        );
        let ok = root.replace_all(&files[..2]).expect("replace_all");
        assert_eq!(ok.len(), 2);
        assert_eq!(
            std::fs::read(dir.path().join("etc/group")).expect("r"),
            b"new group\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("etc"))
                .expect("ls")
                .count(),
            2
        );
    }
}
