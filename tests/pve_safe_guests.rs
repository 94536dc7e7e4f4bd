//! SAFE apply of guests end to end: the real binary restores a cluster backup with
//! `--cluster-mode safe` onto node `pve1`, whose `pvesh` is the stateful PVE API double and
//! whose `/etc/pve` is a real mount (a tmpfs, as pmxcfs would be).
//!
//! What a user checks: the double's guests equal the expected configs (bytes), every change
//! call made once, the report listing the manual work (raw lxc key, volumes not found, a
//! config that does not parse, an id that is not a number); the source node chosen without a
//! question when obvious, asked otherwise, `0` skipping.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::pve::PveDouble;

/// VM 100: exists on pve1; `meta`, `parent`, a snapshot section, a disk whose volume is gone.
const VM100: &str = "#Web%20frontend\nagent: 1\nboot: order=scsi0;net0\ncores: 2\nmemory: 4096\nmeta: creation-qemu=9.0.2,ctime=1718000000\nname: web01\nnet0: virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1\nparent: pre-upgrade\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nscsi1: local-lvm:vm-100-disk-1,size=8G\nscsihw: virtio-scsi-single\nvmgenid: 5c3f0000-0000-0000-0000-000000000100\n\n[pre-upgrade]\ncores: 1\nmemory: 2048\nmeta: creation-qemu=9.0.2,ctime=1718000000\nname: web01\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nsnaptime: 1717990000\n";
/// VM 101: missing; its disk is on the node.
const VM101: &str = "cipassword: $5$Salt$CloudInitHashS3cret\ncores: 1\nmemory: 2048\nmeta: creation-qemu=9.0.2,ctime=1718000001\nname: db01\nscsi0: local-lvm:vm-101-disk-0,size=16G\nsmbios1: uuid=11111111-2222-4333-8444-555555555555\n";
/// VM 102: missing; its disk is not on the node.
const VM102: &str =
    "ide2: none,media=cdrom\nmemory: 1024\nname: app02\nscsi0: local-lvm:vm-102-disk-0,size=8G\n";
/// CT 200: exists on pve1; `unprivileged` and a raw lxc key.
const CT200: &str = "arch: amd64\ncores: 2\nfeatures: nesting=1\nhostname: ct200\nmemory: 2048\nnet0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\nlxc.apparmor.profile: unconfined\n";
/// CT 201: missing.
const CT201: &str = "arch: amd64\nhostname: ct201\nmemory: 1024\nostype: debian\nrootfs: local-lvm:vm-201-disk-0,size=8G\nunprivileged: 1\n";

/// What pve1 holds before.
const LIVE100: &str = "memory: 1024\nmeta: creation-qemu=8.1.2,ctime=1700000000\nname: web01\nscsi0: local-lvm:vm-100-disk-0,size=32G\n";
const LIVE200: &str = "arch: amd64\nhostname: ct200\nmemory: 512\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\n";

/// A tmpfs mounted on a folder for the test's life (also on panic).
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: &Path) -> Mounted {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "proxsave-test-pmxcfs"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mount -t tmpfs {} failed (tests run as root)",
            at.display()
        );
        Mounted(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    root: PathBuf,
    bundle: PathBuf,
    pve: PveDouble,
    categories: &'static str,
    _mount: Mounted,
}

impl Lab {
    /// A cluster backup whose `/etc/pve` holds `files` (paths below `etc/pve/`), restored
    /// onto `pve1`.
    fn new(files: &[(&str, &str)]) -> Lab {
        Lab::build(files, false)
    }

    /// The same, but the backup holds no `etc/pve` files: they are only in its `config.db`.
    fn config_db_only(files: &[(&str, &str)]) -> Lab {
        Lab::build(files, true)
    }

    fn build(files: &[(&str, &str)], in_config_db: bool) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let mut source = HostTree::new(dir.path().join("source"));
        source.file(
            "var/lib/proxsave-info/backup_metadata.txt",
            b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=old-node\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE=cluster\n",
            0o640,
            ROOT,
        );
        let db: Vec<u8> = if in_config_db {
            let mut db = proxsave_testkit::configdb::ConfigDb::new();
            for (p, t) in files {
                db.file(p, t.as_bytes(), 1_718_000_000);
            }
            let at = dir.path().join("config.db");
            db.write(&at);
            fs::read(&at).unwrap()
        } else {
            b"SQLite format 3\0(old cluster db)".to_vec()
        };
        source.file("var/lib/pve-cluster/config.db", &db, 0o600, ROOT);
        source.file("etc/hostname", b"old-node\n", 0o644, ROOT);
        if !in_config_db {
            for (p, t) in files {
                source.file(&format!("etc/pve/{p}"), t.as_bytes(), 0o640, (0, 33));
            }
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
        let mount = Mounted::new(&root.join("etc/pve"));
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
            .write_file("nodes/pve1/lxc/200.conf", LIVE200);
        Lab {
            dir,
            fake,
            root,
            bundle,
            pve,
            categories: if in_config_db {
                "pve_cluster"
            } else {
                "pve_config_export,pve_cluster"
            },
            _mount: mount,
        }
    }

    fn restore(&self, extra: &[&str]) -> Output {
        self.fake
            .command(common::bin())
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(&self.root)
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args([
                "--mode",
                "custom",
                "--categories",
                self.categories,
                "--cluster-mode",
                "safe",
                "--host-actions",
                "run",
                "--yes",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap()
    }

    /// The change calls the double received (`verb path args…`, without the output format).
    fn change_calls(&self) -> Vec<String> {
        self.pve
            .calls()
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .filter(|a| a.as_str() != "--output-format" && a.as_str() != "json")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
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

fn guests_outcome(r: &serde_json::Value) -> serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["applier"] == "pve-safe-guests")
        .unwrap_or_else(|| panic!("no pve-safe-guests outcome in {:#}", r["applied"]))
        .clone()
}

fn asked(r: &serde_json::Value) -> Vec<String> {
    r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap().to_string())
        .collect()
}

fn old_node_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("nodes/old-node/qemu-server/100.conf", VM100),
        ("nodes/old-node/qemu-server/101.conf", VM101),
        ("nodes/old-node/qemu-server/102.conf", VM102),
        ("nodes/old-node/lxc/200.conf", CT200),
        ("nodes/old-node/lxc/201.conf", CT201),
    ]
}

#[test]
fn safe_apply_recreates_the_guests_of_old_node_on_pve1() {
    let lab = Lab::new(&old_node_files());
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    let r = report(&out);
    common::assert_ok(&out);

    // The cloud-init password hash is never shown (output, report, restore log).
    let mut texts = vec![common::stdout(&out), common::stderr(&out)];
    for e in fs::read_dir(lab.dir.path().join("work")).unwrap().flatten() {
        if e.path()
            .extension()
            .is_some_and(|x| x == "log" || x == "json")
        {
            texts.push(fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for t in &texts {
        assert!(!t.contains("CloudInitHashS3cret"), "{t}");
    }
    assert!(common::stdout(&out).contains("--cipassword=<redacted>"));

    // The exported guest configs are the backup's bytes, one link each: the private stage
    // the applier read them from (linked to these files during the run) is gone.
    for (rel, text) in old_node_files() {
        let p = lab.dir.path().join("export/etc/pve").join(rel);
        assert_eq!(fs::read_to_string(&p).unwrap(), text, "{}", p.display());
        assert_eq!(fs::metadata(&p).unwrap().nlink(), 1, "{}", p.display());
    }

    // old-node is the only node of the backup: used for pve1 without a question.
    assert_eq!(asked(&r), ["pve.safe.guests"], "{:#}", r["questions"]);
    let o = guests_outcome(&r);
    assert_eq!(o["status"], "applied", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    assert!(detail.contains("using those of node old-node"), "{detail}");

    // Every change call, once, in order.
    assert_eq!(
        lab.change_calls(),
        [
            "set /nodes/pve1/qemu/100/config --agent=1 --boot=order=scsi0;net0 --cores=2 --memory=4096 --net0=virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1 --scsi0=local-lvm:vm-100-disk-0,iothread=1,size=32G --scsihw=virtio-scsi-single --vmgenid=5c3f0000-0000-0000-0000-000000000100 --description=Web frontend",
            "create /nodes/pve1/qemu --vmid=101",
            "set /nodes/pve1/qemu/101/config --cipassword=$5$Salt$CloudInitHashS3cret --cores=1 --memory=2048 --name=db01 --scsi0=local-lvm:vm-101-disk-0,size=16G --smbios1=uuid=11111111-2222-4333-8444-555555555555",
            "create /nodes/pve1/qemu --vmid=102",
            "set /nodes/pve1/qemu/102/config --ide2=none,media=cdrom --memory=1024 --name=app02",
            "set /nodes/pve1/lxc/200/config --cores=2 --features=nesting=1 --memory=2048 --net0=name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth",
        ]
    );
    // Reads: the cluster's guests, the config of each existing guest and each storage named,
    // once per phase (plan, apply).
    let reads: Vec<String> = lab
        .pve
        .all_calls()
        .iter()
        .filter(|c| c.args[0] == "get" && c.args[1] != "/version")
        .map(|c| c.args[1].clone())
        .collect();
    assert_eq!(
        reads,
        [
            "/cluster/resources",
            "/nodes/pve1/qemu/100/config",
            "/nodes/pve1/lxc/200/config",
            "/nodes/pve1/storage/local-lvm/content"
        ]
        .repeat(2)
    );

    // The double's state equals the expected one.
    let want100 = "#Web frontend\nagent: 1\nboot: order=scsi0;net0\ncores: 2\nmemory: 4096\nmeta: creation-qemu=8.1.2,ctime=1700000000\nname: web01\nnet0: virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nscsihw: virtio-scsi-single\nvmgenid: 5c3f0000-0000-0000-0000-000000000100\n";
    let want101 = "cipassword: $5$Salt$CloudInitHashS3cret\ncores: 1\nmemory: 2048\nmeta: creation-qemu=9.0.2,ctime=1733400000\nname: db01\nscsi0: local-lvm:vm-101-disk-0,size=16G\nsmbios1: uuid=11111111-2222-4333-8444-555555555555\nvmgenid: 00000000-0000-4000-9000-000000000101\n";
    let want102 = "ide2: none,media=cdrom\nmemory: 1024\nmeta: creation-qemu=9.0.2,ctime=1733400000\nname: app02\nsmbios1: uuid=00000000-0000-4000-8000-000000000102\nvmgenid: 00000000-0000-4000-9000-000000000102\n";
    let want200 = "arch: amd64\ncores: 2\nfeatures: nesting=1\nhostname: ct200\nmemory: 2048\nnet0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 1\n";
    let pve = &lab.pve;
    assert_eq!(pve.guest_config("pve1", "qemu", 100).unwrap(), want100);
    assert_eq!(pve.guest_config("pve1", "qemu", 101).unwrap(), want101);
    assert_eq!(pve.guest_config("pve1", "qemu", 102).unwrap(), want102);
    assert_eq!(pve.guest_config("pve1", "lxc", 200).unwrap(), want200);
    // The missing CT: its file, as in the backup, written into pve1's lxc/ (mode 0640).
    assert_eq!(pve.guest_config("pve1", "lxc", 201).unwrap(), CT201);
    let mode = fs::metadata(lab.root.join("etc/pve/nodes/pve1/lxc/201.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    // Nothing else appeared (no old-node folder, no other guest).
    let mut nodes: Vec<_> = fs::read_dir(lab.root.join("etc/pve/nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["pve1"]);
    let vms: Vec<String> = fs::read_dir(lab.root.join("etc/pve/nodes/pve1/qemu-server"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(vms.len(), 3);

    // The report lists the manual work.
    for needle in [
        "raw key `lxc.apparmor.profile: unconfined` not applied",
        "VM 100 (web01): scsi1 left out (volume local-lvm:vm-100-disk-1 not found on storage local-lvm)",
        "VM 102 (app02): scsi0 left out (volume local-lvm:vm-102-disk-0 not found on storage local-lvm)",
        "CT 201 (ct201): config file written to /etc/pve/nodes/pve1/lxc/201.conf",
        "VM 100 (web01): snapshot sections not applied (pre-upgrade)",
    ] {
        assert!(detail.contains(needle), "{needle:?} not in {detail}");
    }
    assert!(!detail.contains("failed:"), "{detail}");
    // unprivileged is the same here: nothing to report about it.
    assert!(!detail.contains("unprivileged"), "{detail}");

    // A second run finds everything as in the backup: no change call at all.
    let before = lab.change_calls().len();
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    common::assert_ok(&out);
    assert_eq!(lab.change_calls().len(), before, "{:?}", lab.change_calls());
    let detail = guests_outcome(&report(&out))["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("scsi1 left out (volume local-lvm:vm-100-disk-1 not found"),
        "{detail}"
    );
    assert_eq!(pve.guest_config("pve1", "qemu", 100).unwrap(), want100);
    assert_eq!(pve.guest_config("pve1", "lxc", 201).unwrap(), CT201);
}

#[test]
fn several_other_nodes_ask_and_zero_skips() {
    let lab = Lab::new(&[
        (
            "nodes/node-a/qemu-server/300.conf",
            "memory: 512\nname: a1\n",
        ),
        (
            "nodes/node-a/qemu-server/301.conf",
            "memory: 512\nname: a2\n",
        ),
        ("nodes/node-a/lxc/310.conf", "hostname: a3\nmemory: 256\n"),
        ("nodes/node-b/lxc/400.conf", "hostname: b1\nmemory: 256\n"),
        // a node folder without guests does not count
        ("nodes/pve1/host.fw", "[OPTIONS]\nenable: 1\n"),
    ]);
    let out = lab.restore(&[
        "--answer",
        "pve.safe.guests=yes",
        "--answer",
        "pve.safe.source-node=0",
    ]);
    let r = report(&out);
    common::assert_ok(&out);
    assert_eq!(asked(&r), ["pve.safe.guests", "pve.safe.source-node"]);
    let q = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == "pve.safe.source-node")
        .unwrap()
        .clone();
    assert_eq!(q["answer"], "0");
    let o = guests_outcome(&r);
    assert_eq!(o["status"], "skipped", "{o:#}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .contains("no source node chosen (pve.safe.source-node = 0)"),
        "{o:#}"
    );
    assert!(lab.change_calls().is_empty(), "{:?}", lab.change_calls());
    assert!(lab.pve.guest_config("pve1", "qemu", 300).is_none());

    // The plan lists each node with its counts.
    let plan = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-safe-guests")
        .unwrap()
        .clone();
    let details = &plan["questions"][1]["details"];
    assert_eq!(
        details,
        &serde_json::json!(["[1] node-a (qemu=2, lxc=1)", "[2] node-b (qemu=0, lxc=1)"])
    );
}

#[test]
fn several_other_nodes_under_yes_without_an_answer_skip_and_say_so() {
    let lab = Lab::new(&[
        (
            "nodes/node-a/qemu-server/300.conf",
            "memory: 512\nname: a1\n",
        ),
        ("nodes/node-b/lxc/400.conf", "hostname: b1\nmemory: 256\n"),
    ]);
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    let r = report(&out);
    common::assert_ok(&out);
    let o = guests_outcome(&r);
    assert_eq!(o["status"], "skipped", "{o:#}");
    assert!(
        o["reason"].as_str().unwrap().contains(
            "no source node chosen (pve.safe.source-node = skip): the backup's guests are under node-a, node-b"
        ),
        "{o:#}"
    );
    assert!(lab.change_calls().is_empty());

    // Choosing the second node by number applies its guests to pve1.
    let out = lab.restore(&[
        "--answer",
        "pve.safe.guests=yes",
        "--answer",
        "pve.safe.source-node=2",
    ]);
    common::assert_ok(&out);
    assert_eq!(
        lab.pve.guest_config("pve1", "lxc", 400).unwrap(),
        "hostname: b1\nmemory: 256\n"
    );
    assert!(
        lab.change_calls().is_empty(),
        "a CT is written, not created"
    );
}

#[test]
fn bad_guest_files_are_refused_by_name_and_the_rest_apply() {
    let lab = Lab::new(&[
        ("nodes/pve1/qemu-server/300.conf", "memory: 512\nname: ok\n"),
        (
            "nodes/pve1/qemu-server/301.conf",
            "memory: 512\nthis line is not a config line\n",
        ),
        ("nodes/pve1/qemu-server/abc.conf", "memory: 512\n"),
        (
            "nodes/bad\u{1b}[31mnode/qemu-server/500.conf",
            "memory: 1\n",
        ),
    ]);
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    let r = report(&out);
    // pve1 is this node: used without a question, the other node ignored.
    assert_eq!(asked(&r), ["pve.safe.guests"]);
    let o = guests_outcome(&r);
    assert_eq!(o["status"], "partly_applied", "{o:#}");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "/etc/pve/nodes/pve1/qemu-server/301.conf:2: not a `key: value` line: this line is not a config line: skipped"
        ),
        "{detail}"
    );
    assert!(
        detail.contains(
            "/etc/pve/nodes/pve1/qemu-server/abc.conf: guest id `abc` is not a number from 100 to 999999999: skipped"
        ),
        "{detail}"
    );
    assert_eq!(
        lab.change_calls(),
        [
            "create /nodes/pve1/qemu --vmid=300",
            "set /nodes/pve1/qemu/300/config --memory=512 --name=ok"
        ]
    );
    assert_ne!(common::code(&out), 0);

    // A node name with control characters is shown escaped (never raw) when it is listed.
    let lab = Lab::new(&[
        (
            "nodes/bad\u{1b}[31mnode/qemu-server/500.conf",
            "memory: 1\n",
        ),
        ("nodes/node-b/lxc/400.conf", "hostname: b1\nmemory: 256\n"),
    ]);
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    let mut texts = vec![common::stdout(&out), common::stderr(&out)];
    for e in fs::read_dir(lab.dir.path().join("work")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            texts.push(fs::read_to_string(e.path()).unwrap());
        }
    }
    for t in &texts {
        assert!(!t.contains('\u{1b}') && !t.contains("\\u001b"), "{t}");
    }
    let r = report(&out);
    let plan = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-safe-guests")
        .unwrap()
        .clone();
    assert_eq!(
        plan["questions"][1]["details"],
        serde_json::json!([
            "[1] bad\\x1b[31mnode (qemu=1, lxc=0)",
            "[2] node-b (qemu=0, lxc=1)"
        ])
    );
    let o = guests_outcome(&r);
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .contains("under bad\\x1b[31mnode, node-b"),
        "{o:#}"
    );
}

#[test]
fn diff_shows_the_planned_guest_calls_and_changes_nothing() {
    let lab = Lab::new(&old_node_files());
    let out = lab
        .fake
        .command(common::bin())
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .arg("diff")
        .arg("--backup")
        .arg(&lab.bundle)
        .arg("--root")
        .arg(&lab.root)
        .args([
            "--mode",
            "custom",
            "--categories",
            "pve_config_export,pve_cluster",
            "--host-actions",
            "run",
            "--json",
        ])
        .output()
        .unwrap();
    common::assert_ok(&out);
    let r = report(&out);
    // The exported /etc/pve files are no diffs of the root.
    assert!(
        r["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["path"].as_str().unwrap().starts_with("/etc/pve/")),
        "{:#}",
        r["files"]
    );
    let a = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-safe-guests")
        .unwrap_or_else(|| panic!("{:#}", r["appliers"]))
        .clone();
    let calls: Vec<&str> = a["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap_or(c["target"].as_str().unwrap()))
        .collect();
    assert_eq!(calls.len(), 7, "{calls:#?}");
    assert!(calls[0].starts_with("pvesh set /nodes/pve1/qemu/100/config --agent=1"));
    assert_eq!(calls[1], "pvesh create /nodes/pve1/qemu --vmid=101");
    assert_eq!(calls[6], "/etc/pve/nodes/pve1/lxc/201.conf");
    assert!(lab.change_calls().is_empty());
    assert!(lab.pve.guest_config("pve1", "lxc", 201).is_none());
}

#[test]
fn dry_run_lists_the_guest_calls_and_changes_nothing() {
    let lab = Lab::new(&old_node_files());
    let out = lab.restore(&["--dry-run", "--answer", "pve.safe.guests=yes"]);
    common::assert_ok(&out);
    let r = report(&out);
    let a = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-safe-guests")
        .unwrap_or_else(|| panic!("{:#}", r["appliers"]))
        .clone();
    let actions: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"VM 101 (db01): missing here: pvesh create /nodes/pve1/qemu --vmid=101"),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|x| x.starts_with("manual: CT 200 (ct200): raw key `lxc.apparmor.profile")),
        "{actions:#?}"
    );
    assert!(lab.change_calls().is_empty());
    assert!(lab.pve.guest_config("pve1", "lxc", 201).is_none());
    assert_eq!(lab.pve.guest_config("pve1", "qemu", 100).unwrap(), LIVE100);
}

#[test]
fn a_ct_whose_unprivileged_differs_is_reported_and_set_without_it() {
    let lab = Lab::new(&[(
        "nodes/pve1/lxc/200.conf",
        "arch: amd64\nhostname: ct200\nmemory: 4096\nostype: debian\nrootfs: local-lvm:vm-200-disk-0,size=8G\nunprivileged: 0\nlxc.cgroup2.devices.allow = c 10:200 rwm\n",
    )]);
    let out = lab.restore(&["--answer", "pve.safe.guests=yes"]);
    common::assert_ok(&out);
    assert_eq!(
        lab.change_calls(),
        ["set /nodes/pve1/lxc/200/config --memory=4096"]
    );
    let detail = guests_outcome(&report(&out))["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("CT 200 (ct200): unprivileged is 0 in the backup, 1 here: fixed at creation, not changed"),
        "{detail}"
    );
    assert!(
        detail.contains("raw key `lxc.cgroup2.devices.allow: c 10:200 rwm` not applied"),
        "{detail}"
    );
}

#[test]
fn without_an_etc_pve_copy_the_guests_are_read_from_the_backup_s_config_db() {
    let mut files = old_node_files();
    files.push((
        "user.cfg",
        "user:root@pam:1:0:::root@example.invalid:::\n\npool:web:Web tier:100,101:local:\n",
    ));
    let lab = Lab::config_db_only(&files);
    let out = lab.restore(&[
        "--answer",
        "pve.safe.guests=yes",
        "--answer",
        "pve.safe.pools=yes",
    ]);
    let r = report(&out);
    let o = guests_outcome(&r);
    assert_eq!(o["category"], "pve_cluster", "{o:#}");
    // The same result as from the files: the missing VMs created, the missing CT written.
    assert!(
        lab.pve.guest_config("pve1", "qemu", 101).is_some(),
        "{o:#}\n{}",
        common::stderr(&out)
    );
    assert!(lab.pve.guest_config("pve1", "qemu", 102).is_some());
    assert_eq!(
        fs::read_to_string(lab.root.join("etc/pve/nodes/pve1/lxc/201.conf")).unwrap(),
        CT201
    );
    let plan = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-safe-guests")
        .unwrap()
        .clone();
    let text = plan.to_string();
    // Pools too come from the database's user.cfg.
    let pools = lab.pve.pools();
    assert!(
        pools.contains_key("web"),
        "{pools:?}\n{}",
        common::stdout(&out)
    );
    assert!(
        text.contains("the backup holds no copy of /etc/pve: read from its /var/lib/pve-cluster/config.db (6 files)"),
        "{plan:#}"
    );
    // The database was read only privately: nothing of it in the root, no tree left behind.
    assert!(!lab.root.join("var/lib/pve-cluster/config.db").exists());
    let work = lab.dir.path().join("work");
    let leftover: Vec<_> = walk(&work)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("safe-configdb"))
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            }
        }
    }
    out
}
