//! Real-schema pmxcfs `config.db` files for tests, written with the SQLite library.
//!
//! The schema is pve-cluster's (`src/pmxcfs/database.c`): one table `tree(inode, parent,
//! version, writer, mtime, type, name, data)`, the root's `__version__` row at inode 0,
//! folders `type` 4 with no data, files `type` 8. As pmxcfs does, the database is put in WAL
//! journal mode (the file header says so) and checkpointed on close, so a reader sees the
//! same header a node's copy has.
//!
//! [`ConfigDb`] builds one from `/etc/pve` paths (parents created); [`write_rows`] writes
//! raw rows, including ones pmxcfs would refuse; [`without_tree`] and [`damaged`] make the
//! broken databases tests need.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::Connection;

/// pmxcfs's `CREATE TABLE` statement.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tree (
  inode INTEGER PRIMARY KEY NOT NULL,
  parent INTEGER NOT NULL CHECK(typeof(parent)=='integer'),
  version INTEGER NOT NULL CHECK(typeof(version)=='integer'),
  writer INTEGER NOT NULL CHECK(typeof(writer)=='integer'),
  mtime INTEGER NOT NULL CHECK(typeof(mtime)=='integer'),
  type INTEGER NOT NULL CHECK(typeof(type)=='integer'),
  name TEXT NOT NULL,
  data BLOB);";

/// `type` of a folder row.
pub const DT_DIR: i64 = 4;
/// `type` of a file row.
pub const DT_REG: i64 = 8;

/// A raw row: `(inode, parent, type, name, data, mtime)`; version = inode, writer 1.
pub type Row<'a> = (i64, i64, i64, &'a str, &'a [u8], u32);

/// Writes a `config.db` at `path` (must not exist) with the schema, a `__version__` row
/// (version = the highest inode, mtime = the newest) and `rows` as given: nothing is
/// checked, so trees pmxcfs would refuse (a dangling parent, a duplicate name) can be made.
///
/// # Panics
/// On an SQLite error (a test fixture).
pub fn write_rows(path: &Path, rows: &[Row<'_>]) {
    assert!(!path.exists(), "{} exists", path.display());
    let conn = Connection::open(path).expect("create config.db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("journal_mode=WAL");
    conn.execute_batch(SCHEMA).expect("schema");
    let max_version = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let max_mtime = rows.iter().map(|r| r.5).max().unwrap_or(0);
    conn.execute(
        "INSERT INTO tree (inode, parent, version, writer, mtime, type, name, data)
         VALUES (0, 0, ?1, 0, ?2, 8, '__version__', NULL)",
        rusqlite::params![max_version, max_mtime],
    )
    .expect("version row");
    for (inode, parent, kind, name, data, mtime) in rows {
        let data: Option<&[u8]> = if *kind == DT_DIR { None } else { Some(data) };
        conn.execute(
            "INSERT INTO tree (inode, parent, version, writer, mtime, type, name, data)
             VALUES (?1, ?2, ?1, 1, ?3, ?4, ?5, ?6)",
            rusqlite::params![inode, parent, mtime, kind, name, data],
        )
        .expect("insert row");
    }
    conn.close().map_err(|(_, e)| e).expect("close config.db");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert!(
        !Path::new(&wal).exists(),
        "the WAL was not checkpointed on close"
    );
}

/// Writes an SQLite database at `path` that has no `tree` table (another application's).
///
/// # Panics
/// On an SQLite error.
pub fn without_tree(path: &Path) {
    let conn = Connection::open(path).expect("create db");
    conn.execute_batch("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT); INSERT INTO settings VALUES ('a', 'b');")
        .expect("schema");
    conn.close().map_err(|(_, e)| e).expect("close db");
}

/// `db` (a database's bytes) with its second page overwritten by garbage: SQLite still opens
/// it, `PRAGMA integrity_check` does not answer `ok` (the tree table's b-tree page is
/// damaged). `db` must hold at least three pages.
///
/// # Panics
/// When `db` is too small.
pub fn damaged(db: &[u8]) -> Vec<u8> {
    let page = usize::from(u16::from_be_bytes([db[16], db[17]]));
    let page = if page == 1 { 65536 } else { page };
    assert!(db.len() >= 3 * page, "a damaged db needs three pages");
    let mut out = db.to_vec();
    for b in &mut out[page..page + 16] {
        *b = 0xee;
    }
    out
}

/// A `config.db` under construction from `/etc/pve` paths; inodes are given in order.
#[derive(Clone, Debug, Default)]
pub struct ConfigDb {
    rows: Vec<(i64, i64, i64, String, Vec<u8>, u32)>,
    inodes: HashMap<String, i64>,
}

impl ConfigDb {
    /// An empty tree.
    pub fn new() -> ConfigDb {
        ConfigDb::default()
    }

    fn rel(path: &str) -> String {
        let p = path.trim_start_matches('/');
        p.strip_prefix("etc/pve/").unwrap_or(p).to_string()
    }

    fn parent_inode(&mut self, rel: &str, mtime: u32) -> i64 {
        match rel.rsplit_once('/') {
            Some((parent, _)) => {
                self.dir(parent, mtime);
                self.inodes[parent]
            }
            None => 0,
        }
    }

    /// Adds a folder (`nodes/pve1` or `/etc/pve/nodes/pve1`; parents created with the same
    /// mtime). Nothing happens when it exists.
    pub fn dir(&mut self, path: &str, mtime: u32) -> &mut Self {
        let rel = ConfigDb::rel(path);
        if self.inodes.contains_key(&rel) {
            return self;
        }
        let parent = self.parent_inode(&rel, mtime);
        let inode = self.rows.len() as i64 + 1;
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        self.rows
            .push((inode, parent, DT_DIR, name, Vec::new(), mtime));
        self.inodes.insert(rel, inode);
        self
    }

    /// Adds a file with `data` (parents created with the same mtime).
    pub fn file(&mut self, path: &str, data: &[u8], mtime: u32) -> &mut Self {
        let rel = ConfigDb::rel(path);
        assert!(!self.inodes.contains_key(&rel), "{rel} added twice");
        let parent = self.parent_inode(&rel, mtime);
        let inode = self.rows.len() as i64 + 1;
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
        self.rows
            .push((inode, parent, DT_REG, name, data.to_vec(), mtime));
        self.inodes.insert(rel, inode);
        self
    }

    /// The inode given to `path`.
    pub fn inode(&self, path: &str) -> Option<i64> {
        self.inodes.get(&ConfigDb::rel(path)).copied()
    }

    /// Adds a raw row as given (no check): for trees pmxcfs refuses.
    pub fn raw(
        &mut self,
        inode: i64,
        parent: i64,
        kind: i64,
        name: &str,
        data: &[u8],
        mtime: u32,
    ) -> &mut Self {
        self.rows
            .push((inode, parent, kind, name.to_string(), data.to_vec(), mtime));
        self
    }

    /// Writes the database at `path` (must not exist).
    pub fn write(&self, path: &Path) {
        let rows: Vec<Row<'_>> = self
            .rows
            .iter()
            .map(|(i, p, k, n, d, m)| (*i, *p, *k, n.as_str(), d.as_slice(), *m))
            .collect();
        write_rows(path, &rows);
    }

    /// The database as a copy taken from a running node would be: `(config.db,
    /// config.db-wal)` where the main file holds every row but the last `in_wal` ones and
    /// those are committed only in the write-ahead log (copied while the writer is open and
    /// before any checkpoint).
    pub fn bytes_with_wal(&self, in_wal: usize) -> (Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.db");
        let keep = self.rows.len().saturating_sub(in_wal);
        let rows: Vec<Row<'_>> = self.rows[..keep]
            .iter()
            .map(|(i, p, k, n, d, m)| (*i, *p, *k, n.as_str(), d.as_slice(), *m))
            .collect();
        write_rows(&path, &rows);
        let conn = Connection::open(&path).expect("open config.db");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no autocheckpoint");
        for (inode, parent, kind, name, data, mtime) in &self.rows[keep..] {
            let data: Option<&[u8]> = if *kind == DT_DIR { None } else { Some(data) };
            conn.execute(
                "INSERT INTO tree (inode, parent, version, writer, mtime, type, name, data)
                 VALUES (?1, ?2, ?1, 1, ?3, ?4, ?5, ?6)",
                rusqlite::params![inode, parent, mtime, kind, name, data],
            )
            .expect("insert row");
        }
        let main = std::fs::read(&path).expect("read config.db");
        let wal = std::fs::read(dir.path().join("config.db-wal")).expect("read config.db-wal");
        drop(conn);
        (main, wal)
    }

    /// The database's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.db");
        self.write(&path);
        std::fs::read(&path).expect("read config.db")
    }

    /// A two-node cluster's `/etc/pve` as pmxcfs stores it: `storage.cfg` (the same bytes as
    /// [`crate::fixture::HostTree::pve_node`]'s), `datacenter.cfg`, `user.cfg`,
    /// `corosync.conf`, `priv/authkey.key`, guests on `pve1` and `pve2`, an empty
    /// `firewall` folder. Times count from 1 721 780 000 (2024-07-24).
    pub fn pve_cluster() -> ConfigDb {
        const T: u32 = 1_721_780_000;
        let mut db = ConfigDb::new();
        db.file(
            "storage.cfg",
            b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n",
            T + 10,
        )
        .file("datacenter.cfg", b"keyboard: en-us\n", T + 20)
        .file(
            "user.cfg",
            b"user:root@pam:1:0:::root@example.lan:::\npool:prod:Production guests::\n",
            T + 30,
        )
        .file(
            "corosync.conf",
            b"totem {\n  cluster_name: lab\n  version: 2\n}\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    ring0_addr: 192.0.2.10\n  }\n  node {\n    name: pve2\n    nodeid: 2\n    ring0_addr: 192.0.2.11\n  }\n}\n",
            T + 40,
        )
        .file(
            "priv/authkey.key",
            b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            T + 50,
        )
        .file(
            "nodes/pve1/qemu-server/100.conf",
            b"boot: order=scsi0\ncores: 4\nmemory: 8192\nname: web01\n",
            T + 60,
        )
        .file(
            "nodes/pve1/lxc/200.conf",
            b"arch: amd64\nhostname: ct200\nmemory: 512\nunprivileged: 1\n",
            T + 70,
        )
        .file(
            "nodes/pve2/qemu-server/101.conf",
            b"cores: 2\nmemory: 2048\nname: db01\n",
            T + 80,
        )
        .dir("firewall", T + 90);
        db
    }
}
