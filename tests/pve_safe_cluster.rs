//! SAFE cluster apply end to end: the real binary restores a cluster backup with
//! `--cluster-mode safe` onto node `pve1` whose `pvesh` is the stateful PVE API double
//! (`proxsave_testkit::pve::PveDouble`). `/etc/pve` is only exported; what the backup held is
//! re-created through the API: resource mappings (PCI and directory from the collected
//! `mapping_*.json`, USB from the exported `etc/pve/mapping/usb.cfg` since its JSON is absent)
//! and pools (from the real `user.cfg` lines: definitions, then members).
//!
//! The node already has: a PCI mapping `gpu` with an entry for `pve2`; pool `prod` with
//! another comment; pool `legacy` holding guest 200; guests 100 (qemu), 101 (lxc), 200
//! (qemu), 201 (lxc); storages `local` and `local-lvm`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::pve::{Pool, PveDouble};
use proxsave_testkit::require_tools;

/// The backup's `user.cfg`, in PVE's own colon grammar.
const USER_CFG: &str = "user:root@pam:1:0:::root@example.com:::\n\
user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::\n\
\n\
group:admins:alice@pve:Administrators:\n\
\n\
pool:dev:Dev pool:100,101,102:local,nas:\n\
pool:empty::::\n\
pool:prod:Production%3A tier 1:200::\n\
pool:prod/web::201:local:\n\
pool:qa::1x0:local:\n\
\n\
role:VMOperator:VM.Audit,VM.Console:\n\
\n\
acl:1:/:@admins:Administrator:\n";

/// This node's `user.cfg` before the restore.
const NODE_USER_CFG: &str =
    "user:root@pam:1:0:::root@example.com:::\n\npool:legacy::200::\npool:prod:old comment:::\n";

const MAPPING_PCI_JSON: &str = r#"[{"id":"gpu","description":"A4000","mdev":1,"map":["node=old-node,path=0000:01:00.0,id=10de:24b0"],"digest":"abc","type":"pci"},
{"id":"nic","description":"10G NIC","live-migration-capable":1,"map":["id=8086:1521,node=old-node,path=0000:03:00.0"],"type":"pci"}]"#;

const MAPPING_DIR_JSON: &str = r#"{"data":[{"id":"share","description":"Shared data","map":["node=old-node,path=/srv/share"]}]}"#;

const USB_CFG: &str = "ups\n\tmap node=old-node,id=0463:ffff\n\tdescription UPS serial\n";

/// A mapping file that must not be used: the JSON of its type wins.
const PCI_CFG: &str = "gpu\n\tmap node=old-node,path=0000:09:00.0,id=10de:24b0\n";

fn backup_files() -> Vec<(&'static str, &'static str, u32)> {
    vec![
        ("etc/pve/user.cfg", USER_CFG, 0o640),
        ("etc/pve/mapping/usb.cfg", USB_CFG, 0o640),
        ("etc/pve/mapping/pci.cfg", PCI_CFG, 0o640),
        (
            "var/lib/proxsave-info/commands/pve/mapping_pci.json",
            MAPPING_PCI_JSON,
            0o640,
        ),
        (
            "var/lib/proxsave-info/commands/pve/mapping_dir.json",
            MAPPING_DIR_JSON,
            0o640,
        ),
    ]
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    pve: PveDouble,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let mut source = HostTree::new(dir.path().join("source"));
        source.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=old-node.example.lan\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=cluster\n",
            0o640,
            ROOT,
        );
        source.file(
            "var/lib/pve-cluster/config.db",
            b"SQLite format 3\0(old cluster db)",
            0o600,
            ROOT,
        );
        for (path, text, mode) in backup_files() {
            source.file(path, text.as_bytes(), mode, (0, 33));
        }
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pve(dir.path().join("root"));
        let pve = PveDouble::fresh_node(&fake, &target.root().join("etc/pve"), "pve1");
        pve.add_node("pve2")
            .add_guest(100, "qemu", "pve1")
            .add_guest(101, "lxc", "pve1")
            .add_guest(200, "qemu", "pve2")
            .add_guest(201, "lxc", "pve1");
        pve.write_file("user.cfg", NODE_USER_CFG);
        pve.write_file(
            "mapping/pci.cfg",
            "gpu\n\tmap node=pve2,path=0000:02:00.0,id=10de:24b0\n",
        );
        Lab {
            dir,
            fake,
            target,
            bundle,
            pve,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    /// `restore --yes --json --host-actions run --cluster-mode safe` of the cluster and export
    /// categories, with `extra` arguments.
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
                "--cluster-mode",
                "safe",
                "--mode",
                "custom",
                "--categories",
                "pve_cluster,pve_config_export,proxsave_info",
            ])
            .args(extra);
        run(cmd)
    }

    /// Every `pvesh` call (`verb path args…`, without the output format).
    fn all_calls(&self) -> Vec<String> {
        self.pve
            .all_calls()
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .filter(|a| !a.starts_with("--output-format") && a.as_str() != "json")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn change_calls(&self) -> Vec<String> {
        self.all_calls()
            .into_iter()
            .filter(|c| !c.starts_with("get "))
            .collect()
    }
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run proxsave")
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

fn by_applier<'a>(r: &'a serde_json::Value, applier: &str) -> &'a serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["applier"] == applier)
        .unwrap_or_else(|| panic!("no {applier} outcome in {:#}", r["applied"]))
}

fn pool(comment: &str, vms: &[u32], storage: &[&str]) -> Pool {
    Pool {
        comment: comment.into(),
        vms: vms.iter().copied().collect(),
        storage: storage.iter().map(|s| s.to_string()).collect(),
    }
}

fn entries(lab: &Lab, kind: &str) -> BTreeMap<String, Vec<(String, String)>> {
    lab.pve.mappings(kind).into_iter().collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn safe_apply_of_pools_and_mappings_leaves_the_api_state_as_expected() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    let db = lab.root().join("var/lib/pve-cluster/config.db");
    let db_before = fs::read(&db).ok();
    let out = lab.restore(&[
        "--answer",
        "pve.safe.pools=yes",
        "--answer",
        "pve.safe.mappings=yes",
    ]);
    common::assert_ok(&out);
    let r = report(&out);

    // Each change call once, in order: mappings (PCI merged, the rest created), then pool
    // definitions, then the members that are missing.
    assert_eq!(
        lab.change_calls(),
        [
            "set /cluster/mapping/pci/gpu --description=A4000 --mdev=1 --map=node=pve2,path=0000:02:00.0,id=10de:24b0 --map=node=old-node,path=0000:01:00.0,id=10de:24b0",
            "create /cluster/mapping/pci --id=nic --description=10G NIC --live-migration-capable=1 --map=id=8086:1521,node=old-node,path=0000:03:00.0",
            "create /cluster/mapping/usb --id=ups --description=UPS serial --map=node=old-node,id=0463:ffff",
            "create /cluster/mapping/dir --id=share --description=Shared data --map=node=old-node,path=/srv/share",
            "create /pools --poolid=dev --comment=Dev pool",
            "create /pools --poolid=empty",
            "set /pools --poolid=prod --comment=Production: tier 1",
            "create /pools --poolid=prod/web",
            "create /pools --poolid=qa",
            "set /pools --poolid=dev --vms=100,101 --storage=local",
            "set /pools --poolid=prod/web --vms=201 --storage=local",
            "set /pools --poolid=qa --storage=local",
        ]
    );
    // Every call, reads included, made once (`get /version` is the shared availability probe
    // each API applier's gate makes in its plan and apply phases).
    let all: Vec<String> = lab
        .all_calls()
        .into_iter()
        .filter(|c| c != "get /version")
        .collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a call was repeated: {all:#?}");

    // The double's state.
    let want: BTreeMap<String, Pool> = [
        ("dev", pool("Dev pool", &[100, 101], &["local"])),
        ("empty", pool("", &[], &[])),
        ("legacy", pool("", &[200], &[])),
        ("prod", pool("Production: tier 1", &[], &[])),
        ("prod/web", pool("", &[201], &["local"])),
        ("qa", pool("", &[], &["local"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(lab.pve.pools(), want);
    let user_cfg = lab.pve.read_file("user.cfg").unwrap();
    assert!(
        user_cfg.starts_with("user:root@pam:1:0:::root@example.com:::\n"),
        "{user_cfg}"
    );
    assert!(
        !user_cfg.contains("alice"),
        "SAFE applies pools only, not the users"
    );
    assert_eq!(
        entries(&lab, "pci"),
        [
            (
                "gpu".to_string(),
                kv(&[
                    ("map", "node=pve2,path=0000:02:00.0,id=10de:24b0"),
                    ("map", "node=old-node,path=0000:01:00.0,id=10de:24b0"),
                    ("description", "A4000"),
                    ("mdev", "1"),
                ])
            ),
            (
                "nic".to_string(),
                kv(&[
                    ("map", "id=8086:1521,node=old-node,path=0000:03:00.0"),
                    ("description", "10G NIC"),
                    ("live-migration-capable", "1"),
                ])
            ),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        entries(&lab, "usb")["ups"],
        kv(&[
            ("map", "node=old-node,id=0463:ffff"),
            ("description", "UPS serial")
        ])
    );
    assert_eq!(
        entries(&lab, "dir")["share"],
        kv(&[
            ("map", "node=old-node,path=/srv/share"),
            ("description", "Shared data")
        ])
    );

    // The report lists what needs manual work.
    let pools = by_applier(&r, "pve-safe-pools");
    assert_eq!(pools["status"], "applied", "{pools:#}");
    let detail = pools["detail"].as_str().unwrap();
    for needle in [
        "pool dev: guest 102 is not on this cluster (not added)",
        "pool dev: storage nas is not defined on this cluster (not added)",
        "pool prod: guest 200 is in pool legacy on this cluster (not moved; answer yes to pve.safe.pools.allow-move to move it)",
        "/etc/pve/user.cfg line 10: pool qa: `1x0` is not a guest id (ignored)",
    ] {
        assert!(detail.contains(needle), "{needle} not in:\n{detail}");
    }
    let maps = by_applier(&r, "pve-safe-mappings");
    assert_eq!(maps["status"], "applied", "{maps:#}");
    for id in ["pci/gpu", "pci/nic", "usb/ups", "dir/share"] {
        let needle = format!(
            "mapping {id}: the entries for node(s) old-node are kept, but no node of this cluster has that name"
        );
        assert!(
            maps["detail"].as_str().unwrap().contains(&needle),
            "{needle} not in {maps:#}"
        );
    }
    assert!(
        maps["detail"].as_str().unwrap().contains(
            "mapping pci/gpu: merged, 1 entry(ies) of the backup added to the 1 of this cluster"
        ),
        "{maps:#}"
    );
    // /etc/pve is written by the API only; config.db is left alone.
    assert_eq!(
        fs::read_to_string(lab.root().join("etc/pve/mapping/usb.cfg")).unwrap(),
        "ups\n\tmap node=old-node,id=0463:ffff\n\tdescription UPS serial\n",
        "written by the double, as PVE writes it"
    );
    assert_eq!(fs::read(&db).ok(), db_before, "SAFE never writes config.db");
}

#[test]
fn allow_move_moves_a_guest_and_answers_no_apply_nothing() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    let out = lab.restore(&[
        "--answer",
        "pve.safe.pools=yes",
        "--answer",
        "pve.safe.pools.allow-move=yes",
        "--answer",
        "pve.safe.mappings=no",
    ]);
    common::assert_ok(&out);
    let calls = lab.change_calls();
    assert!(
        calls.contains(&"set /pools --poolid=prod --vms=200 --allow-move=1".to_string()),
        "{calls:#?}"
    );
    assert!(calls.iter().all(|c| !c.contains("/cluster/mapping")));
    let pools = lab.pve.pools();
    assert_eq!(pools["prod"].vms, [200].into_iter().collect());
    assert!(pools["legacy"].vms.is_empty());
    let r = report(&out);
    assert_eq!(by_applier(&r, "pve-safe-mappings")["status"], "skipped");

    // Under --yes without answers: both default to `no`, no change call at all.
    let lab = Lab::new();
    let out = lab.restore(&[]);
    common::assert_ok(&out);
    assert_eq!(lab.change_calls(), Vec::<String>::new());
}

#[test]
fn dry_run_lists_the_calls_and_changes_nothing() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    let out = lab.restore(&["--dry-run", "--answer", "pve.safe.pools=yes"]);
    common::assert_ok(&out);
    assert_eq!(
        lab.change_calls(),
        Vec::<String>::new(),
        "a dry run only reads"
    );
    assert!(!lab.pve.pools().contains_key("dev"));
    let text = common::stdout(&out);
    assert!(
        text.contains("pvesh create /pools --poolid=dev '--comment=Dev pool'"),
        "{text}"
    );
    assert!(
        text.contains("pvesh create /cluster/mapping/pci --id=gpu"),
        "{text}"
    );
}

// ---------------------------------------------------------------- the combined SAFE scenario

/// VM 100: exists on pve1; `meta`, `parent`, a snapshot section, a disk whose volume is gone.
const VM100: &str = "#Web%20frontend\nagent: 1\ncores: 2\nmemory: 4096\nmeta: creation-qemu=9.0.2,ctime=1718000000\nname: web01\nparent: pre-upgrade\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nscsi1: local-lvm:vm-100-disk-1,size=8G\nscsihw: virtio-scsi-single\n\n[pre-upgrade]\ncores: 1\nmemory: 2048\nmeta: creation-qemu=9.0.2,ctime=1718000000\nname: web01\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nsnaptime: 1717990000\n";
/// VM 101: missing; its disk is on the node. It uses the PCI mapping `gpu`.
const VM101: &str = "cores: 1\nhostpci0: mapping=gpu\nmemory: 2048\nmeta: creation-qemu=9.0.2,ctime=1718000001\nname: db01\nscsi0: local-lvm:vm-101-disk-0,size=16G\n";
/// VM 102: missing; its disk is not on the node.
const VM102: &str = "memory: 1024\nname: app02\nscsi0: local-lvm:vm-102-disk-0,size=8G\n";
/// CT 200: exists on pve1; `unprivileged` and a raw lxc key.
const CT200: &str = "arch: amd64\ncores: 2\nhostname: ct200\nmemory: 2048\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\nlxc.apparmor.profile: unconfined\n";
/// CT 201: missing.
const CT201: &str = "arch: amd64\nhostname: ct201\nmemory: 1024\nostype: debian\nrootfs: local-lvm:vm-201-disk-0,size=8G\nunprivileged: 1\n";

const LIVE100: &str = "memory: 1024\nmeta: creation-qemu=8.1.2,ctime=1700000000\nname: web01\nscsi0: local-lvm:vm-100-disk-0,size=32G\n";
const LIVE200: &str = "arch: amd64\nhostname: ct200\nmemory: 512\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\n";

/// The combined backup's `user.cfg`.
const CLUSTER_USER_CFG: &str = "user:root@pam:1:0:::root@example.com:::\n\
\n\
pool:apps:Applications%3A web and db:100,101,102:local-lvm,nas:\n\
pool:cts::200,201::\n\
\n\
acl:1:/pool/apps:root@pam:PVEVMAdmin:\n";

/// A tmpfs mounted on a folder for the test's life (the missing CT is written to the mounted
/// `/etc/pve`, which must be a mount point).
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: &Path) -> Option<Mounted> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "proxsave-test-pmxcfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn safe_restore_of_guests_pools_and_a_mapping_leaves_the_expected_state() {
    require_tools!("tar", "sha256sum", "mount");
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBin::new(dir.path().join("fake"));
    let mut source = HostTree::new(dir.path().join("source"));
    source.file(
        "var/lib/proxsave-info/backup_metadata.txt",
        b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=old-node\nPVE_VERSION=8.4.1\nPVE_CLUSTER_MODE=cluster\n",
        0o640,
        ROOT,
    );
    source.file(
        "var/lib/pve-cluster/config.db",
        b"SQLite format 3\0(old cluster db)",
        0o600,
        ROOT,
    );
    source.file("etc/hostname", b"old-node\n", 0o644, ROOT);
    for (p, t) in [
        ("etc/pve/nodes/old-node/qemu-server/100.conf", VM100),
        ("etc/pve/nodes/old-node/qemu-server/101.conf", VM101),
        ("etc/pve/nodes/old-node/qemu-server/102.conf", VM102),
        ("etc/pve/nodes/old-node/lxc/200.conf", CT200),
        ("etc/pve/nodes/old-node/lxc/201.conf", CT201),
        ("etc/pve/user.cfg", CLUSTER_USER_CFG),
        (
            "var/lib/proxsave-info/commands/pve/mapping_pci.json",
            r#"[{"id":"gpu","description":"A4000","map":["node=old-node,path=0000:01:00.0,id=10de:24b0"],"type":"pci"}]"#,
        ),
    ] {
        source.file(p, t.as_bytes(), 0o640, (0, 33));
    }
    source.settle_dirs();
    let spec = BackupSpec {
        compressor: Compressor::None,
        ..host_spec(&source)
    };
    let bundles = dir.path().join("backups");
    fs::create_dir(&bundles).unwrap();
    let bundle = make_host_backup_in(&source, &spec, &bundles);

    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), "pve1\n").unwrap();
    let Some(_mount) = Mounted::new(&root.join("etc/pve")) else {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var_os("PROXSAVE_REQUIRE_TOOLS").is_none(),
            "mounting a tmpfs failed (the test needs root)"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let pve = PveDouble::fresh_node(&fake, &root.join("etc/pve"), "pve1");
    pve.add_node("pve2");
    for v in [
        "local-lvm:vm-100-disk-0",
        "local-lvm:vm-101-disk-0",
        "local-lvm:vm-200-disk-0",
        "local-lvm:vm-201-disk-0",
    ] {
        pve.add_volume(v);
    }
    pve.write_file("nodes/pve1/qemu-server/100.conf", LIVE100)
        .write_file("nodes/pve1/lxc/200.conf", LIVE200)
        .write_file("user.cfg", "user:root@pam:1:0:::root@example.com:::\n")
        .write_file(
            "mapping/pci.cfg",
            "gpu\n\tmap node=pve2,path=0000:02:00.0,id=10de:24b0\n",
        );

    let restore = || {
        fake.command(common::bin())
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&bundle)
            .arg("--root")
            .arg(&root)
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--export-dir")
            .arg(dir.path().join("export"))
            .args([
                "--mode",
                "custom",
                "--categories",
                "pve_cluster,pve_config_export,proxsave_info",
                "--cluster-mode",
                "safe",
                "--host-actions",
                "run",
                "--yes",
                "--json",
                "--answer",
                "pve.safe.guests=yes",
                "--answer",
                "pve.safe.pools=yes",
                "--answer",
                "pve.safe.mappings=yes",
            ])
            .output()
            .unwrap()
    };
    let out = restore();
    common::assert_ok(&out);
    let r = report(&out);

    // Every change call once, in order: the mapping (merged: union of its entries), the
    // guests, then the pools (definitions, then members, now that the guests exist).
    let calls: Vec<String> = pve
        .all_calls()
        .iter()
        .map(|c| {
            c.args
                .iter()
                .filter(|a| a.as_str() != "--output-format" && a.as_str() != "json")
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let changes: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("get "))
        .collect();
    assert_eq!(
        changes,
        [
            "set /cluster/mapping/pci/gpu --description=A4000 --map=node=pve2,path=0000:02:00.0,id=10de:24b0 --map=node=old-node,path=0000:01:00.0,id=10de:24b0",
            "set /nodes/pve1/qemu/100/config --agent=1 --cores=2 --memory=4096 --scsi0=local-lvm:vm-100-disk-0,iothread=1,size=32G --scsihw=virtio-scsi-single --description=Web frontend",
            "create /nodes/pve1/qemu --vmid=101",
            "set /nodes/pve1/qemu/101/config --cores=1 --hostpci0=mapping=gpu --memory=2048 --name=db01 --scsi0=local-lvm:vm-101-disk-0,size=16G",
            "create /nodes/pve1/qemu --vmid=102",
            "set /nodes/pve1/qemu/102/config --memory=1024 --name=app02",
            "set /nodes/pve1/lxc/200/config --cores=2 --memory=2048",
            "create /pools --poolid=apps --comment=Applications: web and db",
            "create /pools --poolid=cts",
            "set /pools --poolid=apps --vms=100,101,102 --storage=local-lvm",
            "set /pools --poolid=cts --vms=200,201",
        ]
    );
    let unique: BTreeSet<&str> = changes.iter().copied().collect();
    assert_eq!(unique.len(), changes.len());
    // The mapping's and the pools' calls, reads included, each once: the mapping read before
    // the guests; the pools read the cluster's guests after the guests were created.
    // (`get /version` is the availability probe of each applier's gate; the guests applier
    // reads `/cluster/resources` and the volumes in its plan and in its apply phase.)
    let no_probe: Vec<&String> = calls.iter().filter(|c| *c != "get /version").collect();
    let at = |call: &str| no_probe.iter().position(|c| *c == call).unwrap();
    let first_guest_change = at("create /nodes/pve1/qemu --vmid=101");
    assert!(at("get /cluster/mapping/pci") < first_guest_change);
    assert_eq!(
        no_probe[at("get /pools")..]
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        [
            "get /pools",
            "create /pools --poolid=apps --comment=Applications: web and db",
            "create /pools --poolid=cts",
            "get /cluster/resources --type=vm",
            "get /storage",
            "get /pools --poolid=apps",
            "set /pools --poolid=apps --vms=100,101,102 --storage=local-lvm",
            "get /pools --poolid=cts",
            "set /pools --poolid=cts --vms=200,201",
        ]
    );
    assert_eq!(
        no_probe
            .iter()
            .filter(|c| c.contains("/cluster/mapping"))
            .count(),
        2
    );

    // The double's state.
    assert_eq!(
        pve.guest_config("pve1", "qemu", 100).unwrap(),
        "#Web frontend\nagent: 1\ncores: 2\nmemory: 4096\nmeta: creation-qemu=8.1.2,ctime=1700000000\nname: web01\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nscsihw: virtio-scsi-single\n"
    );
    assert!(
        pve.guest_config("pve1", "qemu", 101)
            .unwrap()
            .contains("hostpci0: mapping=gpu\n")
    );
    assert!(pve.guest_config("pve1", "qemu", 102).is_some());
    assert_eq!(
        pve.guest_config("pve1", "lxc", 200).unwrap(),
        "arch: amd64\ncores: 2\nhostname: ct200\nmemory: 2048\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\n"
    );
    assert_eq!(pve.guest_config("pve1", "lxc", 201).unwrap(), CT201);
    let want: BTreeMap<String, Pool> = [
        (
            "apps",
            pool("Applications: web and db", &[100, 101, 102], &["local-lvm"]),
        ),
        ("cts", pool("", &[200, 201], &[])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(pve.pools(), want);
    assert_eq!(
        pve.mappings("pci"),
        [(
            "gpu".to_string(),
            kv(&[
                ("map", "node=pve2,path=0000:02:00.0,id=10de:24b0"),
                ("map", "node=old-node,path=0000:01:00.0,id=10de:24b0"),
                ("description", "A4000"),
            ])
        )]
    );

    // The report lists what needs manual work.
    let mut detail = String::new();
    for a in ["pve-safe-guests", "pve-safe-pools", "pve-safe-mappings"] {
        let o = by_applier(&r, a);
        assert_eq!(o["status"], "applied", "{o:#}");
        detail.push_str(o["detail"].as_str().unwrap());
        detail.push('\n');
    }
    for needle in [
        "raw key `lxc.apparmor.profile: unconfined` not applied",
        "VM 100 (web01): scsi1 left out (volume local-lvm:vm-100-disk-1 not found on storage local-lvm)",
        "VM 102 (app02): scsi0 left out (volume local-lvm:vm-102-disk-0 not found on storage local-lvm)",
        "CT 201 (ct201): config file written to /etc/pve/nodes/pve1/lxc/201.conf",
        "pool apps: storage nas is not defined on this cluster (not added)",
        "mapping pci/gpu: merged, 1 entry(ies) of the backup added to the 1 of this cluster",
        "mapping pci/gpu: the entries for node(s) old-node are kept, but no node of this cluster has that name",
    ] {
        assert!(detail.contains(needle), "{needle:?} not in {detail}");
    }

    // A second SAFE run finds everything in place: no change call at all.
    let before = pve.calls().len();
    let again = restore();
    common::assert_ok(&again);
    let new: Vec<Vec<String>> = pve.calls()[before..]
        .iter()
        .map(|c| c.args.clone())
        .collect();
    assert!(new.is_empty(), "a second run changed something: {new:#?}");
}

#[test]
fn a_node_before_pve_8_1_gets_the_deprecated_pool_paths() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    // PVE 8.0 and older: no `PUT /pools`, `GET /pools` takes no `poolid`, no nested pools.
    lab.fake.respond(
        "pvesh",
        &["create", "/pools", "--poolid=prod/web"],
        proxsave_testkit::fakes::Response::fail(
            255,
            "400 Parameter verification failed.\npoolid: invalid format - pool name 'prod/web' contains invalid characters\n\nUSAGE: pvesh create <api_path> [OPTIONS] [FORMAT_OPTIONS]\n",
        ),
    );
    lab.fake.respond(
        "pvesh",
        &["set", "/pools"],
        proxsave_testkit::fakes::Response::fail(1, "No 'set' handler defined for '/pools'\n"),
    );
    for id in ["dev", "prod", "prod/web", "qa"] {
        lab.fake.respond(
            "pvesh",
            &["get", "/pools", &format!("--poolid={id}")],
            proxsave_testkit::fakes::Response::fail(
                255,
                "Unknown option: poolid\n400 unable to parse option\n\nUSAGE: pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n",
            ),
        );
    }
    let out = lab.restore(&["--answer", "pve.safe.pools=yes"]);
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    let calls: Vec<String> = lab
        .change_calls()
        .into_iter()
        .filter(|c| c.contains("/pools"))
        .collect();
    assert_eq!(
        calls,
        [
            "create /pools --poolid=dev --comment=Dev pool",
            "create /pools --poolid=empty",
            "set /pools --poolid=prod --comment=Production: tier 1",
            "set /pools/prod --comment=Production: tier 1",
            "create /pools --poolid=prod/web",
            "create /pools --poolid=qa",
            "set /pools --poolid=dev --vms=100,101 --storage=local",
            "set /pools/dev --vms=100,101 --storage=local",
            "set /pools --poolid=qa --storage=local",
            "set /pools/qa --storage=local",
        ]
    );
    let reads: Vec<String> = lab
        .all_calls()
        .into_iter()
        .filter(|c| c.starts_with("get /pools/"))
        .collect();
    assert_eq!(
        reads,
        ["get /pools/dev", "get /pools/prod", "get /pools/qa"]
    );
    let pools = lab.pve.pools();
    assert_eq!(pools["dev"], pool("Dev pool", &[100, 101], &["local"]));
    assert_eq!(pools["prod"].comment, "Production: tier 1");
    assert!(!pools.contains_key("prod/web"));
    // The nested pool is refused by the old node: named with PVE's message; the rest applied.
    let r = report(&out);
    let o = by_applier(&r, "pve-safe-pools");
    assert_eq!(o["status"], "partly_applied");
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("1 object(s) failed: pool prod/web: pvesh create /pools --poolid=prod/web: "),
        "{o:#}"
    );
}

#[test]
fn without_a_safe_cluster_restore_nothing_is_asked_or_called() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    // The export categories alone: the cluster database is not part of the run, so there is
    // no SAFE choice and the SAFE appliers stay out of it.
    let mut cmd = lab.fake.command(common::bin());
    cmd.env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .arg("restore")
        .arg("--backup")
        .arg(&lab.bundle)
        .arg("--root")
        .arg(lab.root())
        .arg("--work-dir")
        .arg(lab.dir.path().join("work"))
        .arg("--export-dir")
        .arg(lab.dir.path().join("export"))
        .args([
            "--yes",
            "--json",
            "--host-actions",
            "run",
            "--mode",
            "custom",
            "--categories",
            "pve_config_export,proxsave_info",
            "--answer",
            "pve.safe.pools=yes",
            "--answer",
            "pve.safe.mappings=yes",
        ]);
    let out = run(cmd);
    common::assert_ok(&out);
    assert!(lab.all_calls().is_empty(), "{:?}", lab.all_calls());
    let r = report(&out);
    let asked: Vec<&str> = r["questions"]
        .as_array()
        .expect("the report lists the questions")
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert!(
        asked.iter().all(|q| !q.starts_with("pve.safe")),
        "{asked:?}"
    );
    // The export still holds the files.
    assert!(lab.dir.path().join("export").exists());
}
