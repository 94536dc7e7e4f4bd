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
            "set /pools --poolid=dev --vms=100,101 --storage=local",
            "set /pools --poolid=prod/web --vms=201 --storage=local",
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
    ] {
        assert!(detail.contains(needle), "{needle} not in:\n{detail}");
    }
    let maps = by_applier(&r, "pve-safe-mappings");
    assert_eq!(maps["status"], "applied", "{maps:#}");
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
