//! NIC repair end to end on a staged tree and a fake sysfs (the pure part of issue 11's
//! "Done when": eno1 repaired to the NIC with eno1's MAC in iface, auto, bridge-ports and a VLAN).

use std::path::Path;

use proxsave_net::ifaces::{ConfigSet, FindingCode, Flavor, Severity};
use proxsave_net::inventory::{Inventory, InventoryError, collect_sysfs};
use proxsave_net::overrides;
use proxsave_net::repair::{NicRepairMode, RepairRequest, repair};

const BACKUP_INTERFACES: &str = "\
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

const BACKUP_VLAN: &str = "auto eno1.20\niface eno1.20 inet manual\n\tvlan-raw-device eno1\n";

const BACKUP_INVENTORY: &str = r#"{
  "generated_at": "2026-11-20T10:00:00Z",
  "hostname": "old",
  "interfaces": [
    {"name": "eno1", "mac": "02:00:00:00:00:01", "permanent_mac": "02:00:00:00:00:01",
     "pci_path": "/sys/devices/pci0000:00/0000:00:19.0", "driver": "e1000e"},
    {"name": "lo", "mac": "00:00:00:00:00:00", "is_virtual": true},
    {"name": "vmbr0", "mac": "02:00:00:00:00:01", "is_virtual": true}
  ]
}"#;

fn file(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, body).expect("write");
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, p).expect("symlink");
}

/// This host: a PCI NIC `enp3s0` with eno1's MAC, another PCI NIC `enp4s0`, a veth and `lo`.
fn host(root: &Path) {
    for (name, pci, mac) in [
        ("enp3s0", "0000:03:00.0", "02:00:00:00:00:01"),
        ("enp4s0", "0000:04:00.0", "02:00:00:00:00:02"),
    ] {
        let dev = format!("sys/devices/pci0000:00/{pci}");
        file(
            root,
            &format!("{dev}/net/{name}/address"),
            &format!("{mac}\n"),
        );
        link(
            root,
            &format!("{dev}/net/{name}/device"),
            &format!("../../../{pci}"),
        );
        link(
            root,
            &format!("sys/class/net/{name}"),
            &format!("../../devices/pci0000:00/{pci}/net/{name}"),
        );
    }
    // a veth with the same MAC as eno1 (as a test namespace would have): never a candidate
    file(
        root,
        "sys/devices/virtual/net/veth9/address",
        "02:00:00:00:00:01\n",
    );
    link(
        root,
        "sys/class/net/veth9",
        "../../devices/virtual/net/veth9",
    );
    file(
        root,
        "sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
    );
    link(root, "sys/class/net/lo", "../../devices/virtual/net/lo");
}

fn stage(root: &Path, main: &str) {
    file(root, "stage/etc/network/interfaces", main);
    file(root, "stage/etc/network/interfaces.d/vlan20", BACKUP_VLAN);
}

#[test]
fn eno1_is_repaired_everywhere_and_nothing_else_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    host(root);
    stage(root, BACKUP_INTERFACES);
    // the veth shares eno1's MAC but is virtual, so never a candidate; the permanent MAC decides
    let current = collect_sysfs(root, &|n: &str| {
        (n == "enp3s0").then(|| "02:00:00:00:00:01".to_string())
    })
    .expect("sysfs");
    let backup = Inventory::parse("inv", BACKUP_INVENTORY.as_bytes()).expect("inventory");
    let set = ConfigSet::load(
        &root.join("stage"),
        Path::new("/etc/network/interfaces"),
        Flavor::Ifupdown2,
    )
    .expect("load");
    let rules = overrides::scan(&root.join("stage")).expect("scan");
    let r = repair(
        &set,
        &RepairRequest {
            backup: Ok(&backup),
            current: &current,
            rules: &rules,
            mode: NicRepairMode::Safe,
        },
    );
    assert_eq!(r.not_repaired, None, "{}", r.describe());
    assert_eq!(r.applied.len(), 1);
    assert_eq!(
        r.applied[0].to_string(),
        "eno1 -> enp3s0 (permanent_mac=02:00:00:00:00:01)"
    );
    assert_eq!(
        String::from_utf8(r.files[0].after.clone()).expect("utf8"),
        BACKUP_INTERFACES
            .replace("auto eno1\n", "auto enp3s0\n")
            .replace("iface eno1 ", "iface enp3s0 ")
            .replace("bridge-ports eno1", "bridge-ports enp3s0")
    );
    assert_eq!(
        String::from_utf8(r.files[1].after.clone()).expect("utf8"),
        "auto enp3s0.20\niface enp3s0.20 inet manual\n\tvlan-raw-device enp3s0\n"
    );
    // the comment and the post-up command keep eno1 and are listed
    let text = r.describe();
    assert!(
        text.contains("/etc/network/interfaces:4: comment mentions eno1 (left as it is)"),
        "{text}"
    );
    assert!(
        text.contains("/etc/network/interfaces:7: command mentions eno1 (left as it is)"),
        "{text}"
    );
    assert!(
        text.contains("/etc/network/interfaces:13: eno1 -> enp3s0"),
        "{text}"
    );
    assert!(!r.has_errors(), "{text}");
}

#[test]
fn a_bridge_port_no_nic_matches_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    host(root);
    stage(
        root,
        &BACKUP_INTERFACES.replace("bridge-ports eno1", "bridge-ports eno1 eno2"),
    );
    let current = collect_sysfs(root, &|_: &str| None).expect("sysfs");
    let backup = Inventory::parse("inv", BACKUP_INVENTORY.as_bytes()).expect("inventory");
    let set = ConfigSet::load(
        &root.join("stage"),
        Path::new("/etc/network/interfaces"),
        Flavor::Ifupdown2,
    )
    .expect("load");
    let r = repair(
        &set,
        &RepairRequest {
            backup: Ok(&backup),
            current: &current,
            rules: &[],
            mode: NicRepairMode::Safe,
        },
    );
    assert!(r.has_errors());
    let err = r
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .expect("error");
    assert_eq!(err.code, FindingCode::MissingNic);
    assert_eq!(err.line, 13);
    assert!(
        err.to_string()
            .contains("bridge-ports eno2: this host has no interface eno2")
    );
}

#[test]
fn no_repair_without_inventory_or_with_a_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    host(root);
    stage(root, BACKUP_INTERFACES);
    let current = collect_sysfs(root, &|_: &str| None).expect("sysfs");
    let set = ConfigSet::load(
        &root.join("stage"),
        Path::new("/etc/network/interfaces"),
        Flavor::Ifupdown2,
    )
    .expect("load");
    let missing = InventoryError::Missing;
    let r = repair(
        &set,
        &RepairRequest {
            backup: Err(&missing),
            current: &current,
            rules: &[],
            mode: NicRepairMode::Safe,
        },
    );
    assert_eq!(
        r.not_repaired.as_deref(),
        Some(missing.to_string().as_str())
    );
    assert_eq!(r.changed_files().count(), 0);
    // without repair, eno1 does not exist here: the bridge port is an error
    assert!(r.has_errors());

    // a file that does not parse is installed as it is, the problem named by line
    let broken = format!("address 10.0.0.1/24\n{BACKUP_INTERFACES}");
    let set = ConfigSet::single(
        "/etc/network/interfaces",
        proxsave_net::ifaces::Document::parse(broken.as_bytes()),
        Flavor::Ifupdown2,
    );
    let backup = Inventory::parse("inv", BACKUP_INVENTORY.as_bytes()).expect("inventory");
    let r = repair(
        &set,
        &RepairRequest {
            backup: Ok(&backup),
            current: &current,
            rules: &[],
            mode: NicRepairMode::All,
        },
    );
    assert_eq!(r.changed_files().count(), 0);
    assert_eq!(
        r.not_repaired.as_deref(),
        Some(
            "the configuration does not parse: /etc/network/interfaces:1: error: misplaced option `address` outside any iface stanza"
        )
    );
    assert!(r.plan.is_some());

    // network.nic-repair = no
    let set = ConfigSet::load(
        &root.join("stage"),
        Path::new("/etc/network/interfaces"),
        Flavor::Ifupdown2,
    )
    .expect("load");
    let r = repair(
        &set,
        &RepairRequest {
            backup: Ok(&backup),
            current: &current,
            rules: &[],
            mode: NicRepairMode::parse("no").expect("mode"),
        },
    );
    assert_eq!(r.changed_files().count(), 0);
    assert!(
        r.not_repaired
            .expect("reason")
            .contains("network.nic-repair = no")
    );
}

#[test]
fn a_pinning_rule_keeps_the_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    host(root);
    stage(root, BACKUP_INTERFACES);
    file(
        root,
        "stage/etc/udev/rules.d/70-persistent-net.rules",
        "SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"02:00:00:00:00:01\", NAME=\"eno1\"\n",
    );
    let current = collect_sysfs(root, &|_: &str| None).expect("sysfs");
    let backup = Inventory::parse("inv", BACKUP_INVENTORY.as_bytes()).expect("inventory");
    let set = ConfigSet::load(
        &root.join("stage"),
        Path::new("/etc/network/interfaces"),
        Flavor::Ifupdown2,
    )
    .expect("load");
    let rules = overrides::scan(&root.join("stage")).expect("scan");
    assert_eq!(rules.len(), 1);
    let r = repair(
        &set,
        &RepairRequest {
            backup: Ok(&backup),
            current: &current,
            rules: &rules,
            mode: NicRepairMode::All,
        },
    );
    assert_eq!(r.changed_files().count(), 0);
    assert_eq!(r.skipped.len(), 1);
    assert!(
        r.describe().contains(
            "but a naming rule pins it: udev /etc/udev/rules.d/70-persistent-net.rules:1 name=eno1"
        ),
        "{}",
        r.describe()
    );
}
