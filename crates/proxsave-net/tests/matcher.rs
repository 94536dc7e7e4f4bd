//! Matcher and plan (network.md §13, 12–14) and naming overrides (16).

use std::path::{Path, PathBuf};

use proxsave_net::ifaces::Document;
use proxsave_net::inventory::Nic;
use proxsave_net::matcher::{ConflictReason, MatchMethod, Selection, compute_mapping, plan};
use proxsave_net::overrides::{
    NamingRule, RuleKind, parse_link_file, parse_udev_rules, scan, summary,
};

fn nic(name: &str, mac: &str) -> Nic {
    Nic {
        name: name.into(),
        mac: mac.into(),
        ..Nic::default()
    }
}

fn pairs(v: &[proxsave_net::matcher::NicMatch]) -> Vec<(String, String, MatchMethod)> {
    v.iter()
        .map(|m| (m.old.clone(), m.new.clone(), m.method))
        .collect()
}

fn p(old: &str, new: &str, m: MatchMethod) -> (String, String, MatchMethod) {
    (old.into(), new.into(), m)
}

#[test]
fn permanent_mac_beats_mac() {
    let mut b1 = nic("eno1", "aa:00:00:00:00:01");
    b1.permanent_mac = "aa:00:00:00:00:01".into();
    // current: enp1 has eno1's current MAC, enp2 has eno1's permanent MAC
    let c1 = nic("enp1", "aa:00:00:00:00:01");
    let mut c2 = nic("enp2", "aa:00:00:00:00:99");
    c2.permanent_mac = "AA:00:00:00:00:01".into();
    let m = compute_mapping(&[b1], &[c1, c2]);
    assert_eq!(
        pairs(&m.matches),
        vec![p("eno1", "enp2", MatchMethod::PermanentMac)]
    );
    assert_eq!(m.matches[0].identifier, "aa:00:00:00:00:01");
}

#[test]
fn id_path_only_match() {
    let mut b = Nic {
        name: "eno1".into(),
        ..Nic::default()
    };
    b.udev_properties
        .insert("ID_PATH".into(), " pci-0000:00:1f.6 ".into());
    let mut c = Nic {
        name: "enp0s31f6".into(),
        ..Nic::default()
    };
    c.udev_properties
        .insert("ID_PATH".into(), "pci-0000:00:1f.6".into());
    let m = compute_mapping(&[b], &[c]);
    assert_eq!(m.matches.len(), 1);
    assert_eq!(m.matches[0].method, MatchMethod::UdevIdPath);
    assert_eq!(m.matches[0].identifier, "pci-0000:00:1f.6");
    assert_eq!(
        m.matches[0].to_string(),
        "eno1 -> enp0s31f6 (udev_id_path=pci-0000:00:1f.6)"
    );
}

#[test]
fn ambiguous_keys_fall_through_to_the_next_method() {
    // two current NICs share a MAC (bond slaves) -> matched by PCI path
    let mut b1 = nic("eno1", "aa:00:00:00:00:01");
    b1.pci_path = "/sys/devices/pci0000:00/0000:03:00.0".into();
    let mut b2 = nic("eno2", "aa:00:00:00:00:02");
    b2.pci_path = "/sys/devices/pci0000:00/0000:03:00.1".into();
    let mut c1 = nic("enp3s0f0", "aa:00:00:00:00:01");
    c1.pci_path = b1.pci_path.clone();
    let mut c2 = nic("enp3s0f1", "aa:00:00:00:00:01");
    c2.pci_path = b2.pci_path.clone();
    let m = compute_mapping(&[b1, b2], &[c1, c2]);
    assert_eq!(
        pairs(&m.matches),
        vec![
            p("eno1", "enp3s0f0", MatchMethod::PciPath),
            p("eno2", "enp3s0f1", MatchMethod::PciPath)
        ]
    );
}

#[test]
fn two_backup_nics_with_one_mac_are_ambiguous() {
    // Divergence from upstream (which maps the first one by name order): neither is guessed.
    let b = [
        nic("eno1", "aa:00:00:00:00:01"),
        nic("eno2", "aa:00:00:00:00:01"),
    ];
    let c = [nic("enp1", "aa:00:00:00:00:01")];
    let m = compute_mapping(&b, &c);
    assert!(m.matches.is_empty());
    assert_eq!(m.unmatched, ["eno1", "eno2"]);
}

#[test]
fn virtual_and_null_mac_nics_are_never_candidates() {
    let mut bridge = nic("vmbr0", "aa:00:00:00:00:01");
    bridge.is_virtual = true;
    let b = [
        nic("eno1", "aa:00:00:00:00:01"),
        nic("eno2", "00:00:00:00:00:00"),
        nic("lo", "aa:00:00:00:00:07"),
    ];
    let c = [
        bridge,
        nic("x", "00:00:00:00:00:00"),
        nic("lo2", "aa:00:00:00:00:07"),
    ];
    let m = compute_mapping(&b, &c);
    assert!(m.matches.is_empty(), "{m:?}");
}

#[test]
fn chain_fixture_is_safe_as_a_whole() {
    // network.md §10.7: backup {eno1:mac01, ens20:mac02}, current {eth0:mac01, eno1:mac02}.
    // Upstream: ens20->eno1 safe, eno1->eth0 conflict, and applying only the safe one leaves two
    // `iface eno1`. Here both links of the chain are safe and applied together.
    let b = [
        nic("eno1", "aa:00:00:00:00:01"),
        nic("ens20", "aa:00:00:00:00:02"),
    ];
    let c = [
        nic("eth0", "aa:00:00:00:00:01"),
        nic("eno1", "aa:00:00:00:00:02"),
    ];
    let pl = plan(&b, &c, &[]);
    assert_eq!(
        pairs(&pl.safe),
        vec![
            p("eno1", "eth0", MatchMethod::Mac),
            p("ens20", "eno1", MatchMethod::Mac)
        ]
    );
    assert!(pl.conflicts.is_empty());
    let sel = pl.select(Selection::Safe).expect("select");
    let doc = Document::parse(b"auto eno1\niface eno1 inet manual\niface ens20 inet manual\niface vmbr0 inet manual\n\tbridge-ports eno1 ens20\n");
    let out = doc.rename(&sel.map, "i").expect("rename");
    assert_eq!(
        out.document.to_bytes(),
        b"auto eth0\niface eth0 inet manual\niface eno1 inet manual\niface vmbr0 inet manual\n\tbridge-ports eth0 eno1\n"
    );
}

#[test]
fn name_taken_is_a_conflict_with_details() {
    // backup eno1 (mac01) is eth0 here; this host's eno1 is another, unmatched NIC.
    let b = [nic("eno1", "aa:00:00:00:00:01")];
    let mut other = nic("eno1", "aa:00:00:00:00:99");
    other.pci_path = "/sys/devices/pci0000:00/0000:05:00.0".into();
    let c = [nic("eth0", "aa:00:00:00:00:01"), other];
    let pl = plan(&b, &c, &[]);
    assert!(pl.safe.is_empty());
    assert_eq!(pl.conflicts.len(), 1);
    assert!(matches!(
        pl.conflicts[0].reason,
        ConflictReason::NameTaken { .. }
    ));
    assert_eq!(
        pl.conflicts[0].to_string(),
        "eno1 -> eth0 (mac=aa:00:00:00:00:01) but current eno1 exists (mac=aa:00:00:00:00:99 pci=/sys/devices/pci0000:00/0000:05:00.0)"
    );
    assert!(pl.select(Selection::Safe).expect("safe").map.is_empty());
    let all = pl.select(Selection::All).expect("all");
    assert_eq!(all.map.get("eno1"), Some("eth0"));
    assert!(
        pl.describe()
            .contains("- eno1 -> eth0 (mac=aa:00:00:00:00:01)\n")
    );
}

#[test]
fn a_rename_onto_a_name_the_backup_keeps_would_collapse() {
    // backup eno1's card is gone; backup ens20 is called eno1 here.
    let b = [
        nic("eno1", "aa:00:00:00:00:01"),
        nic("ens20", "aa:00:00:00:00:02"),
    ];
    let c = [nic("eno1", "aa:00:00:00:00:02")];
    let pl = plan(&b, &c, &[]);
    assert!(pl.safe.is_empty());
    assert_eq!(
        pl.conflicts[0].reason,
        ConflictReason::WouldCollapse {
            with: "eno1".into()
        }
    );
    assert_eq!(pl.unmatched, ["eno1"]);
    // not even "all" applies it
    let all = pl.select(Selection::All).expect("all");
    assert!(all.map.is_empty());
    assert_eq!(all.skipped.len(), 1);
}

fn rule(name: &str, mac: Option<&str>) -> NamingRule {
    NamingRule {
        kind: RuleKind::Udev,
        file: PathBuf::from("/etc/udev/rules.d/70-persistent-net.rules"),
        line: 3,
        name: name.into(),
        mac: mac.map(str::to_string),
    }
}

#[test]
fn pinned_names_are_never_renamed() {
    let b = [
        nic("eth0", "aa:00:00:00:00:01"),
        nic("eth1", "aa:00:00:00:00:02"),
    ];
    let c = [
        nic("enp1", "aa:00:00:00:00:01"),
        nic("enp2", "aa:00:00:00:00:02"),
    ];
    // a rule pins eth0 (the backup's name): it will be eth0 again after boot
    let pl = plan(&b, &c, &[rule("eth0", Some("aa:00:00:00:00:01"))]);
    assert_eq!(pairs(&pl.safe), vec![p("eth1", "enp2", MatchMethod::Mac)]);
    assert!(matches!(
        pl.conflicts[0].reason,
        ConflictReason::Pinned { .. }
    ));
    let all = pl.select(Selection::All).expect("all");
    assert_eq!(all.map.get("eth0"), None);
    assert_eq!(all.map.get("eth1"), Some("enp2"));
    // a rule that names the current NIC differently also pins it
    let pl = plan(&b, &c, &[rule("lan0", Some("aa:00:00:00:00:02"))]);
    assert_eq!(pairs(&pl.safe), vec![p("eth0", "enp1", MatchMethod::Mac)]);
    // a rule that gives the current NIC its current name is consistent: safe
    let pl = plan(&b, &c, &[rule("enp2", Some("aa:00:00:00:00:02"))]);
    assert_eq!(pl.safe.len(), 2);
}

#[test]
fn swap_plan_keeps_both_nics_distinct() {
    let b = [
        nic("eth0", "aa:00:00:00:00:01"),
        nic("eth1", "aa:00:00:00:00:02"),
    ];
    let c = [
        nic("eth1", "aa:00:00:00:00:01"),
        nic("eth0", "aa:00:00:00:00:02"),
    ];
    let pl = plan(&b, &c, &[]);
    assert_eq!(pl.safe.len(), 2);
    let sel = pl.select(Selection::Safe).expect("select");
    assert_eq!(sel.map.get("eth0"), Some("eth1"));
    assert_eq!(sel.map.get("eth1"), Some("eth0"));
}

#[test]
fn invalid_backup_names_are_not_candidates() {
    // names that are not legal interface names never enter the matcher
    let b = [nic("a-very-long-interface-name", "aa:00:00:00:00:01")];
    let c = [nic("eth0", "aa:00:00:00:00:01")];
    let pl = plan(&b, &c, &[]);
    assert!(pl.is_empty());
}

#[test]
fn udev_rules_parser() {
    let text = br#"# comment
SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="00:11:22:33:44:55", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0"

SUBSYSTEM=="net", ATTR{address}=="00:11:22:33:44:66", NAME:="lan1"
ACTION=="add", ATTR{address}=="00:11:22:33:44:77", NAME="nosubsystem"
SUBSYSTEM=="net", NAME=="match-only"
SUBSYSTEM=="net", KERNEL=="eth*", NAME="lan%n"
SUBSYSTEM=="net", ENV{X}=="a,b", \
  ATTR{address}=="00:11:22:33:44:88", NAME="cont0"
"#;
    let rules = parse_udev_rules(Path::new("/etc/udev/rules.d/70.rules"), text);
    let got: Vec<(usize, &str, Option<&str>)> = rules
        .iter()
        .map(|r| (r.line, r.name.as_str(), r.mac.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "eth0", Some("00:11:22:33:44:55")),
            (4, "lan1", Some("00:11:22:33:44:66")),
            (7, "lan%n", None),
            (8, "cont0", Some("00:11:22:33:44:88")),
        ]
    );
    assert!(rules[2].is_template());
    assert!(!rules[2].pins("lan%n"));
    assert!(rules[0].pins("eth0"));
    assert_eq!(
        rules[0].to_string(),
        "udev /etc/udev/rules.d/70.rules:2 name=eth0 mac=00:11:22:33:44:55"
    );
}

#[test]
fn link_file_parser() {
    let two =
        b"[Match]\nMACAddress=00:11:22:33:44:66 00:11:22:33:44:55\n\n[Link]\n# c\nName=\"lan0\"\n";
    let rules = parse_link_file(Path::new("/etc/systemd/network/10-lan0.link"), two);
    let got: Vec<(usize, &str, Option<&str>)> = rules
        .iter()
        .map(|r| (r.line, r.name.as_str(), r.mac.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (6, "lan0", Some("00:11:22:33:44:55")),
            (6, "lan0", Some("00:11:22:33:44:66"))
        ]
    );
    assert!(
        parse_link_file(
            Path::new("/x.link"),
            b"[Match]\nMACAddress=00:11:22:33:44:55\n[Link]\nNamePolicy=path\n"
        )
        .is_empty()
    );
    let path_only = parse_link_file(
        Path::new("/x.link"),
        b"[Match]\nPath=pci-0000:03:00.0\n[Link]\nName=wan0\n",
    );
    assert_eq!(path_only.len(), 1);
    assert_eq!(path_only[0].mac, None);
    let perm = parse_link_file(
        Path::new("/x.link"),
        b"[Match]\nPermanentMACAddress=00:11:22:33:44:55\n[Link]\nName=wan0\n",
    );
    assert_eq!(perm[0].mac.as_deref(), Some("00:11:22:33:44:55"));
}

#[test]
fn scan_reads_both_directories_inside_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    assert!(scan(root).expect("empty root").is_empty());
    let w = |rel: &str, body: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    };
    w(
        "etc/udev/rules.d/70-persistent-net.rules",
        b"SUBSYSTEM==\"net\", ATTR{address}==\"00:11:22:33:44:55\", NAME=\"eth0\"\n",
    );
    w(
        "etc/udev/rules.d/no-suffix",
        b"SUBSYSTEM==\"net\", NAME=\"eth9\"\n",
    );
    w(
        "etc/systemd/network/10-lan.LINK",
        b"[Match]\nMACAddress=00:11:22:33:44:66\n[Link]\nName=lan0\n",
    );
    w(
        "etc/systemd/network/20-x.network",
        b"[Match]\nMACAddress=00:11:22:33:44:77\n[Link]\nName=lan9\n",
    );
    let rules = scan(root).expect("scan");
    let got: Vec<(RuleKind, String, &str)> = rules
        .iter()
        .map(|r| {
            (
                r.kind,
                r.file.to_string_lossy().into_owned(),
                r.name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                RuleKind::Udev,
                "/etc/udev/rules.d/70-persistent-net.rules".into(),
                "eth0"
            ),
            (RuleKind::Udev, "/etc/udev/rules.d/no-suffix".into(), "eth9"),
            (
                RuleKind::SystemdLink,
                "/etc/systemd/network/10-lan.LINK".into(),
                "lan0"
            ),
        ]
    );
    assert_eq!(
        summary(&rules),
        "NIC naming overrides detected: udev=2 systemd-link=1"
    );
}
