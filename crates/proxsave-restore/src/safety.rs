//! The safety backup taken before anything is written, and rolling back to it.
//!
//! The backup holds every path the restore will write that exists now, plus the existing
//! parent directories of those paths (their metadata only), read without following any
//! symlink: files with content, symlinks as symlinks, directories as entries. Times are kept
//! to the nanosecond. It is a gzip-compressed tar (`restore_backup_<stamp>.tar.gz`, mode
//! 0600, in the private work directory) that `tar -xzf FILE -C ROOT` can restore; a sidecar
//! `FILE.created` (0600, JSON) lists the paths the restore *created*, and the root folder's
//! own metadata, so that [`rollback`] can return the root to its exact prior state.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use proxsave_archive::compression::{self, Compression};
use proxsave_archive::dirfd;
use proxsave_archive::entry::Timestamp;
use proxsave_archive::extract::{ExtractOptions, ExtractReport, Extractor, Selection};
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::tar::{TarReader, WriteHeader, WriteKind};
use proxsave_archive::write::{AtomicFile, TarGzWriter};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::RestoreError;
use crate::workspace::Workspace;

/// What the safety backup holds.
#[derive(Clone, Debug, Serialize)]
pub struct SafetyBackup {
    /// The `.tar.gz`.
    pub path: PathBuf,
    /// The sidecar listing created paths.
    pub sidecar: PathBuf,
    /// Entries saved.
    pub entries: u64,
    /// Bytes of file content saved.
    pub bytes: u64,
    /// Paths that did not exist and will be created by the restore.
    pub created: Vec<String>,
}

/// Metadata of one inode.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InodeMeta {
    /// Mode bits (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_secs: i64,
    /// Modification time, nanoseconds.
    pub mtime_nanos: u32,
    /// Access time, seconds.
    pub atime_secs: i64,
    /// Access time, nanoseconds.
    pub atime_nanos: u32,
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    root: String,
    root_meta: Option<InodeMeta>,
    created: Vec<String>,
}

fn open_root(root: &Path) -> Result<OwnedFd, RestoreError> {
    dirfd::open_root(root).map_err(|e| RestoreError::io(root, e))
}

fn open_parent(root: &OwnedFd, path: &ArchivePath) -> rustix::io::Result<OwnedFd> {
    dirfd::open_parent(root.as_fd(), path)
}

fn meta_of(stat: &rustix::fs::Stat) -> InodeMeta {
    InodeMeta {
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
        mtime_secs: stat.st_mtime,
        mtime_nanos: stat.st_mtime_nsec as u32,
        atime_secs: stat.st_atime,
        atime_nanos: stat.st_atime_nsec as u32,
    }
}

/// What exists at `path` (no symlink followed), if anything.
enum Existing {
    Missing,
    /// The parent chain is not made of plain directories (a symlink or file in the way);
    /// the restore will refuse such entries, so there is nothing to save.
    Blocked,
    Found(rustix::fs::Stat),
}

fn probe(root: &OwnedFd, path: &ArchivePath) -> Existing {
    let parent = match open_parent(root, path) {
        Ok(p) => p,
        Err(Errno::NOENT) => return Existing::Missing,
        Err(_) => return Existing::Blocked,
    };
    match rustix::fs::statat(
        &parent,
        OsStr::from_bytes(path.file_name()),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Existing::Found(st),
        Err(Errno::NOENT) => Existing::Missing,
        Err(_) => Existing::Blocked,
    }
}

/// Decides what a restore writing `targets` into `root` must save, and what it will create.
/// Returns (paths to save, paths created), both sorted.
pub fn survey(
    root: &Path,
    targets: &[ArchivePath],
) -> Result<(Vec<ArchivePath>, Vec<ArchivePath>), RestoreError> {
    let fd = open_root(root)?;
    let mut save = BTreeSet::new();
    let mut created = BTreeSet::new();
    for t in targets {
        for p in t.ancestors().chain(std::iter::once(t.clone())) {
            if save.contains(&p) {
                continue;
            }
            if created.contains(&p) {
                // Below a path the restore creates: everything down to the target is new.
                created.insert(t.clone());
                for q in t.ancestors() {
                    if q.starts_with(&p) {
                        created.insert(q);
                    }
                }
                break;
            }
            match probe(&fd, &p) {
                Existing::Found(st) => {
                    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                    save.insert(p.clone());
                    if !is_dir && p != *t {
                        break; // a file or link where a directory is expected: the restore refuses
                    }
                }
                Existing::Missing => {
                    created.insert(p.clone());
                    // Everything below is new too.
                    if p != *t {
                        created.insert(t.clone());
                        for q in t.ancestors() {
                            if q.starts_with(&p) {
                                created.insert(q);
                            }
                        }
                    }
                    break;
                }
                Existing::Blocked => break,
            }
        }
    }
    Ok((save.into_iter().collect(), created.into_iter().collect()))
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// Creates the safety backup of what a restore writing `targets` into `root` would change.
///
/// # Errors
/// A message saying what failed (the caller asks whether to continue without it).
pub fn create(
    root: &Path,
    targets: &[ArchivePath],
    ws: &Workspace,
) -> Result<SafetyBackup, String> {
    let (save, created) = survey(root, targets).map_err(|e| e.to_string())?;
    let fd = open_root(root).map_err(|e| e.to_string())?;
    let path = ws.file_path("restore_backup_", ".tar.gz");
    let mut out =
        TarGzWriter::create(&path, 0o600).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries = 0u64;
    let mut bytes = 0u64;
    for p in &save {
        proxsave_archive::checkpoint::checkpoint("safety", p);
        let parent = open_parent(&fd, p).map_err(|e| format!("{p}: {e}"))?;
        let name = OsStr::from_bytes(p.file_name());
        let st = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| format!("{p}: {e}"))?;
        let mut header = WriteHeader {
            path: p.as_bytes().to_vec(),
            kind: WriteKind::File,
            link: None,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            uname: None,
            gname: None,
            size: 0,
            mtime: ts(st.st_mtime, st.st_mtime_nsec as i64),
            atime: Some(ts(st.st_atime, st.st_atime_nsec as i64)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                header.kind = WriteKind::Directory;
                out.append(&header, &mut std::io::empty())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                    .map_err(|e| format!("{p}: {e}"))?;
                header.kind = WriteKind::Symlink;
                header.link = Some(target.into_bytes());
                out.append(&header, &mut std::io::empty())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let file =
                    rustix::fs::openat(&parent, name, flags | OFlags::NOATIME, Mode::empty())
                        .or_else(|_| rustix::fs::openat(&parent, name, flags, Mode::empty()))
                        .map_err(|e| format!("{p}: {e}"))?;
                let mut file = File::from(file);
                let size = file.metadata().map_err(|e| format!("{p}: {e}"))?.len();
                header.size = size;
                out.append(&header, &mut (&mut file).take(size))
                    .map_err(|e| format!("{p}: {e}"))?;
                bytes += size;
            }
            _ => continue, // sockets, devices: never written by a restore either
        }
        entries += 1;
    }
    let path = out
        .finish()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let root_meta = rustix::fs::fstat(&fd).ok().map(|st| meta_of(&st));
    let sidecar = sidecar_path(&path);
    let doc = Sidecar {
        root: root.display().to_string(),
        root_meta,
        created: created.iter().map(|c| c.to_string()).collect(),
    };
    let mut f =
        AtomicFile::create(&sidecar, 0o600).map_err(|e| format!("{}: {e}", sidecar.display()))?;
    serde_json::to_writer_pretty(f.file(), &doc)
        .map_err(|e| format!("{}: {e}", sidecar.display()))?;
    f.commit()
        .map_err(|e| format!("{}: {e}", sidecar.display()))?;
    Ok(SafetyBackup {
        path,
        sidecar,
        entries,
        bytes,
        created: doc.created,
    })
}

/// The sidecar of a safety backup.
pub fn sidecar_path(backup: &Path) -> PathBuf {
    let mut s = backup.as_os_str().to_owned();
    s.push(".created");
    PathBuf::from(s)
}

/// What a rollback did.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackReport {
    /// Created paths removed.
    pub removed: Vec<String>,
    /// Created paths left in place (e.g. a folder that is not empty any more).
    pub kept: Vec<String>,
    /// The extraction of the saved files.
    pub restored: ExtractReport,
    /// True when no sidecar was found (created files could not be removed).
    pub sidecar_missing: bool,
}

/// Returns `root` to the state saved in `backup`: removes what the restore created, puts
/// back every saved file, link and directory with its exact metadata, then the root
/// folder's own metadata.
///
/// # Errors
/// Unreadable backup or sidecar, a root that cannot be opened.
pub fn rollback(
    backup: &Path,
    root: &Path,
    cancel: &CancelToken,
) -> Result<RollbackReport, RestoreError> {
    let sidecar_file = sidecar_path(backup);
    let sidecar: Option<Sidecar> =
        match std::fs::read(&sidecar_file) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                RestoreError::io(&sidecar_file, std::io::Error::other(e.to_string()))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(RestoreError::io(&sidecar_file, e)),
        };
    let fd = open_root(root)?;
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    if let Some(sc) = &sidecar {
        let mut created: Vec<ArchivePath> = sc
            .created
            .iter()
            .filter_map(|c| ArchivePath::from_user(c).ok())
            .collect();
        created.sort_by_key(|p| std::cmp::Reverse(p.depth()));
        for p in created {
            if let Existing::Found(st) = probe(&fd, &p) {
                let parent = open_parent(&fd, &p)
                    .map_err(|e| RestoreError::io(&root.join(p.as_os_str()), e.into()))?;
                let flags = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                match rustix::fs::unlinkat(&parent, OsStr::from_bytes(p.file_name()), flags) {
                    Ok(()) => removed.push(p.to_string()),
                    Err(_) => kept.push(p.to_string()),
                }
            }
        }
    }
    let file = File::open(backup).map_err(|e| RestoreError::io(backup, e))?;
    let (_, decoder) = compression::open_decoder(
        BufReader::new(file),
        Some(Compression::Gzip),
        &backup.display().to_string(),
    )
    .map_err(proxsave_archive::Error::from)?;
    let mut tar = TarReader::new(BufReader::with_capacity(256 << 10, decoder));
    let mut extractor = Extractor::new(
        root,
        ExtractOptions {
            cancel: cancel.clone(),
            ..ExtractOptions::default()
        },
    )?;
    while let Some(h) = tar.next_entry().map_err(proxsave_archive::Error::from)? {
        extractor.add(&h, &mut tar, Selection::Include)?;
    }
    tar.finish().map_err(proxsave_archive::Error::from)?;
    let restored = extractor.commit()?;
    if let Some(meta) = sidecar.as_ref().and_then(|s| s.root_meta) {
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode));
        if rustix::process::geteuid().is_root() {
            let _ = rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            );
        }
        let _ = rustix::fs::futimens(
            &fd,
            &Timestamps {
                last_access: Timespec {
                    tv_sec: meta.atime_secs,
                    tv_nsec: i64::from(meta.atime_nanos),
                },
                last_modification: Timespec {
                    tv_sec: meta.mtime_secs,
                    tv_nsec: i64::from(meta.mtime_nanos),
                },
            },
        );
    }
    Ok(RollbackReport {
        removed,
        kept,
        restored,
        sidecar_missing: sidecar.is_none(),
    })
}
