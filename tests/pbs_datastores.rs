//! PBS datastores end to end: the real binary restores a PBS backup with three datastores
//! onto a fresh PBS root:
//!
//! * `main` at `/mnt/ds1/main`: a test filesystem is mounted on `<root>/mnt/ds1` and holds an
//!   existing chunk store — only its definition comes back, its files are not touched;
//! * `fresh` at `/mnt/ds2`: an empty test filesystem is mounted there — it gets the chunk
//!   store PBS creates (65 536 prefix folders, `.lock`, owners from the *root's* `/etc/passwd`);
//! * `offsite` at `/mnt/usb-offsite/pbs`: nothing is mounted — it is deferred into
//!   `datastore.cfg.deferred` and its folder is never created.
//!
//! The backup's `datastore.cfg` is hand-edited (a property without indentation, a comment):
//! the normaliser fixes it and the installed file is what PBS loads.
//!
//! The mounts are bind mounts of two folders of the test ("the disks") made in a private mount
//! namespace (`unshare -m`) that proxsave runs in: they vanish with it on every path, what
//! proxsave wrote through them stays in the disk folders, and the folders under them in the
//! root (the root filesystem) show that nothing was written there. They need root and
//! `unshare(1)`: elsewhere the tests skip with a message (and fail under CI).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{DEFAULT_COMMANDS, FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::pbs::{PbsDouble, ids, props};
use proxsave_testkit::require_tools;

/// The backup's `datastore.cfg`, as a hand edit left it.
const BACKUP_DATASTORE_CFG: &str = "datastore: main\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/ds1/main\n\ndatastore: fresh\npath /mnt/ds2\n# the USB disk, usually unplugged\n\ndatastore: offsite\n\tkeep-daily 7\n\tpath /mnt/usb-offsite/pbs\n";

/// `backup:backup` in the target root: deliberately not Debian's 34, so a hard-coded id or
/// the test machine's own `/etc/passwd` would show.
const BACKUP_UID: u32 = 4242;
const BACKUP_GID: u32 = 4343;

/// True when bind mounts in a private mount namespace work here (root and `unshare`).
fn can_mount() -> bool {
    let ok = proxsave_testkit::fixture::is_root()
        && Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-euc"])
            .arg("d=$(mktemp -d); mount --bind \"$d\" \"$d\"; umount \"$d\"; rmdir \"$d\"")
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !proxsave_testkit::tools_required(),
            "the PBS datastore tests need root and unshare(1) (mount namespaces) in CI"
        );
        eprintln!("skipping: needs root and unshare -m (bind mounts of test disks)");
    }
    ok
}

struct Lab {
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    dir: tempfile::TempDir,
    /// The "disk" mounted on `<root>/mnt/ds1` (holds the existing chunk store `main`).
    disk1: PathBuf,
    /// The empty "disk" mounted on `<root>/mnt/ds2`.
    disk2: PathBuf,
}

impl Lab {
    /// A lab whose `proxmox-backup-manager` is missing (the PBS API is down).
    fn new() -> Lab {
        let cmds: Vec<&str> = DEFAULT_COMMANDS
            .iter()
            .copied()
            .filter(|c| *c != "proxmox-backup-manager")
            .collect();
        Lab::with_backup_cfg(BACKUP_DATASTORE_CFG, &cmds)
    }

    fn with_backup_cfg(cfg: &str, cmds: &[&str]) -> Lab {
        Lab::with_backup_files(&[("datastore.cfg", cfg)], cmds)
    }

    /// A lab whose backup has these files in `/etc/proxmox-backup`.
    fn with_backup_files(files: &[(&str, &str)], cmds: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::with_commands(dir.path().join("fake"), cmds);
        let mut source = HostTree::pbs_node(dir.path().join("source"));
        for (name, text) in files {
            source.file(
                &format!("etc/proxmox-backup/{name}"),
                text.as_bytes(),
                0o640,
                (0, 34),
            );
        }
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pbs(dir.path().join("root"));
        let root = target.root().to_path_buf();
        for (file, from, to) in [
            ("etc/passwd", "backup:x:34:34:", "backup:x:4242:4343:"),
            ("etc/group", "backup:x:34:", "backup:x:4343:"),
        ] {
            let text = fs::read_to_string(root.join(file)).unwrap();
            assert!(text.contains(from), "{file}: {text}");
            fs::write(root.join(file), text.replace(from, to)).unwrap();
        }
        // The mount points on the root filesystem, and the two disks.
        fs::create_dir_all(root.join("mnt/ds1")).unwrap();
        fs::create_dir_all(root.join("mnt/ds2")).unwrap();
        let disk1 = dir.path().join("disk1");
        let disk2 = dir.path().join("disk2");
        fs::create_dir(&disk2).unwrap();
        // An existing chunk store on disk 1.
        let main = disk1.join("main");
        fs::create_dir_all(main.join(".chunks/0000")).unwrap();
        fs::create_dir_all(main.join(".chunks/abcd")).unwrap();
        fs::write(main.join(".chunks/abcd/abcd0123deadbeef"), b"chunk data").unwrap();
        fs::write(main.join(".lock"), b"").unwrap();
        fs::create_dir_all(main.join("vm/100")).unwrap();
        Lab {
            fake,
            target,
            bundle,
            dir,
            disk1,
            disk2,
        }
    }

    /// A lab whose `proxmox-backup-manager` is the PBS double (PBS 3.2.4) on the root's
    /// `/etc/proxmox-backup`.
    fn with_api() -> (Lab, PbsDouble) {
        let lab = Lab::with_backup_cfg(BACKUP_DATASTORE_CFG, DEFAULT_COMMANDS);
        let pbs = PbsDouble::install(&lab.fake, &lab.root().join("etc/proxmox-backup"));
        (lab, pbs)
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    /// `proxsave restore …` in a private mount namespace with the two disks mounted.
    fn restore(&self, extra: &[&str]) -> Output {
        let root = self.root();
        // The real `mount` (the fakes fake it): PATH gets the fakes only for proxsave.
        let mut cmd = Command::new("unshare");
        cmd.env("FAKE_PATH", self.fake.path_env())
            .args(["-m", "--propagation", "private", "sh", "-euc"])
            .arg("mount --bind \"$1\" \"$2\"; mount --bind \"$3\" \"$4\"; shift 4; PATH=$FAKE_PATH; export PATH; exec \"$@\"")
            .arg("sh")
            .arg(&self.disk1)
            .arg(root.join("mnt/ds1"))
            .arg(&self.disk2)
            .arg(root.join("mnt/ds2"))
            .arg(common::bin());
        self.restore_args(&mut cmd, extra);
        cmd.output().unwrap()
    }

    /// `proxsave restore …` without any mount.
    fn restore_unmounted(&self, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
        self.restore_args(&mut cmd, extra);
        cmd.output().unwrap()
    }

    fn restore_args(&self, cmd: &mut Command, extra: &[&str]) {
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args([
                "--yes",
                "--json",
                "--host-actions",
                "run",
                "--mode",
                "storage",
            ])
            .args(extra);
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\n{}\n{}",
            common::stdout(out),
            common::stderr(out)
        )
    })
}

/// Every string of a JSON document, one a line (so texts are matched unescaped).
fn texts(out: &Output) -> String {
    fn walk(v: &serde_json::Value, acc: &mut String) {
        match v {
            serde_json::Value::String(s) => {
                acc.push_str(s);
                acc.push('\n');
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, acc)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, acc)),
            _ => {}
        }
    }
    let mut acc = String::new();
    walk(&report(out), &mut acc);
    acc
}

fn outcome<'a>(r: &'a serde_json::Value, category: &str) -> &'a serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == category)
        .unwrap_or_else(|| panic!("no {category} outcome in {:#}", r["applied"]))
}

/// Every path under `dir` with its type, mode, owner and content (files).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned()
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {content}",
                p.strip_prefix(dir).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid()
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// `dir` holds exactly the chunk store PBS's `ChunkStore::create` makes in an existing empty
/// folder: the folder chowned (its mode kept: 0755 here), `.lock` empty 0644, `.chunks` 0750
/// with the 65 536 empty prefix folders 0750, all `backup:backup`.
fn assert_pbs_chunk_store(ds2: &Path) {
    assert_eq!(mode_owner(ds2), (0o755, BACKUP_UID, BACKUP_GID));
    assert_eq!(
        mode_owner(&ds2.join(".lock")),
        (0o644, BACKUP_UID, BACKUP_GID)
    );
    assert_eq!(fs::metadata(ds2.join(".lock")).unwrap().len(), 0);
    assert!(fs::symlink_metadata(ds2.join(".lock")).unwrap().is_file());
    assert_eq!(
        mode_owner(&ds2.join(".chunks")),
        (0o750, BACKUP_UID, BACKUP_GID)
    );
    let mut top: Vec<String> = fs::read_dir(ds2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, [".chunks", ".lock"]);
    let mut names = Vec::new();
    for e in fs::read_dir(ds2.join(".chunks")).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        assert!(m.is_dir());
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o750, BACKUP_UID, BACKUP_GID)
        );
        assert_eq!(fs::read_dir(e.path()).unwrap().count(), 0);
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let want: Vec<String> = (0..65536).map(|i| format!("{i:04x}")).collect();
    assert_eq!(names, want);
}

#[test]
fn clean_mode_without_the_api_creates_defers_and_keeps() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let lab = Lab::new();
    let root = lab.root().to_path_buf();
    let main_before = tree(&lab.disk1.join("main"));
    let host_store_before = tree(&root.join("mnt/datastore/store1"));

    // The plan says what happens to each datastore before anything is written.
    let dry = lab.restore(&["--pbs-behavior", "clean", "--dry-run"]);
    common::assert_ok(&dry);
    let shown = texts(&dry);
    assert!(
        shown.contains("datastore main (/mnt/ds1/main): apply (a PBS datastore is already there"),
        "{shown}"
    );
    assert!(
        shown.contains("datastore fresh (/mnt/ds2): apply (the folder is empty"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "datastore offsite (/mnt/usb-offsite/pbs): defer: /mnt/usb-offsite is a mount location and no filesystem is mounted there"
        ),
        "{shown}"
    );
    assert!(shown.contains("line 7: property not indented"), "{shown}");
    assert!(!lab.disk2.join(".chunks").exists());
    assert!(
        !root
            .join("etc/proxmox-backup/datastore.cfg.deferred")
            .exists()
    );

    let out = lab.restore(&["--pbs-behavior", "clean"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "datastore_pbs");
    assert_eq!(o["status"], "deferred", "{o:#}");
    assert!(o["todo"].as_str().unwrap().contains("offsite"), "{o:#}");

    // The live file: exactly the two applied datastores, as PBS writes it, root:backup 0640.
    let cfg = root.join("etc/proxmox-backup/datastore.cfg");
    assert_eq!(
        fs::read_to_string(&cfg).unwrap(),
        "datastore: main\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/ds1/main\n\ndatastore: fresh\n\tpath /mnt/ds2\n"
    );
    assert_eq!(mode_owner(&cfg), (0o640, 0, BACKUP_GID));
    assert!(proxsave_formats::section::parse_strict(&fs::read_to_string(&cfg).unwrap()).is_ok());

    // The deferred one: beside the live file, with the command; its folder never created.
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    assert!(
        deferred.contains(
            "# proxmox-backup-manager datastore create offsite /mnt/usb-offsite/pbs --keep-daily 7\n"
        ),
        "{deferred}"
    );
    assert!(
        deferred.ends_with("datastore: offsite\n\tkeep-daily 7\n\tpath /mnt/usb-offsite/pbs\n"),
        "{deferred}"
    );
    assert!(!root.join("mnt/usb-offsite").exists());

    // The existing chunk store is untouched; so is the host's own store1 (config only).
    assert_eq!(tree(&lab.disk1.join("main")), main_before);
    assert_eq!(tree(&root.join("mnt/datastore/store1")), host_store_before);

    // The empty mounted datastore has PBS's layout.
    // Nothing went onto the root filesystem under the mount points.
    assert_eq!(fs::read_dir(root.join("mnt/ds1")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("mnt/ds2")).unwrap().count(), 0);
    assert_pbs_chunk_store(&lab.disk2);
}

#[test]
fn merge_mode_without_the_api_writes_no_datastore_and_creates_nothing() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let lab = Lab::new();
    let root = lab.root().to_path_buf();
    let cfg_before = fs::read(root.join("etc/proxmox-backup/datastore.cfg")).unwrap();
    let out = lab.restore(&["--pbs-behavior", "merge"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "datastore_pbs");
    let detail = o["detail"].as_str().unwrap();
    assert!(detail.contains("the PBS API is not available"), "{o:#}");
    assert_eq!(
        fs::read(root.join("etc/proxmox-backup/datastore.cfg")).unwrap(),
        cfg_before
    );
    assert!(!lab.disk2.join(".chunks").exists());
    assert!(!root.join("mnt/usb-offsite").exists());
    // The deferred datastore is still kept aside with its command.
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    assert!(deferred.contains("datastore: offsite\n"), "{deferred}");
}

/// A hand-mangled `datastore.cfg`: junk lines, a tab between key and value, a duplicate key,
/// a datastore defined twice, and paths PBS must never get (`..`, relative, `/`, system
/// folders).
const BAD_DATASTORE_CFG: &str = "junk before any header\ndatastore: dotdot\n\tpath /srv/../etc/pbs\ndatastore: rel\npath relative/store\n\ndatastore: slash\n\tpath /\n\ndatastore: etcds\n\tpath /etc/pbs-store\n\ndatastore: usrds\n\tpath /usr/local/pbs\n\ndatastore: procds\n\tpath /proc/pbs\n\ndatastore: good\n\tcomment first\n\tpath /srv/pbs/good\n\tcomment second\n\ndatastore: good\n\tpath /srv/pbs/good2\ngc-schedule\tdaily\n  %% not a property\n";

#[test]
fn bad_input_is_normalised_named_and_bad_paths_are_deferred_never_created() {
    require_tools!("tar");
    let cmds: Vec<&str> = DEFAULT_COMMANDS
        .iter()
        .copied()
        .filter(|c| *c != "proxmox-backup-manager")
        .collect();
    let lab = Lab::with_backup_cfg(BAD_DATASTORE_CFG, &cmds);
    let root = lab.root().to_path_buf();

    let dry = lab.restore_unmounted(&["--pbs-behavior", "clean", "--dry-run"]);
    common::assert_ok(&dry);
    let shown = texts(&dry);
    for want in [
        "line 1: not part of a datastore section: \"junk before any header\"",
        "line 5: property not indented under its `datastore:` header",
        "line 26: property not indented under its `datastore:` header",
        "datastore good has duplicate key `comment` (also line 20); the last one is kept",
        "datastore good is defined twice (also line 19); the last definition is kept",
        "line 27: not a datastore property (`%%`)",
        "datastore dotdot (/srv/../etc/pbs): defer: the path \"/srv/../etc/pbs\" contains a `..` component",
        "datastore rel (relative/store): defer: the path \"relative/store\" is not absolute",
        "datastore slash (/): defer: the path \"/\" is the root folder `/`",
        "datastore etcds (/etc/pbs-store): defer: the path \"/etc/pbs-store\" is in the system folder /etc",
        "datastore usrds (/usr/local/pbs): defer: the path \"/usr/local/pbs\" is in the system folder /usr",
        "datastore procds (/proc/pbs): defer: the path \"/proc/pbs\" is in the system folder /proc",
        "datastore good (/srv/pbs/good2): apply (the folder is missing",
    ] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }

    let out = lab.restore_unmounted(&["--pbs-behavior", "clean"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "datastore_pbs");
    assert_eq!(o["status"], "deferred", "{o:#}");
    let todo = o["todo"].as_str().unwrap();
    for name in ["dotdot", "rel", "slash", "etcds", "usrds", "procds"] {
        assert!(todo.contains(name), "{name} in {todo}");
    }
    // The live file: the one good datastore, its last definition, as PBS writes it.
    let cfg = fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg")).unwrap();
    assert_eq!(
        cfg,
        "datastore: good\n\tpath /srv/pbs/good2\n\tgc-schedule daily\n"
    );
    // Nothing was created at a bad path.
    for p in [
        "etc/pbs",
        "etc/pbs-store",
        "usr/local/pbs",
        "proc",
        "relative",
        ".chunks",
        ".lock",
    ] {
        assert!(!root.join(p).exists(), "{p} was created");
    }
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    for line in [
        "# proxmox-backup-manager datastore create etcds /etc/pbs-store\n",
        "datastore: procds\n\tpath /proc/pbs\n",
    ] {
        assert!(deferred.contains(line), "{line:?} in {deferred}");
    }
    assert!(root.join("srv/pbs/good2/.chunks/ffff").is_dir());
}

#[test]
fn a_staged_file_that_is_not_section_config_is_not_written_and_is_reported() {
    require_tools!("tar");
    let cmds: Vec<&str> = DEFAULT_COMMANDS
        .iter()
        .copied()
        .filter(|c| *c != "proxmox-backup-manager")
        .collect();
    for staged in ["", "this is not\na section config file\n"] {
        let lab = Lab::with_backup_cfg(staged, &cmds);
        let root = lab.root().to_path_buf();
        let before = fs::read(root.join("etc/proxmox-backup/datastore.cfg")).unwrap();
        let out = lab.restore_unmounted(&["--pbs-behavior", "clean"]);
        common::assert_ok(&out);
        let r = report(&out);
        let o = outcome(&r, "datastore_pbs");
        let detail = o["detail"].as_str().unwrap_or_default().to_string()
            + o["reason"].as_str().unwrap_or_default();
        assert!(
            detail.contains("the backup's datastore.cfg is empty: not written")
                || detail.contains(
                    "the backup's datastore.cfg has no valid datastore section: not written"
                ),
            "{staged:?}: {o:#}"
        );
        assert_eq!(
            fs::read(root.join("etc/proxmox-backup/datastore.cfg")).unwrap(),
            before
        );
        assert!(
            !root
                .join("etc/proxmox-backup/datastore.cfg.deferred")
                .exists()
        );
    }
}

/// The `proxmox-backup-manager datastore …` change calls, as lines.
fn change_calls(pbs: &PbsDouble) -> Vec<String> {
    pbs.calls()
        .iter()
        .map(|c| c.args.join(" "))
        .filter(|c| c.starts_with("datastore "))
        .collect()
}

#[test]
fn merge_mode_through_the_api_creates_adopts_defers_and_keeps_the_host_s() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let (lab, pbs) = Lab::with_api();
    let root = lab.root().to_path_buf();
    let main_before = tree(&lab.disk1.join("main"));
    let store1_before = tree(&root.join("mnt/datastore/store1"));

    let out = lab.restore(&["--pbs-behavior", "merge"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "datastore_pbs");
    assert_eq!(o["status"], "deferred", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.contains("datastore fresh created at /mnt/ds2 (PBS built its chunk store)"),
        "{detail}"
    );
    assert!(
        detail.contains("datastore main: its definition was added to /etc/proxmox-backup/datastore.cfg (PBS before 3.3 cannot adopt an existing chunk store through its API)"),
        "{detail}"
    );

    // PBS's own chunk store on the empty disk; the existing one untouched.
    assert_pbs_chunk_store(&lab.disk2);
    assert_eq!(tree(&lab.disk1.join("main")), main_before);
    assert_eq!(tree(&root.join("mnt/datastore/store1")), store1_before);
    assert_eq!(fs::read_dir(root.join("mnt/ds2")).unwrap().count(), 0);
    assert!(!root.join("mnt/usb-offsite").exists());

    // The double's state: the host's store1 kept, main and fresh added.
    let st = pbs.state();
    assert_eq!(ids(&st.datastore), ["fresh", "main", "store1"]);
    let main = st.datastore.find("datastore", "main").unwrap();
    assert_eq!(
        props(main),
        [
            ("comment", "Main backup store"),
            ("gc-schedule", "daily"),
            ("path", "/mnt/ds1/main"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    );
    let fresh = st.datastore.find("datastore", "fresh").unwrap();
    assert_eq!(fresh.get("path"), Some("/mnt/ds2"));
    let cfg = root.join("etc/proxmox-backup/datastore.cfg");
    assert_eq!(mode_owner(&cfg), (0o640, 0, BACKUP_GID));
    assert_eq!(
        change_calls(&pbs),
        ["datastore create fresh /mnt/ds2"],
        "{:#?}",
        pbs.all_calls()
    );
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    assert!(deferred.contains("datastore: offsite\n"), "{deferred}");
    assert!(st.datastore.find("datastore", "offsite").is_none());
}

#[test]
fn clean_mode_through_the_api_removes_the_extra_datastore_from_the_config_only() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let (lab, pbs) = Lab::with_api();
    let root = lab.root().to_path_buf();
    let store1_before = tree(&root.join("mnt/datastore/store1"));
    assert!(!store1_before.is_empty());

    // The plan names every call before anything changes.
    let dry = lab.restore(&["--pbs-behavior", "clean", "--dry-run"]);
    common::assert_ok(&dry);
    let shown = texts(&dry);
    for want in [
        "proxmox-backup-manager datastore remove store1 (configuration only; the data at /mnt/datastore/store1 is kept)",
        "add datastore main to /etc/proxmox-backup/datastore.cfg (PBS before 3.3 cannot adopt an existing chunk store through its API)",
        "proxmox-backup-manager datastore create fresh /mnt/ds2",
        "datastore offsite (/mnt/usb-offsite/pbs): defer: /mnt/usb-offsite is a mount location",
    ] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }
    assert!(change_calls(&pbs).is_empty());
    assert!(!lab.disk2.join(".chunks").exists());

    let out = lab.restore(&["--pbs-behavior", "clean"]);
    common::assert_ok(&out);
    let calls = change_calls(&pbs);
    assert_eq!(
        calls,
        ["datastore remove store1", "datastore create fresh /mnt/ds2"],
        "{:#?}",
        pbs.all_calls()
    );
    assert!(!calls.iter().any(|c| c.contains("destroy-data")));
    // store1's data stays on disk; only its definition is gone.
    assert_eq!(tree(&root.join("mnt/datastore/store1")), store1_before);
    let st = pbs.state();
    assert_eq!(ids(&st.datastore), ["fresh", "main"]);
    assert_pbs_chunk_store(&lab.disk2);
    assert!(!root.join("mnt/usb-offsite").exists());
}

#[test]
fn a_failed_create_names_the_object_the_call_and_pbs_s_message_and_the_rest_applies() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let (lab, pbs) = Lab::with_api();
    lab.fake.respond(
        "proxmox-backup-manager",
        &["datastore", "create", "fresh"],
        Response::fail(255, "Error: unable to get datastore lock - EAGAIN\n"),
    );
    let out = lab.restore(&["--pbs-behavior", "merge"]);
    let r = report(&out);
    assert_eq!(
        r["outcome"],
        "completed_with_errors",
        "{}",
        common::stderr(&out)
    );
    assert_eq!(common::code(&out), 1);
    let o = outcome(&r, "datastore_pbs");
    assert_eq!(o["status"], "partly_applied", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.contains("datastore fresh: `proxmox-backup-manager datastore create fresh /mnt/ds2`: failed (exit code 255): unable to get datastore lock - EAGAIN"),
        "{detail}"
    );
    // Merge mode: no file fallback; main still applied.
    let st = pbs.state();
    assert_eq!(ids(&st.datastore), ["main", "store1"]);
    assert!(!lab.disk2.join(".chunks").exists());
}

/// The backup's `s3.cfg` (PBS 4): the keys are secrets.
const BACKUP_S3_CFG: &str = "s3-endpoint: ep1\n\taccess-key AKIAEXAMPLEKEYID42\n\tendpoint s3.example.com\n\tregion eu-1\n\tsecret-key Sup3rS3cretS3Key\n";

/// Every text a user or a log sees of a run: stdout, stderr, the restore logs.
fn everything_shown(out: &Output, lab: &Lab) -> String {
    let mut all = common::stdout(out) + &common::stderr(out);
    for e in fs::read_dir(lab.dir.path().join("work")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            all.push_str(&fs::read_to_string(&p).unwrap());
        }
    }
    all
}

#[test]
fn s3_endpoints_apply_through_the_api_and_their_keys_never_show() {
    require_tools!("tar");
    let lab = Lab::with_backup_files(&[("s3.cfg", BACKUP_S3_CFG)], DEFAULT_COMMANDS);
    let pbs = PbsDouble::install(&lab.fake, &lab.root().join("etc/proxmox-backup"));
    // The host already has ep1 (other keys) and an endpoint the backup lacks.
    pbs.write_file(
        "s3.cfg",
        "s3-endpoint: ep1\n\taccess-key OLDKEY\n\tendpoint old.example.com\n\tsecret-key OldS3cret\n\ns3-endpoint: extra\n\taccess-key X\n\tendpoint x.example.com\n\tsecret-key Y\n",
    );
    for mode in ["merge", "clean"] {
        let out = lab.restore_unmounted(&["--pbs-behavior", mode]);
        common::assert_ok(&out);
        let shown = everything_shown(&out, &lab);
        for secret in ["Sup3rS3cretS3Key", "AKIAEXAMPLEKEYID42"] {
            assert!(!shown.contains(secret), "{mode}: {secret} shown");
        }
        let st = pbs.state();
        let ep1 = st.s3.find("s3-endpoint", "ep1").unwrap();
        assert_eq!(ep1.get("secret-key"), Some("Sup3rS3cretS3Key"));
        assert_eq!(ep1.get("access-key"), Some("AKIAEXAMPLEKEYID42"));
        assert_eq!(ep1.get("endpoint"), Some("s3.example.com"));
        let want: &[&str] = if mode == "merge" {
            &["ep1", "extra"]
        } else {
            &["ep1"]
        };
        assert_eq!(ids(&st.s3), want, "{mode}");
    }
    let calls: Vec<String> = pbs
        .calls()
        .iter()
        .map(|c| c.args.join(" "))
        .filter(|c| c.starts_with("s3 "))
        .collect();
    assert!(
        calls.contains(&"s3 endpoint remove extra".to_string()),
        "{calls:?}"
    );
}

#[test]
fn clean_mode_without_the_api_writes_s3_cfg_as_a_file_and_no_key_shows() {
    require_tools!("tar");
    let cmds: Vec<&str> = DEFAULT_COMMANDS
        .iter()
        .copied()
        .filter(|c| *c != "proxmox-backup-manager")
        .collect();
    let lab = Lab::with_backup_files(&[("s3.cfg", BACKUP_S3_CFG)], &cmds);
    let out = lab.restore_unmounted(&["--pbs-behavior", "clean"]);
    common::assert_ok(&out);
    let shown = everything_shown(&out, &lab);
    assert!(!shown.contains("Sup3rS3cretS3Key"));
    let s3 = lab.root().join("etc/proxmox-backup/s3.cfg");
    assert_eq!(fs::read_to_string(&s3).unwrap(), BACKUP_S3_CFG);
    assert_eq!(mode_owner(&s3), (0o640, 0, BACKUP_GID));
}

#[test]
fn answering_no_to_pbs_datastores_create_defers_the_empty_one_and_keeps_the_existing_one() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let lab = Lab::new();
    let root = lab.root().to_path_buf();
    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.datastores.create=no",
    ]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = outcome(&r, "datastore_pbs");
    assert_eq!(o["status"], "deferred", "{o:#}");
    assert_eq!(
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg")).unwrap(),
        "datastore: main\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/ds1/main\n"
    );
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    assert!(
        deferred.contains(
            "# fresh: deferred: its folder has no chunk store and the answer to pbs.datastores.create is `no`\n# proxmox-backup-manager datastore create fresh /mnt/ds2\n"
        ),
        "{deferred}"
    );
    assert_eq!(fs::read_dir(&lab.disk2).unwrap().count(), 0);
}

#[test]
fn clean_mode_updates_a_datastore_the_host_has_and_deletes_what_the_backup_lacks() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let (lab, pbs) = Lab::with_api();
    pbs.write_file(
        "datastore.cfg",
        "datastore: main\n\tcomment Old comment\n\tnotify-user root@pam\n\tpath /mnt/ds1/main\n",
    );
    let main_before = tree(&lab.disk1.join("main"));
    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.datastores.create=no",
    ]);
    common::assert_ok(&out);
    assert_eq!(
        change_calls(&pbs),
        [
            "datastore update main --comment=Main backup store --gc-schedule=daily --delete=notify-user"
        ]
    );
    let st = pbs.state();
    assert_eq!(ids(&st.datastore), ["main"]);
    let main = st.datastore.find("datastore", "main").unwrap();
    assert_eq!(main.get("comment"), Some("Main backup store"));
    assert_eq!(main.get("notify-user"), None);
    assert_eq!(tree(&lab.disk1.join("main")), main_before);
}

#[test]
fn on_pbs_3_3_an_existing_chunk_store_is_adopted_with_reuse_datastore() {
    require_tools!("tar", "mount", "unshare");
    if !can_mount() {
        return;
    }
    let lab = Lab::with_backup_cfg(BACKUP_DATASTORE_CFG, DEFAULT_COMMANDS);
    let pbs =
        PbsDouble::install_version(&lab.fake, &lab.root().join("etc/proxmox-backup"), "3.3.2");
    let main_before = tree(&lab.disk1.join("main"));
    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.datastores.create=no",
    ]);
    common::assert_ok(&out);
    assert_eq!(
        change_calls(&pbs),
        [
            "datastore create main /mnt/ds1/main --reuse-datastore=true --comment=Main backup store --gc-schedule=daily"
        ]
    );
    let detail = outcome(&report(&out), "datastore_pbs")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("datastore main added (existing chunk store at /mnt/ds1/main reused)"),
        "{detail}"
    );
    assert_eq!(ids(&pbs.state().datastore), ["main", "store1"]);
    assert_eq!(tree(&lab.disk1.join("main")), main_before);
}
