//! One restore at a time, and what a dead run left behind.
//!
//! - [`RunLock`]: an advisory `flock` on the work directory and on the target root's
//!   directory, held for the whole run and released by the kernel when the process dies
//!   (even by `kill -9`). A second run fails at once naming the holder's pid.
//! - [`RunState`]: a small JSON file in the work directory (`restore.state`, 0600, replaced
//!   atomically) naming the run's root, phase, stage folders, export folder, safety backup
//!   and the list of root paths it writes (`restore.targets`), each written *before* the
//!   thing it names is created. A clean end removes both files.
//! - [`recover`]: run under the lock, so any state file it finds belongs to a dead run. It
//!   removes that run's stage folders and partial temporary files (found by the dead run's
//!   pid in their names), says what each was, and for a run killed while writing into the
//!   root lists the paths that may mix old and new content and names the safety backup that
//!   rolls them back.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use camino::{Utf8Path, Utf8PathBuf};
use std::sync::Mutex;

use proxsave_archive::checkpoint::checkpoint;
use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::policy::STAGE_PREFIX;
use proxsave_archive::write::AtomicFile;
use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::RestoreError;
use crate::pathlist::PathList;
use crate::workspace::Workspace;

/// The state file's name in the work directory.
pub const STATE_FILE: &str = "restore.state";
/// The list of root paths a run writes, beside the state file.
pub const TARGETS_FILE: &str = "restore.targets";
/// Prefix of the temporary names the extractor gives links while committing.
pub const COMMIT_TMP_PREFIX: &str = ".proxsave-tmp-";

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Lock taken; reading the backup, planning, asking.
    Prepare,
    /// Writing the safety backup into the work directory.
    SafetyBackup,
    /// Stopping services, unmounting.
    StoppingServices,
    /// Reading the backup into the stage folders (nothing in place yet).
    Extracting,
    /// Renaming staged files into the root: old and new files may be mixed.
    Committing,
    /// Everything is in place; export, stage, dedup repair.
    Committed,
    /// Appliers are running.
    Applying,
    /// Restarting services.
    Restarting,
    /// Rolling back to a safety backup.
    RollingBack,
}

impl Phase {
    /// The phase's stable name, as in the state file (`safety-backup`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::SafetyBackup => "safety-backup",
            Phase::StoppingServices => "stopping-services",
            Phase::Extracting => "extracting",
            Phase::Committing => "committing",
            Phase::Committed => "committed",
            Phase::Applying => "applying",
            Phase::Restarting => "restarting",
            Phase::RollingBack => "rolling-back",
        }
    }

    /// A few words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Prepare => "before writing anything",
            Phase::SafetyBackup => "while writing the safety backup",
            Phase::StoppingServices => "while stopping services",
            Phase::Extracting => "while staging files (nothing was in place yet)",
            Phase::Committing => "while putting files in place",
            Phase::Committed => "after putting files in place",
            Phase::Applying => "while applying staged categories",
            Phase::Restarting => "while restarting services",
            Phase::RollingBack => "while rolling back",
        }
    }
}

/// The content of `restore.state`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateDoc {
    /// Format version (1).
    pub version: u32,
    /// The run's process id (its temporary names carry it).
    pub pid: u32,
    /// `restore`, `rollback`, `recover`.
    pub command: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// The run's stamp (`YYYYMMDD_HHMMSS`).
    pub stamp: String,
    /// The canonical target root.
    pub root: Utf8PathBuf,
    /// Where the run is.
    pub phase: Phase,
    /// The stage folder in the work directory, once named.
    #[serde(default)]
    pub work_stage: Option<Utf8PathBuf>,
    /// The export folder, once named.
    #[serde(default)]
    pub export_dir: Option<Utf8PathBuf>,
    /// True when the run creates the export folder.
    #[serde(default)]
    pub export_created: bool,
    /// The safety backup, once written.
    #[serde(default)]
    pub safety_backup: Option<Utf8PathBuf>,
    /// The list of root paths the run writes (one per line), once written.
    #[serde(default)]
    pub targets: Option<Utf8PathBuf>,
}

/// The locks of one run: the work directory and the target root. Dropping releases them.
#[derive(Debug)]
pub struct RunLock {
    _work: OwnedFd,
    _root: Option<OwnedFd>,
    work_dir: PathBuf,
}

impl RunLock {
    /// The locked work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
}

fn dev_ino(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    rustix::fs::fstat(fd).ok().map(|st| (st.st_dev, st.st_ino))
}

/// The pid holding a `flock` on the inode of `fd`, from `/proc/locks`.
fn flock_holder(fd: BorrowedFd<'_>) -> Option<u32> {
    let (dev, ino) = dev_ino(fd)?;
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str()))
            .then(|| f.get(4).and_then(|p| p.parse().ok()))
            .flatten()
    })
}

fn state_pid(work_dir: &Path) -> Option<u32> {
    let bytes = std::fs::read(work_dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice::<StateDoc>(&bytes)
        .ok()
        .map(|d| d.pid)
}

fn try_flock(
    fd: &OwnedFd,
    what: &'static str,
    path: &Path,
    work_dir: &Path,
) -> Result<(), RestoreError> {
    match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(Errno::WOULDBLOCK) => Err(RestoreError::Busy {
            what,
            path: path.to_path_buf(),
            pid: flock_holder(fd.as_fd()).or_else(|| state_pid(work_dir)),
        }),
        Err(e) => Err(RestoreError::io(path, e.into())),
    }
}

/// Takes the run's locks: the work directory first, then the root (unless it is the same
/// folder). Fails at once when another run holds either.
///
/// # Errors
/// [`RestoreError::Busy`] naming the holder; [`RestoreError::Io`] when a folder cannot be
/// opened.
pub fn lock(work_dir: &Path, root: Option<&Path>) -> Result<RunLock, RestoreError> {
    let work = dirfd::open_root(work_dir).map_err(|e| RestoreError::io(work_dir, e))?;
    try_flock(&work, "the work directory", work_dir, work_dir)?;
    let mut root_fd = None;
    if let Some(root) = root {
        let fd = dirfd::open_root(root).map_err(|e| RestoreError::io(root, e))?;
        if dev_ino(fd.as_fd()) != dev_ino(work.as_fd()) {
            try_flock(&fd, "the target root", root, work_dir)?;
            root_fd = Some(fd);
        }
    }
    Ok(RunLock {
        _work: work,
        _root: root_fd,
        work_dir: work_dir.to_path_buf(),
    })
}

/// `p` as a UTF-8 path: the run state records paths as text.
///
/// # Errors
/// [`RestoreError::Io`] naming a path that is not UTF-8.
pub fn utf8(p: &Path) -> Result<Utf8PathBuf, RestoreError> {
    Utf8PathBuf::from_path_buf(p.to_path_buf()).map_err(|p| {
        RestoreError::io(
            &p,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a UTF-8 path; the run state records paths as text",
            ),
        )
    })
}

/// The live state file of this run.
#[derive(Debug)]
pub struct RunState {
    path: PathBuf,
    doc: Mutex<StateDoc>,
}

impl RunState {
    /// Writes the first state (phase [`Phase::Prepare`]). Call with the lock held.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn begin(
        _lock: &RunLock,
        ws: &Workspace,
        root: &Path,
        command: &str,
        started: String,
    ) -> Result<RunState, RestoreError> {
        let state = RunState {
            path: ws.dir.join(STATE_FILE),
            doc: Mutex::new(StateDoc {
                version: 1,
                pid: std::process::id(),
                command: command.to_string(),
                started,
                stamp: ws.stamp.clone(),
                root: utf8(root)?,
                phase: Phase::Prepare,
                work_stage: None,
                export_dir: None,
                export_created: false,
                safety_backup: None,
                targets: None,
            }),
        };
        state.write()?;
        Ok(state)
    }

    fn write(&self) -> Result<(), RestoreError> {
        let doc = self.doc.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut f =
            AtomicFile::create(&self.path, 0o600).map_err(|e| RestoreError::io(&self.path, e))?;
        // One write, not one per JSON token.
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| RestoreError::io(&self.path, std::io::Error::other(e)))?;
        std::io::Write::write_all(f.file(), &bytes).map_err(|e| RestoreError::io(&self.path, e))?;
        f.commit().map_err(|e| RestoreError::io(&self.path, e))?;
        Ok(())
    }

    /// Changes the state and writes it before returning (so it is on disk before the
    /// thing it names exists).
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn update(&self, f: impl FnOnce(&mut StateDoc)) -> Result<(), RestoreError> {
        {
            let mut doc = self.doc.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut doc);
        }
        self.write()
    }

    /// Enters `phase`.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn phase(&self, phase: Phase) -> Result<(), RestoreError> {
        crate::events::phase(phase);
        self.update(|d| d.phase = phase)?;
        checkpoint("phase", &format!("{phase:?}"));
        Ok(())
    }

    /// The current phase.
    pub fn current(&self) -> Phase {
        self.doc.lock().unwrap_or_else(|p| p.into_inner()).phase
    }

    /// Writes the list of root paths the run is about to write (`restore.targets`) and
    /// names it in the state. The list is streamed: it may hold millions of paths.
    ///
    /// # Errors
    /// The list cannot be read or written.
    pub fn record_targets(&self, targets: &PathList) -> Result<(), RestoreError> {
        let path = self.path.with_file_name(TARGETS_FILE);
        let mut f = AtomicFile::create(&path, 0o600).map_err(|e| RestoreError::io(&path, e))?;
        {
            let mut w = std::io::BufWriter::new(f.file());
            for t in targets.iter() {
                let t = t?;
                w.write_all(t.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(|e| RestoreError::io(&path, e))?;
            }
            w.flush().map_err(|e| RestoreError::io(&path, e))?;
        }
        f.commit().map_err(|e| RestoreError::io(&path, e))?;
        let path = utf8(&path)?;
        self.update(|d| d.targets = Some(path))
    }

    /// A clean end: removes the state and the target list (dropping does the same; only a
    /// killed process leaves them).
    pub fn finish(self) {}
}

impl Drop for RunState {
    fn drop(&mut self) {
        let targets = self
            .doc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .targets
            .clone();
        if let Some(t) = targets {
            let _ = std::fs::remove_file(t);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One thing a dead run left, and what became of it.
#[derive(Clone, Debug, Serialize)]
pub struct Leftover {
    /// Where it was.
    pub path: PathBuf,
    /// What it was (`stage folder of the target root`, `partial safety backup`, …).
    pub what: String,
    /// `removed`, or why it was not.
    pub result: String,
}

/// Paths a run killed while writing into the root may have left half old, half new.
#[derive(Clone, Debug, Serialize)]
pub struct Mixed {
    /// The root.
    pub root: PathBuf,
    /// How many paths.
    pub count: usize,
    /// The first few of them.
    pub sample: Vec<String>,
    /// The full list (0600, in the work directory).
    pub list: PathBuf,
    /// The safety backup that puts them back, if the run made one.
    pub safety_backup: Option<PathBuf>,
}

/// What [`recover`] found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovery {
    /// The work folder looked at.
    pub work_dir: PathBuf,
    /// The dead run's last state, if it left one.
    pub dead: Option<StateDoc>,
    /// Stage folders and temporary files found, and what became of each.
    pub leftovers: Vec<Leftover>,
    /// Present when the dead run was killed while writing into the root.
    pub mixed: Option<Mixed>,
    /// A dead run of another root, left as it was (only with `this_root_only`).
    pub other_root: Option<StateDoc>,
}

impl Recovery {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.dead.is_none() && self.leftovers.is_empty()
    }

    /// Human lines describing the recovery.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = &self.other_root {
            out.push(format!(
                "WARNING: the work folder holds the state of an interrupted proxsave {} of {} (pid {}, started {}), not of this root: left as it is. To clean it: proxsave restore --recover --root {} --work-dir {}",
                d.command,
                d.root,
                d.pid,
                d.started,
                d.root,
                self.work_dir.display()
            ));
        }
        if let Some(d) = &self.dead {
            out.push(format!(
                "Found leftovers of an interrupted proxsave {} (pid {}, started {}, root {}), killed {}.",
                d.command,
                d.pid,
                d.started,
                d.root,
                d.phase.describe()
            ));
        } else if !self.leftovers.is_empty() {
            out.push("Found leftovers of an interrupted proxsave run.".to_string());
        }
        for l in &self.leftovers {
            out.push(format!("  {} {}: {}", l.what, l.path.display(), l.result));
        }
        if let Some(m) = &self.mixed {
            out.push(format!(
                "{} path(s) under {} may hold a mix of old and new files (full list: {}), e.g.:",
                m.count,
                m.root.display(),
                m.list.display()
            ));
            for s in &m.sample {
                out.push(format!("  /{s}"));
            }
            match &m.safety_backup {
                Some(sb) => out.push(format!(
                    "Roll them back with: proxsave restore --rollback {}",
                    sb.display()
                )),
                None => out.push(
                    "The interrupted run had no safety backup; restore again to finish the job."
                        .to_string(),
                ),
            }
        }
        out
    }
}

/// Removes `name` in `dir` and everything below it, never following a symlink.
fn remove_tree_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    }
    let sub = dirfd::open_dir(dir, name)?;
    let mut names = Vec::new();
    {
        let mut rd = rustix::fs::Dir::read_from(&sub)?;
        while let Some(entry) = rd.read() {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
    }
    for n in names {
        remove_tree_at(sub.as_fd(), &n)?;
    }
    rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::REMOVEDIR)
}

fn list_names(dir: BorrowedFd<'_>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(mut rd) = rustix::fs::Dir::read_from(dir) {
        while let Some(Ok(entry)) = rd.read() {
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(n.to_vec());
            }
        }
    }
    out
}

fn is_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

struct Sweeper<'a> {
    found: &'a mut Vec<Leftover>,
}

impl Sweeper<'_> {
    fn remove(&mut self, dir: BorrowedFd<'_>, dir_path: &Path, name: &[u8], what: &str) {
        let path = dir_path.join(OsStr::from_bytes(name));
        let result = match remove_tree_at(dir, name) {
            Ok(()) => "removed".to_string(),
            Err(e) => format!("NOT removed: {e}"),
        };
        self.found.push(Leftover {
            path,
            what: what.to_string(),
            result,
        });
    }

    /// Stage folders (`.proxsave-stage-<pid>-…`) at the top of `dir`; `pid` None: any.
    fn stage_folders(&mut self, dir_path: &Path, pid: Option<u32>, what: &str) {
        let Ok(fd) = dirfd::open_root(dir_path) else {
            return;
        };
        let prefix = match pid {
            Some(p) => format!("{STAGE_PREFIX}{p}-"),
            None => STAGE_PREFIX.to_string(),
        };
        for name in list_names(fd.as_fd()) {
            if name.starts_with(prefix.as_bytes()) && is_dir_at(fd.as_fd(), &name) {
                self.remove(fd.as_fd(), dir_path, &name, what);
            }
        }
    }
}

/// Finds and removes what a dead run left (see the module docs). Call with the lock of
/// `work_dir` held (and the root's, when `root` is given). `root` is the root of the run
/// about to start: stage folders at its top can only be leftovers. With `this_root_only`
/// (`restore --recover --root R`), a dead run of another root is reported and left alone;
/// otherwise (a new run that will write its own state) its leftovers are cleaned too.
///
/// # Errors
/// Unreadable state file.
pub fn recover(
    lock: &RunLock,
    root: Option<&Path>,
    stamp: &str,
    this_root_only: bool,
) -> Result<Recovery, RestoreError> {
    let work_dir = lock.work_dir();
    let mut rec = Recovery {
        work_dir: work_dir.to_path_buf(),
        ..Recovery::default()
    };
    let state_path = work_dir.join(STATE_FILE);
    let mut dead: Option<StateDoc> = match std::fs::read(&state_path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(d) => Some(d),
            Err(e) => {
                rec.leftovers.push(Leftover {
                    path: state_path.clone(),
                    what: "unreadable run state".into(),
                    result: format!("removed ({e})"),
                });
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(RestoreError::io(&state_path, e)),
    };
    if this_root_only
        && let (Some(d), Some(r)) = (&dead, root)
        && d.root.as_std_path() != r
    {
        rec.other_root = dead.take();
        let mut sweep = Sweeper {
            found: &mut rec.leftovers,
        };
        sweep.stage_folders(r, None, "stage folder in the target root");
        return Ok(rec);
    }
    let mut sweep = Sweeper {
        found: &mut rec.leftovers,
    };
    if let Some(d) = &dead {
        // The dead run's root: its extractor's stage folder and commit temporaries.
        sweep.stage_folders(
            d.root.as_std_path(),
            Some(d.pid),
            "stage folder in the target root",
        );
        if let Some(t) = &d.targets {
            sweep_commit_temps(&mut sweep, d.root.as_std_path(), t.as_std_path(), d.pid);
        }
        if let Some(s) = &d.work_stage
            && let Ok(fd) = dirfd::open_root(work_dir)
            && let Some(name) = s.file_name()
            && s.parent().map(Utf8Path::as_std_path) == Some(work_dir)
            && is_dir_at(fd.as_fd(), name.as_bytes())
        {
            sweep.remove(
                fd.as_fd(),
                work_dir,
                name.as_bytes(),
                "stage folder (plaintext copies of staged files)",
            );
        }
        if let Some(e) = &d.export_dir {
            sweep.stage_folders(
                e.as_std_path(),
                Some(d.pid),
                "stage folder in the export folder",
            );
            if d.export_created && std::fs::read_dir(e).is_ok_and(|mut it| it.next().is_none()) {
                let r = match std::fs::remove_dir(e) {
                    Ok(()) => "removed".to_string(),
                    Err(err) => format!("NOT removed: {err}"),
                };
                sweep.found.push(Leftover {
                    path: e.clone().into_std_path_buf(),
                    what: "empty export folder".into(),
                    result: r,
                });
            }
        }
        // Partial files in the work directory: `.<name>.tmp-<pid>`.
        if let Ok(fd) = dirfd::open_root(work_dir) {
            let suffix = format!(".tmp-{}", d.pid);
            for name in list_names(fd.as_fd()) {
                if name.starts_with(b".") && name.ends_with(suffix.as_bytes()) {
                    let what = if name.starts_with(b".restore_backup_") {
                        "partial safety backup"
                    } else {
                        "partial file"
                    };
                    sweep.remove(fd.as_fd(), work_dir, &name, what);
                }
            }
        }
        if d.phase == Phase::Committing
            && let Some(t) = &d.targets
        {
            rec.mixed = mixed_list(work_dir, d, t.as_std_path(), stamp);
        }
        if let Some(t) = &d.targets {
            let _ = std::fs::remove_file(t);
        }
        let _ = std::fs::remove_file(&state_path);
    } else if state_path.exists() {
        let _ = std::fs::remove_file(&state_path);
    }
    // Under the root's lock, any stage folder at its top is a leftover.
    let mut sweep = Sweeper {
        found: &mut rec.leftovers,
    };
    if let Some(r) = root {
        sweep.stage_folders(r, None, "stage folder in the target root");
    }
    rec.dead = dead;
    Ok(rec)
}

/// Removes `.proxsave-tmp-<pid>-N` files the commit left beside the paths it wrote.
fn sweep_commit_temps(sweep: &mut Sweeper<'_>, root: &Path, targets: &Path, pid: u32) {
    let Ok(file) = std::fs::File::open(targets) else {
        return;
    };
    let Ok(root_fd) = dirfd::open_root(root) else {
        return;
    };
    let mut parents: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
    for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
        if let Ok(Some(p)) = ArchivePath::parse(&line) {
            parents.insert(
                p.parent()
                    .map(|q| q.as_bytes().to_vec())
                    .unwrap_or_default(),
            );
        }
    }
    let prefix = format!("{COMMIT_TMP_PREFIX}{pid}-");
    for parent in parents {
        let dir = if parent.is_empty() {
            rustix::io::dup(&root_fd)
        } else {
            match ArchivePath::parse(&parent) {
                Ok(Some(p)) => dirfd::walk(root_fd.as_fd(), &p),
                _ => continue,
            }
        };
        let Ok(dir) = dir else { continue };
        let dir_path = root.join(OsStr::from_bytes(&parent));
        for name in list_names(dir.as_fd()) {
            if name.starts_with(prefix.as_bytes()) {
                sweep.remove(dir.as_fd(), &dir_path, &name, "partial file of the commit");
            }
        }
    }
}

fn mixed_list(work_dir: &Path, d: &StateDoc, targets: &Path, stamp: &str) -> Option<Mixed> {
    // Line by line: a restore of a million files leaves a million targets.
    let input = BufReader::with_capacity(64 << 10, std::fs::File::open(targets).ok()?);
    let list = work_dir.join(format!("restore_mixed_{stamp}_{}.txt", d.pid));
    let mut f = AtomicFile::create(&list, 0o600).ok()?;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, f.file());
    let mut count = 0usize;
    let mut sample = Vec::new();
    for line in input.split(b'\n') {
        let line = line.ok()?;
        if line.is_empty() {
            continue;
        }
        let l = String::from_utf8_lossy(&line);
        writeln!(out, "/{l}").ok()?;
        if sample.len() < 10 {
            sample.push(l.into_owned());
        }
        count += 1;
    }
    out.flush().ok()?;
    drop(out);
    let list = f.commit().ok()?;
    Some(Mixed {
        root: d.root.clone().into_std_path_buf(),
        count,
        sample,
        list,
        safety_backup: d
            .safety_backup
            .clone()
            .map(Utf8PathBuf::into_std_path_buf)
            .filter(|p| p.exists()),
    })
}

/// Free space a set of folders needs, checked per filesystem before anything is written.
#[derive(Clone, Debug)]
pub struct SpaceNeed {
    /// The folder (or, when it does not exist yet, the folder it will be created in).
    pub dir: PathBuf,
    /// What goes there, for the message.
    pub what: String,
    /// Bytes (allocation blocks included).
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
}

/// The margin kept on top of the measured need: 1 MiB, or 2 % of the need if larger.
pub fn margin(bytes: u64) -> u64 {
    (1u64 << 20).max(bytes / 50)
}

fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    let mut p = dir.to_path_buf();
    loop {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Some(p);
        }
        if !p.pop() {
            return None;
        }
    }
}

/// Checks every need against its filesystem (needs on one filesystem add up).
///
/// # Errors
/// [`RestoreError::NoSpace`] / [`RestoreError::NoInodes`] naming the first folder that
/// lacks room and by how much.
pub fn check_space(needs: &[SpaceNeed]) -> Result<(), RestoreError> {
    // (dev) -> (first dir, what, bytes, inodes, statvfs)
    let mut by_fs: Vec<(u64, PathBuf, Vec<String>, u64, u64, rustix::fs::StatVfs)> = Vec::new();
    for n in needs {
        if n.bytes == 0 && n.inodes == 0 {
            continue;
        }
        let Some(existing) = nearest_existing(&n.dir) else {
            continue;
        };
        let fd = rustix::fs::open(
            &existing,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RestoreError::io(&existing, e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| RestoreError::io(&existing, e.into()))?;
        let vfs = rustix::fs::fstatvfs(&fd).map_err(|e| RestoreError::io(&existing, e.into()))?;
        match by_fs.iter_mut().find(|e| e.0 == st.st_dev) {
            Some(e) => {
                e.2.push(n.what.clone());
                e.3 += n.bytes;
                e.4 += n.inodes;
            }
            None => by_fs.push((
                st.st_dev,
                n.dir.clone(),
                vec![n.what.clone()],
                n.bytes,
                n.inodes,
                vfs,
            )),
        }
    }
    for (_, dir, what, bytes, inodes, vfs) in by_fs {
        let needed = bytes + margin(bytes);
        let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
        let what = what.join(" and ");
        if needed > free {
            return Err(RestoreError::NoSpace {
                dir,
                what,
                needed,
                free,
            });
        }
        // Filesystems without an inode limit report 0 inodes in all.
        if vfs.f_files > 0 && inodes + 16 > vfs.f_favail {
            return Err(RestoreError::NoInodes {
                dir,
                what,
                needed: inodes + 16,
                free: vfs.f_favail,
            });
        }
    }
    Ok(())
}

/// Allocation-block rounding used by the space estimates.
pub fn blocks(size: u64, block: u64) -> u64 {
    size.div_ceil(block.max(1)) * block.max(1)
}

/// Bytes of the files below `root` that a safety backup of `targets` saves (regular files
/// that exist, read without following links), plus tar headers.
///
/// # Errors
/// Reading the list.
pub fn safety_backup_size(root: &Path, targets: &PathList) -> Result<u64, RestoreError> {
    let Ok(fd) = dirfd::open_root(root) else {
        return Ok(0);
    };
    let mut total = 1024u64;
    let mut last_parent: Option<(Vec<u8>, OwnedFd)> = None;
    for t in targets.iter() {
        let t = &t?;
        let parent_key = t
            .parent()
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default();
        let reuse = matches!(&last_parent, Some((k, _)) if *k == parent_key);
        if !reuse {
            let opened = dirfd::open_parent(fd.as_fd(), t);
            last_parent = opened.ok().map(|f| (parent_key, f));
        }
        let Some((_, parent)) = &last_parent else {
            continue;
        };
        if let Ok(st) = rustix::fs::statat(
            parent,
            OsStr::from_bytes(t.file_name()),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            total += 1024; // header and padding
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
                total += st.st_size as u64;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_list_is_every_target_with_a_slash_and_ten_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let targets = dir.path().join("restore.targets");
        let mut text = Vec::new();
        for i in 0..25 {
            text.extend_from_slice(format!("etc/app/f{i:02}\n").as_bytes());
        }
        text.extend_from_slice(b"\netc/odd\xff\n");
        std::fs::write(&targets, &text).expect("write");
        let d = StateDoc {
            version: 1,
            pid: 4242,
            command: "restore".into(),
            started: "2026-12-05T12:00:00Z".into(),
            stamp: "20261205_120000".into(),
            root: Utf8PathBuf::from("/r"),
            phase: Phase::Prepare,
            work_stage: None,
            export_dir: None,
            export_created: false,
            safety_backup: None,
            targets: None,
        };
        let m = mixed_list(dir.path(), &d, &targets, &d.stamp).expect("list");
        assert_eq!(m.count, 26);
        assert_eq!(m.sample.len(), 10);
        assert_eq!(m.sample[0], "etc/app/f00");
        assert_eq!(
            m.list,
            dir.path().join("restore_mixed_20261205_120000_4242.txt")
        );
        let written = std::fs::read_to_string(&m.list).expect("read");
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 26);
        assert_eq!(lines[24], "/etc/app/f24");
        assert_eq!(lines[25], "/etc/odd\u{fffd}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&m.list)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
