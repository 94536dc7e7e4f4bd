//! `config.db`, the cluster database pmxcfs serves as `/etc/pve`, read as a backup.
//!
//! pmxcfs keeps `/etc/pve` in one SQLite table (pve-cluster `src/pmxcfs/database.c`):
//!
//! ```sql
//! CREATE TABLE tree (
//!   inode INTEGER PRIMARY KEY NOT NULL,
//!   parent INTEGER NOT NULL CHECK(typeof(parent)=='integer'),
//!   version INTEGER NOT NULL CHECK(typeof(version)=='integer'),
//!   writer INTEGER NOT NULL CHECK(typeof(writer)=='integer'),
//!   mtime INTEGER NOT NULL CHECK(typeof(mtime)=='integer'),
//!   type INTEGER NOT NULL CHECK(typeof(type)=='integer'),
//!   name TEXT NOT NULL,
//!   data BLOB);
//! ```
//!
//! The root directory is inode 0; its only row is `__version__` (inode 0, the root's
//! version, writer and mtime). Every other row is a directory (`type` 4) or a regular file
//! (`type` 8) whose `parent` is a directory's inode (0 for the top level). [`ConfigDbTree`]
//! rebuilds the tree with the checks pmxcfs makes when it loads the database (unknown type,
//! directory with data, parent that is not a directory, missing directory inode, duplicate
//! name, empty name, a root row with another name) plus the ones a reader needs (a name that
//! is not one path component, a cycle of directories not reachable from the root), each
//! refused with the inode and name.
//!
//! The database is only ever opened read-only: with SQLite's `immutable` flag when no
//! `-wal` file lies beside it (so nothing is created next to it), else read-only so SQLite
//! reads the log.
//!
//! Callers: `proxsave ls|cat|extract|diff --from-config-db` (a private copy of the backup's
//! database in the work folder), and SAFE apply, which reads `/etc/pve` from the folder
//! [`export_tree`] writes when a backup holds no `etc/pve` copy. [`integrity_check`] alone is
//! the check RECOVERY runs before it stops any service.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use rustix::fs::{Mode, OFlags, Timespec, Timestamps};

/// `type` of a directory row (`DT_DIR`).
pub const DT_DIR: i64 = 4;
/// `type` of a regular file row (`DT_REG`).
pub const DT_REG: i64 = 8;
/// Name of the root's row (inode 0).
pub const VERSION_NAME: &str = "__version__";
/// Where `config.db` lies in a backup (and on a node).
pub const BACKUP_PATH: &str = "var/lib/pve-cluster/config.db";
/// Largest file pmxcfs accepts (`MEMDB_MAX_FILE_SIZE`, current releases).
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Why a `config.db` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigDbError {
    /// SQLite could not open the file.
    #[error("{path}: cannot open it as an SQLite database: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// `PRAGMA integrity_check` did not answer `ok` (or failed: not a database).
    #[error("{path}: SQLite integrity check failed: {message}")]
    Integrity {
        /// The database file.
        path: PathBuf,
        /// SQLite's message (the check's lines joined with `; `).
        message: String,
    },
    /// The database has no `tree` table: not a pmxcfs database.
    #[error("{path}: no `tree` table: not a pmxcfs config.db (SQLite: {message})")]
    NoTree {
        /// The database file.
        path: PathBuf,
        /// SQLite's message (`no such table: tree`).
        message: String,
    },
    /// Reading the `tree` table failed (a missing column, a bad value).
    #[error("{path}: reading the tree table: {message}")]
    Query {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// A row pmxcfs (or a safe reader) would refuse.
    #[error("{path}: inode {inode} (name {name}): {reason}")]
    Entry {
        /// The database file.
        path: PathBuf,
        /// The row's inode.
        inode: i64,
        /// The row's name, escaped for display.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A path asked for is not in the tree (or not a file / folder as asked).
    #[error("{path}: {wanted} is not {what} in its /etc/pve")]
    NotFound {
        /// The database file.
        path: PathBuf,
        /// The path asked for, as given.
        wanted: String,
        /// "a file", "a folder", "there".
        what: &'static str,
    },
    /// Writing the tree into a folder failed.
    #[error("writing {target}: {message}")]
    Write {
        /// The file or folder being written.
        target: PathBuf,
        /// The system's message.
        message: String,
    },
}

/// A directory or a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// `type` 4.
    Dir,
    /// `type` 8.
    File,
}

/// One entry of `/etc/pve` as stored in the database.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TreeEntry {
    /// Path relative to `/etc/pve` (`storage.cfg`, `nodes/pve1/qemu-server/100.conf`).
    pub path: String,
    /// Directory or file.
    pub kind: EntryKind,
    /// Bytes of data (0 for a directory).
    pub size: u64,
    /// Modification time, seconds since the epoch (pmxcfs keeps 32 bits).
    pub mtime: u32,
    /// pmxcfs version counter of the row.
    pub version: u64,
    /// Cluster node id that wrote the row.
    pub writer: u32,
    /// The row's inode.
    pub inode: i64,
}

impl TreeEntry {
    /// The path as seen on a node: `/etc/pve/<path>`.
    pub fn full_path(&self) -> String {
        format!("/etc/pve/{}", self.path)
    }

    /// The permission bits pmxcfs shows for it (and [`ConfigDbTree::write_into`] writes):
    /// folders 0755 and files 0640, but 0700 / 0600 inside a `priv` folder (pmxcfs decides
    /// permissions by path; the database stores none).
    pub fn mode(&self) -> u32 {
        let private = self.path.split('/').any(|c| c == "priv");
        match (self.kind, private) {
            (EntryKind::Dir, false) => 0o755,
            (EntryKind::Dir, true) => 0o700,
            (EntryKind::File, false) => 0o640,
            (EntryKind::File, true) => 0o600,
        }
    }
}

/// The `/etc/pve` tree of a `config.db`, loaded and checked; a read-only view.
#[derive(Clone, Debug)]
pub struct ConfigDbTree {
    source: PathBuf,
    /// Sorted by path components (a folder's entries right after it).
    entries: Vec<TreeEntry>,
    data: Vec<Vec<u8>>,
    index: HashMap<String, usize>,
    root_mtime: u32,
    root_version: u64,
}

/// Percent-encodes a path for an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens `path` read-only, with `immutable=1` when no `-wal` lies beside it.
fn open_read_only(path: &Path) -> Result<Connection, ConfigDbError> {
    let open_err = |e: rusqlite::Error| ConfigDbError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(ConfigDbError::Open {
                path: path.to_path_buf(),
                message: "not a regular file".into(),
            });
        }
        Err(e) => {
            return Err(ConfigDbError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    }
    let abs = std::path::absolute(path).map_err(|e| ConfigDbError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut wal = abs.as_os_str().to_owned();
    wal.push("-wal");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = if Path::new(&wal).exists() {
        format!("file:{}?mode=ro", uri_path(&abs))
    } else {
        format!("file:{}?mode=ro&immutable=1", uri_path(&abs))
    };
    Connection::open_with_flags(uri, flags).map_err(open_err)
}

fn check(conn: &Connection, path: &Path) -> Result<(), ConfigDbError> {
    let integrity = |message: String| ConfigDbError::Integrity {
        path: path.to_path_buf(),
        message,
    };
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| integrity(e.to_string()))?;
    let lines: Vec<String> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| integrity(e.to_string()))?;
    if lines != ["ok"] {
        return Err(integrity(lines.join("; ")));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tree'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| integrity(e.to_string()))?;
    if tables == 0 {
        // SQLite's own words for it.
        let message = match conn.prepare("SELECT 1 FROM tree LIMIT 0") {
            Err(e) => e.to_string(),
            Ok(_) => "no such table: tree".into(),
        };
        return Err(ConfigDbError::NoTree {
            path: path.to_path_buf(),
            message,
        });
    }
    Ok(())
}

/// Checks a `config.db` without loading it: SQLite's `PRAGMA integrity_check` must answer
/// `ok` and the `tree` table must exist. The file is opened read-only and nothing is created
/// beside it (unless a `-wal` file is there: then SQLite reads it, read-only).
///
/// # Errors
/// [`ConfigDbError::Open`], [`ConfigDbError::Integrity`] (with SQLite's message; a file that
/// is not a database lands here) or [`ConfigDbError::NoTree`].
pub fn integrity_check(path: &Path) -> Result<(), ConfigDbError> {
    let conn = open_read_only(path)?;
    check(&conn, path)
}

/// Opens the `config.db` at `db` (read-only, checked as [`ConfigDbTree::open`]) and writes
/// its `/etc/pve` into `dest` as `dest/etc/pve/...` ([`ConfigDbTree::write_into`]): the
/// folder other code reads `/etc/pve` from when a backup holds no `etc/pve` copy. `dest`
/// should be a private (0700) folder of the work directory; `dest/etc/pve` must not hold
/// files of the same names (nothing is overwritten). Returns the tree (for listing what was
/// written) and the number of files written.
///
/// # Errors
/// Those of [`ConfigDbTree::open`] and [`ConfigDbTree::write_into`].
pub fn export_tree(db: &Path, dest: &Path) -> Result<(ConfigDbTree, usize), ConfigDbError> {
    let tree = ConfigDbTree::open(db)?;
    let files = tree.write_into(dest)?;
    Ok((tree, files))
}

impl ConfigDbError {
    /// The same error naming the database as `label` instead of its file path (a copy in
    /// the work directory is shown as what it is, e.g. the backup's
    /// `/var/lib/pve-cluster/config.db`). [`ConfigDbError::Write`] is left as it is.
    pub fn shown_as(mut self, label: impl Into<PathBuf>) -> ConfigDbError {
        match &mut self {
            ConfigDbError::Open { path, .. }
            | ConfigDbError::Integrity { path, .. }
            | ConfigDbError::NoTree { path, .. }
            | ConfigDbError::Query { path, .. }
            | ConfigDbError::Entry { path, .. }
            | ConfigDbError::NotFound { path, .. } => *path = label.into(),
            ConfigDbError::Write { .. } => {}
        }
        self
    }
}

/// One row as read, before the tree is built.
struct Row {
    inode: i64,
    parent: i64,
    version: i64,
    writer: i64,
    mtime: i64,
    kind: i64,
    name: Vec<u8>,
    data: Vec<u8>,
}

fn display_name(name: &[u8]) -> String {
    proxsave_archive::path::escape_bytes(name)
}

impl ConfigDbTree {
    /// Opens `path` read-only, runs [`integrity_check`] and rebuilds the tree.
    ///
    /// # Errors
    /// Those of [`integrity_check`], [`ConfigDbError::Query`] when the table lacks a column or
    /// holds a value of the wrong type, [`ConfigDbError::Entry`] for a row pmxcfs would refuse
    /// or a name that is not one path component, an orphan or a cycle.
    pub fn open(path: &Path) -> Result<ConfigDbTree, ConfigDbError> {
        let conn = open_read_only(path)?;
        check(&conn, path)?;
        let rows = read_rows(&conn, path)?;
        build(path, rows)
    }

    /// The database file this tree was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Every entry (folders and files, not the root), a folder's entries right after it.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The root's mtime (from the `__version__` row; 0 without one).
    pub fn root_mtime(&self) -> u32 {
        self.root_mtime
    }

    /// The root's version (from the `__version__` row; 0 without one).
    pub fn root_version(&self) -> u64 {
        self.root_version
    }

    /// The entry at `path` (`/etc/pve/x`, `etc/pve/x`, `./etc/pve/x`, or `x` relative to
    /// `/etc/pve`); `None` for the root or a missing path.
    pub fn get(&self, path: &str) -> Option<&TreeEntry> {
        let rel = relative(path)?;
        self.index.get(rel.as_str()).map(|&i| &self.entries[i])
    }

    /// The bytes of the file at `path` (forms as [`ConfigDbTree::get`]).
    ///
    /// # Errors
    /// [`ConfigDbError::NotFound`] when it is missing or a folder.
    pub fn read(&self, path: &str) -> Result<&[u8], ConfigDbError> {
        let not_found = |what| ConfigDbError::NotFound {
            path: self.source.clone(),
            wanted: path.to_string(),
            what,
        };
        let rel = relative(path).ok_or_else(|| not_found("a file"))?;
        match self.index.get(rel.as_str()) {
            Some(&i) if self.entries[i].kind == EntryKind::File => Ok(&self.data[i]),
            Some(_) => Err(not_found("a file")),
            None => Err(not_found("there")),
        }
    }

    /// The entries directly inside the folder `dir` (forms as [`ConfigDbTree::get`]; `/etc/pve`
    /// or an empty string for the root), sorted by name.
    ///
    /// # Errors
    /// [`ConfigDbError::NotFound`] when it is missing or a file.
    pub fn list(&self, dir: &str) -> Result<Vec<&TreeEntry>, ConfigDbError> {
        let not_found = |what| ConfigDbError::NotFound {
            path: self.source.clone(),
            wanted: dir.to_string(),
            what,
        };
        let rel = relative(dir).ok_or_else(|| not_found("a folder"))?;
        if !rel.is_empty() {
            match self.index.get(rel.as_str()) {
                Some(&i) if self.entries[i].kind == EntryKind::Dir => {}
                Some(_) => return Err(not_found("a folder")),
                None => return Err(not_found("there")),
            }
        }
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        Ok(self
            .entries
            .iter()
            .filter(|e| {
                e.path
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            })
            .collect())
    }

    /// Writes the tree below `dir` as `dir/etc/pve/...`: folders 0755 (`priv` 0700), files
    /// 0640 (0600 inside a `priv` folder), mtimes as stored. Every component is created with
    /// `mkdirat`/`openat(O_CREAT|O_EXCL|O_NOFOLLOW)` relative to the folder above it, so
    /// nothing is written outside `dir`, nothing existing is overwritten and no symlink is
    /// followed. Returns the number of files written.
    ///
    /// # Errors
    /// [`ConfigDbError::Write`] naming the file or folder.
    pub fn write_into(&self, dir: &Path) -> Result<usize, ConfigDbError> {
        self.write_selected(dir, &|_| true)
    }

    /// [`ConfigDbTree::write_into`] for the entries `keep` accepts (and the folders holding
    /// them); a folder `keep` accepts is written even when empty, its entries only when
    /// `keep` accepts them too. Returns the number of files written.
    ///
    /// # Errors
    /// [`ConfigDbError::Write`] naming the file or folder.
    pub fn write_selected(
        &self,
        dir: &Path,
        keep: &dyn Fn(&TreeEntry) -> bool,
    ) -> Result<usize, ConfigDbError> {
        let mut wanted: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for e in &self.entries {
            if keep(e) {
                wanted.insert(e.path.as_str());
                let mut p = e.path.as_str();
                while let Some((parent, _)) = p.rsplit_once('/') {
                    if !wanted.insert(parent) {
                        break;
                    }
                    p = parent;
                }
            }
        }
        let werr = |target: PathBuf, e: rustix::io::Errno| ConfigDbError::Write {
            target,
            message: std::io::Error::from(e).to_string(),
        };
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| werr(dir.to_path_buf(), e))?;
        let etc = make_dir(root.as_fd(), b"etc", 0o755, &dir.join("etc"), true)?;
        let pve_path = dir.join("etc/pve");
        let pve = make_dir(etc.as_fd(), b"pve", 0o755, &pve_path, true)?;
        // Folder fds by relative path; entries are sorted so a folder precedes its entries.
        let mut dirs: HashMap<&str, OwnedFd> = HashMap::new();
        let mut files = 0usize;
        let mut dir_times: Vec<(PathBuf, String, u32)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !wanted.contains(e.path.as_str()) {
                continue;
            }
            let (parent_rel, name) = match e.path.rsplit_once('/') {
                Some((p, n)) => (p, n),
                None => ("", e.path.as_str()),
            };
            let parent_fd = if parent_rel.is_empty() {
                pve.as_fd()
            } else {
                match dirs.get(parent_rel) {
                    Some(fd) => fd.as_fd(),
                    None => {
                        return Err(ConfigDbError::Write {
                            target: pve_path.join(&e.path),
                            message: "its folder was not written".into(),
                        });
                    }
                }
            };
            let target = pve_path.join(&e.path);
            let mode = e.mode();
            match e.kind {
                EntryKind::Dir => {
                    let fd = make_dir(parent_fd, name.as_bytes(), mode, &target, false)?;
                    dirs.insert(e.path.as_str(), fd);
                    dir_times.push((target, e.path.clone(), e.mtime));
                }
                EntryKind::File => {
                    let fd = rustix::fs::openat(
                        parent_fd,
                        OsStr::from_bytes(name.as_bytes()),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(mode),
                    )
                    .map_err(|er| werr(target.clone(), er))?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                        .map_err(|er| werr(target.clone(), er))?;
                    write_all(&fd, &self.data[i]).map_err(|er| werr(target.clone(), er))?;
                    set_mtime(&fd, e.mtime).map_err(|er| werr(target.clone(), er))?;
                    files += 1;
                }
            }
        }
        // Folder times last: writing their entries changed them.
        for (target, rel, mtime) in dir_times.iter().rev() {
            if let Some(fd) = dirs.get(rel.as_str()) {
                set_mtime(fd, *mtime).map_err(|er| werr(target.clone(), er))?;
            }
        }
        if self.root_mtime != 0 {
            set_mtime(&pve, self.root_mtime).map_err(|er| werr(pve_path.clone(), er))?;
        }
        Ok(files)
    }
}

fn make_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    mode: u32,
    target: &Path,
    may_exist: bool,
) -> Result<OwnedFd, ConfigDbError> {
    let werr = |e: rustix::io::Errno| ConfigDbError::Write {
        target: target.to_path_buf(),
        message: std::io::Error::from(e).to_string(),
    };
    match rustix::fs::mkdirat(parent, OsStr::from_bytes(name), Mode::from_raw_mode(mode)) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) if may_exist => {}
        Err(e) => return Err(werr(e)),
    }
    let fd = rustix::fs::openat(
        parent,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(werr)?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(werr)?;
    Ok(fd)
}

fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> rustix::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(rustix::io::Errno::IO),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn set_mtime(fd: &OwnedFd, mtime: u32) -> rustix::io::Result<()> {
    let t = Timespec {
        tv_sec: i64::from(mtime),
        tv_nsec: 0,
    };
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )
}

/// `path` relative to `/etc/pve`: accepts `/etc/pve/x`, `etc/pve/x`, `./etc/pve/x` and a
/// plain relative `x` (not starting with `etc/`); `""` for the root. Repeated and trailing
/// slashes and `.` components are dropped; `None` for `..` or a path outside `/etc/pve`.
pub fn relative(path: &str) -> Option<String> {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return None;
    }
    let rest: &[&str] = match comps.as_slice() {
        ["etc", "pve", rest @ ..] => rest,
        ["etc", ..] => return None,
        all if path.starts_with('/') => {
            let _ = all;
            return None;
        }
        all => all,
    };
    Some(rest.join("/"))
}

fn read_rows(conn: &Connection, path: &Path) -> Result<Vec<Row>, ConfigDbError> {
    let qerr = |e: rusqlite::Error| ConfigDbError::Query {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut stmt = conn
        .prepare("SELECT inode, parent, version, writer, mtime, type, name, data FROM tree")
        .map_err(qerr)?;
    let mut rows = stmt.query([]).map_err(qerr)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(qerr)? {
        let int = |i: usize, col: &str| -> Result<i64, ConfigDbError> {
            match row.get_ref(i).map_err(qerr)? {
                ValueRef::Integer(v) => Ok(v),
                other => {
                    let inode = match row.get_ref(0) {
                        Ok(ValueRef::Integer(v)) => v.to_string(),
                        _ => "?".into(),
                    };
                    Err(ConfigDbError::Query {
                        path: path.to_path_buf(),
                        message: format!(
                            "row with inode {inode}: column {col} holds {:?}, not an integer",
                            other.data_type()
                        ),
                    })
                }
            }
        };
        let inode = int(0, "inode")?;
        let name = match row.get_ref(6).map_err(qerr)? {
            ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
            ValueRef::Null => Vec::new(),
            ValueRef::Integer(v) => v.to_string().into_bytes(),
            ValueRef::Real(v) => v.to_string().into_bytes(),
        };
        let data = match row.get_ref(7).map_err(qerr)? {
            ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
            ValueRef::Null => Vec::new(),
            other => {
                return Err(ConfigDbError::Entry {
                    path: path.to_path_buf(),
                    inode,
                    name: display_name(&name),
                    reason: format!("data holds {:?}, not bytes", other.data_type()),
                });
            }
        };
        out.push(Row {
            inode,
            parent: int(1, "parent")?,
            version: int(2, "version")?,
            writer: int(3, "writer")?,
            mtime: int(4, "mtime")?,
            kind: int(5, "type")?,
            name,
            data,
        });
    }
    Ok(out)
}

fn build(path: &Path, rows: Vec<Row>) -> Result<ConfigDbTree, ConfigDbError> {
    let bad = |row: &Row, reason: String| ConfigDbError::Entry {
        path: path.to_path_buf(),
        inode: row.inode,
        name: display_name(&row.name),
        reason,
    };
    let mut root_mtime = 0u32;
    let mut root_version = 0u64;
    // inode -> row index
    let mut by_inode: HashMap<i64, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if row.name.is_empty() {
            return Err(bad(row, "the name is empty".into()));
        }
        if row.kind != DT_DIR && row.kind != DT_REG {
            return Err(bad(
                row,
                format!(
                    "unknown type {} (only 4, a folder, and 8, a file)",
                    row.kind
                ),
            ));
        }
        if row.kind == DT_DIR && !row.data.is_empty() {
            return Err(bad(row, "a folder that holds data".into()));
        }
        if row.inode == 0 {
            if row.name != VERSION_NAME.as_bytes() {
                return Err(bad(
                    row,
                    format!("the root inode 0 must be named {VERSION_NAME}"),
                ));
            }
            root_mtime = (row.mtime & 0xffff_ffff) as u32;
            root_version = row.version.max(0) as u64;
            continue;
        }
        if row.inode < 0 {
            return Err(bad(row, "a negative inode".into()));
        }
        let name_ok = std::str::from_utf8(&row.name)
            .is_ok_and(|n| n != "." && n != ".." && !n.contains('/') && !n.contains('\0'));
        if !name_ok {
            return Err(bad(
                row,
                "the name is not one path component (\"/\", \".\", \"..\", NUL or not UTF-8)"
                    .into(),
            ));
        }
        if row.inode == row.parent {
            return Err(bad(row, "its parent is itself".into()));
        }
        if by_inode.insert(row.inode, i).is_some() {
            return Err(bad(row, "the inode appears twice".into()));
        }
    }
    // Parents: must exist (0 = the root) and be folders; names unique in a folder.
    let mut names: HashMap<(i64, &[u8]), usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if row.inode == 0 {
            continue;
        }
        if row.parent != 0 {
            match by_inode.get(&row.parent) {
                None => {
                    return Err(bad(
                        row,
                        format!(
                            "an orphan: its parent inode {} is not in the table",
                            row.parent
                        ),
                    ));
                }
                Some(&p) if rows[p].kind != DT_DIR => {
                    return Err(bad(
                        row,
                        format!(
                            "its parent inode {} ({}) is not a folder",
                            row.parent,
                            display_name(&rows[p].name)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(&other) = names.get(&(row.parent, row.name.as_slice())) {
            return Err(bad(
                row,
                format!(
                    "a duplicate name in its folder (inode {} has it too)",
                    rows[other].inode
                ),
            ));
        }
        names.insert((row.parent, row.name.as_slice()), i);
    }
    // Paths: walk up to the root; a walk longer than the number of rows is a cycle.
    let mut paths: Vec<Option<String>> = vec![None; rows.len()];
    for i in 0..rows.len() {
        if rows[i].inode == 0 || paths[i].is_some() {
            continue;
        }
        let mut chain = vec![i];
        let mut cur = i;
        loop {
            let parent = rows[cur].parent;
            if parent == 0 {
                break;
            }
            // Present: checked above.
            let Some(&p) = by_inode.get(&parent) else {
                return Err(bad(&rows[cur], "an orphan".into()));
            };
            if paths[p].is_some() {
                chain.push(p);
                break;
            }
            if chain.contains(&p) || chain.len() > rows.len() {
                return Err(bad(
                    &rows[i],
                    format!(
                        "its folders form a cycle (inode {} is its own ancestor) and never reach the root",
                        rows[p].inode
                    ),
                ));
            }
            chain.push(p);
            cur = p;
        }
        // Build the paths top-down.
        let mut prefix = match chain.last().and_then(|&top| paths[top].clone()) {
            Some(p) => {
                chain.pop();
                p
            }
            None => String::new(),
        };
        for &c in chain.iter().rev() {
            let name = String::from_utf8_lossy(&rows[c].name);
            let p = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            paths[c] = Some(p.clone());
            prefix = p;
        }
    }
    let mut order: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].inode != 0).collect();
    order.sort_by(|&a, &b| {
        let pa = paths[a].as_deref().unwrap_or("");
        let pb = paths[b].as_deref().unwrap_or("");
        pa.split('/').cmp(pb.split('/'))
    });
    let mut entries = Vec::with_capacity(order.len());
    let mut data = Vec::with_capacity(order.len());
    let mut index = HashMap::new();
    let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    for i in order {
        let Some(row) = rows[i].take() else { continue };
        let p = paths[i].clone().unwrap_or_default();
        index.insert(p.clone(), entries.len());
        entries.push(TreeEntry {
            path: p,
            kind: if row.kind == DT_DIR {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            size: row.data.len() as u64,
            mtime: (row.mtime & 0xffff_ffff) as u32,
            version: row.version.max(0) as u64,
            writer: (row.writer & 0xffff_ffff) as u32,
            inode: row.inode,
        });
        data.push(row.data);
    }
    Ok(ConfigDbTree {
        source: path.to_path_buf(),
        entries,
        data,
        index,
        root_mtime,
        root_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type R<'a> = (i64, i64, i64, &'a str, &'a [u8], u32);

    const STORAGE: &[u8] = b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n";

    fn sample() -> Vec<R<'static>> {
        vec![
            (1, 0, DT_REG, "storage.cfg", STORAGE, 1_700_000_001),
            (2, 0, DT_DIR, "nodes", b"", 1_700_000_002),
            (3, 2, DT_DIR, "pve1", b"", 1_700_000_003),
            (4, 3, DT_DIR, "qemu-server", b"", 1_700_000_004),
            (5, 4, DT_REG, "100.conf", b"memory: 2048\n", 1_700_000_005),
            (6, 0, DT_DIR, "priv", b"", 1_700_000_006),
            (
                7,
                6,
                DT_REG,
                "authkey.key",
                b"\x00secret\xff",
                1_700_000_007,
            ),
            (8, 0, DT_REG, "empty.cfg", b"", 1_700_000_008),
        ]
    }

    fn db(rows: &[R<'_>]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.db");
        proxsave_testkit::configdb::write_rows(&path, rows);
        (dir, path)
    }

    fn raw_db(sql: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        (dir, path)
    }

    const SCHEMA: &str =
        "CREATE TABLE tree (inode INTEGER PRIMARY KEY NOT NULL, parent INTEGER NOT NULL,
        version INTEGER NOT NULL, writer INTEGER NOT NULL, mtime INTEGER NOT NULL,
        type INTEGER NOT NULL, name TEXT NOT NULL, data BLOB);";

    #[test]
    fn rebuilds_paths_sizes_times_and_contents() {
        let (_d, path) = db(&sample());
        integrity_check(&path).unwrap();
        let tree = ConfigDbTree::open(&path).unwrap();
        let paths: Vec<&str> = tree.entries().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "empty.cfg",
                "nodes",
                "nodes/pve1",
                "nodes/pve1/qemu-server",
                "nodes/pve1/qemu-server/100.conf",
                "priv",
                "priv/authkey.key",
                "storage.cfg"
            ]
        );
        let st = tree.get("/etc/pve/storage.cfg").unwrap();
        assert_eq!(st.kind, EntryKind::File);
        assert_eq!(st.size, STORAGE.len() as u64);
        assert_eq!(st.mtime, 1_700_000_001);
        assert_eq!(st.full_path(), "/etc/pve/storage.cfg");
        for form in [
            "etc/pve/storage.cfg",
            "/etc/pve/storage.cfg",
            "./etc/pve/storage.cfg",
            "storage.cfg",
        ] {
            assert_eq!(tree.read(form).unwrap(), STORAGE, "{form}");
        }
        assert_eq!(tree.read("priv/authkey.key").unwrap(), b"\x00secret\xff");
        assert_eq!(tree.read("empty.cfg").unwrap(), b"");
        assert_eq!(tree.get("nodes/pve1").unwrap().kind, EntryKind::Dir);
        assert!(matches!(
            tree.read("nodes"),
            Err(ConfigDbError::NotFound { what: "a file", .. })
        ));
        assert!(matches!(
            tree.read("missing.cfg"),
            Err(ConfigDbError::NotFound { what: "there", .. })
        ));
        let top: Vec<&str> = tree
            .list("/etc/pve")
            .unwrap()
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(top, ["empty.cfg", "nodes", "priv", "storage.cfg"]);
        let q: Vec<&str> = tree
            .list("etc/pve/nodes/pve1/qemu-server")
            .unwrap()
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(q, ["nodes/pve1/qemu-server/100.conf"]);
        assert!(tree.list("storage.cfg").is_err());
        assert_eq!(tree.root_mtime(), 1_700_000_008);
        assert_eq!(tree.root_version(), 8);
    }

    #[test]
    fn opening_creates_nothing_beside_the_file() {
        let (d, path) = db(&sample());
        let before = std::fs::read_dir(d.path()).unwrap().count();
        let bytes = std::fs::read(&path).unwrap();
        ConfigDbTree::open(&path).unwrap();
        integrity_check(&path).unwrap();
        let after = std::fs::read_dir(d.path()).unwrap().count();
        assert_eq!(before, after);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_sqlites_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let err = integrity_check(&path).unwrap_err();
        assert!(matches!(err, ConfigDbError::Integrity { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("config.db"), "{msg}");
        assert!(msg.contains("not a database"), "{msg}");
    }

    #[test]
    fn a_damaged_page_fails_the_integrity_check() {
        let (_d, path) = db(&sample());
        // Add enough rows for several pages, then damage an interior b-tree page.
        {
            let conn = Connection::open(&path).unwrap();
            let big = vec![b'x'; 3000];
            for i in 100..200 {
                conn.execute(
                    "INSERT INTO tree VALUES (?1, 0, ?1, 1, 0, 8, ?2, ?3)",
                    rusqlite::params![i, format!("f{i}.cfg"), big],
                )
                .unwrap();
            }
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        assert!(bytes.len() > 3 * page);
        // Page 2's header: turn the b-tree page type into garbage.
        for b in &mut bytes[page..page + 16] {
            *b = 0xee;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = ConfigDbTree::open(&path).unwrap_err();
        assert!(matches!(err, ConfigDbError::Integrity { .. }), "{err}");
    }

    #[test]
    fn a_database_without_the_tree_table_is_refused() {
        let (_d, path) = raw_db("CREATE TABLE other (x INTEGER);");
        let err = integrity_check(&path).unwrap_err();
        assert!(matches!(err, ConfigDbError::NoTree { .. }), "{err}");
        assert!(err.to_string().contains("no `tree` table"));
    }

    #[test]
    fn a_missing_column_is_named() {
        let (_d, path) = raw_db("CREATE TABLE tree (inode INTEGER PRIMARY KEY, parent INTEGER);");
        let err = ConfigDbTree::open(&path).unwrap_err();
        assert!(matches!(err, ConfigDbError::Query { .. }), "{err}");
        assert!(err.to_string().contains("no such column"), "{err}");
    }

    fn refused(rows: &[R<'_>]) -> String {
        let (_d, path) = db(rows);
        let err = ConfigDbTree::open(&path).unwrap_err();
        assert!(matches!(err, ConfigDbError::Entry { .. }), "{err}");
        err.to_string()
    }

    #[test]
    fn bad_rows_are_refused_by_inode_and_name() {
        let m = refused(&[(1, 0, DT_REG, "a/b", b"", 0)]);
        assert!(
            m.contains("inode 1 (name a/b)") && m.contains("one path component"),
            "{m}"
        );
        let m = refused(&[(1, 0, DT_DIR, "..", b"", 0)]);
        assert!(
            m.contains("name ..") && m.contains("one path component"),
            "{m}"
        );
        let m = refused(&[(1, 0, DT_DIR, ".", b"", 0)]);
        assert!(m.contains("one path component"), "{m}");
        let m = refused(&[(1, 0, DT_REG, "", b"", 0)]);
        assert!(m.contains("empty"), "{m}");
        let m = refused(&[(1, 0, 10, "sock", b"", 0)]);
        assert!(m.contains("unknown type 10"), "{m}");
        let m = refused(&[(1, 0, DT_REG, "a", b"", 0), (2, 1, DT_REG, "b", b"", 0)]);
        assert!(
            m.contains("inode 2 (name b)") && m.contains("not a folder"),
            "{m}"
        );
        let m = refused(&[(2, 9, DT_REG, "lost.cfg", b"", 0)]);
        assert!(m.contains("lost.cfg") && m.contains("orphan"), "{m}");
        let m = refused(&[(1, 0, DT_REG, "x", b"", 0), (2, 0, DT_REG, "x", b"", 0)]);
        assert!(m.contains("duplicate name"), "{m}");
        let m = refused(&[
            (1, 2, DT_DIR, "a", b"", 0),
            (2, 1, DT_DIR, "b", b"", 0),
            (3, 0, DT_REG, "ok", b"", 0),
        ]);
        assert!(m.contains("cycle"), "{m}");
        let m = refused(&[(5, 5, DT_DIR, "self", b"", 0)]);
        assert!(m.contains("itself"), "{m}");
    }

    #[test]
    fn a_folder_with_data_and_a_second_root_name_are_refused() {
        let (_d, path) = raw_db(&format!(
            "{SCHEMA} INSERT INTO tree VALUES (1, 0, 1, 1, 0, 4, 'd', x'00');"
        ));
        let err = ConfigDbTree::open(&path).unwrap_err().to_string();
        assert!(err.contains("a folder that holds data"), "{err}");
        let (_d, path) = raw_db(&format!(
            "{SCHEMA} INSERT INTO tree VALUES (0, 0, 1, 1, 0, 8, 'root', NULL);"
        ));
        let err = ConfigDbTree::open(&path).unwrap_err().to_string();
        assert!(err.contains("__version__"), "{err}");
    }

    #[test]
    fn a_text_value_where_an_integer_belongs_is_named() {
        let (_d, path) = raw_db(&format!(
            "{SCHEMA} INSERT INTO tree VALUES (1, 0, 1, 1, 'noon', 8, 'a', NULL);"
        ));
        let err = ConfigDbTree::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("column mtime") && err.contains("inode 1"),
            "{err}"
        );
    }

    #[test]
    fn write_into_writes_the_tree_with_times_and_private_modes() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_d, path) = db(&sample());
        let tree = ConfigDbTree::open(&path).unwrap();
        let out = tempfile::tempdir().unwrap();
        let n = tree.write_into(out.path()).unwrap();
        assert_eq!(n, 4);
        let pve = out.path().join("etc/pve");
        assert_eq!(std::fs::read(pve.join("storage.cfg")).unwrap(), STORAGE);
        assert_eq!(
            std::fs::read(pve.join("nodes/pve1/qemu-server/100.conf")).unwrap(),
            b"memory: 2048\n"
        );
        let m = std::fs::metadata(pve.join("storage.cfg")).unwrap();
        assert_eq!(m.mtime(), 1_700_000_001);
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        let k = std::fs::metadata(pve.join("priv/authkey.key")).unwrap();
        assert_eq!(k.permissions().mode() & 0o7777, 0o600);
        let p = std::fs::metadata(pve.join("priv")).unwrap();
        assert_eq!(p.permissions().mode() & 0o7777, 0o700);
        assert_eq!(p.mtime(), 1_700_000_006);
        assert_eq!(
            std::fs::metadata(pve.join("nodes/pve1")).unwrap().mtime(),
            1_700_000_003
        );
        // A second write into the same folder refuses to overwrite.
        let err = tree.write_into(out.path()).unwrap_err();
        assert!(matches!(err, ConfigDbError::Write { .. }), "{err}");
    }

    #[test]
    fn write_selected_writes_the_chosen_entries_and_their_folders() {
        let (_d, path) = db(&sample());
        let tree = ConfigDbTree::open(&path).unwrap();
        let out = tempfile::tempdir().unwrap();
        let n = tree
            .write_selected(out.path(), &|e| {
                e.path.starts_with("nodes/pve1/qemu-server/")
            })
            .unwrap();
        assert_eq!(n, 1);
        let pve = out.path().join("etc/pve");
        assert_eq!(
            std::fs::read(pve.join("nodes/pve1/qemu-server/100.conf")).unwrap(),
            b"memory: 2048\n"
        );
        assert!(!pve.join("storage.cfg").exists());
        assert!(!pve.join("priv").exists());
    }

    #[test]
    fn export_tree_writes_etc_pve_and_errors_can_name_the_backup_copy() {
        let (_d, path) = db(&sample());
        let out = tempfile::tempdir().unwrap();
        let (tree, n) = export_tree(&path, out.path()).unwrap();
        assert_eq!(n, 4);
        assert_eq!(tree.entries().len(), 8);
        assert_eq!(
            std::fs::read(out.path().join("etc/pve/storage.cfg")).unwrap(),
            STORAGE
        );
        let (_d, bad) = raw_db("CREATE TABLE other (x INTEGER);");
        let err = export_tree(&bad, out.path())
            .unwrap_err()
            .shown_as("/var/lib/pve-cluster/config.db in b.tar.xz");
        assert_eq!(
            err.to_string(),
            "/var/lib/pve-cluster/config.db in b.tar.xz: no `tree` table: not a pmxcfs config.db \
             (SQLite: no such table: tree)"
        );
    }

    #[test]
    fn write_into_never_follows_a_planted_symlink() {
        let (_d, path) = db(&sample());
        let tree = ConfigDbTree::open(&path).unwrap();
        let out = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(out.path().join("etc/pve")).unwrap();
        std::os::unix::fs::symlink(outside.path(), out.path().join("etc/pve/nodes")).unwrap();
        assert!(tree.write_into(out.path()).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn relative_accepts_the_etc_pve_forms() {
        assert_eq!(relative("/etc/pve/a/b").as_deref(), Some("a/b"));
        assert_eq!(relative("etc/pve/a").as_deref(), Some("a"));
        assert_eq!(relative("./etc/pve//a/").as_deref(), Some("a"));
        assert_eq!(relative("/etc/pve").as_deref(), Some(""));
        assert_eq!(relative("a/./b").as_deref(), Some("a/b"));
        assert_eq!(relative("/etc/hosts"), None);
        assert_eq!(relative("etc/hosts"), None);
        assert_eq!(relative("/var/x"), None);
        assert_eq!(relative("etc/pve/../x"), None);
    }

    fn arb_tree() -> impl Strategy<Value = Vec<(i64, i64, bool, String, Vec<u8>, u32)>> {
        // Up to 25 entries; each one's parent is 0 or an earlier folder.
        proptest::collection::vec(
            (
                any::<bool>(),
                "[a-z0-9._-]{1,8}",
                proptest::collection::vec(any::<u8>(), 0..64),
                any::<u32>(),
                any::<prop::sample::Index>(),
            ),
            0..25,
        )
        .prop_map(|items| {
            let mut rows = Vec::new();
            let mut dirs: Vec<i64> = vec![0];
            for (i, (is_dir, name, data, mtime, pick)) in items.into_iter().enumerate() {
                let inode = i as i64 + 1;
                let parent = dirs[pick.index(dirs.len())];
                // Unique per inode; never `.` or `..`.
                let name = format!("{name}{inode}");
                if is_dir {
                    dirs.push(inode);
                }
                rows.push((
                    inode,
                    parent,
                    is_dir,
                    name,
                    if is_dir { vec![] } else { data },
                    mtime,
                ));
            }
            rows
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn any_valid_tree_round_trips(rows in arb_tree(), shuffle in any::<u64>()) {
            let mut rows = rows;
            // Row order in the table does not matter (children may come before parents).
            let n = rows.len();
            if n > 1 {
                for i in 0..n {
                    let j = ((shuffle.wrapping_mul(i as u64 + 7)) % n as u64) as usize;
                    rows.swap(i, j);
                }
            }
            let table: Vec<R<'_>> = rows
                .iter()
                .map(|(i, p, d, name, data, m)| {
                    (*i, *p, if *d { DT_DIR } else { DT_REG }, name.as_str(), data.as_slice(), *m)
                })
                .collect();
            let (_d, path) = db(&table);
            let tree = ConfigDbTree::open(&path).unwrap();
            prop_assert_eq!(tree.entries().len(), rows.len());
            for (inode, _p, is_dir, name, data, mtime) in &rows {
                let e = tree.entries().iter().find(|e| e.inode == *inode).unwrap();
                prop_assert!(e.path.ends_with(name.as_str()));
                prop_assert_eq!(e.mtime, *mtime);
                prop_assert_eq!(e.kind == EntryKind::Dir, *is_dir);
                let got = tree.get(&e.path).unwrap();
                prop_assert_eq!(got.inode, *inode);
                if !is_dir {
                    prop_assert_eq!(tree.read(&e.path).unwrap(), data.as_slice());
                    prop_assert_eq!(e.size, data.len() as u64);
                }
            }
            // A folder's entries come right after it.
            for (i, e) in tree.entries().iter().enumerate() {
                if let Some((parent, _)) = e.path.rsplit_once('/') {
                    let pi = tree.entries().iter().position(|x| x.path == parent).unwrap();
                    prop_assert!(pi < i);
                }
            }
            // Materialised, the folder holds exactly the tree: same files, bytes and times.
            let out = tempfile::tempdir().unwrap();
            let files = tree.write_into(out.path()).unwrap();
            prop_assert_eq!(files, rows.iter().filter(|r| !r.2).count());
            let pve = out.path().join("etc/pve");
            for e in tree.entries() {
                use std::os::unix::fs::MetadataExt;
                let p = pve.join(&e.path);
                let m = std::fs::symlink_metadata(&p).unwrap();
                prop_assert_eq!(m.is_dir(), e.kind == EntryKind::Dir);
                prop_assert_eq!(m.mtime(), i64::from(e.mtime));
                if e.kind == EntryKind::File {
                    prop_assert_eq!(std::fs::read(&p).unwrap(), tree.read(&e.path).unwrap());
                }
            }
        }

        #[test]
        fn relative_never_yields_dot_dot(s in "[./a-z]{0,20}") {
            if let Some(r) = relative(&s) {
                prop_assert!(!r.split('/').any(|c| c == ".." || c == "."));
                prop_assert!(!r.starts_with('/'));
            }
        }
    }
}
