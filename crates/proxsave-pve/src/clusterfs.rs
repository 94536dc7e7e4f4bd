//! Files on the mounted cluster filesystem (`/etc/pve`): what differs between the stage and
//! the root, and writes made the way pmxcfs accepts them.
//!
//! pmxcfs accepts `chmod` only to 0640 (0600 under `priv/`), `chown` only to what a file
//! already has, and `rename` within a folder; it reports folders as 0755. So files are
//! written as a temporary file in the same folder created with their final mode, never
//! chowned, then renamed over the old name; folders are created with a plain `mkdir`.
//! Everything goes through the root's descriptor one component at a time, never following a
//! symbolic link.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_restore::applier::{ApplyError, RootHandle, Stage};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// The cluster filesystem's mount point, relative to the root.
pub const ETC_PVE: &str = "etc/pve";

/// Mode of a file written to the cluster filesystem.
pub fn file_mode(path: &ArchivePath) -> u32 {
    if path.as_bytes().starts_with(b"etc/pve/priv/") {
        0o600
    } else {
        0o640
    }
}

/// `etc/x` as an [`ArchivePath`].
pub fn ap(s: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(s).map_err(|e| ApplyError::Other(format!("{s}: {e}")))
}

/// `/etc/x` for messages.
pub fn shown(p: &ArchivePath) -> String {
    format!("/{}", p.as_os_str().to_string_lossy())
}

/// A tree entry below a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// Anything else (links are never followed).
    Other,
}

/// Every entry below `dir` in the stage (sorted, parents first); empty when absent.
pub fn stage_tree(stage: &Stage, dir: &ArchivePath) -> std::io::Result<Vec<(ArchivePath, Node)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.clone()];
    while let Some(d) = todo.pop() {
        for name in stage.list(&d)? {
            let p = d.join(&name);
            // A folder lists; a file (or a link) is not a folder.
            let node = match stage.list(&p) {
                Ok(_) => Node::Dir,
                Err(_) if stage.read(&p).is_ok() => Node::File,
                Err(_) => Node::Other,
            };
            if node == Node::Dir {
                todo.push(p.clone());
            }
            out.push((p, node));
        }
    }
    out.sort();
    Ok(out)
}

/// Every entry below `dir` in the root (sorted, parents first); empty when absent.
pub fn root_tree(
    root: &RootHandle,
    dir: &ArchivePath,
) -> std::io::Result<Vec<(ArchivePath, Node)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.clone()];
    while let Some(d) = todo.pop() {
        let fd = match dirfd::walk(root.dir().as_fd(), &d) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut rd = rustix::fs::Dir::read_from(&fd)?;
        while let Some(entry) = rd.read() {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let p = d.join(n);
            let st = rustix::fs::statat(&fd, OsStr::from_bytes(n), AtFlags::SYMLINK_NOFOLLOW)?;
            let node = match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    todo.push(p.clone());
                    Node::Dir
                }
                FileType::RegularFile => Node::File,
                _ => Node::Other,
            };
            out.push((p, node));
        }
    }
    out.sort();
    Ok(out)
}

/// One change to the cluster filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create the folder (plain `mkdir`).
    Mkdir(ArchivePath),
    /// Write the file with these bytes (from the stage path `from`).
    Write {
        /// Where.
        path: ArchivePath,
        /// What.
        bytes: Vec<u8>,
        /// New (true) or changed.
        new: bool,
        /// Why, for the plan (`from node pve1 of the backup`).
        note: Option<String>,
    },
    /// Remove the file (or the empty folder).
    Remove {
        /// Where.
        path: ArchivePath,
        /// True for a folder.
        dir: bool,
    },
}

impl Change {
    /// The root path it touches.
    pub fn path(&self) -> &ArchivePath {
        match self {
            Change::Mkdir(p) | Change::Write { path: p, .. } | Change::Remove { path: p, .. } => p,
        }
    }

    /// One line for the plan and the dry run.
    pub fn line(&self) -> String {
        match self {
            Change::Mkdir(p) => format!("create folder {}", shown(p)),
            Change::Write {
                path, new, note, ..
            } => format!(
                "write {} ({}, {:o}){}",
                shown(path),
                if *new { "new" } else { "changed" },
                file_mode(path),
                note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
            ),
            Change::Remove { path, dir } => format!(
                "remove {}{} (not in the backup)",
                if *dir { "folder " } else { "" },
                shown(path)
            ),
        }
    }
}

/// The writes that make the file `dest` hold `bytes` (none when it already does, with its
/// mode), creating missing folders on the way below `etc/pve`.
pub fn write_changes(
    root: &RootHandle,
    dest: &ArchivePath,
    bytes: Vec<u8>,
    note: Option<String>,
    out: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    let base = ap(ETC_PVE)?;
    if let Some(parent) = dest.parent() {
        let mut missing: Vec<ArchivePath> = parent
            .ancestors()
            .filter(|a| a.starts_with(&base) && *a != base)
            .filter(|a| !root.exists(a))
            .collect();
        missing.sort();
        for m in missing {
            if !out.contains(&Change::Mkdir(m.clone())) {
                out.push(Change::Mkdir(m));
            }
        }
    }
    let meta = root.stat(dest)?;
    let same = match &meta {
        Some(m) if m.kind == FileType::RegularFile => {
            m.mode == file_mode(dest) && root.read(dest)?.as_deref() == Some(&bytes[..])
        }
        _ => false,
    };
    if !same {
        out.push(Change::Write {
            path: dest.clone(),
            bytes,
            new: meta.is_none(),
            note,
        });
    }
    Ok(())
}

/// The changes that make the folder `dir` of the root exactly the stage's: its files
/// written, what the stage lacks removed (files, then empty folders, deepest first).
/// Entries of the stage that are neither files nor folders are returned as warnings.
pub fn mirror_changes(
    stage: &Stage,
    root: &RootHandle,
    dir: &ArchivePath,
    out: &mut Vec<Change>,
) -> Result<Vec<String>, ApplyError> {
    let mut warnings = Vec::new();
    let staged = stage_tree(stage, dir)?;
    if !root.exists(dir) && !out.contains(&Change::Mkdir(dir.clone())) {
        write_changes_dir(root, dir, out)?;
    }
    for (p, node) in &staged {
        match node {
            Node::Dir => {
                if !root.exists(p) && !out.contains(&Change::Mkdir(p.clone())) {
                    out.push(Change::Mkdir(p.clone()));
                }
            }
            Node::File => {
                if let Some(bytes) = stage.read(p)? {
                    write_changes(root, p, bytes, None, out)?;
                }
            }
            Node::Other => warnings.push(format!(
                "{}: not a regular file or folder in the backup; not applied",
                shown(p)
            )),
        }
    }
    let mut gone: Vec<(ArchivePath, Node)> = root_tree(root, dir)?
        .into_iter()
        .filter(|(p, _)| !staged.iter().any(|(s, n)| s == p && *n != Node::Other))
        .collect();
    gone.sort_by_key(|(p, _)| std::cmp::Reverse(p.depth()));
    for (p, node) in gone {
        out.push(Change::Remove {
            path: p,
            dir: node == Node::Dir,
        });
    }
    Ok(warnings)
}

fn write_changes_dir(
    root: &RootHandle,
    dir: &ArchivePath,
    out: &mut Vec<Change>,
) -> Result<(), ApplyError> {
    let base = ap(ETC_PVE)?;
    let mut missing: Vec<ArchivePath> = dir
        .ancestors()
        .chain(std::iter::once(dir.clone()))
        .filter(|a| a.starts_with(&base) && *a != base)
        .filter(|a| !root.exists(a))
        .collect();
    missing.sort();
    missing.dedup();
    for m in missing {
        if !out.contains(&Change::Mkdir(m.clone())) {
            out.push(Change::Mkdir(m));
        }
    }
    Ok(())
}

fn parent_fd(root: BorrowedFd<'_>, p: &ArchivePath) -> std::io::Result<OwnedFd> {
    dirfd::open_parent(root, p).map_err(|e| std::io::Error::other(format!("{}: {e}", shown(p))))
}

/// Makes one change on the root, as pmxcfs accepts it (see the module docs).
///
/// # Errors
/// The change could not be made (the path is named).
pub fn apply_change(root: &RootHandle, c: &Change) -> std::io::Result<()> {
    let fd = root.dir().as_fd();
    let named = |p: &ArchivePath, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{}: {e}", shown(p)))
    };
    match c {
        Change::Mkdir(p) => {
            let parent = parent_fd(fd, p)?;
            match rustix::fs::mkdirat(
                &parent,
                OsStr::from_bytes(p.file_name()),
                Mode::from_raw_mode(0o755),
            ) {
                Ok(()) | Err(Errno::EXIST) => Ok(()),
                Err(e) => Err(named(p, e.into())),
            }
        }
        Change::Write { path, bytes, .. } => {
            let parent = parent_fd(fd, path)?;
            let name = OsStr::from_bytes(path.file_name());
            let tmp = format!(
                "{}{}-pmxcfs-{}",
                proxsave_restore::runstate::COMMIT_TMP_PREFIX,
                std::process::id(),
                String::from_utf8_lossy(path.file_name())
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .take(40)
                    .collect::<String>()
            );
            let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
            let mode = file_mode(path);
            let r = (|| -> std::io::Result<()> {
                let f = rustix::fs::openat(
                    &parent,
                    tmp.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(mode),
                )?;
                let mut f = std::fs::File::from(f);
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
                f.write_all(bytes)?;
                f.sync_all()?;
                rustix::fs::renameat(&parent, tmp.as_str(), &parent, name)?;
                Ok(())
            })();
            if r.is_err() {
                let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
            }
            r.map_err(|e| named(path, e))
        }
        Change::Remove { path, dir } => {
            let parent = match dirfd::open_parent(fd, path) {
                Ok(p) => p,
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => return Err(named(path, e.into())),
            };
            let flags = if *dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            match rustix::fs::unlinkat(&parent, OsStr::from_bytes(path.file_name()), flags) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(named(path, e.into())),
            }
        }
    }
}
