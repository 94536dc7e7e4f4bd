//! COMMIT windows: changes that roll themselves back unless the administrator keeps them.
//!
//! Some changes can lock the administrator out (firewall rules, access control): an applier
//! arms a [`Window`] over exactly the root paths it is about to write or remove, before it
//! writes. Arming saves the current state of each path (content, mode, owner, mtime; or
//! "absent") in a private folder `<work>/commit/<id>/` (0700, files 0600) with a
//! `window.json` record ([`WindowRecord`]), and starts a timer that fires a rollback after
//! the window's length even if `proxsave` itself is killed:
//!
//! - when the host's init is systemd ([`crate::host::CommandRunner::init_is_systemd`]): a
//!   transient timer, `systemd-run --unit=proxsave-<area>-rollback-<stamp> --on-active=<N>s --collect
//!   … <fire command> <dir>`;
//! - otherwise a detached process ([`crate::host::CommandRunner::spawn_detached`]: its own
//!   session and process group) running `<fire command> <dir> --after <N>`.
//!
//! The fire command (the CLI's `proxsave restore --commit-fire`) calls [`fire`]. Committing
//! ([`Window::commit`]) marks the record committed, then stops the timer; a rollback
//! ([`Window::rollback`], or the timer) puts back exactly the saved paths through the root
//! (never following a symlink; paths that were absent are removed), runs the record's
//! after-rollback commands (e.g. a service reload), marks the record and appends to
//! `rollback.log` in the window's folder. Both take an exclusive lock on the window's folder
//! and check the state first, so a commit racing the timer is either a commit or a rollback,
//! never half of each.
//!
//! [`settle`] is the question an applier asks once it wrote: at a console, a countdown
//! (no answer within the window rolls back); without one (`--yes`), `commit` unless an
//! answer given up front says `rollback`.
//!
//! With host actions deferred (an alternate root) or without [`CommitSettings`] on the
//! host, [`Window::arm`] arms nothing (`Ok(None)`): nothing there is live.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::applier::{AnswerSource, ApplyContext, ApplyError, Ask, QuestionSpec, RootHandle};
use crate::host::{Host, HostActions, HostCommand, Ran};
use crate::prompt::{Level, PromptError};

/// The default length of a window (`--commit-window`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(180);
/// The record in each window's folder.
pub const RECORD: &str = "window.json";
/// The log a rollback appends to in the window's folder.
pub const LOG: &str = "rollback.log";
/// The checkpoint phase of windows (`armed <id>`, then `open <id>` once the applier wrote).
pub const CHECKPOINT: &str = "commit-window";

/// Where and how windows are armed (set by the program on its [`Host`]).
#[derive(Clone, Debug)]
pub struct CommitSettings {
    /// The folder holding one sub-folder per window (`<work>/commit`).
    pub dir: PathBuf,
    /// The length of every window.
    pub window: Duration,
    /// The program and leading arguments that, followed by a window's folder, fire its
    /// rollback (`[/usr/bin/proxsave, restore, --commit-fire]`).
    pub fire: Vec<String>,
}

/// Where a window stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Armed; the timer will roll back.
    Pending,
    /// Kept.
    Committed,
    /// The saved state was put back.
    RolledBack,
}

impl State {
    /// `pending`, `committed`, `rolled-back`.
    pub fn word(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Committed => "committed",
            State::RolledBack => "rolled-back",
        }
    }
}

/// How a window is timed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Timer {
    /// Not (yet) started.
    None,
    /// A transient systemd timer (`<unit>.timer` starting `<unit>.service`).
    Systemd {
        /// The unit name, without suffix.
        unit: String,
    },
    /// A detached process waiting for the deadline.
    Detached {
        /// Its pid.
        pid: u32,
    },
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timer::None => f.write_str("no timer"),
            Timer::Systemd { unit } => write!(f, "systemd timer {unit}.timer"),
            Timer::Detached { pid } => write!(f, "detached process {pid}"),
        }
    }
}

/// A command run after a rollback (e.g. a service reload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterCommand {
    /// Program (looked up on `PATH`).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
}

impl AfterCommand {
    /// `program args…`.
    pub fn new<I, S>(program: &str, args: I) -> AfterCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AfterCommand {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a path was when the window was armed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "was", rename_all = "kebab-case")]
pub enum Saved {
    /// Nothing was there: a rollback removes what is there.
    Absent,
    /// A regular file, its content saved as `saved/<blob>`.
    File {
        /// File name in the window's `saved/` folder.
        blob: String,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Modification time (seconds).
        mtime: i64,
        /// Modification time (nanoseconds).
        mtime_nsec: i64,
    },
    /// A folder.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Its target, as text.
        target: String,
    },
}

/// One saved path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPath {
    /// Root path (`etc/x/y`).
    pub path: String,
    /// What it was.
    #[serde(flatten)]
    pub saved: Saved,
}

/// A window's `window.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowRecord {
    /// `<area>-<YYYYMMDD-HHMMSS>[-n]`; the folder's name.
    pub id: String,
    /// What it protects (`firewall`), chosen by the applier.
    pub area: String,
    /// The root the paths are in.
    pub root: PathBuf,
    /// The saved paths.
    pub paths: Vec<SavedPath>,
    /// The window's length.
    pub seconds: u64,
    /// When it was armed (Unix milliseconds).
    pub armed_unix_ms: i64,
    /// When the timer fires (Unix milliseconds).
    pub deadline_unix_ms: i64,
    /// How it is timed.
    pub timer: Timer,
    /// Where it stands.
    pub state: State,
    /// Run after a rollback, in order.
    pub after_rollback: Vec<AfterCommand>,
    /// Who settled it (`console`, `default`, `flag`, `answers-file`, `timer`, `interrupted`).
    pub settled_by: Option<String>,
    /// When (Unix milliseconds).
    pub settled_unix_ms: Option<i64>,
    /// What a rollback could not do.
    pub problems: Vec<String>,
}

impl WindowRecord {
    /// Time left at `now_ms` (zero once the deadline passed).
    pub fn left_at(&self, now_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(self.deadline_unix_ms - now_ms).unwrap_or(0))
    }
}

/// What settling a window did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settled {
    /// The final state.
    pub state: State,
    /// Who settled it.
    pub by: String,
    /// True when this call settled it (false: it was already settled, e.g. by the timer).
    pub now: bool,
    /// What a rollback could not do.
    pub problems: Vec<String>,
}

/// Errors of windows.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// An I/O error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<CommitError> for ApplyError {
    fn from(e: CommitError) -> Self {
        ApplyError::Other(format!("COMMIT window: {e}"))
    }
}

fn io(path: &Path, e: impl Into<std::io::Error>) -> CommitError {
    CommitError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// An armed window (see the module docs).
#[derive(Debug)]
pub struct Window {
    dir: PathBuf,
    record: WindowRecord,
}

/// Creates `dir` (and parents) and makes it a private folder: a real folder (not a link),
/// ours, mode 0700.
fn private_dir(dir: &Path) -> Result<(), CommitError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(dir, e))?;
    let st = rustix::fs::lstat(dir).map_err(|e| io(dir, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(io(dir, std::io::Error::other("not a folder")));
    }
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(io(
            dir,
            std::io::Error::other("owned by another user; refusing to keep saved files there"),
        ));
    }
    if st.st_mode & 0o777 != 0o700 {
        rustix::fs::chmod(dir, Mode::from_raw_mode(0o700)).map_err(|e| io(dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` as `path` atomically (a temporary file, 0600, renamed).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CommitError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// An exclusive lock on a window's folder (released on drop).
struct Lock(#[allow(dead_code)] OwnedFd);

fn lock(dir: &Path) -> Result<Lock, CommitError> {
    let path = dir.join("lock");
    let fd = rustix::fs::open(
        &path,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io(&path, e))?;
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(Lock(fd)),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(io(&path, e)),
        }
    }
}

fn read_record(dir: &Path) -> Result<WindowRecord, CommitError> {
    let path = dir.join(RECORD);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CommitError::Other(format!("{}: {e}", path.display())))
}

fn write_record(dir: &Path, r: &WindowRecord) -> Result<(), CommitError> {
    let bytes = serde_json::to_vec_pretty(r)
        .map_err(|e| CommitError::Other(format!("window record: {e}")))?;
    write_private(&dir.join(RECORD), &bytes)
}

fn now_ms(host: &Host) -> i64 {
    host.clock.now().timestamp_millis()
}

/// Appends a line to the window's log.
fn log(dir: &Path, host: &Host, line: &str) {
    let path = dir.join(LOG);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
    {
        let _ = writeln!(f, "{} {line}", host.clock.now().to_rfc3339());
    }
}

/// A name for windows and units: lower-case letters, digits and `-` only.
fn check_area(area: &str) -> Result<(), CommitError> {
    if area.is_empty()
        || area.len() > 40
        || !area
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(CommitError::Other(format!(
            "bad window area {area:?}: lower-case letters, digits and - only"
        )));
    }
    Ok(())
}

/// What a path is, captured in memory (see [`Snapshot`]).
#[derive(Clone, Debug)]
enum Captured {
    Absent,
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
        mtime_nsec: i64,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: String,
    },
}

/// Captures what `path` is in the root (never following a symlink).
fn capture_one(root: BorrowedFd<'_>, path: &ArchivePath) -> Result<Captured, CommitError> {
    let shown = PathBuf::from(format!("/{}", path.as_os_str().to_string_lossy()));
    let parent = match dirfd::open_parent(root, path) {
        Ok(p) => p,
        Err(Errno::NOENT) => return Ok(Captured::Absent),
        Err(e) => return Err(io(&shown, e)),
    };
    let name = OsStr::from_bytes(path.file_name());
    let st = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Captured::Absent),
        Err(e) => return Err(io(&shown, e)),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Ok(Captured::Dir {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        }),
        FileType::Symlink => {
            let target =
                rustix::fs::readlinkat(&parent, name, Vec::new()).map_err(|e| io(&shown, e))?;
            Ok(Captured::Symlink {
                target: target.to_string_lossy().into_owned(),
            })
        }
        FileType::RegularFile => {
            let fd =
                dirfd::open_file(parent.as_fd(), path.file_name()).map_err(|e| io(&shown, e))?;
            let mut bytes = Vec::new();
            std::fs::File::from(fd)
                .read_to_end(&mut bytes)
                .map_err(|e| io(&shown, e))?;
            Ok(Captured::File {
                bytes,
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                mtime: st.st_mtime,
                mtime_nsec: st.st_mtime_nsec as i64,
            })
        }
        other => Err(io(
            &shown,
            std::io::Error::other(format!("cannot be saved for a rollback ({other:?})")),
        )),
    }
}

/// Writes a captured path into the window's `saved/` folder and returns its record.
fn save_captured(saved_dir: &Path, index: usize, c: &Captured) -> Result<Saved, CommitError> {
    Ok(match c {
        Captured::Absent => Saved::Absent,
        Captured::Dir { mode, uid, gid } => Saved::Dir {
            mode: *mode,
            uid: *uid,
            gid: *gid,
        },
        Captured::Symlink { target } => Saved::Symlink {
            target: target.clone(),
        },
        Captured::File {
            bytes,
            mode,
            uid,
            gid,
            mtime,
            mtime_nsec,
        } => {
            let blob = format!("{index:04}");
            let dest = saved_dir.join(&blob);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| io(&dest, e))?;
            f.write_all(bytes).map_err(|e| io(&dest, e))?;
            f.sync_all().map_err(|e| io(&dest, e))?;
            Saved::File {
                blob,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                mtime: *mtime,
                mtime_nsec: *mtime_nsec,
            }
        }
    })
}

/// The state of root paths captured in memory before an applier writes them, for a window
/// armed only later (the network applier installs its files, checks them, and only then
/// decides to apply them live: the window must put back what was there *before* the
/// install). Taken through the root's descriptor, never following a symbolic link.
#[derive(Clone, Debug)]
pub struct Snapshot {
    items: Vec<(ArchivePath, Captured)>,
}

impl Snapshot {
    /// Captures `paths` of `root` (sorted, duplicates removed).
    ///
    /// # Errors
    /// A path is not UTF-8, cannot be read, or is a device or socket.
    pub fn take(root: &RootHandle, paths: &[ArchivePath]) -> Result<Snapshot, CommitError> {
        let mut list: Vec<ArchivePath> = paths.to_vec();
        list.sort();
        list.dedup();
        let mut items = Vec::new();
        for p in list {
            if p.to_str().is_none() {
                return Err(CommitError::Other(format!(
                    "/{}: not UTF-8; cannot be recorded",
                    p.as_os_str().to_string_lossy()
                )));
            }
            let c = capture_one(root.dir().as_fd(), &p)?;
            items.push((p, c));
        }
        Ok(Snapshot { items })
    }

    /// The captured paths.
    pub fn paths(&self) -> Vec<ArchivePath> {
        self.items.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Also captures `more` paths not captured yet (their state now).
    ///
    /// # Errors
    /// As [`Snapshot::take`].
    pub fn extend(&mut self, root: &RootHandle, more: &[ArchivePath]) -> Result<(), CommitError> {
        let extra: Vec<ArchivePath> = more
            .iter()
            .filter(|p| !self.items.iter().any(|(q, _)| q == *p))
            .cloned()
            .collect();
        let taken = Snapshot::take(root, &extra)?;
        self.items.extend(taken.items);
        self.items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }
}

/// Where windows kept under a root live: `<root>/var/lib/proxsave/windows/` (the network
/// window: found from another shell by `proxsave net status --root R`, whatever work
/// folder the restore used).
pub const ROOT_WINDOWS: &str = "var/lib/proxsave/windows";

/// `<root>/var/lib/proxsave/windows`.
pub fn root_windows_dir(root: &Path) -> PathBuf {
    root.join(ROOT_WINDOWS)
}

/// Where a window's folder is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The run's work folder ([`CommitSettings::dir`]).
    Work,
    /// The root's `var/lib/proxsave/windows` ([`ROOT_WINDOWS`]).
    Root,
}

impl Window {
    /// Arms a window named after `area` over exactly `paths` of `root` (see the module docs):
    /// their state is saved, the record written and the timer started, before the caller
    /// writes anything. `after_rollback` runs after a rollback, in order.
    ///
    /// `Ok(None)` when the host has no [`CommitSettings`] or defers host actions (nothing
    /// live to protect); the caller then applies without a window and says so.
    ///
    /// # Errors
    /// A path cannot be saved (a device, unreadable), the private folder cannot be made, or
    /// no timer can be started: the caller must not write then.
    pub fn arm(
        host: &Host,
        root: &RootHandle,
        area: &str,
        paths: &[ArchivePath],
        after_rollback: Vec<AfterCommand>,
    ) -> Result<Option<Window>, CommitError> {
        if host.commit.is_none() || host.actions == HostActions::Defer {
            return Ok(None);
        }
        let snapshot = Snapshot::take(root, paths)?;
        Window::arm_with(host, root, area, &snapshot, after_rollback, Place::Work)
    }

    /// Arms a window like [`Window::arm`], but over a [`Snapshot`] taken earlier (the
    /// rollback puts back what the snapshot holds), with its folder in `place`. With
    /// [`Place::Root`] the folder is `<root>/var/lib/proxsave/windows/<id>` (folders made
    /// through the root's descriptor, `proxsave` 0700), so another shell finds it with
    /// the root alone.
    ///
    /// `Ok(None)` as for [`Window::arm`].
    ///
    /// # Errors
    /// As [`Window::arm`].
    pub fn arm_with(
        host: &Host,
        root: &RootHandle,
        area: &str,
        snapshot: &Snapshot,
        after_rollback: Vec<AfterCommand>,
        place: Place,
    ) -> Result<Option<Window>, CommitError> {
        let Some(settings) = host.commit.clone() else {
            return Ok(None);
        };
        if host.actions == HostActions::Defer {
            return Ok(None);
        }
        check_area(area)?;
        if settings.fire.is_empty() {
            return Err(CommitError::Other("no fire command configured".into()));
        }
        let base = match place {
            Place::Work => settings.dir.clone(),
            Place::Root => {
                let lib = ArchivePath::from_user("var/lib")
                    .map_err(|e| CommitError::Other(format!("var/lib: {e}")))?;
                root.create_dir_all(&lib, 0o755)
                    .map_err(|e| io(&root.path().join("var/lib"), e))?;
                let ours = ArchivePath::from_user(ROOT_WINDOWS)
                    .map_err(|e| CommitError::Other(format!("{ROOT_WINDOWS}: {e}")))?;
                root.create_dir_all(&ours, 0o700)
                    .map_err(|e| io(&root_windows_dir(root.path()), e))?;
                root_windows_dir(&std::path::absolute(root.path()).map_err(|e| io(root.path(), e))?)
            }
        };
        private_dir(&base)?;
        if place == Place::Root {
            private_dir(base.parent().unwrap_or(&base))?;
        }
        let now = host.clock.now();
        let stamp = now.format("%Y%m%d-%H%M%S").to_string();
        let (id, dir) = {
            let mut n = 1;
            loop {
                let id = if n == 1 {
                    format!("{area}-{stamp}")
                } else {
                    format!("{area}-{stamp}-{n}")
                };
                let dir = base.join(&id);
                match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => break (id, dir),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                    Err(e) => return Err(io(&dir, e)),
                }
            }
        };
        let saved_dir = dir.join("saved");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&saved_dir)
            .map_err(|e| io(&saved_dir, e))?;
        let mut saved = Vec::new();
        for (i, (p, c)) in snapshot.items.iter().enumerate() {
            saved.push(SavedPath {
                path: p.to_str().unwrap_or_default().to_string(),
                saved: save_captured(&saved_dir, i, c)?,
            });
        }
        let armed = now.timestamp_millis();
        let secs = settings.window.as_secs().max(1);
        let mut record = WindowRecord {
            id: id.clone(),
            area: area.to_string(),
            root: std::path::absolute(root.path()).unwrap_or_else(|_| root.path().to_path_buf()),
            paths: saved,
            seconds: secs,
            armed_unix_ms: armed,
            deadline_unix_ms: armed + (secs as i64) * 1000,
            timer: Timer::None,
            state: State::Pending,
            after_rollback,
            settled_by: None,
            settled_unix_ms: None,
            problems: Vec::new(),
        };
        write_record(&dir, &record)?;
        let timer = start_timer(host, &settings, &dir, area, &stamp, &id, secs);
        match timer {
            Ok(t) => record.timer = t,
            Err(e) => {
                // Nothing was written yet: no window, and the caller does not write.
                record.state = State::RolledBack;
                record.settled_by = Some("not armed".into());
                record.problems.push(e.clone());
                let _ = write_record(&dir, &record);
                return Err(CommitError::Other(format!(
                    "no rollback timer could be started: {e}"
                )));
            }
        }
        write_record(&dir, &record)?;
        tracing::info!(
            target: crate::events::APPLIER,
            window = id.as_str(),
            timer = %record.timer,
            seconds = secs,
            "COMMIT window armed"
        );
        proxsave_archive::checkpoint::checkpoint(CHECKPOINT, &format!("armed {id}"));
        Ok(Some(Window { dir, record }))
    }

    /// Loads the window in `dir`.
    ///
    /// # Errors
    /// Its record cannot be read.
    pub fn load(dir: &Path) -> Result<Window, CommitError> {
        Ok(Window {
            dir: dir.to_path_buf(),
            record: read_record(dir)?,
        })
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its record as armed (or loaded).
    pub fn record(&self) -> &WindowRecord {
        &self.record
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// How to commit it from another shell: `proxsave net commit --root R` for a window
    /// kept under its root, else `proxsave restore --commit-fire`-free wording.
    pub fn commit_hint(&self) -> String {
        if self.dir.starts_with(root_windows_dir(&self.record.root)) {
            if self.record.root == Path::new("/") {
                "proxsave net commit".to_string()
            } else {
                format!("proxsave net commit --root {}", self.record.root.display())
            }
        } else {
            format!("proxsave net commit --window {}", self.dir.display())
        }
    }

    /// Keeps the changes: marks the record committed, then stops the timer. When the timer
    /// already rolled back, says so (`now: false`, state rolled back).
    ///
    /// # Errors
    /// The record cannot be read or written.
    pub fn commit(
        &self,
        host: &Host,
        cancel: &CancelToken,
        by: &str,
    ) -> Result<Settled, CommitError> {
        let _lock = lock(&self.dir)?;
        let mut r = read_record(&self.dir)?;
        if r.state != State::Pending {
            return Ok(already(&r));
        }
        r.state = State::Committed;
        r.settled_by = Some(by.to_string());
        r.settled_unix_ms = Some(now_ms(host));
        write_record(&self.dir, &r)?;
        log(&self.dir, host, &format!("committed ({by})"));
        stop_timer(host, &r.timer, cancel);
        Ok(Settled {
            state: State::Committed,
            by: by.to_string(),
            now: true,
            problems: Vec::new(),
        })
    }

    /// Rolls back now: see [`fire`]; the timer is stopped.
    ///
    /// # Errors
    /// The record cannot be read or written, the root cannot be opened.
    pub fn rollback(
        &self,
        host: &Host,
        cancel: &CancelToken,
        by: &str,
    ) -> Result<Settled, CommitError> {
        roll_back(&self.dir, host, cancel, by, true)
    }
}

fn already(r: &WindowRecord) -> Settled {
    Settled {
        state: r.state,
        by: r.settled_by.clone().unwrap_or_default(),
        now: false,
        problems: r.problems.clone(),
    }
}

/// Rolls back the window in `dir` unless it is already settled (what the timer runs:
/// `proxsave restore --commit-fire DIR`). The saved paths are put back through the record's
/// root (never following a symlink), paths that were absent removed, then the
/// after-rollback commands run through `host`; the record is marked and the window's
/// `rollback.log` says what happened.
///
/// # Errors
/// The record cannot be read or written, the root cannot be opened.
pub fn fire(dir: &Path, host: &Host, cancel: &CancelToken) -> Result<Settled, CommitError> {
    roll_back(dir, host, cancel, "timer", false)
}

fn roll_back(
    dir: &Path,
    host: &Host,
    cancel: &CancelToken,
    by: &str,
    stop: bool,
) -> Result<Settled, CommitError> {
    let _lock = lock(dir)?;
    let mut r = read_record(dir)?;
    if r.state != State::Pending {
        return Ok(already(&r));
    }
    log(
        dir,
        host,
        &format!("rolling back ({by}) {}", r.root.display()),
    );
    let root = dirfd::open_root(&r.root).map_err(|e| io(&r.root, e))?;
    let mut problems = restore_paths(root.as_fd(), &dir.join("saved"), &r.paths);
    // Marked before the commands: the files are back whatever a reload says.
    r.state = State::RolledBack;
    r.settled_by = Some(by.to_string());
    r.settled_unix_ms = Some(now_ms(host));
    r.problems = problems.clone();
    write_record(dir, &r)?;
    for p in &problems {
        log(dir, host, &format!("problem: {p}"));
    }
    log(
        dir,
        host,
        &format!("restored {} paths as they were", r.paths.len()),
    );
    if stop {
        stop_timer(host, &r.timer, cancel);
    }
    for c in &r.after_rollback {
        let cmd = HostCommand::new(&c.program, c.args.clone()).timeout(Duration::from_secs(120));
        let line = match host.run(&cmd, cancel) {
            Ok(Ran::Done(out)) if out.success() => format!("ran {}", cmd.display()),
            Ok(Ran::Done(out)) => {
                let p = format!("{}: {}", cmd.display(), out.failure());
                problems.push(p.clone());
                format!("FAILED {p}")
            }
            Ok(Ran::Deferred) => format!("deferred {}", cmd.display()),
            Err(e) => {
                let p = format!("{}: {e}", cmd.display());
                problems.push(p.clone());
                format!("FAILED {p}")
            }
        };
        log(dir, host, &line);
    }
    if problems.len() != r.problems.len() {
        r.problems = problems.clone();
        write_record(dir, &r)?;
    }
    log(dir, host, "rolled back");
    Ok(Settled {
        state: State::RolledBack,
        by: by.to_string(),
        now: true,
        problems,
    })
}

fn start_timer(
    host: &Host,
    settings: &CommitSettings,
    dir: &Path,
    area: &str,
    stamp: &str,
    id: &str,
    secs: u64,
) -> Result<Timer, String> {
    let dir_text = dir
        .to_str()
        .ok_or_else(|| format!("{}: not UTF-8", dir.display()))?
        .to_string();
    let mut problems = Vec::new();
    if host.runner.init_is_systemd() {
        let suffix = id.strip_prefix(&format!("{area}-{stamp}")).unwrap_or("");
        let unit = format!("proxsave-{area}-rollback-{stamp}{suffix}");
        let mut args = vec![
            format!("--unit={unit}"),
            format!("--on-active={secs}s"),
            "--timer-property=AccuracySec=100ms".to_string(),
            "--collect".to_string(),
            format!("--description=proxsave: roll back {area} unless committed"),
        ];
        args.extend(settings.fire.iter().cloned());
        args.push(dir_text.clone());
        let cmd = HostCommand::new("systemd-run", args);
        match host.run(&cmd, &CancelToken::new()) {
            Ok(Ran::Done(out)) if out.success() => return Ok(Timer::Systemd { unit }),
            Ok(Ran::Done(out)) => problems.push(format!("systemd-run: {}", out.failure())),
            Ok(Ran::Deferred) => problems.push("systemd-run: host actions deferred".into()),
            Err(e) => problems.push(format!("systemd-run: {e}")),
        }
    }
    let mut args: Vec<String> = settings.fire[1..].to_vec();
    args.push(dir_text);
    args.push("--after".into());
    args.push(secs.to_string());
    let cmd = HostCommand::new(&settings.fire[0], args);
    match host.runner.spawn_detached(&cmd) {
        Ok(pid) => {
            for p in &problems {
                log(
                    dir,
                    host,
                    &format!("{p}; a detached process times the window"),
                );
            }
            Ok(Timer::Detached { pid })
        }
        Err(e) => {
            problems.push(format!("{}: {e}", cmd.display()));
            Err(problems.join("; "))
        }
    }
}

fn stop_timer(host: &Host, timer: &Timer, cancel: &CancelToken) {
    match timer {
        Timer::None => {}
        Timer::Systemd { unit } => {
            let _ = host.run(
                &HostCommand::new("systemctl", ["stop".to_string(), format!("{unit}.timer")]),
                cancel,
            );
            let _ = host.run(
                &HostCommand::new(
                    "systemctl",
                    [
                        "reset-failed".to_string(),
                        format!("{unit}.timer"),
                        format!("{unit}.service"),
                    ],
                ),
                cancel,
            );
        }
        Timer::Detached { pid } => {
            let _ = host.runner.stop_detached(*pid);
        }
    }
}

fn parse_path(p: &str) -> Option<ArchivePath> {
    ArchivePath::from_user(p).ok()
}

/// Opens the parent folder of `path`, creating missing folders (0755) on the way.
fn parent_creating(root: BorrowedFd<'_>, path: &ArchivePath) -> rustix::io::Result<OwnedFd> {
    let mut cur = rustix::io::dup(root)?;
    let Some(parent) = path.parent() else {
        return Ok(cur);
    };
    for comp in parent.components() {
        match rustix::fs::mkdirat(&cur, OsStr::from_bytes(comp), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        cur = dirfd::open_dir(cur.as_fd(), comp)?;
    }
    Ok(cur)
}

fn restore_paths(root: BorrowedFd<'_>, saved_dir: &Path, paths: &[SavedPath]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut items: Vec<(ArchivePath, &Saved)> = Vec::new();
    for p in paths {
        match parse_path(&p.path) {
            Some(ap) => items.push((ap, &p.saved)),
            None => problems.push(format!("{}: not a valid path; left as it is", p.path)),
        }
    }
    // Folders first (shallow first), then files and links, then removals (deepest first).
    let mut dirs: Vec<_> = items
        .iter()
        .filter(|(_, s)| matches!(s, Saved::Dir { .. }))
        .collect();
    dirs.sort_by_key(|(p, _)| p.depth());
    for (p, s) in dirs {
        if let Saved::Dir { mode, uid, gid } = s
            && let Err(e) = put_dir(root, p, *mode, *uid, *gid)
        {
            problems.push(format!("/{p}: {e}"));
        }
    }
    for (p, s) in &items {
        let r = match s {
            Saved::File {
                blob,
                mode,
                uid,
                gid,
                mtime,
                mtime_nsec,
            } => put_file(
                root,
                p,
                &saved_dir.join(blob),
                *mode,
                (*uid, *gid),
                (*mtime, *mtime_nsec),
            ),
            Saved::Symlink { target } => put_link(root, p, target),
            _ => Ok(()),
        };
        if let Err(e) = r {
            problems.push(format!("/{p}: {e}"));
        }
    }
    let mut absent: Vec<_> = items
        .iter()
        .filter(|(_, s)| matches!(s, Saved::Absent))
        .collect();
    absent.sort_by_key(|(p, _)| std::cmp::Reverse(p.depth()));
    for (p, _) in absent {
        if let Err(e) = remove(root, p) {
            problems.push(format!("/{p}: {e}"));
        }
    }
    problems
}

fn put_dir(
    root: BorrowedFd<'_>,
    p: &ArchivePath,
    mode: u32,
    uid: u32,
    gid: u32,
) -> std::io::Result<()> {
    let parent = parent_creating(root, p)?;
    let name = OsStr::from_bytes(p.file_name());
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let d = dirfd::open_dir(parent.as_fd(), p.file_name()).map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            "not a folder now; left as it is",
        )
    })?;
    let st = rustix::fs::fstat(&d)?;
    if st.st_uid != uid || st.st_gid != gid {
        rustix::fs::fchown(
            &d,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    if st.st_mode & 0o7777 != mode {
        rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

fn tmp_name(p: &ArchivePath) -> String {
    let tag: String = p
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
        .collect();
    format!(
        "{}{}-rollback-{tag}",
        crate::runstate::COMMIT_TMP_PREFIX,
        std::process::id()
    )
}

/// The current entry at `name` must not be a folder (it would be replaced by a file).
fn not_a_dir(parent: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<()> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Err(
            std::io::Error::other("a folder is there now; left as it is"),
        ),
        _ => Ok(()),
    }
}

fn put_file(
    root: BorrowedFd<'_>,
    p: &ArchivePath,
    blob: &Path,
    mode: u32,
    (uid, gid): (u32, u32),
    (mtime, mtime_nsec): (i64, i64),
) -> std::io::Result<()> {
    let bytes = std::fs::read(blob)?;
    let parent = parent_creating(root, p)?;
    let name = OsStr::from_bytes(p.file_name());
    not_a_dir(parent.as_fd(), name)?;
    let tmp = tmp_name(p);
    let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    let fd = rustix::fs::openat(
        &parent,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut f = std::fs::File::from(fd);
    let result = (|| -> std::io::Result<()> {
        f.write_all(&bytes)?;
        let st = rustix::fs::fstat(&f)?;
        if st.st_uid != uid || st.st_gid != gid {
            rustix::fs::fchown(
                &f,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )?;
        }
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        let t = Timespec {
            tv_sec: mtime,
            tv_nsec: mtime_nsec as _,
        };
        // Best effort: a filesystem that refuses times still gets its content back.
        let _ = rustix::fs::futimens(
            &f,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
        );
        f.sync_all()?;
        rustix::fs::renameat(&parent, tmp.as_str(), &parent, name)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    }
    let _ = rustix::fs::fsync(&parent);
    result
}

fn put_link(root: BorrowedFd<'_>, p: &ArchivePath, target: &str) -> std::io::Result<()> {
    let parent = parent_creating(root, p)?;
    let name = OsStr::from_bytes(p.file_name());
    not_a_dir(parent.as_fd(), name)?;
    let tmp = tmp_name(p);
    let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    rustix::fs::symlinkat(target, &parent, tmp.as_str())?;
    if let Err(e) = rustix::fs::renameat(&parent, tmp.as_str(), &parent, name) {
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
        return Err(e.into());
    }
    Ok(())
}

fn remove(root: BorrowedFd<'_>, p: &ArchivePath) -> std::io::Result<()> {
    let parent = match dirfd::open_parent(root, p) {
        Ok(d) => d,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let name = OsStr::from_bytes(p.file_name());
    match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
                Ok(()) => Ok(()),
                Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => Err(std::io::Error::other(
                    "created after the window opened but not empty now; left as it is",
                )),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) => Ok(rustix::fs::unlinkat(&parent, name, AtFlags::empty())?),
    }
}

/// Every window under `commit_dir` (the [`CommitSettings::dir`]), oldest first, with its
/// folder. Unreadable records are skipped.
pub fn windows(commit_dir: &Path) -> Vec<(PathBuf, WindowRecord)> {
    let Ok(rd) = std::fs::read_dir(commit_dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, WindowRecord)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| read_record(&e.path()).ok().map(|r| (e.path(), r)))
        .collect();
    out.sort_by_key(|(_, r)| r.armed_unix_ms);
    out
}

/// The question an applier asks once it wrote under `window` (the spec's choices must
/// include `commit` and `rollback`), and what follows from the answer:
///
/// - an answer given up front (`--answer`, the answers file) decides;
/// - at a console: a countdown of the time left in the window; typing `COMMIT` (any case)
///   keeps the changes; no answer (or Enter) rolls back at once;
/// - otherwise (`--yes`, no terminal): `commit`.
///
/// Ctrl+C at the question rolls back, then stops the run. When the timer already rolled
/// back, that is the result (`now: false`).
///
/// # Errors
/// The prompt was aborted (after the rollback), the window's record cannot be written, or
/// the answer is neither `commit` nor `rollback`.
pub fn settle(
    ctx: &mut ApplyContext<'_>,
    window: &Window,
    spec: QuestionSpec,
    details: Vec<String>,
) -> Result<Settled, ApplyError> {
    settle_with(ctx, window, spec, details, "commit")
}

/// [`settle`] with another answer when nobody is at a console: `unattended` is `commit`
/// (what [`settle`] uses) or `wait`. A spec whose choices include `wait` may be answered
/// `wait` (up front, at the console, or as the unattended default): the window is left
/// pending, to be ended by its timer or from another shell (`proxsave net commit`), and
/// the result is `Settled { state: Pending, now: false, by }`.
///
/// # Errors
/// As [`settle`].
pub fn settle_with(
    ctx: &mut ApplyContext<'_>,
    window: &Window,
    spec: QuestionSpec,
    mut details: Vec<String>,
    unattended: &str,
) -> Result<Settled, ApplyError> {
    proxsave_archive::checkpoint::checkpoint(CHECKPOINT, &format!("open {}", window.id()));
    let left = window.record.left_at(now_ms(ctx.host));
    let countdown = ctx.prompter.interactive() && ctx.prompter.preset(spec.id).is_none();
    let ask = if countdown {
        details.push(format!(
            "Type COMMIT within {} seconds to keep these changes; anything else, or no answer, rolls them back.",
            left.as_secs()
        ));
        Ask {
            spec,
            default: Some("rollback".into()),
            details,
            timeout: Some(left),
        }
    } else {
        Ask {
            spec,
            default: Some(unattended.into()),
            details,
            timeout: None,
        }
    };
    let answer = match ctx.prompter.ask(&ask) {
        Ok(a) => a,
        Err(e) => {
            let by = if e == PromptError::Aborted {
                "interrupted"
            } else {
                "no answer"
            };
            let s = window.rollback(ctx.host, ctx.cancel, by)?;
            say_settled(ctx, window, &s);
            return Err(e.into());
        }
    };
    let by = match answer.source {
        AnswerSource::Flag => "flag",
        AnswerSource::AnswersFile => "answers-file",
        AnswerSource::Console => "console",
        AnswerSource::Default if countdown => "countdown",
        AnswerSource::Default => "default",
    };
    let settled = match answer.value.to_ascii_lowercase().as_str() {
        "commit" => window.commit(ctx.host, ctx.cancel, by)?,
        "rollback" => window.rollback(ctx.host, ctx.cancel, by)?,
        "wait" if spec.choices.contains(&"wait") => {
            let s = Settled {
                state: State::Pending,
                by: by.to_string(),
                now: false,
                problems: Vec::new(),
            };
            log(window.dir(), ctx.host, &format!("left pending ({by})"));
            say_settled(ctx, window, &s);
            return Ok(s);
        }
        _ if countdown => window.rollback(ctx.host, ctx.cancel, by)?,
        other => {
            let reason = format!("takes commit or rollback, not {other:?}");
            window.rollback(ctx.host, ctx.cancel, "bad answer")?;
            return Err(ApplyError::BadAnswer {
                id: spec.id,
                reason,
            });
        }
    };
    say_settled(ctx, window, &settled);
    Ok(settled)
}

fn say_settled(ctx: &mut ApplyContext<'_>, window: &Window, s: &Settled) {
    let area = &window.record.area;
    let msg = match (s.state, s.now) {
        (State::Committed, _) => format!("{area}: changes committed ({})", s.by),
        (State::RolledBack, true) => format!(
            "{area}: changes rolled back ({}); the previous files are in place",
            s.by
        ),
        (State::RolledBack, false) => format!(
            "{area}: the window's timer already rolled the changes back ({})",
            s.by
        ),
        (State::Pending, _) => format!(
            "{area}: COMMIT window left open ({}); it rolls back at the deadline unless committed (`{}`)",
            s.by,
            window.commit_hint()
        ),
    };
    ctx.prompter.say(
        if s.state == State::Committed {
            Level::Info
        } else {
            Level::Warning
        },
        &msg,
    );
    for p in &s.problems {
        ctx.prompter
            .say(Level::Warning, &format!("{area}: rollback: {p}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{CommandOutput, CommandRunner, MountProbe, SystemClock};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct FakeRunner {
        ran: Mutex<Vec<String>>,
        argv: Mutex<Vec<Vec<String>>>,
        spawned: Mutex<Vec<String>>,
        stopped: Mutex<Vec<u32>>,
        /// PID 1 is systemd.
        systemd: bool,
        /// `systemd-run` exits 1 with this on stderr.
        systemd_run_fails: Option<&'static str>,
    }

    impl CommandRunner for FakeRunner {
        fn run(&self, cmd: &HostCommand, _: &CancelToken) -> std::io::Result<CommandOutput> {
            self.ran.lock().unwrap().push(cmd.display());
            let mut argv = vec![cmd.program.clone()];
            argv.extend(cmd.args.iter().cloned());
            self.argv.lock().unwrap().push(argv);
            if cmd.program == "systemd-run"
                && let Some(err) = self.systemd_run_fails
            {
                return Ok(CommandOutput {
                    code: Some(1),
                    stderr: err.as_bytes().to_vec(),
                    ..Default::default()
                });
            }
            Ok(CommandOutput {
                code: Some(0),
                ..Default::default()
            })
        }
        fn init_is_systemd(&self) -> bool {
            self.systemd
        }
        fn spawn_detached(&self, cmd: &HostCommand) -> std::io::Result<u32> {
            self.spawned.lock().unwrap().push(cmd.display());
            Ok(999_999)
        }
        fn stop_detached(&self, pid: u32) -> std::io::Result<()> {
            self.stopped.lock().unwrap().push(pid);
            Ok(())
        }
    }

    struct NoMounts;
    impl MountProbe for NoMounts {
        fn is_mount_point(&self, _: &Path) -> bool {
            false
        }
    }

    fn setup() -> (
        tempfile::TempDir,
        PathBuf,
        Host,
        Arc<FakeRunner>,
        RootHandle,
    ) {
        setup_with(FakeRunner::default())
    }

    fn setup_with(
        runner: FakeRunner,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Host,
        Arc<FakeRunner>,
        RootHandle,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/sub")).unwrap();
        let runner = Arc::new(runner);
        let host = Host::new(
            root.clone(),
            HostActions::Run,
            runner.clone(),
            Arc::new(SystemClock),
            Arc::new(NoMounts),
        )
        .with_commit(CommitSettings {
            dir: dir.path().join("work/commit"),
            window: Duration::from_secs(7),
            fire: vec![
                "/usr/bin/proxsave".into(),
                "restore".into(),
                "--commit-fire".into(),
            ],
        });
        let handle = RootHandle::open(&root).unwrap();
        (dir, root, host, runner, handle)
    }

    fn p(s: &str) -> ArchivePath {
        ArchivePath::from_user(s).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_rollback_puts_back_exactly_the_saved_paths() {
        let (_d, root, host, runner, handle) = setup();
        std::fs::write(root.join("etc/a"), "old").unwrap();
        std::fs::set_permissions(root.join("etc/a"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        proxsave_testkit_free_set_mtime(&root.join("etc/a"), 1_600_000_000);
        std::fs::set_permissions(root.join("etc/sub"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::os::unix::fs::symlink("target-old", root.join("etc/link")).unwrap();
        std::fs::write(root.join("etc/untouched"), "keep").unwrap();
        let paths = [
            p("etc/a"),
            p("etc/sub"),
            p("etc/link"),
            p("etc/new"),
            p("etc/newdir"),
            p("etc/newdir/f"),
        ];
        let w = Window::arm(
            &host,
            &handle,
            "test-area",
            &paths,
            vec![AfterCommand::new("systemctl", ["try-restart", "x"])],
        )
        .unwrap()
        .unwrap();
        assert_eq!(mode(w.dir()), 0o700);
        assert_eq!(mode(&w.dir().join("saved/0000")), 0o600);
        assert_eq!(w.record().timer, Timer::Detached { pid: 999_999 });
        let spawned = runner.spawned.lock().unwrap().clone();
        assert_eq!(
            spawned,
            [format!(
                "/usr/bin/proxsave restore --commit-fire {} --after 7",
                w.dir().display()
            )]
        );
        // The applier's changes.
        std::fs::write(root.join("etc/a"), "new").unwrap();
        std::fs::set_permissions(root.join("etc/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::set_permissions(root.join("etc/sub"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::remove_file(root.join("etc/link")).unwrap();
        std::os::unix::fs::symlink("target-new", root.join("etc/link")).unwrap();
        std::fs::write(root.join("etc/new"), "x").unwrap();
        std::fs::create_dir(root.join("etc/newdir")).unwrap();
        std::fs::write(root.join("etc/newdir/f"), "y").unwrap();

        let s = w.rollback(&host, &CancelToken::new(), "test").unwrap();
        assert_eq!(s.state, State::RolledBack);
        assert!(s.now && s.problems.is_empty(), "{s:?}");
        assert_eq!(std::fs::read_to_string(root.join("etc/a")).unwrap(), "old");
        assert_eq!(mode(&root.join("etc/a")), 0o640);
        assert_eq!(
            std::fs::metadata(root.join("etc/a")).unwrap().mtime(),
            1_600_000_000
        );
        assert_eq!(mode(&root.join("etc/sub")), 0o750);
        assert_eq!(
            std::fs::read_link(root.join("etc/link")).unwrap(),
            Path::new("target-old")
        );
        assert!(!root.join("etc/new").exists());
        assert!(!root.join("etc/newdir").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/untouched")).unwrap(),
            "keep"
        );
        assert_eq!(
            runner.ran.lock().unwrap().clone(),
            ["systemctl try-restart x"]
        );
        assert_eq!(runner.stopped.lock().unwrap().clone(), [999_999]);
        let r = Window::load(w.dir()).unwrap();
        assert_eq!(r.record().state, State::RolledBack);
        assert_eq!(r.record().settled_by.as_deref(), Some("test"));
        // Settled once: a later commit or fire says so and changes nothing.
        let again = w.commit(&host, &CancelToken::new(), "late").unwrap();
        assert_eq!((again.state, again.now), (State::RolledBack, false));
        let fired = fire(w.dir(), &host, &CancelToken::new()).unwrap();
        assert!(!fired.now);
        let log = std::fs::read_to_string(w.dir().join(LOG)).unwrap();
        assert!(log.contains("rolling back (test)"), "{log}");
    }

    #[test]
    fn a_commit_stops_the_timer_and_the_timer_then_does_nothing() {
        let (_d, root, host, runner, handle) = setup();
        std::fs::write(root.join("etc/a"), "old").unwrap();
        let w = Window::arm(&host, &handle, "fw", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        std::fs::write(root.join("etc/a"), "new").unwrap();
        let s = w.commit(&host, &CancelToken::new(), "console").unwrap();
        assert_eq!((s.state, s.now), (State::Committed, true));
        assert_eq!(runner.stopped.lock().unwrap().clone(), [999_999]);
        let fired = fire(w.dir(), &host, &CancelToken::new()).unwrap();
        assert_eq!((fired.state, fired.now), (State::Committed, false));
        assert_eq!(std::fs::read_to_string(root.join("etc/a")).unwrap(), "new");
        assert_eq!(windows(&host.commit.as_ref().unwrap().dir).len(), 1);
    }

    #[test]
    fn a_link_planted_during_the_window_is_not_followed() {
        let (d, root, host, _runner, handle) = setup();
        std::fs::create_dir_all(root.join("etc/x")).unwrap();
        std::fs::write(root.join("etc/x/f"), "old").unwrap();
        let w = Window::arm(&host, &handle, "fw", &[p("etc/x/f")], Vec::new())
            .unwrap()
            .unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::remove_dir_all(root.join("etc/x")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/x")).unwrap();
        let s = w.rollback(&host, &CancelToken::new(), "test").unwrap();
        assert_eq!(s.problems.len(), 1, "{s:?}");
        assert!(s.problems[0].starts_with("/etc/x/f: "), "{s:?}");
        assert!(!outside.join("f").exists(), "written through the link");
    }

    #[test]
    fn a_window_kept_under_the_root_puts_back_the_snapshot_taken_before_the_writes() {
        let (_d, root, host, _runner, handle) = setup();
        std::fs::write(root.join("etc/a"), "before").unwrap();
        let snap = Snapshot::take(&handle, &[p("etc/a"), p("etc/b")]).unwrap();
        // The install writes; the window is armed only afterwards.
        std::fs::write(root.join("etc/a"), "installed").unwrap();
        std::fs::write(root.join("etc/b"), "new").unwrap();
        let w = Window::arm_with(&host, &handle, "network", &snap, Vec::new(), Place::Root)
            .unwrap()
            .unwrap();
        let base = root_windows_dir(&std::path::absolute(&root).unwrap());
        assert_eq!(w.dir().parent().unwrap(), base);
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(base.parent().unwrap()), 0o700);
        assert_eq!(mode(&w.dir().join(RECORD)), 0o600);
        assert_eq!(windows(&base).len(), 1);
        assert!(w.commit_hint().starts_with("proxsave net commit --root "));
        let s = w.rollback(&host, &CancelToken::new(), "test").unwrap();
        assert!(s.now && s.problems.is_empty(), "{s:?}");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/a")).unwrap(),
            "before"
        );
        assert!(!root.join("etc/b").exists());
    }

    #[test]
    fn nothing_is_armed_when_host_actions_are_deferred() {
        let (_d, _root, mut host, runner, handle) = setup();
        host.actions = HostActions::Defer;
        assert!(
            Window::arm(&host, &handle, "fw", &[p("etc/a")], Vec::new())
                .unwrap()
                .is_none()
        );
        assert!(runner.spawned.lock().unwrap().is_empty());
    }

    // network.md §13 scenario 23 (the systemd half; the detached half runs for real in
    // tests/network_live.rs `kill_9_after_the_apply_still_rolls_back_on_time`).
    #[test]
    fn a_systemd_host_gets_a_transient_timer_with_the_exact_argv() {
        let (_d, root, host, runner, handle) = setup_with(FakeRunner {
            systemd: true,
            ..Default::default()
        });
        std::fs::write(root.join("etc/a"), "old").unwrap();
        let w = Window::arm(&host, &handle, "network", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        let stamp = w.id().strip_prefix("network-").unwrap().to_string();
        let unit = format!("proxsave-network-rollback-{stamp}");
        assert_eq!(w.record().timer, Timer::Systemd { unit: unit.clone() });
        let argv = runner.argv.lock().unwrap().clone();
        assert_eq!(
            argv,
            [vec![
                "systemd-run".to_string(),
                format!("--unit={unit}"),
                "--on-active=7s".into(),
                "--timer-property=AccuracySec=100ms".into(),
                "--collect".into(),
                "--description=proxsave: roll back network unless committed".into(),
                "/usr/bin/proxsave".into(),
                "restore".into(),
                "--commit-fire".into(),
                w.dir().to_str().unwrap().to_string(),
            ]]
        );
        assert!(runner.spawned.lock().unwrap().is_empty());
        // A commit stops the timer (and clears a failed unit).
        w.commit(&host, &CancelToken::new(), "console").unwrap();
        let ran = runner.ran.lock().unwrap().clone();
        assert!(
            ran.iter()
                .any(|c| c == &format!("systemctl stop {unit}.timer")),
            "{ran:?}"
        );
    }

    #[test]
    fn a_failing_systemd_run_falls_back_to_the_detached_waiter() {
        let (_d, root, host, runner, handle) = setup_with(FakeRunner {
            systemd: true,
            systemd_run_fails: Some("Failed to connect to bus: No such file or directory"),
            ..Default::default()
        });
        std::fs::write(root.join("etc/a"), "old").unwrap();
        let w = Window::arm(&host, &handle, "network", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(w.record().timer, Timer::Detached { pid: 999_999 });
        let spawned = runner.spawned.lock().unwrap().clone();
        assert_eq!(spawned.len(), 1, "{spawned:?}");
        assert!(
            spawned[0].starts_with("/usr/bin/proxsave restore --commit-fire ")
                && spawned[0].ends_with(" --after 7"),
            "{spawned:?}"
        );
        let log = std::fs::read_to_string(w.dir().join(LOG)).unwrap();
        assert!(
            log.contains("systemd-run: ")
                && log.contains("Failed to connect to bus")
                && log.contains("a detached process times the window"),
            "{log}"
        );
    }

    // network.md §13 scenario 22: commit against the timer's rollback on one window, 200
    // times, the order of the two threads' start drawn from a seeded generator. The lock
    // and the state check make exactly one of them act; the other reports the winner.
    #[test]
    fn commit_and_the_timer_racing_have_exactly_one_winner() {
        let (_d, root, host, _runner, handle) = setup();
        let mut seed: u64 = 0x5eed_0022;
        let (mut commits, mut rollbacks) = (0, 0);
        for i in 0..200 {
            std::fs::write(root.join("etc/a"), "old").unwrap();
            let w = Window::arm(&host, &handle, "race", &[p("etc/a")], Vec::new())
                .unwrap()
                .unwrap();
            std::fs::write(root.join("etc/a"), "new").unwrap();
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let commit_first = seed >> 63 == 1;
            let gate = std::sync::Barrier::new(2);
            let (c, f) = std::thread::scope(|s| {
                let commit = || {
                    gate.wait();
                    w.commit(&host, &CancelToken::new(), "console").unwrap()
                };
                let timer = || {
                    gate.wait();
                    fire(w.dir(), &host, &CancelToken::new()).unwrap()
                };
                let (hc, hf) = if commit_first {
                    let hc = s.spawn(commit);
                    (hc, s.spawn(timer))
                } else {
                    let hf = s.spawn(timer);
                    (s.spawn(commit), hf)
                };
                (hc.join().unwrap(), hf.join().unwrap())
            });
            assert!(c.now ^ f.now, "iteration {i}: {c:?} {f:?}");
            let r = read_record(w.dir()).unwrap();
            let log = std::fs::read_to_string(w.dir().join(LOG)).unwrap();
            let body = std::fs::read_to_string(root.join("etc/a")).unwrap();
            if c.now {
                commits += 1;
                assert_eq!(
                    (r.state, f.state, f.by.as_str()),
                    (State::Committed, State::Committed, "console")
                );
                assert_eq!(body, "new", "iteration {i}");
                assert!(!log.contains("rolling back"), "iteration {i}: {log}");
            } else {
                rollbacks += 1;
                assert_eq!(
                    (r.state, c.state, c.by.as_str()),
                    (State::RolledBack, State::RolledBack, "timer")
                );
                assert_eq!(body, "old", "iteration {i}");
                assert!(!log.contains("committed"), "iteration {i}: {log}");
            }
        }
        assert_eq!(commits + rollbacks, 200);
    }

    // network.md §13 scenario 24, as this design has it: the claim decides, not the clock.
    #[test]
    fn a_commit_meets_a_missing_record_a_rollback_under_way_and_a_late_timer() {
        let (_d, root, host, _runner, handle) = setup();
        std::fs::write(root.join("etc/a"), "old").unwrap();
        // No record: an error naming it; nothing is written.
        let w = Window::arm(&host, &handle, "net", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        std::fs::write(root.join("etc/a"), "new").unwrap();
        std::fs::remove_file(w.dir().join(RECORD)).unwrap();
        let e = w
            .commit(&host, &CancelToken::new(), "net commit")
            .unwrap_err();
        assert!(e.to_string().contains(RECORD), "{e}");
        assert!(!w.dir().join(RECORD).exists());
        assert_eq!(std::fs::read_to_string(root.join("etc/a")).unwrap(), "new");

        // A rollback under way holds the lock: the commit waits for it, then reports it and
        // changes nothing.
        let w = Window::arm(&host, &handle, "net", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        let held = lock(w.dir()).unwrap();
        let c = std::thread::scope(|s| {
            let h = s.spawn(|| w.commit(&host, &CancelToken::new(), "net commit").unwrap());
            let mut r = read_record(w.dir()).unwrap();
            r.state = State::RolledBack;
            r.settled_by = Some("timer".into());
            write_record(w.dir(), &r).unwrap();
            drop(held);
            h.join().unwrap()
        });
        assert_eq!(
            (c.state, c.now, c.by.as_str()),
            (State::RolledBack, false, "timer")
        );
        let r = read_record(w.dir()).unwrap();
        assert_eq!(r.settled_by.as_deref(), Some("timer"));
        assert!(
            !std::fs::read_to_string(w.dir().join(LOG))
                .unwrap_or_default()
                .contains("committed")
        );

        // Past the deadline with the timer not yet run: no time is left to ask in, but the
        // window is still pending and the first claim wins (here a commit, which keeps what
        // is live; the timer then does nothing).
        let w = Window::arm(&host, &handle, "net", &[p("etc/a")], Vec::new())
            .unwrap()
            .unwrap();
        let late = w.record().deadline_unix_ms + 1;
        assert_eq!(w.record().left_at(late), Duration::ZERO);
        let c = w.commit(&host, &CancelToken::new(), "net commit").unwrap();
        assert_eq!((c.state, c.now), (State::Committed, true));
        let f = fire(w.dir(), &host, &CancelToken::new()).unwrap();
        assert_eq!((f.state, f.now), (State::Committed, false));
        assert_eq!(std::fs::read_to_string(root.join("etc/a")).unwrap(), "new");
    }

    fn proxsave_testkit_free_set_mtime(path: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::empty(),
        )
        .unwrap();
    }
}
