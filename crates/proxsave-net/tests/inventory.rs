//! NIC inventories: backup JSON, lookup rules, sysfs collector (network.md §13, 9–11).

use std::path::Path;

use proxsave_net::inventory::{
    INVENTORY_CANDIDATES, Inventory, InventoryError, MAX_INVENTORY_BYTES, Nic, collect_sysfs,
    inventory_candidate_rank, is_null_mac, normalize_mac, normalize_pci_path,
    parse_ethtool_permanent, parse_udev_db, parse_udev_properties,
};

const GO_JSON: &str = r#"{
  "generated_at": "2026-11-20T10:00:00+01:00",
  "hostname": "pve1",
  "interfaces": [
    {
      "name": "eno1",
      "mac": "AA:BB:CC:00:00:01",
      "permanent_mac": "aa:bb:cc:00:00:01",
      "driver": "e1000e",
      "pci_path": "/sys/devices/pci0000:00/0000:00:1f.6",
      "ifindex": 2,
      "oper_state": "up",
      "speed_mbps": 1000,
      "udev_properties": {
        "ID_NET_NAME_PATH": "enp0s31f6",
        "ID_PATH": "pci-0000:00:1f.6",
        "ID_SERIAL": ""
      },
      "system_net_path": "/sys/class/net/eno1"
    },
    {
      "name": "lo",
      "mac": "00:00:00:00:00:00",
      "ifindex": 1,
      "oper_state": "unknown",
      "is_virtual": true,
      "system_net_path": "/sys/class/net/lo"
    },
    {
      "name": "vmbr0",
      "mac": "aa:bb:cc:00:00:01",
      "ifindex": 5,
      "oper_state": "up",
      "speed_mbps": -1,
      "is_virtual": true,
      "system_net_path": "/sys/class/net/vmbr0"
    }
  ]
}"#;

#[test]
fn go_json_round_trips_with_the_same_keys() {
    let inv = Inventory::parse("x", GO_JSON.as_bytes()).expect("parse");
    assert_eq!(inv.nics().len(), 3);
    let eno1 = &inv.nics()[0];
    assert_eq!(eno1.udev("ID_PATH").as_deref(), Some("pci-0000:00:1f.6"));
    assert_eq!(eno1.udev("ID_SERIAL"), None);
    assert_eq!(eno1.mac_key().as_deref(), Some("aa:bb:cc:00:00:01"));
    assert!(eno1.is_candidate());
    assert!(!inv.nics()[1].is_candidate());
    assert!(!inv.nics()[2].is_candidate());
    let back = serde_json::to_string_pretty(&inv).expect("json");
    let a: serde_json::Value = serde_json::from_str(GO_JSON).expect("json");
    let b: serde_json::Value = serde_json::from_str(&back).expect("json");
    assert_eq!(a, b);
}

#[test]
fn null_tolerant_variants() {
    let inv = Inventory::parse(
        "x",
        br#"{"generated_at":"t","hostname":"h","host_commands_skipped":true,
            "host_commands_skipped_reason":"system root prefix set; namespace-scoped commands (udevadm/ethtool) describe the container, not the host",
            "interfaces":null}"#,
    )
    .expect("parse");
    assert!(inv.nics().is_empty());
    assert!(inv.host_commands_skipped);
    let back: serde_json::Value = serde_json::to_value(&inv).expect("json");
    assert_eq!(back["interfaces"], serde_json::Value::Null);

    let inv = Inventory::parse(
        "x",
        br#"{"interfaces":[{"name":"eno1","mac":null,"is_virtual":null,"ifindex":null,
            "udev_properties":{"ID_PATH":null,"ID_NET_NAME_PATH":"enp1s0"},"extra":1}],
            "generated_at":null,"hostname":null,"future_field":[1,2]}"#,
    )
    .expect("parse");
    let nic = &inv.nics()[0];
    assert_eq!(nic.mac, "");
    assert_eq!(nic.udev("ID_PATH"), None);
    assert_eq!(nic.udev("ID_NET_NAME_PATH").as_deref(), Some("enp1s0"));

    // prefix-mode backup: no udev, no permanent MAC, prefixed pci path
    let inv = Inventory::parse(
        "x",
        br#"{"generated_at":"t","hostname":"h","host_commands_skipped":true,"interfaces":[
            {"name":"eno1","mac":"aa:bb:cc:00:00:09","pci_path":"/mnt/host/sys/devices/pci0000:00/0000:00:1f.6"}]}"#,
    )
    .expect("parse");
    assert_eq!(
        inv.nics()[0].pci_path_key().as_deref(),
        Some("/sys/devices/pci0000:00/0000:00:1f.6")
    );
    assert_eq!(inv.nics()[0].permanent_mac_key(), None);
}

#[test]
fn bad_inventories_give_reasons() {
    assert_eq!(
        Inventory::parse("./commands/network_inventory.json", b"  \n"),
        Err(InventoryError::Empty {
            path: "./commands/network_inventory.json".into()
        })
    );
    let err = Inventory::parse("inv.json", b"{\n  \"interfaces\": [\n    oops").expect_err("bad");
    let InventoryError::NotJson { line, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*line, 3);
    assert!(err.to_string().starts_with("inv.json:3:"));
    assert!(matches!(
        Inventory::parse("x", b"[1,2]"),
        Err(InventoryError::NotJson { .. })
    ));
    let big = vec![b' '; MAX_INVENTORY_BYTES as usize + 1];
    assert!(matches!(
        Inventory::parse("x", &big),
        Err(InventoryError::Oversize { size, .. }) if size == MAX_INVENTORY_BYTES + 1
    ));
    assert_eq!(
        InventoryError::NotRegular {
            path: "./commands/network_inventory.json".into()
        }
        .to_string(),
        "./commands/network_inventory.json: network inventory is not a regular file"
    );
    assert_eq!(
        InventoryError::Missing.to_string(),
        "backup does not include network inventory (update ProxSave and create a new backup to enable NIC mapping)"
    );
}

#[test]
fn candidate_names_and_ranks() {
    for (i, c) in INVENTORY_CANDIDATES.iter().enumerate() {
        assert_eq!(inventory_candidate_rank(c), Some(i));
        let bare = c.trim_start_matches("./");
        assert_eq!(inventory_candidate_rank(bare), Some(i), "without ./");
        assert_eq!(inventory_candidate_rank(&format!("/{bare}")), Some(i));
    }
    assert_eq!(
        inventory_candidate_rank("./etc/network_inventory.json"),
        None
    );
    assert_eq!(
        inventory_candidate_rank(
            "./var/lib/proxsave-info/commands/system/network_inventory.json.bak"
        ),
        None
    );
}

#[test]
fn mac_helpers() {
    assert_eq!(
        normalize_mac("  MAC:AA:BB:CC:DD:EE:FF \n"),
        "aa:bb:cc:dd:ee:ff"
    );
    assert!(is_null_mac("00:00:00:00:00:00"));
    assert!(is_null_mac("FF:FF:FF:FF:FF:FF"));
    assert!(is_null_mac(""));
    assert!(!is_null_mac("00:00:00:00:00:01"));
    assert_eq!(normalize_pci_path("/sys/devices/virtual/net/vmbr0"), None);
    assert_eq!(
        normalize_pci_path("/sys/devices/pci0000:00/0000:00:03.0/virtio2").as_deref(),
        Some("/sys/devices/pci0000:00/0000:00:03.0")
    );
    assert_eq!(
        normalize_pci_path("/sys/devices/pci0000:00/0000:00:03.0/virtio").as_deref(),
        Some("/sys/devices/pci0000:00/0000:00:03.0/virtio")
    );
    assert_eq!(
        parse_ethtool_permanent("PERMANENT ADDRESS: AA:BB:CC:00:00:01\n").as_deref(),
        Some("aa:bb:cc:00:00:01")
    );
    assert_eq!(
        parse_ethtool_permanent("Permanent address: 00:00:00:00:00:00").as_deref(),
        Some("00:00:00:00:00:00")
    );
    assert_eq!(
        parse_ethtool_permanent("Cannot get permanent address"),
        None
    );
    let p = parse_udev_properties("ID_PATH=pci-0000:03:00.0\nID_SERIAL=\nDEVPATH=/devices/x\n");
    assert_eq!(p.len(), 2);
    let d = parse_udev_db(
        b"I:123\nE:ID_PATH=pci-0000:03:00.0\nE:ID_NET_NAME_PATH=enp3s0\nE:EMPTY=\nG:x\n",
    );
    assert_eq!(d.len(), 2);
    assert_eq!(d["ID_NET_NAME_PATH"], "enp3s0");
}

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

#[test]
fn sysfs_collector_reads_inside_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // a PCI NIC
    let pci = "sys/devices/pci0000:00/0000:00:1f.6";
    file(
        root,
        &format!("{pci}/net/enp0s31f6/address"),
        "MAC:AA:BB:CC:00:00:01\n",
    );
    file(root, &format!("{pci}/net/enp0s31f6/ifindex"), "2\n");
    file(root, &format!("{pci}/net/enp0s31f6/operstate"), "up\n");
    link(
        root,
        &format!("{pci}/net/enp0s31f6/device"),
        "../../../0000:00:1f.6",
    );
    link(
        root,
        &format!("{pci}/driver"),
        "../../../bus/pci/drivers/e1000e",
    );
    std::fs::create_dir_all(root.join("sys/bus/pci/drivers/e1000e")).expect("mkdir");
    link(
        root,
        "sys/class/net/enp0s31f6",
        "../../devices/pci0000:00/0000:00:1f.6/net/enp0s31f6",
    );
    // a bridge (virtual)
    file(
        root,
        "sys/devices/virtual/net/vmbr0/address",
        "aa:bb:cc:00:00:01\n",
    );
    link(
        root,
        "sys/class/net/vmbr0",
        "../../devices/virtual/net/vmbr0",
    );
    // lo
    file(
        root,
        "sys/devices/virtual/net/lo/address",
        "00:00:00:00:00:00\n",
    );
    link(root, "sys/class/net/lo", "../../devices/virtual/net/lo");
    // a blank-named entry is skipped
    file(
        root,
        "sys/devices/virtual/net/ /address",
        "aa:bb:cc:00:00:07\n",
    );
    link(root, "sys/class/net/ ", "../../devices/virtual/net/ ");
    // bonding_masters is a plain file, not an interface
    file(root, "sys/class/net/bonding_masters", "bond0\n");
    // udev database
    file(
        root,
        "run/udev/data/n2",
        "I:1\nE:ID_PATH=pci-0000:00:1f.6\nE:ID_NET_NAME_PATH=enp0s31f6\nE:ID_SERIAL=\n",
    );
    let asked = std::cell::RefCell::new(Vec::new());
    let inv = collect_sysfs(root, &|name: &str| {
        asked.borrow_mut().push(name.to_string());
        Some("Aa:Bb:Cc:00:00:01".into())
    })
    .expect("collect");
    assert_eq!(asked.borrow().as_slice(), ["enp0s31f6"]);
    let names: Vec<&str> = inv.nics().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["enp0s31f6", "lo", "vmbr0"]);
    let nic: &Nic = &inv.nics()[0];
    assert_eq!(nic.mac, "aa:bb:cc:00:00:01");
    assert_eq!(nic.permanent_mac, "aa:bb:cc:00:00:01");
    assert_eq!(nic.pci_path, "/sys/devices/pci0000:00/0000:00:1f.6");
    assert_eq!(nic.driver, "e1000e");
    assert_eq!(nic.ifindex, 2);
    assert_eq!(nic.oper_state, "up");
    assert!(!nic.is_virtual);
    assert_eq!(nic.udev("ID_PATH").as_deref(), Some("pci-0000:00:1f.6"));
    assert!(!nic.udev_properties.contains_key("ID_SERIAL"));
    assert!(nic.is_candidate());
    assert!(inv.nics()[2].is_virtual);
    assert!(!inv.nics()[2].is_candidate());

    let empty = tempfile::tempdir().expect("tempdir");
    let err = collect_sysfs(empty.path(), &|_: &str| None).expect_err("no sysfs");
    assert!(err.to_string().contains("/sys/class/net"));
}
