//! The safety backup taken before anything is written, and rolling back to it.
//!
//! The backup holds every path the restore will write that exists now, plus the existing
//! parent directories of those paths (their metadata only), read without following any
//! symlink: files with content, symlinks as symlinks, directories as entries. Times are kept
//! to the nanosecond. It is a gzip-compressed tar (`restore_backup_<stamp>.tar.gz`, mode
//! 0600, in the private work directory) that `tar -xzf FILE -C ROOT` can restore; a sidecar
//! `FILE.created` (0600, JSON) records the root it was taken of (canonical path, device and
//! inode of the root folder, the folder's own metadata), the paths the restore *created*,
//! and the export folder when it lies inside the root.
//!
//! A rollback is bound to that root: [`SafetyRecord::bind_root`] opens the recorded root
//! (or the one the caller names) and refuses another folder — another path, or the same
//! path now holding another directory — unless forced. [`SafetyRecord::preview`] says what
//! [`SafetyRecord::rollback`] will restore and remove; everything goes through the root
//! descriptor that was checked, never through a symlink.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use proxsave_archive::compression::{self, Compression};
use proxsave_archive::dirfd;
use proxsave_archive::entry::{EntryKind, Timestamp};
use proxsave_archive::extract::{ExtractOptions, ExtractReport, Extractor, Selection};
use proxsave_archive::path::{ArchivePath, escape_bytes};
use proxsave_archive::progress::CancelToken;
use proxsave_archive::tar::TarReader;
use proxsave_archive::write::{AtomicFile, TarGzWriter, WriteHeader, WriteKind};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::RestoreError;
use crate::pathlist::{PathList, PathSorter, SORT_BUDGET};
use crate::sort::{Sorted, Sorter};
use crate::workspace::Workspace;
use proxsave_archive::spill::{self, Record, SpillVec, get_bytes, put_bytes};

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
    /// Paths that did not exist and will be created by the restore (sorted; serialized as
    /// an array of their display texts).
    pub created: CreatedPaths,
    /// The export folder (relative to the root) when it lies inside the root and the restore
    /// creates it: a rollback removes it with everything in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_dir: Option<String>,
}

/// The paths a restore creates, sorted: a [`PathList`] (bounded in memory, spilled to the
/// private work directory), shared between clones. Serialized (JSON) as an array of the
/// paths' display texts (`etc/new.conf`, unusual bytes escaped), streamed from the list.
#[derive(Clone)]
pub struct CreatedPaths(Arc<PathList>);

impl CreatedPaths {
    /// Number of paths.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when the restore creates nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The paths, sorted.
    pub fn iter(&self) -> impl Iterator<Item = Result<ArchivePath, RestoreError>> + '_ {
        self.0.iter()
    }

    /// The display texts of every path (small lists, tests).
    ///
    /// # Errors
    /// Reading the spill file.
    pub fn to_strings(&self) -> Result<Vec<String>, RestoreError> {
        self.iter().map(|p| p.map(|p| p.to_string())).collect()
    }
}

impl std::fmt::Debug for CreatedPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map_while(Result::ok))
            .finish()
    }
}

impl Serialize for CreatedPaths {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(usize::try_from(self.len()).ok())?;
        for p in self.iter() {
            seq.serialize_element(&p.map_err(S::Error::custom)?.to_string())?;
        }
        seq.end()
    }
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

/// Sidecar format written by this version. Version 1 (no `version` key) stored paths as
/// escaped display text and no root identity.
const SIDECAR_VERSION: u32 = 2;

fn version_one() -> u32 {
    1
}

/// A path as stored in the sidecar: text when it is UTF-8 (kept verbatim, JSON escapes what
/// it needs), the raw bytes otherwise.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum StoredPath {
    Text(String),
    Bytes(Vec<u8>),
}

impl StoredPath {
    fn of(bytes: &[u8]) -> StoredPath {
        match std::str::from_utf8(bytes) {
            Ok(s) => StoredPath::Text(s.to_string()),
            Err(_) => StoredPath::Bytes(bytes.to_vec()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            StoredPath::Text(s) => s.as_bytes(),
            StoredPath::Bytes(b) => b,
        }
    }

    fn shown(&self) -> String {
        escape_bytes(self.bytes())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ExportRecord {
    /// The export folder, relative to the root.
    dir: StoredPath,
    /// The export folder and those of its parents the restore created.
    created: Vec<StoredPath>,
}

/// The whole sidecar as one value (the tests' reference for the streamed writer and reader).
#[cfg(test)]
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sidecar {
    #[serde(default = "version_one")]
    version: u32,
    /// The root as the restore was given it (for people reading the file).
    root: String,
    /// The canonical path of the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_path: Option<StoredPath>,
    /// `st_dev` of the root folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_dev: Option<u64>,
    /// `st_ino` of the root folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_ino: Option<u64>,
    root_meta: Option<InodeMeta>,
    created: Vec<StoredPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    export: Option<ExportRecord>,
}

/// The sidecar as written: [`Sidecar`] with its `created` list streamed from a [`PathList`]
/// (same fields, same order, same bytes).
#[derive(Serialize)]
struct SidecarOut<'a> {
    version: u32,
    root: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_path: Option<StoredPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_dev: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_ino: Option<u64>,
    root_meta: Option<InodeMeta>,
    created: StoredList<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<ExportRecord>,
}

/// A [`PathList`] serialized as [`StoredPath`]s, element by element.
struct StoredList<'a>(&'a PathList);

impl Serialize for StoredList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(usize::try_from(self.0.len()).ok())?;
        for p in self.0.iter() {
            let p = p.map_err(S::Error::custom)?;
            seq.serialize_element(&StoredPath::of(p.as_bytes()))?;
        }
        seq.end()
    }
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

// `st_dev`/`st_ino` are `u64` on the 64-bit targets proxsave runs on, narrower elsewhere.
#[allow(clippy::useless_conversion)]
fn identity(stat: &rustix::fs::Stat) -> (u64, u64) {
    (u64::from(stat.st_dev), u64::from(stat.st_ino))
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
    let (save, created) = survey_fd(
        &fd,
        targets.iter().cloned().map(Ok),
        &std::env::temp_dir(),
        SORT_BUDGET,
    )?;
    Ok((save.to_vec()?, created.to_vec()?))
}

/// What the survey found at one path of the current ancestor chain.
enum Seen {
    /// An existing directory (saved), opened (`O_NOFOLLOW`) to look at what is in it.
    Dir(OwnedFd),
    /// An existing directory (saved) that cannot be opened: what lies below it is missing
    /// (`ENOENT`) or out of reach (anything else), as a walk from the root would find.
    Closed(Errno),
    /// Missing: the restore creates it and everything below it.
    Missing,
}

/// What exists at `name` in the directory `parent` (no symlink followed), if anything.
fn probe_in(parent: BorrowedFd<'_>, name: &[u8]) -> Existing {
    match rustix::fs::statat(parent, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Existing::Found(st),
        Err(Errno::NOENT) => Existing::Missing,
        Err(_) => Existing::Blocked,
    }
}

/// Surveys `targets` (any order, read once as a stream; sorted targets look at each
/// existing directory once). Returns (paths to save, paths created) as sorted lists
/// spilling into `dir` past `budget` bytes each.
///
/// Memory: the two sorters, plus the ancestor chain of the current target with what was
/// found there and a descriptor of each directory on it (the chain of the previous target
/// is reused as far as it is shared). What a path is does not depend on the order it is
/// looked at, so the chain is only a cache: a path outside it is looked at again and gives
/// the same answer ([`probe`] from the root: the same `statat` of the name, in the same
/// directory reached the same way, `O_NOFOLLOW` at every step).
fn survey_fd(
    fd: &OwnedFd,
    targets: impl Iterator<Item = Result<ArchivePath, RestoreError>>,
    dir: &Path,
    budget: usize,
) -> Result<(PathList, PathList), RestoreError> {
    let mut save = PathSorter::new(dir, budget);
    let mut created = PathSorter::new(dir, budget);
    // The ancestor chain (shallowest first) of the last target with what was found; it
    // holds consecutive prefixes of that target, each below an opened directory (or below
    // a missing path).
    let mut chain: Vec<(ArchivePath, Seen)> = Vec::new();
    for t in targets {
        let t = t?;
        let steps: Vec<ArchivePath> = t.ancestors().chain(std::iter::once(t.clone())).collect();
        let shared = chain
            .iter()
            .zip(&steps)
            .take_while(|((c, _), s)| c == *s)
            .count();
        chain.truncate(shared);
        for (i, p) in steps.into_iter().enumerate() {
            if i < chain.len() {
                continue; // known (saved, or missing and listed)
            }
            let parent = match i.checked_sub(1).map(|j| &chain[j].1) {
                None => Ok(fd.as_fd()),
                Some(Seen::Dir(d)) => Ok(d.as_fd()),
                Some(Seen::Closed(e)) => Err(Some(*e)),
                Some(Seen::Missing) => Err(None),
            };
            let found = match parent {
                Ok(parent) => probe_in(parent, p.file_name()),
                Err(Some(Errno::NOENT)) | Err(None) => Existing::Missing,
                Err(Some(_)) => Existing::Blocked,
            };
            match found {
                Existing::Found(st) => {
                    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                    save.push(p.clone())?;
                    if !is_dir {
                        // A file or link where a directory is expected (the restore
                        // refuses), or the target itself: nothing more to look at.
                        break;
                    }
                    let parent = match i.checked_sub(1).map(|j| &chain[j].1) {
                        Some(Seen::Dir(d)) => d.as_fd(),
                        _ => fd.as_fd(),
                    };
                    let seen = match dirfd::open_dir(parent, p.file_name()) {
                        Ok(d) => Seen::Dir(d),
                        Err(e) => Seen::Closed(e),
                    };
                    chain.push((p, seen));
                }
                Existing::Missing => {
                    // Everything down to the target is new too.
                    created.push(p.clone())?;
                    chain.push((p, Seen::Missing));
                }
                Existing::Blocked => break,
            }
        }
    }
    Ok((save.finish()?, created.finish()?))
}

/// Where an export folder lies with respect to a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportPlace {
    /// Outside the root.
    Outside,
    /// Inside the root, at this path relative to it.
    Inside(ArchivePath),
    /// The root folder itself.
    Root,
}

fn place_of(rest: &Path) -> ExportPlace {
    match ArchivePath::parse(rest.as_os_str().as_bytes()) {
        Ok(Some(p)) => ExportPlace::Inside(p),
        Ok(None) => ExportPlace::Root,
        Err(_) => ExportPlace::Outside,
    }
}

/// Where `dir` (absolute, or relative to the current folder; it need not exist) lies with
/// respect to `root`. For a root other than `/`, a path spelled below the root is inside it
/// whatever lies on the way (symlinks there are refused when the folder is created, never
/// followed); otherwise the existing part of the path is resolved.
pub fn export_place(root: &Path, dir: &Path) -> ExportPlace {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if root != Path::new("/")
        && !abs.components().any(|c| c == Component::ParentDir)
        && let Ok(rest) = abs.strip_prefix(&root)
    {
        return place_of(rest);
    }
    // Resolve the deepest existing ancestor, keep the rest as spelled.
    let mut base = abs;
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&base) {
            let full = tail.iter().rev().fold(real, |acc, t| acc.join(t));
            return match full.strip_prefix(&root) {
                Ok(rest) => place_of(rest),
                Err(_) => ExportPlace::Outside,
            };
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                base = parent.to_path_buf();
            }
            _ => return ExportPlace::Outside,
        }
    }
}

/// The export folder of a restore and the entries it will write there (relative to it).
pub struct ExportTargets<'a> {
    /// The export folder.
    pub dir: &'a Path,
    /// Paths written below it.
    pub entries: &'a PathList,
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// The root folder and the export folder's place in it as they were before a run touched
/// anything: a run stages inside the root (and creates its export folder) before the backup
/// is verified, so the safety backup, taken after, records these instead of what it sees.
#[derive(Clone, Debug, Default)]
pub struct Before {
    root_meta: Option<InodeMeta>,
    /// Whether the export folder's place was looked at (it lies inside the root).
    export_seen: bool,
    /// The first folder on the way to the export folder that did not exist.
    export_first_missing: Option<ArchivePath>,
    /// Existing folders on the way to the export folder, with their metadata then.
    dirs: std::collections::BTreeMap<ArchivePath, InodeMeta>,
}

impl Before {
    /// Looks at `root` and, when `export_dir` lies inside it, at the folders on the way.
    pub fn capture(root: &Path, export_dir: Option<&Path>) -> Before {
        let Ok(fd) = open_root(root) else {
            return Before::default();
        };
        let mut b = Before {
            root_meta: rustix::fs::fstat(&fd).ok().map(|st| meta_of(&st)),
            ..Before::default()
        };
        let Some(dir) = export_dir else { return b };
        let Ok(canonical) = std::fs::canonicalize(root) else {
            return b;
        };
        if let ExportPlace::Inside(rel) = export_place(&canonical, dir) {
            b.export_seen = true;
            for p in rel.ancestors().chain(std::iter::once(rel.clone())) {
                match probe(&fd, &p) {
                    Existing::Found(st)
                        if FileType::from_raw_mode(st.st_mode) == FileType::Directory =>
                    {
                        b.dirs.insert(p, meta_of(&st));
                    }
                    Existing::Missing => {
                        b.export_first_missing = Some(p);
                        break;
                    }
                    _ => break,
                }
            }
        }
        b
    }
}

/// Creates the safety backup of what a restore writing `targets` into `root` (and, when it
/// lies inside the root, exporting into `export`) would change. With `before` (captured
/// before the run staged anything), the root folder and the export folder's place are
/// recorded as they were then.
///
/// # Errors
/// A message saying what failed (the caller asks whether to continue without it).
pub fn create(
    root: &Path,
    targets: &PathList,
    export: Option<&ExportTargets<'_>>,
    before: Option<&Before>,
    ws: &Workspace,
) -> Result<SafetyBackup, String> {
    let fd = open_root(root).map_err(|e| e.to_string())?;
    let root_stat = rustix::fs::fstat(&fd).map_err(|e| format!("{}: {e}", root.display()))?;
    let canonical = std::fs::canonicalize(root).map_err(|e| format!("{}: {e}", root.display()))?;
    // The export folder's entries (relative to the root) saved beside the targets.
    let mut export_rel: Option<(ArchivePath, &PathList)> = None;
    let mut export_record = None;
    if let Some(ex) = export
        && let ExportPlace::Inside(rel) = export_place(&canonical, ex.dir)
    {
        // The first missing folder on the way to the export folder, if any.
        let mut first_missing = None;
        let mut blocked = false;
        let known = before.filter(|b| b.export_seen);
        if let Some(b) = known {
            first_missing = b.export_first_missing.clone();
        }
        for p in rel
            .ancestors()
            .chain(std::iter::once(rel.clone()))
            .filter(|_| known.is_none())
        {
            match probe(&fd, &p) {
                Existing::Found(st)
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Existing::Missing => {
                    first_missing = Some(p);
                    break;
                }
                _ => {
                    blocked = true; // the restore refuses to create it
                    break;
                }
            }
        }
        match first_missing {
            Some(first) => {
                let created: Vec<StoredPath> = rel
                    .ancestors()
                    .chain(std::iter::once(rel.clone()))
                    .filter(|a| a.starts_with(&first))
                    .map(|a| StoredPath::of(a.as_bytes()))
                    .collect();
                export_record = Some(ExportRecord {
                    dir: StoredPath::of(rel.as_bytes()),
                    created,
                });
            }
            // An existing export folder: save and list what the export writes, like the root
            // tier's files.
            None if !blocked => export_rel = Some((rel, ex.entries)),
            None => {}
        }
    }
    let exported = export_rel.iter().flat_map(|(rel, entries)| {
        entries
            .iter()
            .map(move |e| e.map(|e| rel.join(e.as_bytes())))
    });
    let (save, created) = survey_fd(&fd, targets.iter().chain(exported), &ws.dir, SORT_BUDGET)
        .map_err(|e| e.to_string())?;
    let path = ws.file_path("restore_backup_", ".tar.gz");
    let mut out =
        TarGzWriter::create(&path, 0o600).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries = 0u64;
    let mut bytes = 0u64;
    for p in save.iter() {
        let p = &p.map_err(|e| e.to_string())?;
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
        if let Some(m) = before.and_then(|b| b.dirs.get(p))
            && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        {
            header.mode = m.mode;
            header.uid = u64::from(m.uid);
            header.gid = u64::from(m.gid);
            header.mtime = ts(m.mtime_secs, i64::from(m.mtime_nanos));
            header.atime = Some(ts(m.atime_secs, i64::from(m.atime_nanos)));
        }
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
    let sidecar = sidecar_path(&path);
    let (dev, ino) = identity(&root_stat);
    let doc = SidecarOut {
        version: SIDECAR_VERSION,
        root: root.display().to_string(),
        root_path: Some(StoredPath::of(canonical.as_os_str().as_bytes())),
        root_dev: Some(dev),
        root_ino: Some(ino),
        root_meta: Some(
            before
                .and_then(|b| b.root_meta)
                .unwrap_or_else(|| meta_of(&root_stat)),
        ),
        created: StoredList(&created),
        export: export_record,
    };
    let mut f =
        AtomicFile::create(&sidecar, 0o600).map_err(|e| format!("{}: {e}", sidecar.display()))?;
    // Streamed from the list through a buffer (one write per 64 KiB, not per JSON token).
    let mut w = BufWriter::with_capacity(64 << 10, f.file());
    serde_json::to_writer_pretty(&mut w, &doc)
        .map_err(|e| format!("{}: {e}", sidecar.display()))?;
    w.flush()
        .map_err(|e| format!("{}: {e}", sidecar.display()))?;
    drop(w);
    let export_dir = doc.export.as_ref().map(|e| e.dir.shown());
    f.commit()
        .map_err(|e| format!("{}: {e}", sidecar.display()))?;
    Ok(SafetyBackup {
        path,
        sidecar,
        entries,
        bytes,
        created: CreatedPaths(Arc::new(created)),
        export_dir,
    })
}

/// The sidecar of a safety backup.
pub fn sidecar_path(backup: &Path) -> PathBuf {
    let mut s = backup.as_os_str().to_owned();
    s.push(".created");
    PathBuf::from(s)
}

/// `path` quoted for a POSIX shell (as is when nothing needs quoting).
pub fn shell_quote(path: &OsStr) -> String {
    let b = path.as_bytes();
    let plain = |c: &u8| c.is_ascii_alphanumeric() || b"/._-+,:=@%".contains(c);
    if !b.is_empty() && b.iter().all(plain) {
        return escape_bytes(b);
    }
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => format!("'{}'", s.replace('\'', r"'\''")),
        _ => {
            // bash/zsh ANSI-C quoting for bytes a terminal cannot show.
            let mut out = String::from("$'");
            for &c in b {
                match c {
                    b'\'' | b'\\' => {
                        out.push('\\');
                        out.push(c as char);
                    }
                    0x20..=0x7e => out.push(c as char),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push('\'');
            out
        }
    }
}

/// The command that rolls back to `backup` (absolute path, shell-quoted). The root is the
/// one recorded in the backup's sidecar.
pub fn rollback_command(backup: &Path) -> String {
    let abs = std::path::absolute(backup).unwrap_or_else(|_| backup.to_path_buf());
    format!(
        "proxsave restore --rollback {}",
        shell_quote(abs.as_os_str())
    )
}

/// The root a safety backup was taken of, as its sidecar records it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRoot {
    /// The root's path.
    pub path: PathBuf,
    /// False for sidecars of older versions, which stored the path as given (not
    /// canonicalised).
    pub canonical: bool,
    /// Device of the root folder (newer sidecars only).
    pub dev: Option<u64>,
    /// Inode of the root folder (newer sidecars only).
    pub ino: Option<u64>,
}

/// A root that is not the one the safety backup was taken of.
#[derive(Clone, Debug, Serialize)]
pub struct RootMismatch {
    /// The recorded root.
    pub recorded: PathBuf,
    /// Its device and inode, when recorded.
    pub recorded_id: Option<(u64, u64)>,
    /// The root asked for (canonical).
    pub given: PathBuf,
    /// Its device and inode now.
    pub given_id: (u64, u64),
    /// The paths differ.
    pub path_differs: bool,
    /// The device or inode differs.
    pub identity_differs: bool,
}

fn show_id(id: Option<(u64, u64)>) -> String {
    match id {
        Some((d, i)) => format!("device {d}, inode {i}"),
        None => "device/inode not recorded".into(),
    }
}

impl RootMismatch {
    /// Which of path and device/inode differ, in words.
    pub fn what_differs(&self) -> &'static str {
        match (self.path_differs, self.identity_differs) {
            (true, true) => "the path and the device/inode differ",
            (true, false) => "the path differs",
            (false, true) => {
                "the device/inode differs (the folder at that path was replaced, or is another filesystem)"
            }
            (false, false) => "nothing differs",
        }
    }
}

impl std::fmt::Display for RootMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path_differs {
            write!(
                f,
                "the safety backup was taken of {} ({}), not of {} ({}): {}",
                self.recorded.display(),
                show_id(self.recorded_id),
                self.given.display(),
                show_id(Some(self.given_id)),
                self.what_differs()
            )
        } else {
            write!(
                f,
                "the safety backup was taken of the folder at {} ({}), but {} is now another folder ({}): {}",
                self.recorded.display(),
                show_id(self.recorded_id),
                self.given.display(),
                show_id(Some(self.given_id)),
                self.what_differs()
            )
        }
    }
}

/// Why a rollback cannot be bound to a root.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// No sidecar: the root must be named.
    #[error("{} is missing: the root the safety backup was taken of is unknown", sidecar.display())]
    NoRecordedRoot {
        /// The missing sidecar.
        sidecar: PathBuf,
    },
    /// Another root than the recorded one.
    #[error("{0}")]
    Mismatch(RootMismatch),
    /// The root cannot be opened.
    #[error(transparent)]
    Io(#[from] RestoreError),
}

/// The root a rollback works on: opened once, checked on that descriptor.
#[derive(Debug)]
pub struct BoundRoot {
    /// Canonical path.
    pub path: PathBuf,
    /// Device of the root folder.
    pub dev: u64,
    /// Inode of the root folder.
    pub ino: u64,
    /// Things the user should know about the check.
    pub notes: Vec<String>,
    /// Set when the root is not the recorded one and the caller forced it.
    pub forced: Option<RootMismatch>,
    fd: OwnedFd,
}

/// A path left alone, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PathNote {
    /// The path (`/etc/hosts`).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a rollback would do.
#[derive(Debug, Serialize)]
pub struct RollbackPreview {
    /// The safety backup.
    pub backup: PathBuf,
    /// The root rolled back.
    pub root: PathBuf,
    /// Entries put back as saved (files, links, folders), in backup order.
    pub restore: ShownPaths,
    /// Paths the restore created that exist now and are removed (deepest first).
    pub remove: ShownPaths,
    /// Folders removed with everything in them (export folders the restore created).
    pub remove_trees: ShownPaths,
    /// Paths that will be refused, and why (e.g. a parent that is now a symlink).
    pub refused: Vec<PathNote>,
    /// True when no sidecar was found (created files cannot be removed).
    pub sidecar_missing: bool,
}

/// What a rollback did.
#[derive(Debug, Serialize)]
pub struct RollbackReport {
    /// The root rolled back.
    pub root: PathBuf,
    /// Created paths removed (and export folders removed with their contents).
    pub removed: ShownPaths,
    /// Created paths left in place (e.g. a folder that is not empty any more).
    pub kept: Vec<PathNote>,
    /// Created paths not touched because reaching them is unsafe or their name is unusable.
    pub refused: Vec<PathNote>,
    /// The extraction of the saved files (refused and failed entries listed by name).
    pub restored: ExtractReport,
    /// True when no sidecar was found (created files could not be removed).
    pub sidecar_missing: bool,
}

impl RollbackReport {
    /// True when nothing was refused and nothing failed.
    pub fn complete(&self) -> bool {
        self.refused.is_empty() && self.restored.refused == 0 && self.restored.failed == 0
    }
}

/// A safety backup and its sidecar, read for a rollback.
pub struct SafetyRecord {
    backup: PathBuf,
    sidecar_file: PathBuf,
    sidecar: Option<SidecarHead>,
    /// The sidecar's `created` list (stored bytes), bounded in memory: a restore that wrote a
    /// million new files records a million paths.
    created: SpillVec<Vec<u8>>,
    /// Where the rollback's lists spill (unnamed files): the safety backup's folder, else
    /// the system's temporary folder.
    spill_dir: PathBuf,
    /// In-memory part of each list and sort.
    budget: usize,
}

impl std::fmt::Debug for SafetyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetyRecord")
            .field("backup", &self.backup)
            .field("sidecar_file", &self.sidecar_file)
            .field("sidecar", &self.sidecar)
            .field("created", &self.created.len())
            .finish()
    }
}

/// The sidecar without its `created` list, which [`CreatedSeed`] streams into a spilled list.
#[derive(Debug, Deserialize)]
struct SidecarHead {
    #[serde(default = "version_one")]
    version: u32,
    root: String,
    #[serde(default)]
    root_path: Option<StoredPath>,
    #[serde(default)]
    root_dev: Option<u64>,
    #[serde(default)]
    root_ino: Option<u64>,
    root_meta: Option<InodeMeta>,
    #[serde(default)]
    export: Option<ExportRecord>,
}

/// Streams the sidecar's `created` array into a list, one path at a time; every other key
/// is skipped (read by [`SidecarHead`]).
struct CreatedSeed<'a> {
    out: &'a mut SpillVec<Vec<u8>>,
    seen: &'a mut bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for CreatedSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CreatedSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a safety backup sidecar")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "created" {
                map.next_value_seed(CreatedList {
                    out: &mut *self.out,
                })?;
                *self.seen = true;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct CreatedList<'a> {
    out: &'a mut SpillVec<Vec<u8>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for CreatedList<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CreatedList<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of paths")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error;
        while let Some(p) = seq.next_element::<StoredPath>()? {
            self.out
                .push(&p.bytes().to_vec())
                .map_err(|e| A::Error::custom(format!("cannot keep the list: {e}")))?;
        }
        Ok(())
    }
}

/// A list of shown paths (`/etc/hosts`), bounded in memory (the rest in an unnamed file):
/// what a rollback restores and removes, a million entries after a large restore.
/// Serialized as a JSON array of strings.
pub struct ShownPaths {
    list: SpillVec<Vec<u8>>,
    dir: PathBuf,
}

impl ShownPaths {
    fn new(dir: &Path, budget: usize) -> ShownPaths {
        ShownPaths {
            list: SpillVec::new(dir, budget),
            dir: dir.to_path_buf(),
        }
    }

    fn push(&mut self, shown: &str) -> Result<(), RestoreError> {
        self.list
            .push(&shown.as_bytes().to_vec())
            .map_err(|e| RestoreError::io(&self.dir, e))
    }

    /// Number of paths.
    pub fn len(&self) -> u64 {
        self.list.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The paths, in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<String, RestoreError>> + '_ {
        self.list.iter().map(|r| {
            r.map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| RestoreError::io(&self.dir, e))
        })
    }

    /// All paths in memory (small lists, tests).
    ///
    /// # Errors
    /// The spilled part cannot be read.
    pub fn to_vec(&self) -> Result<Vec<String>, RestoreError> {
        self.iter().collect()
    }
}

impl std::fmt::Debug for ShownPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShownPaths({} paths)", self.len())
    }
}

impl Serialize for ShownPaths {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(usize::try_from(self.len()).ok())?;
        for p in self.iter() {
            seq.serialize_element(&p.map_err(S::Error::custom)?)?;
        }
        seq.end()
    }
}

/// A path the rollback may remove, as its external sorts carry it.
struct Cand {
    path: Vec<u8>,
    tree: bool,
    is_dir: bool,
}

impl Record for Cand {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, &self.path);
        out.push(u8::from(self.tree) | u8::from(self.is_dir) << 1);
    }

    fn decode(input: &mut dyn Read) -> std::io::Result<Self> {
        let path = get_bytes(input)?;
        let mut flags = [0u8; 1];
        input.read_exact(&mut flags)?;
        Ok(Cand {
            path,
            tree: flags[0] & 1 != 0,
            is_dir: flags[0] & 2 != 0,
        })
    }
}

fn by_path(a: &Cand, b: &Cand) -> std::cmp::Ordering {
    a.path.cmp(&b.path)
}

fn depth(p: &[u8]) -> usize {
    p.iter().filter(|&&c| c == b'/').count() + 1
}

/// Whole trees first, then single paths deepest first, then by name.
fn removal_order(a: &Cand, b: &Cand) -> std::cmp::Ordering {
    b.tree
        .cmp(&a.tree)
        .then(depth(&b.path).cmp(&depth(&a.path)))
        .then(a.path.cmp(&b.path))
}

fn shown(p: &ArchivePath) -> String {
    format!("/{p}")
}

/// How the parent of a path below the root can be reached now.
enum Reach {
    Parent(OwnedFd),
    Missing,
    Blocked(String),
}

fn reach_parent(root: BorrowedFd<'_>, path: &ArchivePath) -> Reach {
    let Ok(mut cur) = rustix::io::dup(root) else {
        return Reach::Blocked("cannot duplicate the root descriptor".into());
    };
    let Some(parent) = path.parent() else {
        return Reach::Parent(cur);
    };
    let mut so_far: Vec<u8> = Vec::new();
    for comp in parent.components() {
        if !so_far.is_empty() {
            so_far.push(b'/');
        }
        so_far.extend_from_slice(comp);
        let here = escape_bytes(&so_far);
        match dirfd::open_dir(cur.as_fd(), comp) {
            Ok(next) => cur = next,
            Err(Errno::NOENT) => return Reach::Missing,
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                let is_link = rustix::fs::statat(
                    cur.as_fd(),
                    OsStr::from_bytes(comp),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                .unwrap_or(e == Errno::LOOP);
                return Reach::Blocked(if is_link {
                    format!(
                        "parent /{here} is now a symbolic link; nothing is changed through links"
                    )
                } else {
                    format!("parent /{here} is not a folder")
                });
            }
            Err(e) => return Reach::Blocked(format!("parent /{here}: {e}")),
        }
    }
    Reach::Parent(cur)
}

/// Removes `name` in `dir` and, for a folder, everything in it, never following a symlink.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let st = rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty());
    }
    let sub = dirfd::open_dir(dir, name)?;
    let mut names = Vec::new();
    let mut listing = rustix::fs::Dir::new(rustix::io::dup(&sub)?)?;
    while let Some(entry) = listing.read() {
        let n = entry?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(n);
        }
    }
    for n in names {
        remove_tree(sub.as_fd(), &n)?;
    }
    rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::REMOVEDIR)
}

impl SafetyRecord {
    /// Reads the sidecar beside `backup` (its absence is allowed and reported).
    ///
    /// # Errors
    /// A missing or unreadable backup, an unreadable or malformed sidecar, or one written
    /// by a newer version.
    pub fn load(backup: &Path) -> Result<SafetyRecord, RestoreError> {
        let meta = std::fs::metadata(backup).map_err(|e| RestoreError::io(backup, e))?;
        if !meta.is_file() {
            return Err(RestoreError::io(
                backup,
                std::io::Error::other("not a safety backup file"),
            ));
        }
        let sidecar_file = sidecar_path(backup);
        // The lists spill beside the safety backup (the run's private folder), or into the
        // system's temporary folder when that one takes no file (a read-only copy).
        let spill_dir = backup
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let spill_dir = if tempfile::tempfile_in(&spill_dir).is_ok() {
            spill_dir
        } else {
            std::env::temp_dir()
        };
        let budget = spill::LIST_BUDGET;
        let mut created = SpillVec::new(&spill_dir, budget);
        let malformed = |e: serde_json::Error| {
            RestoreError::io(&sidecar_file, std::io::Error::other(e.to_string()))
        };
        let sidecar: Option<SidecarHead> = match File::open(&sidecar_file) {
            Ok(f) => {
                let head: SidecarHead =
                    serde_json::from_reader(BufReader::with_capacity(64 << 10, f))
                        .map_err(malformed)?;
                if head.version > SIDECAR_VERSION {
                    return Err(RestoreError::io(
                        &sidecar_file,
                        std::io::Error::other(format!(
                            "sidecar format {} is newer than this proxsave understands ({SIDECAR_VERSION})",
                            head.version
                        )),
                    ));
                }
                // Second read: the created paths, streamed into the bounded list.
                let f =
                    File::open(&sidecar_file).map_err(|e| RestoreError::io(&sidecar_file, e))?;
                let mut seen = false;
                let mut de =
                    serde_json::Deserializer::from_reader(BufReader::with_capacity(64 << 10, f));
                serde::de::DeserializeSeed::deserialize(
                    CreatedSeed {
                        out: &mut created,
                        seen: &mut seen,
                    },
                    &mut de,
                )
                .and_then(|()| de.end())
                .map_err(malformed)?;
                if !seen {
                    return Err(RestoreError::io(
                        &sidecar_file,
                        std::io::Error::other("missing field `created`"),
                    ));
                }
                Some(head)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(RestoreError::io(&sidecar_file, e)),
        };
        Ok(SafetyRecord {
            backup: backup.to_path_buf(),
            sidecar_file,
            sidecar,
            created,
            spill_dir,
            budget,
        })
    }

    /// The safety backup.
    pub fn backup(&self) -> &Path {
        &self.backup
    }

    /// True when the `.created` sidecar was found.
    pub fn has_sidecar(&self) -> bool {
        self.sidecar.is_some()
    }

    /// The root recorded in the sidecar.
    pub fn recorded_root(&self) -> Option<RecordedRoot> {
        let sc = self.sidecar.as_ref()?;
        Some(match &sc.root_path {
            Some(p) => RecordedRoot {
                path: PathBuf::from(std::ffi::OsString::from_vec(p.bytes().to_vec())),
                canonical: true,
                dev: sc.root_dev,
                ino: sc.root_ino,
            },
            None => RecordedRoot {
                path: PathBuf::from(&sc.root),
                canonical: false,
                dev: sc.root_dev,
                ino: sc.root_ino,
            },
        })
    }

    /// Opens the root to roll back: `given`, or the recorded one when `None`. A root that is
    /// not the recorded one (another canonical path, or another device/inode at the same
    /// path) is refused unless `force`.
    ///
    /// # Errors
    /// [`BindError`].
    pub fn bind_root(&self, given: Option<&Path>, force: bool) -> Result<BoundRoot, BindError> {
        let recorded = self.recorded_root();
        let asked = match (given, &recorded) {
            (Some(g), _) => g.to_path_buf(),
            (None, Some(r)) => r.path.clone(),
            (None, None) => {
                return Err(BindError::NoRecordedRoot {
                    sidecar: self.sidecar_file.clone(),
                });
            }
        };
        let canonical = std::fs::canonicalize(&asked).map_err(|e| RestoreError::io(&asked, e))?;
        let fd = open_root(&canonical)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| RestoreError::io(&canonical, e.into()))?;
        let id = identity(&st);
        let mut notes = Vec::new();
        let mut forced = None;
        match &recorded {
            None => notes.push(format!(
                "{} is missing: the root cannot be checked against the one the backup was taken of, and files the restore added are not removed",
                self.sidecar_file.display()
            )),
            Some(r) => {
                let recorded_path = if r.canonical {
                    r.path.clone()
                } else {
                    std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone())
                };
                let recorded_id = r.dev.zip(r.ino);
                if recorded_id.is_none() {
                    notes.push(
                        "the sidecar records no device/inode of the root (written by an older proxsave): only the path was compared".into(),
                    );
                }
                let mismatch = RootMismatch {
                    path_differs: recorded_path != canonical,
                    identity_differs: recorded_id.is_some_and(|r| r != id),
                    recorded: recorded_path,
                    recorded_id,
                    given: canonical.clone(),
                    given_id: id,
                };
                if mismatch.path_differs || mismatch.identity_differs {
                    if !force {
                        return Err(BindError::Mismatch(mismatch));
                    }
                    forced = Some(mismatch);
                }
            }
        }
        Ok(BoundRoot {
            path: canonical,
            dev: id.0,
            ino: id.1,
            notes,
            forced,
            fd,
        })
    }

    /// The created paths (and export folders) to remove, in removal order (whole trees
    /// first, then single paths deepest first), and those refused, as the root is now.
    /// Bounded in memory: two external sorts (by name, to merge a path named twice; then
    /// into removal order) spilling beside the safety backup.
    fn removals(
        &self,
        root: BorrowedFd<'_>,
    ) -> Result<(Sorted<Cand>, Vec<PathNote>), RestoreError> {
        let dir = &self.spill_dir;
        let io = |e: std::io::Error| RestoreError::io(dir, e);
        let mut refused = Vec::new();
        let mut by_name: Sorter<Cand> = Sorter::new(dir, self.budget, by_path);
        if let Some(sc) = &self.sidecar {
            let mut consider = |stored: &[u8], tree: bool| -> Result<(), RestoreError> {
                let shown_stored = || escape_bytes(stored);
                if sc.version < 2 && stored.contains(&b'\\') {
                    refused.push(PathNote {
                        path: format!("/{}", shown_stored()),
                        reason:
                            "recorded by an older proxsave in an ambiguous (escaped) form; not removed"
                                .into(),
                    });
                    return Ok(());
                }
                match ArchivePath::parse(stored) {
                    Ok(Some(p)) => by_name
                        .push(Cand {
                            path: p.as_bytes().to_vec(),
                            tree,
                            is_dir: false,
                        })
                        .map_err(io)?,
                    Ok(None) => refused.push(PathNote {
                        path: shown_stored(),
                        reason: "names the root folder itself; never removed".into(),
                    }),
                    Err(e) => refused.push(PathNote {
                        path: shown_stored(),
                        reason: format!(
                            "unusable name ({e}): it would escape the root; not removed"
                        ),
                    }),
                }
                Ok(())
            };
            if let Some(ex) = &sc.export {
                for c in &ex.created {
                    consider(c.bytes(), c == &ex.dir)?;
                }
            }
            for c in self.created.iter() {
                consider(&c.map_err(io)?, false)?;
            }
        }
        let mut order: Sorter<Cand> = Sorter::new(dir, self.budget, removal_order);
        let mut check = |c: Cand, refused: &mut Vec<PathNote>| -> Result<(), RestoreError> {
            let Ok(Some(path)) = ArchivePath::parse(&c.path) else {
                return Ok(());
            };
            let parent = match reach_parent(root, &path) {
                Reach::Parent(fd) => fd,
                Reach::Missing => return Ok(()),
                Reach::Blocked(reason) => {
                    refused.push(PathNote {
                        path: shown(&path),
                        reason,
                    });
                    return Ok(());
                }
            };
            match rustix::fs::statat(
                &parent,
                OsStr::from_bytes(path.file_name()),
                AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => order
                    .push(Cand {
                        is_dir: FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                        ..c
                    })
                    .map_err(io)?,
                Err(Errno::NOENT) => {}
                Err(e) => refused.push(PathNote {
                    path: shown(&path),
                    reason: e.to_string(),
                }),
            }
            Ok(())
        };
        // A path named twice (an export folder also in the created list) is one removal,
        // as a whole tree when either says so.
        let mut pending: Option<Cand> = None;
        for c in by_name.finish().map_err(io)? {
            let c = c.map_err(io)?;
            match &mut pending {
                Some(p) if p.path == c.path => p.tree |= c.tree,
                _ => {
                    if let Some(p) = pending.replace(c) {
                        check(p, &mut refused)?;
                    }
                }
            }
        }
        if let Some(p) = pending {
            check(p, &mut refused)?;
        }
        Ok((order.finish().map_err(io)?, refused))
    }

    fn open_tar(&self) -> Result<TarReader<BufReader<Box<dyn Read>>>, RestoreError> {
        let file = File::open(&self.backup).map_err(|e| RestoreError::io(&self.backup, e))?;
        let (_, decoder) = compression::open_decoder(
            BufReader::new(file),
            Some(Compression::Gzip),
            &self.backup.display().to_string(),
        )
        .map_err(proxsave_archive::Error::from)?;
        let decoder: Box<dyn Read> = Box::new(decoder);
        Ok(TarReader::new(BufReader::with_capacity(256 << 10, decoder)))
    }

    /// What [`SafetyRecord::rollback`] would do to `root` as it is now. Writes nothing.
    ///
    /// # Errors
    /// An unreadable or corrupt safety backup.
    pub fn preview(&self, root: &BoundRoot) -> Result<RollbackPreview, RestoreError> {
        let (removals, mut refused) = self.removals(root.fd.as_fd())?;
        let mut restore = ShownPaths::new(&self.spill_dir, self.budget);
        let mut tar = self.open_tar()?;
        while let Some(h) = tar.next_entry().map_err(proxsave_archive::Error::from)? {
            let path = match ArchivePath::parse(&h.raw_path) {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    refused.push(PathNote {
                        path: escape_bytes(&h.raw_path),
                        reason: format!("unusable name ({e})"),
                    });
                    continue;
                }
            };
            let blocked = match reach_parent(root.fd.as_fd(), &path) {
                Reach::Blocked(reason) => Some(reason),
                Reach::Missing => None,
                Reach::Parent(parent) if h.kind == EntryKind::Directory => rustix::fs::statat(
                    &parent,
                    OsStr::from_bytes(path.file_name()),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ok()
                .filter(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                .map(|_| "a symbolic link now exists where the backup has a folder".to_string()),
                Reach::Parent(_) => None,
            };
            match blocked {
                Some(reason) => refused.push(PathNote {
                    path: shown(&path),
                    reason,
                }),
                None => restore.push(&shown(&path))?,
            }
        }
        tar.finish().map_err(proxsave_archive::Error::from)?;
        let mut remove = ShownPaths::new(&self.spill_dir, self.budget);
        let mut remove_trees = ShownPaths::new(&self.spill_dir, self.budget);
        for r in removals {
            let r = r.map_err(|e| RestoreError::io(&self.spill_dir, e))?;
            let shown = format!("/{}", escape_bytes(&r.path));
            if r.tree {
                remove_trees.push(&shown)?;
            } else {
                remove.push(&shown)?;
            }
        }
        Ok(RollbackPreview {
            backup: self.backup.clone(),
            root: root.path.clone(),
            restore,
            remove,
            remove_trees,
            refused,
            sidecar_missing: self.sidecar.is_none(),
        })
    }

    /// Returns `root` to the state saved in the backup: reads and stages every saved entry
    /// (nothing changes if the backup is unreadable), removes what the restore created (the
    /// export folder with its contents), puts back every saved file, link and folder with
    /// its exact metadata, then the root folder's own metadata. Paths that cannot be reached
    /// safely are refused by name and the rest is rolled back.
    ///
    /// # Errors
    /// An unreadable or corrupt safety backup (nothing changed), Ctrl+C while reading it
    /// (nothing changed), errors of the root folder itself.
    pub fn rollback(
        &self,
        root: &BoundRoot,
        cancel: &CancelToken,
    ) -> Result<RollbackReport, RestoreError> {
        let fd = rustix::io::dup(&root.fd).map_err(|e| RestoreError::io(&root.path, e.into()))?;
        let mut extractor = Extractor::with_root_fd(
            fd,
            &root.path,
            ExtractOptions {
                cancel: cancel.clone(),
                ..ExtractOptions::default()
            },
        );
        // Stage everything first: a damaged backup or Ctrl+C leaves the root as it was.
        let staged = (|| -> Result<(), RestoreError> {
            let mut tar = self.open_tar()?;
            while let Some(h) = tar.next_entry().map_err(proxsave_archive::Error::from)? {
                extractor.add(&h, &mut tar, Selection::Include)?;
            }
            tar.finish().map_err(proxsave_archive::Error::from)?;
            Ok(())
        })();
        if let Err(e) = staged {
            drop(extractor.abort());
            self.restore_root_meta(root); // staging touched the root folder's times
            return Err(e);
        }
        let (removals, refused) = match self.removals(root.fd.as_fd()) {
            Ok(r) => r,
            Err(e) => {
                drop(extractor.abort());
                self.restore_root_meta(root);
                return Err(e);
            }
        };
        let mut removed = ShownPaths::new(&self.spill_dir, self.budget);
        let mut kept = Vec::new();
        // A list that cannot be read back or written stops the removals, never the putting
        // back of what was saved (below).
        let mut failure: Option<RestoreError> = None;
        for r in removals {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    failure = Some(RestoreError::io(&self.spill_dir, e));
                    break;
                }
            };
            let Ok(Some(path)) = ArchivePath::parse(&r.path) else {
                continue;
            };
            let name = path.file_name();
            let result = match reach_parent(root.fd.as_fd(), &path) {
                Reach::Parent(parent) if r.tree => remove_tree(parent.as_fd(), name),
                Reach::Parent(parent) => rustix::fs::unlinkat(
                    &parent,
                    OsStr::from_bytes(name),
                    if r.is_dir {
                        AtFlags::REMOVEDIR
                    } else {
                        AtFlags::empty()
                    },
                ),
                Reach::Missing => Err(Errno::NOENT),
                Reach::Blocked(reason) => {
                    kept.push(PathNote {
                        path: shown(&path),
                        reason,
                    });
                    continue;
                }
            };
            match result {
                Ok(()) => {
                    if let Err(e) = removed.push(&shown(&path)) {
                        failure = Some(e);
                        break;
                    }
                }
                Err(Errno::NOENT) => {}
                Err(Errno::NOTEMPTY | Errno::EXIST) => kept.push(PathNote {
                    path: shown(&path),
                    reason: "folder not empty: it holds files added after the restore".into(),
                }),
                Err(e) => kept.push(PathNote {
                    path: shown(&path),
                    reason: e.to_string(),
                }),
            }
        }
        let restored = extractor.commit();
        self.restore_root_meta(root);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(RollbackReport {
            root: root.path.clone(),
            removed,
            kept,
            refused,
            restored: restored?,
            sidecar_missing: self.sidecar.is_none(),
        })
    }

    fn restore_root_meta(&self, root: &BoundRoot) {
        let Some(meta) = self.sidecar.as_ref().and_then(|s| s.root_meta) else {
            return;
        };
        let fd = &root.fd;
        let _ = rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode));
        if rustix::process::geteuid().is_root() {
            let _ = rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            );
        }
        let _ = rustix::fs::futimens(
            fd,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_quotes_only_what_needs_it() {
        assert_eq!(
            shell_quote(OsStr::new("/tmp/proxsave/restore_backup_1.tar.gz")),
            "/tmp/proxsave/restore_backup_1.tar.gz"
        );
        assert_eq!(shell_quote(OsStr::new("/a b/it's")), r"'/a b/it'\''s'");
        assert_eq!(shell_quote(OsStr::from_bytes(b"/a\nb")), r"$'/a\x0ab'");
    }

    #[test]
    fn old_sidecars_parse_and_new_paths_round_trip() {
        let old: Sidecar = serde_json::from_str(
            r#"{"root":"/tmp/r","root_meta":null,"created":["etc/x","etc/a\\b"]}"#,
        )
        .unwrap();
        assert_eq!(old.version, 1);
        assert!(old.root_dev.is_none());
        assert_eq!(old.created[1].bytes(), br"etc/a\b");
        let odd = StoredPath::of(b"etc/\xff\\x");
        let json = serde_json::to_string(&odd).unwrap();
        let back: StoredPath = serde_json::from_str(&json).unwrap();
        assert_eq!(back.bytes(), b"etc/\xff\\x");
        let text = StoredPath::of(b"etc/a\\b\n");
        let back: StoredPath =
            serde_json::from_str(&serde_json::to_string(&text).unwrap()).unwrap();
        assert_eq!(back.bytes(), b"etc/a\\b\n");
    }

    /// The survey as it was when it kept both sets in memory (the model).
    fn survey_model(fd: &OwnedFd, targets: &[ArchivePath]) -> (Vec<ArchivePath>, Vec<ArchivePath>) {
        use std::collections::BTreeSet;
        let mut save = BTreeSet::new();
        let mut created = BTreeSet::new();
        for t in targets {
            for p in t.ancestors().chain(std::iter::once(t.clone())) {
                if save.contains(&p) {
                    continue;
                }
                if created.contains(&p) {
                    created.insert(t.clone());
                    for q in t.ancestors() {
                        if q.starts_with(&p) {
                            created.insert(q);
                        }
                    }
                    break;
                }
                match probe(fd, &p) {
                    Existing::Found(st) => {
                        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                        save.insert(p.clone());
                        if !is_dir && p != *t {
                            break;
                        }
                    }
                    Existing::Missing => {
                        created.insert(p.clone());
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
        (save.into_iter().collect(), created.into_iter().collect())
    }

    #[test]
    fn bounded_survey_matches_the_in_memory_model() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        let spill = d.path().join("spill");
        std::fs::create_dir(&spill).unwrap();
        for dir in ["etc/app/nodes/n1", "home/a/docs", "home/b", "var/lib"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "etc/hosts",
            "etc/app/nodes/n1/qemu.conf",
            "home/a/x",
            "home/b/y",
        ] {
            std::fs::write(root.join(file), b"old").unwrap();
        }
        // A file and a symlink where directories are expected.
        std::fs::write(root.join("var/lib/file"), b"f").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("home/link")).unwrap();
        let p = |s: &str| ArchivePath::from_user(s).unwrap();
        let mut targets = vec![
            p("etc"),
            p("etc/hosts"),
            p("etc/new/deep/file"),
            p("etc/new/deep"),
            p("etc/new/other"),
            p("etc/app/nodes/n1/qemu.conf"),
            p("etc/app/nodes/n2/qemu.conf"),
            p("home/link/passwd"),
            p("home/link"),
            p("var/lib/file/below"),
            p("var/lib/file"),
            p("var/new"),
            p("zz/top"),
        ];
        for u in 0..40 {
            let user = if u % 2 == 0 { "a" } else { "new" };
            for f in 0..25 {
                targets.push(p(&format!("home/{user}{}/d{}/f{f}", u % 3, u % 4)));
                targets.push(p(&format!("home/a/docs/{u}_{f}")));
            }
        }
        targets.push(p("home/a/x"));
        targets.push(p("home/b/y"));
        let mut sorted = targets.clone();
        sorted.sort();
        sorted.dedup();
        let fd = open_root(&root).unwrap();
        let want = survey_model(&fd, &sorted);
        assert!(!want.0.is_empty() && !want.1.is_empty());
        // Sorted (a tiny budget: many runs), unsorted with duplicates, and the root tier's
        // list followed by an export folder's (sorted within each).
        let half = sorted.len() / 2;
        let (first, second) = sorted.split_at(half);
        let orders: [Vec<ArchivePath>; 3] = [
            sorted.clone(),
            targets.iter().rev().chain(&targets).cloned().collect(),
            second.iter().chain(first).cloned().collect(),
        ];
        for order in orders {
            let (save, created) =
                survey_fd(&fd, order.iter().cloned().map(Ok), &spill, 64).unwrap();
            assert!(created.is_spilled());
            assert_eq!(save.to_vec().unwrap(), want.0);
            assert_eq!(created.to_vec().unwrap(), want.1);
        }
        // The public function gives the same lists.
        assert_eq!(survey(&root, &sorted).unwrap(), want);
        // Nothing named is left in the spill folder.
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
    }

    #[test]
    fn streamed_sidecar_and_report_list_match_the_collected_ones() {
        let d = tempfile::tempdir().unwrap();
        let paths: Vec<ArchivePath> = [&b"etc/a\\b"[..], b"etc/new", b"etc/\xff\n", b"home/\"q\""]
            .iter()
            .map(|b| ArchivePath::parse(b).unwrap().unwrap())
            .collect();
        for list in [vec![], paths] {
            let mut sorter = PathSorter::new(d.path(), 16);
            for p in &list {
                sorter.push(p.clone()).unwrap();
            }
            let created = sorter.finish().unwrap();
            let mut sorted = list.clone();
            sorted.sort();
            let meta = InodeMeta {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime_secs: 1,
                mtime_nanos: 2,
                atime_secs: 3,
                atime_nanos: 4,
            };
            let export = Some(ExportRecord {
                dir: StoredPath::of(b"opt/x"),
                created: vec![StoredPath::of(b"opt/x")],
            });
            let old = Sidecar {
                version: SIDECAR_VERSION,
                root: "/r".into(),
                root_path: Some(StoredPath::of(b"/r")),
                root_dev: Some(1),
                root_ino: Some(2),
                root_meta: Some(meta),
                created: sorted
                    .iter()
                    .map(|c| StoredPath::of(c.as_bytes()))
                    .collect(),
                export: export.clone(),
            };
            let new = SidecarOut {
                version: SIDECAR_VERSION,
                root: "/r".into(),
                root_path: Some(StoredPath::of(b"/r")),
                root_dev: Some(1),
                root_ino: Some(2),
                root_meta: Some(meta),
                created: StoredList(&created),
                export,
            };
            let mut streamed = Vec::new();
            serde_json::to_writer_pretty(BufWriter::new(&mut streamed), &new).unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                serde_json::to_string_pretty(&old).unwrap()
            );
            // The report's list, pretty and compact.
            let texts: Vec<String> = sorted.iter().map(|c| c.to_string()).collect();
            let cp = CreatedPaths(Arc::new(created));
            assert_eq!(cp.to_strings().unwrap(), texts);
            assert_eq!(
                serde_json::to_string_pretty(&cp).unwrap(),
                serde_json::to_string_pretty(&texts).unwrap()
            );
            assert_eq!(
                serde_json::to_string(&cp).unwrap(),
                serde_json::to_string(&texts).unwrap()
            );
        }
    }

    /// A restore that created files at several depths and an export folder, rolled back
    /// with lists far larger than their memory budget: the same preview and the same result
    /// as with everything in memory.
    #[test]
    fn a_rollback_with_spilled_lists_removes_what_the_restore_created_in_order() {
        fn run(budget: usize) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>, String) {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("root");
            let work = d.path().join("work");
            std::fs::create_dir_all(root.join("etc/app")).unwrap();
            std::fs::create_dir(&work).unwrap();
            std::fs::write(root.join("etc/app/keep.conf"), b"before\n").unwrap();
            let mut targets: Vec<ArchivePath> =
                vec![ArchivePath::from_user("etc/app/keep.conf").unwrap()];
            for i in 0..300 {
                targets.push(ArchivePath::from_user(&format!("home/u{}/f{i}", i % 7)).unwrap());
            }
            targets.push(ArchivePath::from_user("etc/app/new.d/deep/x.conf").unwrap());
            let targets = PathList::from_paths(targets, &work).unwrap();
            let export_dir = root.join("opt/proxsave/export-1");
            let export_entries = PathList::from_paths(
                [ArchivePath::from_user("etc/app/exported.cfg").unwrap()],
                &work,
            )
            .unwrap();
            let ws = Workspace {
                dir: work.clone(),
                stamp: "20261205_120000".into(),
            };
            let before = Before::capture(&root, Some(&export_dir));
            let sb = create(
                &root,
                &targets,
                Some(&ExportTargets {
                    dir: &export_dir,
                    entries: &export_entries,
                }),
                Some(&before),
                &ws,
            )
            .unwrap();
            // The restore: every target written, the export folder filled.
            for t in targets.iter() {
                let p = root.join(t.unwrap().as_os_str());
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, b"restored\n").unwrap();
            }
            std::fs::create_dir_all(export_dir.join("etc/app")).unwrap();
            std::fs::write(export_dir.join("etc/app/exported.cfg"), b"u\n").unwrap();

            let mut record = SafetyRecord::load(&sb.path).unwrap();
            record.budget = budget;
            let bound = record.bind_root(None, false).unwrap();
            let preview = record.preview(&bound).unwrap();
            assert_eq!(preview.remove.list.is_spilled(), budget < 64);
            let report = record.rollback(&bound, &CancelToken::new()).unwrap();
            assert!(report.complete(), "{report:?}");
            let mut left = Vec::new();
            for e in walkdir(&root) {
                left.push(e);
            }
            (
                preview.restore.to_vec().unwrap(),
                preview.remove.to_vec().unwrap(),
                preview.remove_trees.to_vec().unwrap(),
                report.removed.to_vec().unwrap(),
                format!(
                    "{left:?} {}",
                    String::from_utf8(std::fs::read(root.join("etc/app/keep.conf")).unwrap())
                        .unwrap()
                ),
            )
        }
        fn walkdir(dir: &Path) -> Vec<String> {
            let mut out = Vec::new();
            let mut stack = vec![dir.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let e = e.unwrap();
                    out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                    if e.file_type().unwrap().is_dir() {
                        stack.push(e.path());
                    }
                }
            }
            out.sort();
            out
        }
        let small = run(16);
        let large = run(1 << 20);
        assert_eq!(small, large);
        let (restore, remove, trees, removed, left) = small;
        assert_eq!(restore, ["/etc", "/etc/app", "/etc/app/keep.conf"]);
        assert_eq!(trees, ["/opt/proxsave/export-1"]);
        // Deepest first, then by name; every created file and folder.
        // 300 files, 7 user folders, /home, x.conf and its 2 new folders, /opt/proxsave, /opt.
        assert_eq!(remove.len(), 300 + 7 + 1 + 3 + 2);
        assert_eq!(remove[0], "/etc/app/new.d/deep/x.conf");
        assert_eq!(remove[1], "/etc/app/new.d/deep");
        assert!(
            remove.ends_with(&["/home".to_string(), "/opt".to_string()]),
            "{remove:?}"
        );
        let depths: Vec<usize> = remove.iter().map(|p| p.matches('/').count()).collect();
        assert!(depths.windows(2).all(|w| w[0] >= w[1]), "{remove:?}");
        assert_eq!(removed.len(), remove.len() + 1);
        assert_eq!(
            left,
            r#"["etc", "etc/app", "etc/app/keep.conf"] before
"#
        );
    }

    #[test]
    fn export_places() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        std::fs::create_dir(&root).unwrap();
        assert_eq!(
            export_place(&root, &root.join("opt/proxsave/x")),
            ExportPlace::Inside(ArchivePath::from_user("opt/proxsave/x").unwrap())
        );
        assert_eq!(export_place(&root, &root), ExportPlace::Root);
        assert_eq!(
            export_place(&root, &d.path().join("export")),
            ExportPlace::Outside
        );
        assert_eq!(
            export_place(&root, &root.join("../export")),
            ExportPlace::Outside
        );
        // A path spelled through a symlink that points into the root is inside.
        std::os::unix::fs::symlink(&root, d.path().join("link")).unwrap();
        assert_eq!(
            export_place(&root, &d.path().join("link/e")),
            ExportPlace::Inside(ArchivePath::from_user("e").unwrap())
        );
        assert_eq!(
            export_place(Path::new("/"), Path::new("/")),
            ExportPlace::Root
        );
    }
}
