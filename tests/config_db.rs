//! `ls`, `cat`, `extract` and `diff` with `--from-config-db`: `/etc/pve` read from the
//! backup's `var/lib/pve-cluster/config.db`, a real-schema pmxcfs database written with the
//! SQLite library, inside a backup made with GNU tar, xz and sha256sum.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{assert_ok, code, run, stderr, stdout};
use proxsave_testkit::configdb::{self, ConfigDb, DT_DIR, DT_REG};
use proxsave_testkit::fixture::{BackupSpec, HostTree, gnu_tar_pax, make_backup, pseudo_random};
use proxsave_testkit::require_tools;

const STORAGE: &[u8] = b"dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n";

/// A backup of a PVE node whose `config.db` (and `config.db-wal`, when given) are these bytes.
fn backup_with(dir: &Path, db: Option<&[u8]>, wal: Option<&[u8]>) -> PathBuf {
    let tree = dir.join("host");
    HostTree::pve_node(&tree);
    let at = tree.join("var/lib/pve-cluster/config.db");
    match db {
        Some(bytes) => fs::write(&at, bytes).unwrap(),
        None => fs::remove_file(&at).unwrap(),
    }
    if let Some(wal) = wal {
        fs::write(tree.join("var/lib/pve-cluster/config.db-wal"), wal).unwrap();
    }
    let made = make_backup(&gnu_tar_pax(&tree), &BackupSpec::default());
    let out = dir.join("backups");
    fs::create_dir_all(&out).unwrap();
    made.write_raw(&out)
}

struct Case {
    dir: tempfile::TempDir,
    backup: PathBuf,
    work: PathBuf,
}

impl Case {
    fn new(db: Option<&[u8]>) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let backup = backup_with(dir.path(), db, None);
        let work = dir.path().join("work");
        Case { dir, backup, work }
    }

    fn cluster() -> Case {
        Case::new(Some(&ConfigDb::pve_cluster().bytes()))
    }

    /// `proxsave <cmd> --backup B --from-config-db --work-dir W <rest…>`.
    fn run(&self, cmd: &str, rest: &[&str]) -> std::process::Output {
        let mut args = vec![
            cmd,
            "--backup",
            self.backup.to_str().unwrap(),
            "--from-config-db",
            "--work-dir",
            self.work.to_str().unwrap(),
        ];
        args.extend_from_slice(rest);
        run(&args)
    }

    /// The work folder holds nothing after the command (the private copy was removed).
    fn assert_work_dir_clean(&self) {
        let left: Vec<_> = fs::read_dir(&self.work)
            .map(|it| it.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in the work dir: {left:?}");
    }
}

#[test]
fn ls_lists_etc_pve_paths_sizes_and_times() {
    require_tools!("tar", "xz", "sha256sum");
    let case = Case::cluster();
    let backups = case.backup.parent().unwrap().to_path_buf();
    let before = HostSnapshot::of(&backups);
    let out = case.run("ls", &[]);
    assert_ok(&out);
    // Nothing was created or changed beside the backup (no -shm, no -wal, no copy).
    assert_eq!(HostSnapshot::of(&backups), before);
    assert_eq!(
        stdout(&out),
        "/etc/pve/corosync.conf\n\
         /etc/pve/datacenter.cfg\n\
         /etc/pve/firewall\n\
         /etc/pve/nodes\n\
         /etc/pve/nodes/pve1\n\
         /etc/pve/nodes/pve1/lxc\n\
         /etc/pve/nodes/pve1/lxc/200.conf\n\
         /etc/pve/nodes/pve1/qemu-server\n\
         /etc/pve/nodes/pve1/qemu-server/100.conf\n\
         /etc/pve/nodes/pve2\n\
         /etc/pve/nodes/pve2/qemu-server\n\
         /etc/pve/nodes/pve2/qemu-server/101.conf\n\
         /etc/pve/priv\n\
         /etc/pve/priv/authkey.key\n\
         /etc/pve/storage.cfg\n\
         /etc/pve/user.cfg\n"
    );
    case.assert_work_dir_clean();

    // Long listing: pmxcfs's modes and owner, the stored size and time (TZ=UTC).
    let out = case.run("ls", &["-l", "/etc/pve/storage.cfg", "etc/pve/priv"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!(
            "drwx------ root/www-data          0 2024-07-24 00:14 /etc/pve/priv\n\
             -rw------- root/www-data         87 2024-07-24 00:14 /etc/pve/priv/authkey.key\n\
             -rw-r----- root/www-data {:>10} 2024-07-24 00:13 /etc/pve/storage.cfg\n",
            STORAGE.len()
        )
    );

    // JSON as other `ls` output.
    let out = case.run("ls", &["--json", "nodes/pve2"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], "proxsave/ls/v1");
    assert_eq!(v["from"], "/var/lib/pve-cluster/config.db");
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    let entries = v["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "/etc/pve/nodes/pve2",
            "/etc/pve/nodes/pve2/qemu-server",
            "/etc/pve/nodes/pve2/qemu-server/101.conf"
        ]
    );
    let conf = &entries[2];
    assert_eq!(conf["kind"], "file");
    assert_eq!(conf["size"], 33);
    assert_eq!(conf["mtime"]["secs"], 1_721_780_080);
    assert_eq!(conf["mode"], 0o640);

    // A pattern matching nothing: exit 1, said so.
    let out = case.run("ls", &["/etc/pve/nodes/pve9"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("no entry of /etc/pve"),
        "{}",
        stderr(&out)
    );
    case.assert_work_dir_clean();
}

#[test]
fn cat_prints_storage_cfg_byte_for_byte() {
    require_tools!("tar", "xz", "sha256sum");
    let case = Case::cluster();
    for form in ["/etc/pve/storage.cfg", "etc/pve/storage.cfg", "storage.cfg"] {
        let out = case.run("cat", &[form]);
        assert_ok(&out);
        assert_eq!(out.stdout, STORAGE, "{form}");
    }
    let out = case.run("cat", &["/etc/pve/nodes/pve2/qemu-server/101.conf"]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"cores: 2\nmemory: 2048\nname: db01\n");
    // A folder and a missing file are refused by name.
    let out = case.run("cat", &["/etc/pve/nodes"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("/etc/pve/nodes is not a file"),
        "{}",
        stderr(&out)
    );
    let out = case.run("cat", &["/etc/pve/missing.cfg"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("/var/lib/pve-cluster/config.db in ") && err.contains("/etc/pve/missing.cfg"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    case.assert_work_dir_clean();
}

#[test]
fn extract_writes_etc_pve_with_pmxcfs_modes_and_stored_times() {
    require_tools!("tar", "xz", "sha256sum");
    let case = Case::cluster();
    let to = case.dir.path().join("out");
    let out = case.run("extract", &["--to", to.to_str().unwrap()]);
    assert_ok(&out);
    let pve = to.join("etc/pve");
    assert_eq!(fs::read(pve.join("storage.cfg")).unwrap(), STORAGE);
    let m = fs::metadata(pve.join("storage.cfg")).unwrap();
    assert_eq!(m.mtime(), 1_721_780_010);
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    let key = fs::metadata(pve.join("priv/authkey.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        fs::metadata(pve.join("priv")).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert!(pve.join("firewall").is_dir());
    assert_eq!(
        fs::read(pve.join("nodes/pve1/lxc/200.conf")).unwrap(),
        b"arch: amd64\nhostname: ct200\nmemory: 512\nunprivileged: 1\n"
    );
    case.assert_work_dir_clean();

    // Selected paths only, with the folders holding them; JSON report.
    let to2 = case.dir.path().join("out2");
    let out = case.run(
        "extract",
        &[
            "--to",
            to2.to_str().unwrap(),
            "--json",
            "/etc/pve/nodes/pve1/qemu-server",
        ],
    );
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], "proxsave/extract/v1");
    assert_eq!(v["files_written"], 1);
    let mut written = Vec::new();
    collect(&to2, &to2, &mut written);
    assert_eq!(
        written,
        [
            "etc",
            "etc/pve",
            "etc/pve/nodes",
            "etc/pve/nodes/pve1",
            "etc/pve/nodes/pve1/qemu-server",
            "etc/pve/nodes/pve1/qemu-server/100.conf"
        ]
    );

    // A destination that is not empty is refused and left alone.
    let out = case.run("extract", &["--to", to2.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            collect(base, &p, out);
        }
    }
}

#[test]
fn diff_shows_a_changed_file_against_the_live_etc_pve() {
    require_tools!("tar", "xz", "sha256sum");
    let case = Case::cluster();
    // The live /etc/pve: the backup's, then storage.cfg edited, the key rotated and pve2's
    // guest gone.
    let root = case.dir.path().join("root");
    assert_ok(&case.run("extract", &["--to", root.to_str().unwrap()]));
    let pve = root.join("etc/pve");
    let live_storage = String::from_utf8(STORAGE.to_vec())
        .unwrap()
        .replace("content iso,vztmpl,backup", "content iso,backup");
    fs::write(pve.join("storage.cfg"), &live_storage).unwrap();
    fs::write(
        pve.join("priv/authkey.key"),
        b"-----BEGIN PRIVATE KEY-----\nROTATED\n",
    )
    .unwrap();
    fs::remove_dir_all(pve.join("nodes/pve2")).unwrap();
    let before = HostSnapshot::of(&root);
    let out = case.run("diff", &["--root", root.to_str().unwrap()]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("--- /etc/pve/storage.cfg (current)\n+++ /etc/pve/storage.cfg (backup)\n"),
        "{text}"
    );
    assert!(
        text.contains("-\tcontent iso,backup\n+\tcontent iso,vztmpl,backup\n"),
        "{text}"
    );
    assert!(
        text.contains("new file: /etc/pve/nodes/pve2/qemu-server/101.conf"),
        "{text}"
    );
    assert!(
        text.contains("differs: /etc/pve/priv/authkey.key (secret file"),
        "{text}"
    );
    assert!(
        !text.contains("ROTATED") && !text.contains("MIIEvQ"),
        "{text}"
    );
    assert!(!text.contains("datacenter.cfg"), "{text}");
    let err = stderr(&out);
    assert!(
        err.contains("8 files of /var/lib/pve-cluster/config.db in ")
            && err.contains("1 new, 2 changed, 5 unchanged"),
        "{err}"
    );
    // Read-only: the root is as it was.
    assert_eq!(HostSnapshot::of(&root), before);
    case.assert_work_dir_clean();

    let out = case.run("diff", &["--root", root.to_str().unwrap(), "--json"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["schema"], "proxsave/diff/v1");
    let storage = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/pve/storage.cfg")
        .unwrap();
    assert_eq!(storage["change"], "changed");
    assert!(
        storage["diff"]
            .as_str()
            .unwrap()
            .contains("+\tcontent iso,vztmpl,backup")
    );

    // The restore's selection flags do not apply here.
    let out = case.run(
        "diff",
        &["--root", root.to_str().unwrap(), "--mode", "full"],
    );
    assert_eq!(code(&out), 2);
}

/// Content and mtimes of every file under a folder.
#[derive(Debug, PartialEq)]
struct HostSnapshot(Vec<(String, Vec<u8>, i64)>);

impl HostSnapshot {
    fn of(root: &Path) -> HostSnapshot {
        let mut paths = Vec::new();
        collect(root, root, &mut paths);
        HostSnapshot(
            paths
                .into_iter()
                .map(|p| {
                    let full = root.join(&p);
                    let m = fs::symlink_metadata(&full).unwrap();
                    let data = if m.is_file() {
                        fs::read(&full).unwrap()
                    } else {
                        Vec::new()
                    };
                    (p, data, m.mtime())
                })
                .collect(),
        )
    }
}

#[test]
fn a_config_db_with_committed_writes_in_its_wal_is_read_with_them() {
    require_tools!("tar", "xz", "sha256sum");
    let mut db = ConfigDb::pve_cluster();
    db.file(
        "nodes/pve1/qemu-server/102.conf",
        b"memory: 1024\n",
        1_721_790_000,
    );
    let (main, wal) = db.bytes_with_wal(1);
    let dir = tempfile::tempdir().unwrap();
    let backup = backup_with(dir.path(), Some(&main), Some(&wal));
    let work = dir.path().join("work");
    let out = run([
        "cat",
        "--backup",
        backup.to_str().unwrap(),
        "--from-config-db",
        "--work-dir",
        work.to_str().unwrap(),
        "/etc/pve/nodes/pve1/qemu-server/102.conf",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, b"memory: 1024\n");
    // The private copy, its log and SQLite's -shm are gone.
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0);
}

/// Runs `ls`, `cat`, `extract` and `diff` on a backup whose config.db is `db`; each must
/// fail with exit 1 and a message naming the file and holding `expect`, create nothing at
/// the extraction target and leave the work folder clean.
fn assert_refused(db: Option<&[u8]>, expect: &[&str]) {
    let case = Case::new(db);
    let to = case.dir.path().join("never");
    let root = case.dir.path().join("root");
    fs::create_dir_all(root.join("etc/pve")).unwrap();
    for (cmd, rest) in [
        ("ls", vec!["-l"]),
        ("cat", vec!["/etc/pve/storage.cfg"]),
        ("extract", vec!["--to", to.to_str().unwrap()]),
        ("diff", vec!["--root", root.to_str().unwrap()]),
    ] {
        let out = case.run(cmd, &rest);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{cmd}: {err}");
        assert!(out.stdout.is_empty(), "{cmd}: {}", stdout(&out));
        for e in expect {
            assert!(err.contains(e), "{cmd}: {err:?} lacks {e:?}");
        }
        assert!(!to.exists(), "{cmd} created the destination");
        case.assert_work_dir_clean();
    }
}

const NAMED: &str = "proxsave: error: /var/lib/pve-cluster/config.db in pve1.example.lan-backup-";

#[test]
fn garbage_bytes_are_refused_with_sqlites_message() {
    require_tools!("tar", "xz", "sha256sum");
    assert_refused(
        Some(&pseudo_random(96 * 1024, 7)),
        &[
            NAMED,
            "SQLite integrity check failed: file is not a database",
        ],
    );
}

#[test]
fn a_damaged_page_is_refused_by_the_integrity_check() {
    require_tools!("tar", "xz", "sha256sum");
    let mut db = ConfigDb::pve_cluster();
    for i in 0..40 {
        db.file(
            &format!("nodes/pve1/qemu-server/{}.conf", 300 + i),
            &[b'x'; 2000],
            1_721_790_000,
        );
    }
    let damaged = configdb::damaged(&db.bytes());
    assert_refused(Some(&damaged), &[NAMED, "SQLite integrity check failed: "]);
}

#[test]
fn a_database_without_the_tree_table_is_refused() {
    require_tools!("tar", "xz", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    configdb::without_tree(&path);
    assert_refused(
        Some(&fs::read(&path).unwrap()),
        &[
            NAMED,
            "no `tree` table: not a pmxcfs config.db (SQLite: no such table: tree)",
        ],
    );
}

#[test]
fn a_dangling_parent_is_refused_by_inode_and_name() {
    require_tools!("tar", "xz", "sha256sum");
    let mut db = ConfigDb::new();
    db.file("storage.cfg", STORAGE, 1_721_780_010)
        .raw(40, 0, DT_DIR, "nodes", b"", 1_721_780_020)
        .raw(41, 99, DT_REG, "lost.conf", b"memory: 1\n", 1_721_780_030);
    assert_refused(
        Some(&db.bytes()),
        &[
            NAMED,
            "inode 41 (name lost.conf)",
            "orphan: its parent inode 99",
        ],
    );
}

#[test]
fn a_backup_without_config_db_says_so() {
    require_tools!("tar", "xz", "sha256sum");
    let case = Case::new(None);
    let out = case.run("ls", &[]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("the backup holds no /var/lib/pve-cluster/config.db"),
        "{err}"
    );
    case.assert_work_dir_clean();
    // Without the flag, --work-dir is not accepted.
    let out = run([
        "ls",
        "--backup",
        case.backup.to_str().unwrap(),
        "--work-dir",
        "/tmp",
    ]);
    assert_eq!(code(&out), 2);
}
