//! Hardened extraction into a root directory.
//!
//! # How it works
//! Extraction has two phases so that nothing is written from a backup that later turns out
//! to be corrupt (the checksum is only known at the end of the stream):
//!
//! 1. **Stream** ([`Extractor::add`]): each entry is judged by the [`Policy`]; accepted
//!    regular files are written into a private `0700` staging directory inside the root
//!    (`.proxsave-stage-…`), with owner, mode and times applied on the open descriptor.
//! 2. **Commit** ([`Extractor::commit`]): called only after the caller verified the whole
//!    backup. Staged files are `rename`d into place (atomically replacing what was there),
//!    symlinks and hard links are created under a temporary name and renamed into place,
//!    directories are created `0700` and get their final owner/mode/times last, deepest
//!    first (so a `0500` directory does not block its own contents and directory mtimes do
//!    not drift).
//!
//! Dropping an [`Extractor`] without committing removes the staging directory: the root is
//! left as it was.
//!
//! # Security
//! Every filesystem operation is relative to a directory descriptor opened with
//! `O_NOFOLLOW`, one component at a time, so no symlink (on the target or created by the
//! archive) is ever traversed, even if the tree changes between the two phases. The rules
//! applied per entry are those of [`crate::policy`]. Device nodes, FIFOs and sockets are
//! never created; extended attributes and ACLs are never applied. setuid/setgid bits are
//! kept only when ownership is restored too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::Serialize;

use crate::dirfd::{DirCache, open_dir};
use crate::entry::{EntryHeader, EntryKind, Timestamp};
use crate::error::{Error, Result};
use crate::path::{ArchivePath, escape_bytes};
use crate::policy::{Action, Decision, DiskNode, EmptyView, FsView, Policy, STAGE_PREFIX};
use crate::progress::CancelToken;

/// Free space left on the target filesystem while staging, by default (1 MiB). Callers that
/// measured their need beforehand (the restore engine) may lower it.
pub const STAGE_RESERVE: u64 = 1 << 20;

/// How one entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written into the root (or, in report-only mode, would be).
    Written,
    /// Deliberately not written (not selected, or a policy of the caller).
    Skipped,
    /// Refused by a safety rule.
    Refused,
    /// Accepted, but writing it failed at commit time.
    Failed,
}

/// One entry's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct EntryOutcome {
    /// The member name as stored, escaped for display (e.g. `./etc/hosts`).
    pub name: String,
    /// The normalised path inside the root, if the name is usable.
    pub path: Option<String>,
    /// The entry type.
    pub kind: EntryKind,
    /// What happened.
    pub status: Status,
    /// Why, for anything but `written`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Mode bits from the archive.
    pub mode: u32,
    /// Owner from the archive.
    pub uid: u64,
    /// Group from the archive.
    pub gid: u64,
    /// Data size.
    pub size: u64,
}

/// Counts and outcomes of an extraction (or of a report-only run).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExtractReport {
    /// Entries seen.
    pub total: u64,
    /// Entries written.
    pub written: u64,
    /// Entries skipped.
    pub skipped: u64,
    /// Entries refused by a safety rule.
    pub refused: u64,
    /// Entries whose write failed.
    pub failed: u64,
    /// Bytes of regular-file data written.
    pub bytes_written: u64,
    /// Outcomes: every non-written entry, and written ones when
    /// [`ExtractOptions::record_written`] is set. In archive order.
    pub entries: Vec<EntryOutcome>,
    /// Things worth telling the user that are not per-entry failures.
    pub warnings: Vec<String>,
    /// True once the commit phase ran (false for report-only runs).
    pub committed: bool,
}

impl ExtractReport {
    /// The refused entries.
    pub fn refused_entries(&self) -> impl Iterator<Item = &EntryOutcome> {
        self.entries.iter().filter(|e| e.status == Status::Refused)
    }

    /// The failed entries.
    pub fn failed_entries(&self) -> impl Iterator<Item = &EntryOutcome> {
        self.entries.iter().filter(|e| e.status == Status::Failed)
    }
}

/// Whether the caller wants an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Extract it (subject to the safety rules).
    Include,
    /// Do not extract it, for this reason (recorded as skipped).
    Skip(String),
}

/// Extraction settings.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Restore numeric owners (needs root). Default: true when running as root.
    pub preserve_owner: bool,
    /// Refuse to commit anything when any entry was refused.
    pub strict: bool,
    /// Keep an outcome for every written entry in [`ExtractReport::entries`]. That list is
    /// in memory and grows with every entry (about 250 bytes each): the restore engine does
    /// not use it (it records the status [`Extractor::add`] returns, bounded, itself).
    pub record_written: bool,
    /// Checked between entries and buffers.
    pub cancel: CancelToken,
    /// Free space always left on the target filesystem while staging.
    pub reserve: u64,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            preserve_owner: rustix::process::geteuid().is_root(),
            strict: false,
            record_written: false,
            cancel: CancelToken::new(),
            reserve: STAGE_RESERVE,
        }
    }
}

/// Metadata applied to what is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timestamp,
    atime: Option<Timestamp>,
}

impl Meta {
    fn of(h: &EntryHeader) -> Meta {
        Meta {
            mode: h.mode & 0o7777,
            uid: h.uid,
            gid: h.gid,
            mtime: h.mtime,
            atime: h.atime,
        }
    }
}

enum Op {
    Dir {
        path: ArchivePath,
        meta: Meta,
    },
    File {
        path: ArchivePath,
        seq: u64,
        size: u64,
        meta: Meta,
    },
    Symlink {
        path: ArchivePath,
        target: Vec<u8>,
        meta: Meta,
    },
    Hardlink {
        path: ArchivePath,
        target: ArchivePath,
    },
}

impl Op {
    fn path(&self) -> &ArchivePath {
        match self {
            Op::Dir { path, .. }
            | Op::File { path, .. }
            | Op::Symlink { path, .. }
            | Op::Hardlink { path, .. } => path,
        }
    }
}

/// The pending operations, encoded compactly and spilled to a file in the private staging
/// folder once they pass [`OPLOG_MEMORY`], so memory does not grow with the number of entries.
struct OpLog {
    buf: Vec<u8>,
    file: Option<File>,
}

/// Encoded operations kept in memory before the log moves to the staging folder.
const OPLOG_MEMORY: usize = 1 << 20;

impl OpLog {
    fn new() -> OpLog {
        OpLog {
            buf: Vec::new(),
            file: None,
        }
    }

    fn push(&mut self, op: &Op, disk: &mut Disk) -> Result<()> {
        encode_op(op, &mut self.buf);
        if self.buf.len() >= OPLOG_MEMORY {
            if self.file.is_none() {
                if disk.stage.is_none() {
                    disk.stage = Some(create_stage(&disk.root, &disk.root_path)?);
                }
                let stage = disk.stage.as_ref().expect("created above");
                let fd = rustix::fs::openat(
                    &stage.fd,
                    "ops",
                    OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| Error::io(disk.root_path.join(&stage.name).join("ops"), e.into()))?;
                self.file = Some(File::from(fd));
            }
            let f = self.file.as_mut().expect("opened above");
            f.write_all(&self.buf)
                .map_err(|e| Error::io(&disk.root_path, e))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// All operations, in order.
    fn replay(mut self) -> std::io::Result<Box<dyn Iterator<Item = std::io::Result<Op>>>> {
        match self.file.take() {
            None => {
                let data = std::mem::take(&mut self.buf);
                Ok(Box::new(OpReader {
                    src: std::io::Cursor::new(data),
                }))
            }
            Some(mut f) => {
                use std::io::Seek;
                f.write_all(&self.buf)?;
                f.seek(std::io::SeekFrom::Start(0))?;
                Ok(Box::new(OpReader {
                    src: std::io::BufReader::with_capacity(256 << 10, f),
                }))
            }
        }
    }
}

struct OpReader<R> {
    src: R,
}

impl<R: Read> Iterator for OpReader<R> {
    type Item = std::io::Result<Op>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut tag = [0u8; 1];
        match self.src.read(&mut tag) {
            Ok(0) => None,
            Ok(_) => Some(decode_op(tag[0], &mut self.src)),
            Err(e) => Some(Err(e)),
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_meta(out: &mut Vec<u8>, m: &Meta) {
    out.extend_from_slice(&m.mode.to_le_bytes());
    out.extend_from_slice(&m.uid.to_le_bytes());
    out.extend_from_slice(&m.gid.to_le_bytes());
    out.extend_from_slice(&m.mtime.secs.to_le_bytes());
    out.extend_from_slice(&m.mtime.nanos.to_le_bytes());
    match m.atime {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.secs.to_le_bytes());
            out.extend_from_slice(&t.nanos.to_le_bytes());
        }
        None => out.push(0),
    }
}

fn encode_op(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Dir { path, meta } => {
            out.push(0);
            put_bytes(out, path.as_bytes());
            put_meta(out, meta);
        }
        Op::File {
            path,
            seq,
            size,
            meta,
        } => {
            out.push(1);
            put_bytes(out, path.as_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            put_meta(out, meta);
        }
        Op::Symlink { path, target, meta } => {
            out.push(2);
            put_bytes(out, path.as_bytes());
            put_bytes(out, target);
            put_meta(out, meta);
        }
        Op::Hardlink { path, target } => {
            out.push(3);
            put_bytes(out, path.as_bytes());
            put_bytes(out, target.as_bytes());
        }
    }
}

fn get<const N: usize>(r: &mut dyn Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn get_bytes(r: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let len = u32::from_le_bytes(get::<4>(r)?) as usize;
    let mut v = vec![0u8; len];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn get_path(r: &mut dyn Read) -> std::io::Result<ArchivePath> {
    let raw = get_bytes(r)?;
    ArchivePath::parse(&raw)
        .ok()
        .flatten()
        .ok_or_else(|| std::io::Error::other("corrupt operation log"))
}

fn get_meta(r: &mut dyn Read) -> std::io::Result<Meta> {
    let mode = u32::from_le_bytes(get::<4>(r)?);
    let uid = u64::from_le_bytes(get::<8>(r)?);
    let gid = u64::from_le_bytes(get::<8>(r)?);
    let mtime = Timestamp {
        secs: i64::from_le_bytes(get::<8>(r)?),
        nanos: u32::from_le_bytes(get::<4>(r)?),
    };
    let atime = match get::<1>(r)?[0] {
        0 => None,
        _ => Some(Timestamp {
            secs: i64::from_le_bytes(get::<8>(r)?),
            nanos: u32::from_le_bytes(get::<4>(r)?),
        }),
    };
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        atime,
    })
}

fn decode_op(tag: u8, r: &mut dyn Read) -> std::io::Result<Op> {
    Ok(match tag {
        0 => Op::Dir {
            path: get_path(r)?,
            meta: get_meta(r)?,
        },
        1 => Op::File {
            path: get_path(r)?,
            seq: u64::from_le_bytes(get::<8>(r)?),
            size: u64::from_le_bytes(get::<8>(r)?),
            meta: get_meta(r)?,
        },
        2 => Op::Symlink {
            path: get_path(r)?,
            target: get_bytes(r)?,
            meta: get_meta(r)?,
        },
        3 => Op::Hardlink {
            path: get_path(r)?,
            target: get_path(r)?,
        },
        _ => return Err(std::io::Error::other("corrupt operation log")),
    })
}

/// [`FsView`] of a real root, through descriptors, never following symlinks. The folders
/// looked in are kept in a small [`DirCache`] (the root is not written while the policy
/// looks at it: everything is staged), so the entries of one folder cost one `statat` each
/// instead of a walk from the root.
pub struct RootView {
    root: Arc<OwnedFd>,
    dirs: RefCell<DirCache>,
}

/// Folders the policy's view of the root keeps open.
const VIEW_CACHED_DIRS: usize = 32;

impl FsView for RootView {
    fn lstat(&self, path: &ArchivePath) -> io::Result<Option<DiskNode>> {
        let parent = match path.parent() {
            None => None,
            Some(p) => match self.dirs.borrow_mut().dir(self.root.as_fd(), &p) {
                Ok(Some(fd)) => Some(fd),
                Ok(None) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        let dir = parent.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
        let name = OsStr::from_bytes(path.file_name());
        let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => DiskNode::Dir,
            FileType::RegularFile => DiskNode::File,
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
                DiskNode::Symlink(target.into_bytes())
            }
            _ => DiskNode::Other,
        }))
    }
}

enum ViewKind {
    Empty(EmptyView),
    Root(RootView),
}

impl FsView for ViewKind {
    fn lstat(&self, path: &ArchivePath) -> io::Result<Option<DiskNode>> {
        match self {
            ViewKind::Empty(v) => v.lstat(path),
            ViewKind::Root(v) => v.lstat(path),
        }
    }
}

struct Stage {
    name: String,
    fd: OwnedFd,
    seq: u64,
    /// Free bytes at the last `fstatvfs`, minus what was staged since.
    free: u64,
    /// Bytes and files staged since the last `fstatvfs`.
    since_bytes: u64,
    since_files: u64,
    /// Owner every file created in the stage gets (the stage is not set-group-id), read
    /// from the first staged file, so `fchown` is skipped for entries that already have it.
    creator: Option<(u32, u32)>,
}

/// The free space of the staging filesystem is asked again after this many staged bytes …
const RESTAT_BYTES: u64 = 64 << 20;
/// … or files (others may write there too), and whenever an entry does not fit the estimate.
const RESTAT_FILES: u64 = 4096;

impl Stage {
    /// Free bytes on the staging filesystem, from a recent `fstatvfs` less what was staged
    /// since; asked again when stale or when `need` does not fit.
    fn free_for(&mut self, need: u64) -> Option<u64> {
        let stale = self.since_bytes >= RESTAT_BYTES || self.since_files >= RESTAT_FILES;
        if stale || need > self.free || self.since_files == 0 && self.seq == 0 {
            let fs = rustix::fs::fstatvfs(&self.fd).ok()?;
            self.free = fs.f_bavail.saturating_mul(fs.f_frsize);
            self.since_bytes = 0;
            self.since_files = 0;
        }
        Some(self.free)
    }

    fn staged(&mut self, bytes: u64) {
        // Whole blocks at least: a tiny file still takes one.
        let used = bytes.div_ceil(4096).max(1) * 4096;
        self.free = self.free.saturating_sub(used);
        self.since_bytes += used;
        self.since_files += 1;
    }
}

struct Disk {
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    stage: Option<Stage>,
}

/// Extracts entries into a root (or only reports what it would do); see the module docs.
pub struct Extractor {
    disk: Option<Disk>,
    policy: Policy<ViewKind>,
    ops: OpLog,
    report: ExtractReport,
    unselected_dirs: HashMap<ArchivePath, Meta>,
    opts: ExtractOptions,
    buf: Vec<u8>,
    done: bool,
    /// The file the last [`Extractor::add`] staged (cleared by every add), for
    /// [`Extractor::add_linked`] of another extractor.
    last_staged: Option<Staged>,
}

/// A file staged by the last `add`: its staging name and what was applied to it.
#[derive(Clone, Copy, Debug)]
struct Staged {
    seq: u64,
    size: u64,
    meta: Meta,
    preserve_owner: bool,
    /// Metadata applied without a warning.
    clean: bool,
}

impl Extractor {
    /// An extractor writing into the existing directory `root`.
    ///
    /// # Errors
    /// [`Error::Io`] when `root` cannot be opened as a directory.
    ///
    /// # Security
    /// `root` itself is opened following symlinks (it is the caller's choice); nothing below
    /// it is ever reached through a symlink.
    pub fn new(root: &Path, opts: ExtractOptions) -> Result<Extractor> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(root, e.into()))?;
        Ok(Extractor::with_root_fd(fd, root, opts))
    }

    /// An extractor writing into the directory already open as `root` (`root_path` names it
    /// in messages). For callers that checked the directory's identity on this descriptor.
    pub fn with_root_fd(root: OwnedFd, root_path: &Path, opts: ExtractOptions) -> Extractor {
        let root_fd = Arc::new(root);
        Extractor {
            disk: Some(Disk {
                root: root_fd.clone(),
                root_path: root_path.to_path_buf(),
                stage: None,
            }),
            policy: Policy::new(ViewKind::Root(RootView {
                root: root_fd,
                dirs: RefCell::new(DirCache::new(VIEW_CACHED_DIRS)),
            })),
            ops: OpLog::new(),
            report: ExtractReport::default(),
            unselected_dirs: HashMap::new(),
            opts,
            buf: Vec::new(),
            done: false,
            last_staged: None,
        }
    }

    /// An extractor that writes nothing and reports what extraction into an empty root
    /// would do (used by `verify`).
    pub fn report_only(opts: ExtractOptions) -> Extractor {
        Extractor {
            disk: None,
            policy: Policy::new(ViewKind::Empty(EmptyView)),
            ops: OpLog::new(),
            report: ExtractReport::default(),
            unselected_dirs: HashMap::new(),
            opts,
            buf: Vec::new(),
            done: false,
            last_staged: None,
        }
    }

    /// The report so far.
    pub fn report(&self) -> &ExtractReport {
        &self.report
    }

    /// Handles one entry: judges it, stages its data, and records the outcome. Always
    /// consumes the entry's data from `data`.
    ///
    /// # Errors
    /// Errors reading `data` (the backup) or writing the staging area, and
    /// [`Error::Cancelled`]. Refusals are not errors: they are recorded in the report.
    pub fn add(
        &mut self,
        header: &EntryHeader,
        data: &mut dyn Read,
        selection: Selection,
    ) -> Result<Status> {
        self.add_from(header, data, selection, None)
    }

    /// [`add`](Self::add) for an entry that `source`, another extractor, has just been
    /// given (its last `add`): when `source` staged it as a regular file on the same
    /// filesystem, with the same metadata and ownership setting and without a warning, that
    /// staged file is hard-linked into this extractor's staging folder instead of being
    /// written again (a directory entry instead of a new inode and a copy of the data). Else
    /// this is `add`. The entry is judged by this extractor's own policy either way.
    ///
    /// `data` is read only when no link is made: give a reader of the entry's data that is
    /// not shared with anything else.
    ///
    /// A linked file is one inode in both targets: neither may be modified in place
    /// afterwards (commits `rename` it into place, which keeps both names right).
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn add_linked(
        &mut self,
        header: &EntryHeader,
        data: &mut dyn Read,
        selection: Selection,
        source: &Extractor,
    ) -> Result<Status> {
        self.add_from(header, data, selection, Some(source))
    }

    fn add_from(
        &mut self,
        header: &EntryHeader,
        data: &mut dyn Read,
        selection: Selection,
        source: Option<&Extractor>,
    ) -> Result<Status> {
        self.last_staged = None;
        self.opts.cancel.check()?;
        crate::checkpoint::checkpoint("extract", &header.display_name());
        self.report.total += 1;
        if let Selection::Skip(reason) = selection {
            if header.kind == EntryKind::Directory
                && let Ok(Some(path)) = ArchivePath::parse(&header.raw_path)
            {
                self.unselected_dirs.insert(path, Meta::of(header));
            }
            self.drain(data)?;
            return Ok(self.record(header, None, Status::Skipped, Some(reason)));
        }
        match self.policy.decide(header) {
            Decision::Root => {
                self.drain(data)?;
                Ok(self.record(
                    header,
                    None,
                    Status::Skipped,
                    Some("the root directory itself is never modified".into()),
                ))
            }
            Decision::Refuse(path, refusal) => {
                self.drain(data)?;
                Ok(self.record(
                    header,
                    path.as_ref(),
                    Status::Refused,
                    Some(refusal.to_string()),
                ))
            }
            Decision::Accept(path, action) => {
                let meta = Meta::of(header);
                match action {
                    Action::Dir => {
                        self.drain(data)?;
                        self.push_op(Op::Dir {
                            path: path.clone(),
                            meta,
                        })?;
                    }
                    Action::File => {
                        let staged =
                            match source.and_then(|src| self.link_staged(src, header, &meta)) {
                                Some(seq) => Some(seq),
                                None => self.stage_file(header, data, &meta)?,
                            };
                        self.report.bytes_written += header.size;
                        if let Some(seq) = staged {
                            self.push_op(Op::File {
                                path: path.clone(),
                                seq,
                                size: header.size,
                                meta,
                            })?;
                        }
                    }
                    Action::Symlink(target) => {
                        self.drain(data)?;
                        self.push_op(Op::Symlink {
                            path: path.clone(),
                            target,
                            meta,
                        })?;
                    }
                    Action::Hardlink(target) => {
                        self.drain(data)?;
                        self.push_op(Op::Hardlink {
                            path: path.clone(),
                            target,
                        })?;
                    }
                }
                Ok(self.record(header, Some(&path), Status::Written, None))
            }
        }
    }

    fn record(
        &mut self,
        header: &EntryHeader,
        path: Option<&ArchivePath>,
        status: Status,
        reason: Option<String>,
    ) -> Status {
        match status {
            Status::Written => self.report.written += 1,
            Status::Skipped => self.report.skipped += 1,
            Status::Refused => self.report.refused += 1,
            Status::Failed => self.report.failed += 1,
        }
        if status != Status::Written || self.opts.record_written {
            let path = path
                .cloned()
                .or_else(|| ArchivePath::parse(&header.raw_path).ok().flatten());
            self.report.entries.push(EntryOutcome {
                name: escape_bytes(&header.raw_path),
                path: path.map(|p| p.to_string()),
                kind: header.kind,
                status,
                reason,
                mode: header.mode,
                uid: header.uid,
                gid: header.gid,
                size: header.size,
            });
        }
        status
    }

    fn drain(&mut self, data: &mut dyn Read) -> Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 << 10];
        }
        loop {
            self.opts.cancel.check()?;
            match data.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
    }

    fn stage_file(
        &mut self,
        header: &EntryHeader,
        data: &mut dyn Read,
        meta: &Meta,
    ) -> Result<Option<u64>> {
        let Some(disk) = self.disk.as_mut() else {
            self.drain(data)?;
            return Ok(None);
        };
        if disk.stage.is_none() {
            disk.stage = Some(create_stage(&disk.root, &disk.root_path)?);
        }
        let stage = disk.stage.as_mut().expect("created above");
        // Staged data sits on the target filesystem until the commit: never let a hostile
        // (or just huge) archive fill it before the checksum has even been checked. The
        // filesystem is asked once per RESTAT_FILES files / RESTAT_BYTES bytes (and whenever
        // an entry does not fit what is known), not once per file.
        if let Some(free) = stage.free_for(header.size.saturating_add(self.opts.reserve))
            && header.size.saturating_add(self.opts.reserve) > free
        {
            return Err(Error::Extract(format!(
                "not enough free space in {} to stage {} ({} bytes needed, {} free, {} kept in reserve)",
                disk.root_path.display(),
                header.display_name(),
                header.size,
                free,
                self.opts.reserve
            )));
        }
        stage.seq += 1;
        let name = format!("f{}", stage.seq);
        let fd = rustix::fs::openat(
            &stage.fd,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::io(disk.root_path.join(&stage.name).join(&name), e.into()))?;
        let mut file = File::from(fd);
        if stage.creator.is_none() {
            // What the filesystem makes of this process's ids (a squashing network
            // filesystem gives another owner): asked once.
            let st = rustix::fs::fstat(&file)
                .map_err(|e| Error::io(disk.root_path.join(&stage.name).join(&name), e.into()))?;
            stage.creator = Some((st.st_uid, st.st_gid));
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 << 10];
        }
        // The buffer is filled before it is written: one `write` per file up to its size.
        let mut left = header.size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let mut have = 0;
            while have < want {
                self.opts.cancel.check()?;
                match data.read(&mut self.buf[have..want]) {
                    Ok(0) => {
                        return Err(read_error(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the data of {} ends early", header.display_name()),
                        )));
                    }
                    Ok(n) => have += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_error(e)),
                }
            }
            file.write_all(&self.buf[..have])
                .map_err(|e| Error::io(disk.root_path.join(&stage.name).join(&name), e))?;
            left -= have as u64;
        }
        stage.staged(header.size);
        // Anything beyond the declared size cannot exist (the tar reader bounds it).
        let warnings = apply_meta_fd(file.as_fd(), meta, self.opts.preserve_owner, stage.creator)
            .map_err(|e| Error::io(disk.root_path.join(&stage.name).join(&name), e))?;
        self.last_staged = Some(Staged {
            seq: stage.seq,
            size: header.size,
            meta: *meta,
            preserve_owner: self.opts.preserve_owner,
            clean: warnings.is_empty(),
        });
        for w in warnings {
            self.report
                .warnings
                .push(format!("{}: {w}", header.display_name()));
        }
        Ok(Some(stage.seq))
    }

    /// Links the file `source` staged in its last `add` into this staging folder; `None`
    /// when it did not stage this entry's file, or the link cannot be made (another
    /// filesystem, a link limit, …): the caller writes the data then.
    fn link_staged(
        &mut self,
        source: &Extractor,
        header: &EntryHeader,
        meta: &Meta,
    ) -> Option<u64> {
        let from = source.last_staged?;
        let src = source.disk.as_ref()?.stage.as_ref()?;
        if !from.clean
            || from.size != header.size
            || from.meta != *meta
            || from.preserve_owner != self.opts.preserve_owner
        {
            return None;
        }
        let disk = self.disk.as_mut()?;
        if disk.stage.is_none() {
            disk.stage = Some(create_stage(&disk.root, &disk.root_path).ok()?);
        }
        let stage = disk.stage.as_mut()?;
        let name = format!("f{}", stage.seq + 1);
        rustix::fs::linkat(
            &src.fd,
            format!("f{}", from.seq).as_str(),
            &stage.fd,
            name.as_str(),
            AtFlags::empty(),
        )
        .ok()?;
        stage.seq += 1;
        self.last_staged = Some(Staged {
            seq: stage.seq,
            ..from
        });
        Some(stage.seq)
    }

    fn push_op(&mut self, op: Op) -> Result<()> {
        match self.disk.as_mut() {
            Some(disk) => self.ops.push(&op, disk),
            None => Ok(()),
        }
    }

    /// Writes everything that was staged into the root. Call only after the backup was
    /// verified. Returns the final report.
    ///
    /// # Errors
    /// [`Error::Refused`] in strict mode when entries were refused (nothing is written);
    /// otherwise failures of single entries are recorded in the report as `failed`.
    pub fn commit(mut self) -> Result<ExtractReport> {
        self.done = true;
        let Some(mut disk) = self.disk.take() else {
            return Ok(std::mem::take(&mut self.report));
        };
        if self.opts.strict && self.report.refused > 0 {
            remove_stage(&disk);
            return Err(Error::Refused(Box::new(std::mem::take(&mut self.report))));
        }
        let mut committer = Committer {
            root: disk.root.clone(),
            stage: disk.stage.as_ref().map(|s| s.fd.as_fd()),
            cache: HashMap::new(),
            unselected_dirs: &self.unselected_dirs,
            created_dirs: Vec::new(),
            preserve_owner: self.opts.preserve_owner,
            tmp_seq: 0,
        };
        let mut dir_meta: Vec<(ArchivePath, Meta)> = Vec::new();
        let ops = std::mem::replace(&mut self.ops, OpLog::new())
            .replay()
            .map_err(|e| Error::io(&disk.root_path, e))?;
        let mut failures: Vec<(ArchivePath, String)> = Vec::new();
        for op in ops {
            let op = op.map_err(|e| Error::io(&disk.root_path, e))?;
            let op = &op;
            crate::checkpoint::checkpoint("commit", op.path());
            let result = match op {
                Op::Dir { path, meta } => committer.make_dir(path).map(|()| {
                    dir_meta.push((path.clone(), *meta));
                }),
                Op::File {
                    path,
                    seq,
                    size,
                    meta,
                } => committer.place_file(path, &format!("f{seq}"), *size, meta),
                Op::Symlink { path, target, meta } => committer.place_symlink(path, target, meta),
                Op::Hardlink { path, target } => committer.place_hardlink(path, target),
            };
            if let Err(reason) = result {
                failures.push((op.path().clone(), reason));
            }
        }
        // Implicitly created parents that had a (skipped) archive entry get its metadata.
        for path in std::mem::take(&mut committer.created_dirs) {
            if let Some(meta) = self.unselected_dirs.get(&path) {
                dir_meta.push((path, *meta));
            }
        }
        // Last metadata for a directory wins; apply deepest first.
        let mut last: HashMap<ArchivePath, Meta> = HashMap::new();
        for (p, m) in dir_meta {
            last.insert(p, m);
        }
        let mut dirs: Vec<(ArchivePath, Meta)> = last.into_iter().collect();
        dirs.sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then(a.0.cmp(&b.0)));
        for (path, meta) in &dirs {
            match committer.finish_dir(path, meta) {
                Ok(warnings) => {
                    for w in warnings {
                        self.report.warnings.push(format!("{path}: {w}"));
                    }
                }
                Err(reason) => failures.push((path.clone(), reason)),
            }
        }
        drop(committer);
        remove_stage(&disk);
        disk.stage = None;
        for (path, reason) in failures {
            self.mark_failed(&path, reason);
        }
        self.report.committed = true;
        Ok(std::mem::take(&mut self.report))
    }

    fn mark_failed(&mut self, path: &ArchivePath, reason: String) {
        let shown = path.to_string();
        if let Some(e) = self
            .report
            .entries
            .iter_mut()
            .rev()
            .find(|e| e.status == Status::Written && e.path.as_deref() == Some(shown.as_str()))
        {
            e.status = Status::Failed;
            e.reason = Some(reason);
        } else {
            self.report.entries.push(EntryOutcome {
                name: format!("./{shown}"),
                path: Some(shown),
                kind: EntryKind::File,
                status: Status::Failed,
                reason: Some(reason),
                mode: 0,
                uid: 0,
                gid: 0,
                size: 0,
            });
        }
        self.report.written = self.report.written.saturating_sub(1);
        self.report.failed += 1;
    }

    /// Discards everything staged; the root is left as it was.
    pub fn abort(mut self) -> ExtractReport {
        self.done = true;
        if let Some(disk) = self.disk.take() {
            remove_stage(&disk);
        }
        std::mem::take(&mut self.report)
    }
}

impl Drop for Extractor {
    fn drop(&mut self) {
        if !self.done
            && let Some(disk) = self.disk.take()
        {
            remove_stage(&disk);
        }
    }
}

fn read_error(e: io::Error) -> Error {
    Error::Read(e)
}

fn create_stage(root: &OwnedFd, root_path: &Path) -> Result<Stage> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "{STAGE_PREFIX}{}-{:08x}",
        rustix::process::getpid().as_raw_nonzero(),
        nanos ^ 0x5bd1_e995
    );
    rustix::fs::mkdirat(root, name.as_str(), Mode::from_raw_mode(0o700))
        .map_err(|e| Error::io(root_path.join(&name), e.into()))?;
    let fd = open_dir(root.as_fd(), name.as_bytes())
        .map_err(|e| Error::io(root_path.join(&name), e.into()))?;
    // Exactly 0700, and not set-group-id even below a set-group-id folder: files created in
    // it then belong to this process's effective ids (so `fchown` to those can be skipped).
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))
        .map_err(|e| Error::io(root_path.join(&name), e.into()))?;
    Ok(Stage {
        name,
        fd,
        seq: 0,
        free: 0,
        since_bytes: 0,
        since_files: 0,
        creator: None,
    })
}

fn remove_stage(disk: &Disk) {
    let Some(stage) = &disk.stage else { return };
    if let Ok(dup) = rustix::io::dup(&stage.fd)
        && let Ok(mut dir) = rustix::fs::Dir::new(dup)
    {
        let mut names = Vec::new();
        while let Some(Ok(entry)) = dir.read() {
            let name = entry.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        for name in names {
            let _ = rustix::fs::unlinkat(&stage.fd, OsStr::from_bytes(&name), AtFlags::empty());
        }
    }
    let _ = rustix::fs::unlinkat(&*disk.root, stage.name.as_str(), AtFlags::REMOVEDIR);
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    }
}

fn timestamps(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: match meta.atime {
            Some(t) => timespec(t),
            None => Timespec {
                tv_sec: 0,
                tv_nsec: rustix::fs::UTIME_OMIT,
            },
        },
        last_modification: timespec(meta.mtime),
    }
}

fn effective_mode(meta: &Meta, preserve_owner: bool) -> Mode {
    let mode = if preserve_owner {
        meta.mode
    } else {
        meta.mode & !0o6000
    };
    Mode::from_raw_mode(mode & 0o7777)
}

/// Numeric ids the kernel accepts (`u32` except the reserved -1).
fn owner_ids(meta: &Meta) -> Option<(rustix::fs::Uid, rustix::fs::Gid)> {
    let uid = u32::try_from(meta.uid).ok().filter(|&u| u != u32::MAX)?;
    let gid = u32::try_from(meta.gid).ok().filter(|&g| g != u32::MAX)?;
    Some((
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    ))
}

/// Applies owner (best effort), mode and times on an open descriptor. Returns warnings.
///
/// `created_as`: the owner the file already has (a file just created in the stage), so an
/// `fchown` to the same ids is skipped.
fn apply_meta_fd(
    fd: BorrowedFd<'_>,
    meta: &Meta,
    preserve_owner: bool,
    created_as: Option<(u32, u32)>,
) -> io::Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut owner_applied = false;
    if preserve_owner {
        match owner_ids(meta) {
            Some((owner, group)) if created_as == Some((owner.as_raw(), group.as_raw())) => {
                owner_applied = true;
            }
            Some((owner, group)) => match rustix::fs::fchown(fd, Some(owner), Some(group)) {
                Ok(()) => owner_applied = true,
                Err(e) => {
                    warnings.push(format!("owner {}:{} not applied: {e}", meta.uid, meta.gid));
                }
            },
            None => warnings.push(format!(
                "owner {}:{} is out of range and was not applied",
                meta.uid, meta.gid
            )),
        }
    }
    // setuid/setgid only together with the archive's owner: when the owner could not be
    // applied (out-of-range id, failed chown) the file belongs to whoever extracts (root),
    // and keeping the bits would make a set-id-root program the archive never had.
    rustix::fs::fchmod(fd, effective_mode(meta, owner_applied))?;
    rustix::fs::futimens(fd, &timestamps(meta))?;
    Ok(warnings)
}

struct Committer<'a> {
    root: Arc<OwnedFd>,
    stage: Option<BorrowedFd<'a>>,
    cache: HashMap<ArchivePath, Arc<OwnedFd>>,
    unselected_dirs: &'a HashMap<ArchivePath, Meta>,
    created_dirs: Vec<ArchivePath>,
    preserve_owner: bool,
    tmp_seq: u64,
}

const MAX_CACHED_DIRS: usize = 128;

impl Committer<'_> {
    /// Opens (creating missing components) the directory `path`, never following links.
    fn open_dir_path(
        &mut self,
        path: Option<&ArchivePath>,
    ) -> std::result::Result<Arc<OwnedFd>, String> {
        let Some(path) = path else {
            return Ok(self.root.clone());
        };
        if let Some(fd) = self.cache.get(path) {
            return Ok(fd.clone());
        }
        // Walk down from the deepest cached ancestor, in a loop: this used to recurse once
        // per component, and a hostile archive nesting ~2000 directories overflowed the
        // stack (an abort, not an error).
        let mut todo = vec![path.clone()];
        let mut fd = loop {
            match todo.last().and_then(ArchivePath::parent) {
                None => break self.root.clone(),
                Some(p) => match self.cache.get(&p) {
                    Some(fd) => break fd.clone(),
                    None => todo.push(p),
                },
            }
        };
        while let Some(p) = todo.pop() {
            fd = self.open_child(&fd, &p)?;
        }
        Ok(fd)
    }

    /// Opens (creating it if missing) the directory `path` inside its open `parent`.
    fn open_child(
        &mut self,
        parent: &OwnedFd,
        path: &ArchivePath,
    ) -> std::result::Result<Arc<OwnedFd>, String> {
        let name = path.file_name();
        let fd = match open_dir(parent.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let mode = self.unselected_dirs.get(path).map_or(0o755, |_| 0o700);
                match rustix::fs::mkdirat(
                    parent,
                    OsStr::from_bytes(name),
                    Mode::from_raw_mode(mode),
                ) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(format!("cannot create directory {path}: {e}")),
                }
                self.created_dirs.push(path.clone());
                open_dir(parent.as_fd(), name)
                    .map_err(|e| format!("cannot open directory {path}: {e}"))?
            }
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return Err(format!(
                    "{path} is a symbolic link or not a directory on the target; nothing is written through it"
                ));
            }
            Err(e) => return Err(format!("cannot open directory {path}: {e}")),
        };
        if self.cache.len() >= MAX_CACHED_DIRS {
            self.cache.clear();
        }
        let fd = Arc::new(fd);
        self.cache.insert(path.clone(), fd.clone());
        Ok(fd)
    }

    fn tmp_name(&mut self) -> String {
        self.tmp_seq += 1;
        format!(
            ".proxsave-tmp-{}-{}",
            rustix::process::getpid().as_raw_nonzero(),
            self.tmp_seq
        )
    }

    fn make_dir(&mut self, path: &ArchivePath) -> std::result::Result<(), String> {
        let parent = self.open_dir_path(path.parent().as_ref())?;
        match rustix::fs::mkdirat(
            &*parent,
            OsStr::from_bytes(path.file_name()),
            Mode::from_raw_mode(0o700),
        ) {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(format!("cannot create directory: {e}")),
        }
    }

    fn place_file(
        &mut self,
        path: &ArchivePath,
        staged: &str,
        size: u64,
        meta: &Meta,
    ) -> std::result::Result<(), String> {
        let Some(stage) = self.stage else {
            return Err("internal error: no staging area".into());
        };
        let parent = self.open_dir_path(path.parent().as_ref())?;
        let name = OsStr::from_bytes(path.file_name());
        match rustix::fs::renameat(stage, staged, &*parent, name) {
            Ok(()) => Ok(()),
            Err(Errno::XDEV) => self.copy_into_place(stage, staged, &parent, name, size, meta),
            Err(Errno::ISDIR) | Err(Errno::NOTEMPTY) => {
                Err("a directory exists at this path".into())
            }
            Err(e) => Err(format!("cannot move into place: {e}")),
        }
    }

    /// Fallback when the target is on another filesystem than the staging area.
    fn copy_into_place(
        &mut self,
        stage: BorrowedFd<'_>,
        staged: &str,
        parent: &OwnedFd,
        name: &OsStr,
        size: u64,
        meta: &Meta,
    ) -> std::result::Result<(), String> {
        let src = rustix::fs::openat(
            stage,
            staged,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot reopen staged data: {e}"))?;
        let tmp = self.tmp_name();
        let dst = rustix::fs::openat(
            parent,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| format!("cannot create temporary file: {e}"))?;
        let mut src = File::from(src);
        let mut dst = File::from(dst);
        let result = (|| -> io::Result<()> {
            let copied = io::copy(&mut src, &mut dst)?;
            if copied != size {
                return Err(io::Error::other("short copy"));
            }
            apply_meta_fd(dst.as_fd(), meta, self.preserve_owner, None)?;
            rustix::fs::renameat(parent, tmp.as_str(), parent, name)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(parent, tmp.as_str(), AtFlags::empty());
            return Err(format!("cannot write across filesystems: {e}"));
        }
        Ok(())
    }

    fn place_symlink(
        &mut self,
        path: &ArchivePath,
        target: &[u8],
        meta: &Meta,
    ) -> std::result::Result<(), String> {
        let parent = self.open_dir_path(path.parent().as_ref())?;
        let tmp = self.tmp_name();
        rustix::fs::symlinkat(OsStr::from_bytes(target), &*parent, tmp.as_str())
            .map_err(|e| format!("cannot create symbolic link: {e}"))?;
        let result = (|| -> io::Result<()> {
            if self.preserve_owner
                && let Some((owner, group)) = owner_ids(meta)
            {
                let _ = rustix::fs::chownat(
                    &*parent,
                    tmp.as_str(),
                    Some(owner),
                    Some(group),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            let _ = rustix::fs::utimensat(
                &*parent,
                tmp.as_str(),
                &timestamps(meta),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            rustix::fs::renameat(
                &*parent,
                tmp.as_str(),
                &*parent,
                OsStr::from_bytes(path.file_name()),
            )?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&*parent, tmp.as_str(), AtFlags::empty());
            return Err(format!("cannot place symbolic link: {e}"));
        }
        Ok(())
    }

    fn place_hardlink(
        &mut self,
        path: &ArchivePath,
        target: &ArchivePath,
    ) -> std::result::Result<(), String> {
        let src_parent = self.open_dir_path(target.parent().as_ref())?;
        let parent = self.open_dir_path(path.parent().as_ref())?;
        let tmp = self.tmp_name();
        rustix::fs::linkat(
            &*src_parent,
            OsStr::from_bytes(target.file_name()),
            &*parent,
            tmp.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| format!("cannot create hard link to {target}: {e}"))?;
        let result = rustix::fs::renameat(
            &*parent,
            tmp.as_str(),
            &*parent,
            OsStr::from_bytes(path.file_name()),
        );
        // rename() between two names of one inode succeeds without removing the source.
        let _ = rustix::fs::unlinkat(&*parent, tmp.as_str(), AtFlags::empty());
        result.map_err(|e| format!("cannot place hard link: {e}"))
    }

    fn finish_dir(
        &mut self,
        path: &ArchivePath,
        meta: &Meta,
    ) -> std::result::Result<Vec<String>, String> {
        let parent = self.open_dir_path(path.parent().as_ref())?;
        let fd = open_dir(parent.as_fd(), path.file_name())
            .map_err(|e| format!("cannot open directory to set its metadata: {e}"))?;
        apply_meta_fd(fd.as_fd(), meta, self.preserve_owner, None)
            .map_err(|e| format!("cannot set directory metadata: {e}"))
    }
}
