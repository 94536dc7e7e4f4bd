//! The `network` applier end to end with the real binary: a PVE backup whose bridge is on
//! `eno1`, restored onto a PVE root whose NIC with eno1's MAC is `enp3s0` (a fake sysfs tree in
//! the root: PCI NICs `enp3s0`/`enp4s0`, a veth with the same MAC that is never a candidate),
//! fake `ethtool` on `PATH`, and the real ifupdown2 3.0.0 behind `ifup` (run in a namespace
//! sandbox by the testkit).
//!
//! * `--dry-run` shows the renames and the file diffs and writes nothing; `diff` shows them.
//! * The restore installs the repaired files (`iface`, `auto`, `bridge-ports`, the VLAN in
//!   `interfaces.d`), `/etc/hosts`, `/etc/hostname`, never the backup's `/etc/resolv.conf`
//!   (the root's dangling artefact link becomes systemd-resolved's file), and the preflight
//!   passes; nothing is applied live.
//! * A backup whose bridge port no NIC matches fails the preflight: installed on disk, not
//!   applied live, and the summary says which line and why.
//! * `--host-actions defer`: the same install, no `ethtool`, the preflight left as a to-do;
//!   without systemd-resolved the backup's recorded nameservers are used.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::ifupdown::{Package, install_ifup, require_ifupdown};
use proxsave_testkit::require_tools;

const INTERFACES: &str = "\
auto lo
iface lo inet loopback

# uplink eno1
auto eno1
iface eno1 inet manual
\tpost-up ethtool -K eno1 gro off

auto vmbr0
iface vmbr0 inet static
\taddress 192.0.2.10/24
\tgateway 192.0.2.1
\tbridge-ports eno1
\tbridge-stp off
\tbridge-fd 0

source /etc/network/interfaces.d/*
";

const VLAN: &str = "iface eno1.20 inet manual\n\tvlan-raw-device eno1\n";

const INVENTORY: &str = r#"{
  "generated_at": "2026-11-20T10:00:00+01:00",
  "hostname": "pve1",
  "interfaces": [
    {"name": "eno1", "mac": "02:00:00:00:00:01", "permanent_mac": "02:00:00:00:00:01",
     "pci_path": "/sys/devices/pci0000:00/0000:00:19.0", "driver": "e1000e", "ifindex": 2},
    {"name": "lo", "mac": "00:00:00:00:00:00", "is_virtual": true, "ifindex": 1},
    {"name": "vmbr0", "mac": "02:00:00:00:00:01", "is_virtual": true, "ifindex": 3}
  ]
}
"#;

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
}

fn put(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, body).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = fs::remove_file(&p);
    std::os::unix::fs::symlink(target, p).unwrap();
}

impl Lab {
    fn new(interfaces: &str) -> Lab {
        Lab::with(interfaces, Some(INVENTORY))
    }

    fn with(interfaces: &str, inventory: Option<&str>) -> Lab {
        Lab::build(interfaces, inventory, |_| {})
    }

    fn build(interfaces: &str, inventory: Option<&str>, extra: impl Fn(&mut HostTree)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::with_commands(dir.path().join("fake"), &["ethtool"]);
        fake.respond(
            "ethtool",
            &["-P", "enp3s0"],
            Response::ok("Permanent address: 02:00:00:00:00:01\n"),
        )
        .respond(
            "ethtool",
            &["-P", "enp4s0"],
            Response::ok("Permanent address: 02:00:00:00:00:02\n"),
        );

        let mut source = HostTree::new(dir.path().join("source"));
        source
            .file(
                "var/lib/proxsave-info/backup_metadata.txt",
                b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE=standalone\n",
                0o640,
                ROOT,
            )
            .file("etc/network/interfaces", interfaces.as_bytes(), 0o644, ROOT)
            .file("etc/network/interfaces.d/vlan20", VLAN.as_bytes(), 0o644, ROOT)
            .file(
                "etc/hosts",
                b"127.0.0.1 localhost\n192.0.2.10 pve1.example.lan pve1\n",
                0o644,
                ROOT,
            )
            .file("etc/hostname", b"pve1\n", 0o644, ROOT)
            .symlink("etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf")
            .file(
                "var/lib/proxsave-info/commands/system/resolv_conf.txt",
                b"search example.lan\r\nnameserver 192.0.2.53\r\n",
                0o640,
                ROOT,
            )
            .settle_dirs();
        extra(&mut source);
        source.settle_dirs();
        if let Some(inv) = inventory {
            source
                .file(
                    "var/lib/proxsave-info/commands/system/network_inventory.json",
                    inv.as_bytes(),
                    0o640,
                    ROOT,
                )
                .settle_dirs();
        }
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);

        let target = HostRoot::pve(dir.path().join("root"));
        let root = target.root().to_path_buf();
        for (name, pci, mac, idx) in [
            ("enp3s0", "0000:03:00.0", "02:00:00:00:00:01", "2"),
            ("enp4s0", "0000:04:00.0", "02:00:00:00:00:02", "3"),
        ] {
            let dev = format!("sys/devices/pci0000:00/{pci}");
            put(
                &root,
                &format!("{dev}/net/{name}/address"),
                &format!("{mac}\n"),
            );
            put(
                &root,
                &format!("{dev}/net/{name}/ifindex"),
                &format!("{idx}\n"),
            );
            link(
                &root,
                &format!("{dev}/net/{name}/device"),
                &format!("../../../{pci}"),
            );
            link(
                &root,
                &format!("sys/class/net/{name}"),
                &format!("../../devices/pci0000:00/{pci}/net/{name}"),
            );
        }
        put(
            &root,
            "sys/devices/virtual/net/veth9/address",
            "02:00:00:00:00:01\n",
        );
        link(
            &root,
            "sys/class/net/veth9",
            "../../devices/virtual/net/veth9",
        );
        put(
            &root,
            "sys/devices/virtual/net/lo/address",
            "00:00:00:00:00:00\n",
        );
        link(&root, "sys/class/net/lo", "../../devices/virtual/net/lo");
        // A legacy backup's dedup artefact link: dangling here, so it is repaired.
        link(
            &root,
            "etc/resolv.conf",
            "../var/lib/proxsave-info/commands/system/resolv_conf.txt",
        );
        Lab {
            dir,
            fake,
            target,
            bundle,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join(rel)).unwrap()
    }

    fn command(&self, sub: &str) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg(sub)
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root());
        cmd
    }

    fn restore(&self, extra: &[&str]) -> Output {
        self.command("restore")
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args([
                "--yes",
                "--mode",
                "custom",
                "--categories",
                "network",
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap()
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

fn network_outcome(r: &serde_json::Value) -> serde_json::Value {
    r["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .find(|o| o["category"] == "network")
        .unwrap_or_else(|| panic!("no network outcome: {r:#}"))
        .clone()
}

const REPAIRED: &str = "\
auto lo
iface lo inet loopback

# uplink eno1
auto enp3s0
iface enp3s0 inet manual
\tpost-up ethtool -K eno1 gro off

auto vmbr0
iface vmbr0 inet static
\taddress 192.0.2.10/24
\tgateway 192.0.2.1
\tbridge-ports enp3s0
\tbridge-stp off
\tbridge-fd 0

source /etc/network/interfaces.d/*
";

#[test]
fn dry_run_shows_the_repairs_and_the_restore_installs_them_and_passes_preflight() {
    require_tools!("tar", "gzip", "sha256sum");
    let Some(tree) = require_ifupdown(Package::Ifupdown2) else {
        return;
    };
    let lab = Lab::new(INTERFACES);
    install_ifup(&lab.fake.bin_dir(), Package::Ifupdown2, &tree);
    let before = lab.target.snapshot();

    let out = lab.restore(&["--dry-run", "--host-actions", "run"]);
    common::assert_ok(&out);
    assert_eq!(lab.target.snapshot(), before, "a dry run wrote");
    let r = report(&out);
    let plan = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "network" || a["applier"] == "network")
        .unwrap_or_else(|| panic!("{r:#}"))
        .clone();
    let actions = plan["actions"].to_string();
    assert!(
        actions.contains("eno1 -> enp3s0") || actions.contains("eno1 → enp3s0"),
        "{actions}"
    );
    // The live apply's questions are planned like every applier's, with their defaults.
    let questions = r["questions"].as_array().unwrap_or_else(|| panic!("{r:#}"));
    let q = |id: &str| {
        questions
            .iter()
            .find(|q| q["id"] == id)
            .unwrap_or_else(|| panic!("{id} not planned: {questions:#?}"))
            .clone()
    };
    let live = q("network.apply-live");
    assert_eq!(live["default"], "no", "{live:#}");
    assert_eq!(
        live["choices"],
        serde_json::json!(["yes", "no"]),
        "{live:#}"
    );
    let commit = q("network.commit");
    assert_eq!(commit["default"], "wait", "{commit:#}");
    assert_eq!(
        commit["choices"],
        serde_json::json!(["commit", "rollback", "wait"]),
        "{commit:#}"
    );
    assert!(actions.contains("COMMIT window of 180s"), "{actions}");
    let changes = plan["changes"].as_array().unwrap();
    let iface = changes
        .iter()
        .find(|c| c["target"] == "/etc/network/interfaces")
        .unwrap_or_else(|| panic!("{changes:#?}"));
    assert_eq!(iface["after"], REPAIRED);
    assert!(
        changes
            .iter()
            .any(|c| c["target"] == "/etc/network/interfaces.d/vlan20"
                && c["after"] == "iface enp3s0.20 inet manual\n\tvlan-raw-device enp3s0\n"),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c["target"] == "/etc/resolv.conf"
            && c["after"] == "symlink to ../run/systemd/resolve/stub-resolv.conf\n"),
        "{changes:#?}"
    );

    let diff = lab
        .command("diff")
        .args([
            "--mode",
            "custom",
            "--categories",
            "network",
            "--host-actions",
            "run",
        ])
        .output()
        .unwrap();
    common::assert_ok(&diff);
    let shown = common::stdout(&diff);
    assert!(
        shown.contains(
            "--- /etc/network/interfaces (current)\n+++ /etc/network/interfaces (backup)\n"
        ),
        "{shown}"
    );
    assert!(shown.contains("+\tbridge-ports enp3s0\n"), "{shown}");

    let out = lab.restore(&["--host-actions", "run"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert_eq!(lab.read("etc/network/interfaces"), REPAIRED);
    assert_eq!(
        lab.read("etc/network/interfaces.d/vlan20"),
        "iface enp3s0.20 inet manual\n\tvlan-raw-device enp3s0\n"
    );
    assert_eq!(lab.read("etc/hostname"), "pve1\n");
    assert!(
        lab.read("etc/hosts")
            .contains("192.0.2.10 pve1.example.lan")
    );
    assert_eq!(
        fs::read_link(lab.root().join("etc/resolv.conf")).unwrap(),
        Path::new("../run/systemd/resolve/stub-resolv.conf")
    );
    let detail = o["detail"].as_str().unwrap();
    assert!(detail.contains("preflight passed (ifup -a -s -i "), "{o:#}");
    assert_eq!(o["status"], "deferred", "{o:#}");
    assert!(
        o["todo"].as_str().unwrap().contains("not applied live"),
        "{o:#}"
    );
    // The permanent MACs came from ethtool through the host's runner.
    assert!(
        lab.fake
            .calls_of("ethtool")
            .iter()
            .any(|c| c.args == ["-P", "enp3s0"])
    );
    assert!(
        !lab.fake
            .calls_of("ethtool")
            .iter()
            .any(|c| c.args.iter().any(|a| a == "veth9" || a == "lo")),
        "virtual interfaces are not asked"
    );
}

#[test]
fn a_bridge_port_no_nic_matches_fails_preflight_and_is_not_applied_live() {
    require_tools!("tar", "gzip", "sha256sum");
    let lab = Lab::new(&INTERFACES.replace("bridge-ports eno1", "bridge-ports eno9"));
    let out = lab.restore(&["--host-actions", "run"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert_eq!(o["status"], "deferred", "{o:#}");
    let todo = o["todo"].as_str().unwrap();
    assert!(todo.contains("NOT applied live"), "{todo}");
    assert!(todo.contains("preflight failed"), "{todo}");
    assert!(
        todo.contains("/etc/network/interfaces:13:") && todo.contains("eno9"),
        "{todo}"
    );
    // Installed on disk as the backup has it, repaired.
    let installed = lab.read("etc/network/interfaces");
    assert!(installed.contains("bridge-ports eno9\n"), "{installed}");
    assert!(
        installed.contains("iface enp3s0 inet manual\n"),
        "{installed}"
    );
    // The human summary says it too.
    let human = lab
        .command("restore")
        .arg("--work-dir")
        .arg(lab.dir.path().join("work2"))
        .arg("--export-dir")
        .arg(lab.dir.path().join("export2"))
        .args([
            "--yes",
            "--mode",
            "custom",
            "--categories",
            "network",
            "--host-actions",
            "run",
        ])
        .output()
        .unwrap();
    common::assert_ok(&human);
    let text = format!("{}{}", common::stdout(&human), common::stderr(&human));
    assert!(text.contains("preflight failed"), "{text}");
    // The deferred category's to-do is printed in full, not only its status.
    let todo = text
        .lines()
        .find(|l| l.starts_with("TO DO (network, network): "))
        .unwrap_or_else(|| panic!("no network to-do line:\n{text}"));
    assert!(todo.contains("was NOT applied live"), "{todo}");
    assert!(
        todo.contains("ifup -a -s -i /etc/network/interfaces"),
        "{todo}"
    );
}

#[test]
fn deferred_host_actions_install_all_the_same_and_leave_the_check_as_a_to_do() {
    require_tools!("tar", "gzip", "sha256sum");
    let lab = Lab::new(INTERFACES);
    fs::remove_dir_all(lab.root().join("run/systemd/resolve")).unwrap();
    let out = lab.restore(&["--host-actions", "defer"]);
    common::assert_ok(&out);
    let r = report(&out);
    let o = network_outcome(&r);
    // Without ethtool the MAC still matches (the veth is not a candidate).
    assert_eq!(lab.read("etc/network/interfaces"), REPAIRED);
    assert!(lab.fake.calls_of("ethtool").is_empty());
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("preflight not run: host actions are deferred"),
        "{o:#}"
    );
    assert!(r.to_string().contains("ifup -a -s -i"), "{r:#}");
    // No systemd-resolved here: the backup's recorded nameservers, LF line ends.
    let meta = fs::symlink_metadata(lab.root().join("etc/resolv.conf")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        lab.read("etc/resolv.conf"),
        "search example.lan\nnameserver 192.0.2.53\n"
    );
}

#[test]
fn nic_repair_answers_and_bad_inputs() {
    require_tools!("tar", "gzip", "sha256sum");
    // `no`: installed as the backup has it; the preflight then fails on the missing eno1.
    let lab = Lab::new(INTERFACES);
    // A file only this host has stays (overlay: nothing is removed).
    put(lab.root(), "etc/network/interfaces.d/local", "# mine\n");
    let out = lab.restore(&["--host-actions", "run", "--answer", "network.nic-repair=no"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert_eq!(lab.read("etc/network/interfaces"), INTERFACES);
    assert_eq!(lab.read("etc/network/interfaces.d/local"), "# mine\n");
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.contains("NIC repair: not applied (NIC repair disabled (network.nic-repair = no))"),
        "{detail}"
    );
    assert!(
        o["todo"].as_str().unwrap().contains("NOT applied live"),
        "{o:#}"
    );

    // An answer that is not a choice: exit 2 naming the question, nothing written.
    let lab = Lab::new(INTERFACES);
    let before = lab.target.snapshot();
    let out = lab.restore(&[
        "--host-actions",
        "run",
        "--answer",
        "network.nic-repair=maybe",
    ]);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("network.nic-repair"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(lab.target.snapshot(), before);

    // No inventory in the backup: no renames, with upstream's reason.
    let lab = Lab::with(INTERFACES, None);
    let out = lab.restore(&["--host-actions", "defer"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert_eq!(lab.read("etc/network/interfaces"), INTERFACES);
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("backup does not include network inventory"),
        "{o:#}"
    );

    // An inventory that is not JSON: named with its line and column.
    let lab = Lab::with(INTERFACES, Some("{\"interfaces\": [\n  oops\n"));
    let out = lab.restore(&["--host-actions", "defer"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("network_inventory.json:2:3: network inventory is not valid JSON"),
        "{o:#}"
    );

    // A file that does not parse: installed as it is, never applied live, the line named.
    let broken = INTERFACES.replace("iface vmbr0 inet static", "iface vmbr0 inet staticc");
    let lab = Lab::new(&broken);
    let out = lab.restore(&["--host-actions", "run"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    assert_eq!(lab.read("etc/network/interfaces"), broken);
    let todo = o["todo"].as_str().unwrap();
    assert!(todo.contains("NOT applied live"), "{todo}");
    assert!(todo.contains("/etc/network/interfaces:10:"), "{todo}");
}

#[test]
fn staged_links_are_not_installed_and_the_backup_resolv_conf_never_is() {
    require_tools!("tar", "gzip", "sha256sum");
    let lab = Lab::build(INTERFACES, Some(INVENTORY), |t| {
        t.symlink("etc/network/if-up.d/escape", "/etc/shadow").file(
            "etc/netplan/01-netcfg.yaml",
            b"network: {version: 2}\n",
            0o600,
            ROOT,
        );
    });
    let shadow = fs::read(lab.root().join("etc/shadow")).unwrap();
    let out = lab.restore(&["--host-actions", "defer"]);
    common::assert_ok(&out);
    let o = network_outcome(&report(&out));
    let detail = o["detail"].as_str().unwrap();
    assert!(
        detail.contains("/etc/network/if-up.d/escape: a symbolic link (to /etc/shadow) in the backup, not installed"),
        "{detail}"
    );
    assert!(fs::symlink_metadata(lab.root().join("etc/network/if-up.d/escape")).is_err());
    assert_eq!(fs::read(lab.root().join("etc/shadow")).unwrap(), shadow);
    // Other staged network folders are installed with their mode.
    let netplan = lab.root().join("etc/netplan/01-netcfg.yaml");
    assert_eq!(
        fs::read_to_string(&netplan).unwrap(),
        "network: {version: 2}\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&netplan).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    // The backup's resolv.conf (a link into systemd-resolved's folder) is never copied: the
    // root's dangling artefact link becomes this root's systemd-resolved file.
    assert_eq!(
        fs::read_link(lab.root().join("etc/resolv.conf")).unwrap(),
        Path::new("../run/systemd/resolve/stub-resolv.conf")
    );
}

/// network.md §13 scenario 25: the status table of `proxsave net status` (another shell's
/// view of the windows under a root), from records as the restore and the timer leave them.
#[test]
fn net_status_lists_each_window_as_it_stands() {
    use proxsave_restore::commit::{State, Timer, WindowRecord, root_windows_dir};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let status = |json: bool| {
        let mut c = common::proxsave();
        c.args(["net", "status", "--root"]).arg(&root);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        common::assert_ok(&out);
        common::stdout(&out)
    };
    assert_eq!(
        status(false),
        format!("No COMMIT window under {}.\n", root.display())
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = root_windows_dir(&root);
    let put = |id: &str, deadline: i64, state: State, by: Option<&str>, problems: Vec<String>| {
        let r = WindowRecord {
            id: id.into(),
            area: "network".into(),
            root: root.clone(),
            paths: Vec::new(),
            seconds: 180,
            armed_unix_ms: deadline - 180_000,
            deadline_unix_ms: deadline,
            timer: Timer::Detached { pid: 4242 },
            state,
            after_rollback: Vec::new(),
            settled_by: by.map(str::to_string),
            settled_unix_ms: by.map(|_| deadline),
            problems,
        };
        fs::create_dir_all(base.join(id)).unwrap();
        fs::write(
            base.join(id).join("window.json"),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
    };
    put(
        "network-20261205-060000",
        now - 3_600_000,
        State::Committed,
        Some("net commit"),
        vec![],
    );
    put(
        "network-20261205-061000",
        now - 3_000_000,
        State::RolledBack,
        Some("timer"),
        vec!["ifreload -a: exit 1".into()],
    );
    put(
        "network-20261205-062000",
        now - 60_000,
        State::Pending,
        None,
        vec![],
    );
    put(
        "network-20261205-063000",
        now + 120_000,
        State::Pending,
        None,
        vec![],
    );

    let text = status(false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[0],
        "network-20261205-060000 (network): committed (net commit)"
    );
    assert_eq!(
        lines[1],
        "network-20261205-061000 (network): rolled-back (timer)"
    );
    assert_eq!(lines[2], "  problem: ifreload -a: exit 1");
    assert!(
        lines[3].starts_with("network-20261205-062000 (network): PENDING, its deadline passed (at ")
            && lines[3].ends_with(
                " and detached process 4242 has not rolled it back yet: `proxsave net rollback-now` or `proxsave net commit` settles it"
            ),
        "{text}"
    );
    let pending = lines[4];
    assert!(
        pending.starts_with("network-20261205-063000 (network): PENDING, rolls back in ")
            && pending.ends_with(" unless committed; detached process 4242"),
        "{text}"
    );
    let secs: u64 = pending
        .split("rolls back in ")
        .nth(1)
        .and_then(|t| t.split('s').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{pending}"));
    assert!((60..=120).contains(&secs), "{pending}");

    let doc: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let windows = doc["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc:#}"));
    let states: Vec<(&str, bool)> = windows
        .iter()
        .map(|w| {
            (
                w["state"].as_str().unwrap(),
                w["overdue"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("committed", false),
            ("rolled-back", false),
            ("pending", true),
            ("pending", false)
        ]
    );
}
