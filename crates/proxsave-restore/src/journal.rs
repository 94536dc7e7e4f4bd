//! The services journal: what a run stopped, on disk, so a run killed outright (`kill -9`,
//! power loss, a third Ctrl+C) can be put right later.
//!
//! A run that stops services keeps one small file in the work directory,
//! `services-<pid>.journal` (mode 0600; `services-<pid>-<n>.journal` if that name is taken), rewritten atomically at every change: the root, the
//! run's process id (with its start time, so a reused pid is not mistaken for the run), and
//! per unit `stopping` (written *before* the stop request) then `started` (after a successful
//! restart); per unmounted path `unmounted` (written before `umount`). When every unit is
//! started again the file is removed. Any file left behind by a process that no longer runs
//! is a [`Leftover`]; [`crate::services::recover`] starts what it left stopped.
//!
//! ```json
//! {"schema":"proxsave/services-journal/v1","pid":4242,"pid_start":987654,
//!  "started":"2026-01-01T10:00:00+01:00","root":"/",
//!  "entries":[{"kind":"unit","name":"cluster-db.service","state":"stopping"},
//!             {"kind":"mount","name":"/srv/cluster","state":"unmounted"}]}
//! ```

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `schema` of journal files.
pub const SCHEMA: &str = "proxsave/services-journal/v1";
const PREFIX: &str = "services-";
const SUFFIX: &str = ".journal";
/// Largest journal file read (a few hundred bytes in practice).
const LIMIT: u64 = 1 << 20;

/// What an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A systemd unit.
    Unit,
    /// A mount point.
    Mount,
}

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A stop was (about to be) requested; the unit may be down.
    Stopping,
    /// Started again.
    Started,
    /// Unmounted (or about to be); a restarted unit may mount it again.
    Unmounted,
}

/// One unit or mount point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unit or mount.
    pub kind: Kind,
    /// Unit name or mount path (as on the host).
    pub name: String,
    /// Where it stands.
    pub state: State,
}

/// The content of a journal file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    /// [`SCHEMA`].
    pub schema: String,
    /// Process id of the run.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22), when known.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// When the run started (RFC 3339).
    pub started: String,
    /// The root the run restored into.
    pub root: PathBuf,
    /// Units and mounts, in the order they were stopped.
    pub entries: Vec<Entry>,
}

impl Document {
    /// Units still recorded as `stopping`, in stop order.
    pub fn units_left(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Unit && e.state == State::Stopping)
            .map(|e| e.name.clone())
            .collect()
    }

    /// Mount points recorded as unmounted.
    pub fn unmounted(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Mount)
            .map(|e| e.name.clone())
            .collect()
    }
}

/// The journal of the running restore. Nothing is written until the first record.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    doc: Document,
    written: bool,
}

impl Journal {
    /// The journal of this process for a restore of `root`, in the work directory `dir`.
    pub fn new(dir: &Path, root: &Path, started: String) -> Journal {
        let pid = std::process::id();
        // A file of a dead run with the same pid (kept for another root) is never overwritten.
        let path = (0..1000)
            .map(|n| match n {
                0 => dir.join(format!("{PREFIX}{pid}{SUFFIX}")),
                n => dir.join(format!("{PREFIX}{pid}-{n}{SUFFIX}")),
            })
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| dir.join(format!("{PREFIX}{pid}{SUFFIX}")));
        Journal {
            path,
            doc: Document {
                schema: SCHEMA.to_string(),
                pid,
                pid_start: process_start(pid),
                started,
                root: root.to_path_buf(),
                entries: Vec::new(),
            },
            written: false,
        }
    }

    /// Reopens a leftover journal to update it (recovery).
    pub fn reopen(leftover: &Leftover) -> Journal {
        Journal {
            path: leftover.path.clone(),
            doc: leftover.doc.clone(),
            written: true,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is recorded.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    fn set(&mut self, kind: Kind, name: &str, state: State) -> io::Result<()> {
        match self
            .doc
            .entries
            .iter_mut()
            .find(|e| e.kind == kind && e.name == name)
        {
            Some(e) if e.state == state => return Ok(()),
            Some(e) => e.state = state,
            None => self.doc.entries.push(Entry {
                kind,
                name: name.to_string(),
                state,
            }),
        }
        self.save()
    }

    /// Records that `unit` is about to be stopped. Call it *before* the stop request.
    ///
    /// # Errors
    /// The file cannot be written (then do not stop the unit).
    pub fn stopping(&mut self, unit: &str) -> io::Result<()> {
        self.set(Kind::Unit, unit, State::Stopping)
    }

    /// Records that `unit` runs again.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn started(&mut self, unit: &str) -> io::Result<()> {
        self.set(Kind::Unit, unit, State::Started)
    }

    /// Records that `path` is about to be unmounted.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn unmounting(&mut self, path: &str) -> io::Result<()> {
        self.set(Kind::Mount, path, State::Unmounted)
    }

    /// Removes the file if no unit is left stopped (true then, or when nothing was ever
    /// written); otherwise keeps it for a later recovery.
    ///
    /// # Errors
    /// The file cannot be removed.
    pub fn finish(&mut self) -> io::Result<bool> {
        if !self.doc.units_left().is_empty() {
            return Ok(false);
        }
        if self.written {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.written = false;
        }
        Ok(true)
    }

    fn save(&mut self) -> io::Result<()> {
        let mut text = serde_json::to_vec(&self.doc).map_err(io::Error::other)?;
        text.push(b'\n');
        let mut f = proxsave_archive::write::AtomicFile::create(&self.path, 0o600)?;
        f.file().write_all(&text)?;
        f.commit()?;
        self.written = true;
        Ok(())
    }
}

/// A journal file whose run is gone.
#[derive(Clone, Debug)]
pub struct Leftover {
    /// The file.
    pub path: PathBuf,
    /// Its content.
    pub doc: Document,
}

/// The journal files found in a work directory.
#[derive(Debug, Default)]
pub struct Found {
    /// Left by runs that no longer run, oldest first.
    pub dead: Vec<Leftover>,
    /// Of runs still going on (not ours to touch).
    pub running: Vec<Leftover>,
    /// Files that cannot be read or parsed, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Reads every journal file in `dir` (none if `dir` does not exist) and sorts them by
/// whether their run still exists.
pub fn scan(dir: &Path) -> Found {
    let mut found = Found::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return found;
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(PREFIX) && n.ends_with(SUFFIX)
        })
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        match read(&path) {
            Ok(doc) => {
                let lo = Leftover { path, doc };
                if lo.doc.pid != std::process::id() && !alive(lo.doc.pid, lo.doc.pid_start) {
                    found.dead.push(lo);
                } else {
                    found.running.push(lo);
                }
            }
            Err(e) => found.unreadable.push((path, e)),
        }
    }
    found.dead.sort_by(|a, b| a.doc.started.cmp(&b.doc.started));
    found
}

fn read(path: &Path) -> Result<Document, String> {
    use std::io::Read;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| e.to_string())?;
    // Its units are started as root: only trust a private file of ours (or root's).
    let meta = f.metadata().map_err(|e| e.to_string())?;
    let euid = rustix::process::geteuid().as_raw();
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!("owned by uid {}, not by you or root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ));
    }
    let mut text = Vec::new();
    f.take(LIMIT)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    let doc: Document = serde_json::from_slice(&text).map_err(|e| format!("not a journal: {e}"))?;
    if doc.schema != SCHEMA {
        return Err(format!("unknown schema {:?}", doc.schema));
    }
    if let Some(e) = doc
        .entries
        .iter()
        .find(|e| e.kind == Kind::Unit && !valid_unit(&e.name))
    {
        return Err(format!("invalid unit name {:?}", e.name));
    }
    Ok(doc)
}

/// A systemd unit name as passed to `systemctl` (never an option).
fn valid_unit(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('-')
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'@' | b'-' | b'\\')
        })
}

/// `/proc/<pid>/stat`: (state, start time).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields 3… follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, s)| s)
}

/// True while the process that wrote a journal still runs: same pid, same start time (or,
/// when the start time was not recorded, a process named `proxsave`), not a zombie.
fn alive(pid: u32, start: Option<u64>) -> bool {
    let Some((state, now_start)) = proc_stat(pid) else {
        return false;
    };
    if matches!(state, 'Z' | 'X' | 'x') {
        return false;
    }
    match start {
        Some(s) => s == now_start,
        None => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim() == "proxsave")
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_before_each_stop_removed_when_all_started() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::new(dir.path(), Path::new("/"), "t0".into());
        // Nothing on disk before the first record.
        assert!(!j.path().exists());
        assert!(j.finish().unwrap());
        j.stopping("cluster-db").unwrap();
        j.unmounting("/srv/cluster").unwrap();
        j.stopping("node-daemon").unwrap();
        let meta = std::fs::metadata(j.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let doc = read(j.path()).unwrap();
        assert_eq!(doc.units_left(), ["cluster-db", "node-daemon"]);
        assert_eq!(doc.unmounted(), ["/srv/cluster"]);
        assert_eq!(doc.pid, std::process::id());
        j.started("cluster-db").unwrap();
        assert!(!j.finish().unwrap(), "node-daemon is still stopped");
        assert_eq!(read(j.path()).unwrap().units_left(), ["node-daemon"]);
        j.started("node-daemon").unwrap();
        assert!(j.finish().unwrap());
        assert!(!j.path().exists());
        // A file already there (a dead run with the same pid) is left alone.
        let taken = dir
            .path()
            .join(format!("services-{}.journal", std::process::id()));
        std::fs::write(&taken, b"x").unwrap();
        let other = Journal::new(dir.path(), Path::new("/"), "t1".into());
        assert_ne!(other.path(), taken);
        std::fs::remove_file(&taken).unwrap();
        // No temporary files left either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn our_own_journal_is_running_a_dead_pid_is_a_leftover() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::new(dir.path(), Path::new("/r"), "t0".into());
        j.stopping("api-proxy").unwrap();
        let found = scan(dir.path());
        assert_eq!(found.running.len(), 1);
        assert!(found.dead.is_empty());
        // The same document under a pid that cannot exist (above pid_max), and one whose start
        // time differs from our process's (a reused pid).
        for (name, pid, start) in [
            ("services-1.journal", 4_194_304 + 7, None),
            ("services-2.journal", std::process::id(), Some(1)),
        ] {
            let mut doc = j.document().clone();
            doc.pid = pid;
            doc.pid_start = start;
            doc.started = name.into();
            std::fs::write(dir.path().join(name), serde_json::to_vec(&doc).unwrap()).unwrap();
        }
        std::fs::write(dir.path().join("services-3.journal"), b"{").unwrap();
        let mut evil = j.document().clone();
        evil.pid = 4_194_304 + 8;
        evil.entries[0].name = "--root=/tmp".into();
        std::fs::write(
            dir.path().join("services-4.journal"),
            serde_json::to_vec(&evil).unwrap(),
        )
        .unwrap();
        let shared = dir.path().join("services-5.journal");
        let mut doc5 = j.document().clone();
        doc5.pid = 4_194_304 + 9;
        std::fs::write(&shared, serde_json::to_vec(&doc5).unwrap()).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o666)).unwrap();
        let found = scan(dir.path());
        // The second names our own pid, which is never a leftover of itself.
        assert_eq!(found.dead.len(), 1, "{found:?}");
        assert_eq!(found.dead[0].doc.units_left(), ["api-proxy"]);
        assert_eq!(found.dead[0].doc.root, Path::new("/r"));
        assert_eq!(found.unreadable.len(), 3, "{found:?}");
        assert!(found.unreadable[1].1.contains("invalid unit name"));
        assert!(
            found.unreadable[2]
                .1
                .contains("writable by group or others")
        );
        assert!(!alive(std::process::id(), Some(1)));
        assert!(alive(std::process::id(), process_start(std::process::id())));
        assert!(scan(&dir.path().join("missing")).dead.is_empty());
    }
}
