//! PBS datastores end to end: the real binary restores a PBS backup with three datastores
//! onto a fresh PBS root:
//!
//! * `main` at `/mnt/ds1/main`: a real tmpfs is mounted on `<root>/mnt/ds1` and holds an
//!   existing chunk store — only its definition comes back, its files are not touched;
//! * `fresh` at `/mnt/ds2`: an empty tmpfs is mounted there — it gets the chunk store PBS
//!   creates (65 536 prefix folders, `.lock`, owners from the *root's* `/etc/passwd`);
//! * `offsite` at `/mnt/usb-offsite/pbs`: nothing is mounted — it is deferred into
//!   `datastore.cfg.deferred` and its folder is never created.
//!
//! The backup's `datastore.cfg` is hand-edited (a property without indentation, a comment):
//! the normaliser fixes it and the installed file is what PBS loads. `proxmox-backup-manager`
//! is not on `PATH` (the API is down), so clean mode writes the file and merge mode applies
//! nothing. Mounts need root; they are undone by a guard on every exit.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{DEFAULT_COMMANDS, FakeBin};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

/// The backup's `datastore.cfg`, as a hand edit left it.
const BACKUP_DATASTORE_CFG: &str = "datastore: main\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/ds1/main\n\ndatastore: fresh\npath /mnt/ds2\n# the USB disk, usually unplugged\n\ndatastore: offsite\n\tkeep-daily 7\n\tpath /mnt/usb-offsite/pbs\n";

/// `backup:backup` in the target root: deliberately not Debian's 34, so a hard-coded id or
/// the test machine's own `/etc/passwd` would show.
const BACKUP_UID: u32 = 4242;
const BACKUP_GID: u32 = 4343;

/// tmpfs mounts, unmounted on drop.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn tmpfs(&mut self, at: &Path) {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        self.0.push(at.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

struct Lab {
    // Dropped first: unmount before the temporary folder goes.
    _mounts: Mounts,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let cmds: Vec<&str> = DEFAULT_COMMANDS
            .iter()
            .copied()
            .filter(|c| *c != "proxmox-backup-manager")
            .collect();
        let fake = FakeBin::with_commands(dir.path().join("fake"), &cmds);
        let mut source = HostTree::pbs_node(dir.path().join("source"));
        source.file(
            "etc/proxmox-backup/datastore.cfg",
            BACKUP_DATASTORE_CFG.as_bytes(),
            0o640,
            (0, 34),
        );
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
        let mut mounts = Mounts(Vec::new());
        mounts.tmpfs(&root.join("mnt/ds1"));
        mounts.tmpfs(&root.join("mnt/ds2"));
        // An existing chunk store on ds1.
        let main = root.join("mnt/ds1/main");
        fs::create_dir_all(main.join(".chunks/0000")).unwrap();
        fs::create_dir_all(main.join(".chunks/abcd")).unwrap();
        fs::write(main.join(".chunks/abcd/abcd0123deadbeef"), b"chunk data").unwrap();
        fs::write(main.join(".lock"), b"").unwrap();
        fs::create_dir_all(main.join("vm/100")).unwrap();
        Lab {
            _mounts: mounts,
            fake,
            target,
            bundle,
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn restore(&self, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
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
        cmd.output().unwrap()
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

#[test]
fn clean_mode_without_the_api_creates_defers_and_keeps() {
    require_tools!("tar", "mount", "umount");
    let lab = Lab::new();
    let root = lab.root().to_path_buf();
    let main_before = tree(&root.join("mnt/ds1/main"));
    let host_store_before = tree(&root.join("mnt/datastore/store1"));

    // The plan says what happens to each datastore before anything is written.
    let dry = lab.restore(&["--pbs-behavior", "clean", "--dry-run"]);
    common::assert_ok(&dry);
    let shown = common::stdout(&dry);
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
    assert!(!root.join("mnt/ds2/.chunks").exists());
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
    assert_eq!(tree(&root.join("mnt/ds1/main")), main_before);
    assert_eq!(tree(&root.join("mnt/datastore/store1")), host_store_before);

    // The empty mounted datastore has PBS's layout.
    let ds2 = root.join("mnt/ds2");
    assert_eq!(mode_owner(&ds2), (0o750, BACKUP_UID, BACKUP_GID));
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
    let mut top: Vec<String> = fs::read_dir(&ds2)
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
fn merge_mode_without_the_api_writes_no_datastore_and_creates_nothing() {
    require_tools!("tar", "mount", "umount");
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
    assert!(!root.join("mnt/ds2/.chunks").exists());
    assert!(!root.join("mnt/usb-offsite").exists());
    // The deferred datastore is still kept aside with its command.
    let deferred =
        fs::read_to_string(root.join("etc/proxmox-backup/datastore.cfg.deferred")).unwrap();
    assert!(deferred.contains("datastore: offsite\n"), "{deferred}");
}
