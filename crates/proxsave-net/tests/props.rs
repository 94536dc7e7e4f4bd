//! Property tests (network.md §13, 1 and 15): parsers never fail and round-trip, renames are
//! structural and reversible, the matcher is injective, deterministic and equivariant, plans never
//! collapse two NICs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;
use proxsave_net::ifaces::{Document, Item, RenameMap};
use proxsave_net::inventory::{
    Inventory, Nic, is_null_mac, parse_ethtool_permanent, parse_udev_db, parse_udev_properties,
};
use proxsave_net::matcher::{MatchMethod, Selection, compute_mapping, plan};
use proxsave_net::overrides::{parse_link_file, parse_udev_rules};

fn line_strategy() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("iface".to_string()),
        Just("auto".to_string()),
        Just("allow-hotplug".to_string()),
        Just("bridge-ports".to_string()),
        Just("bond-slaves".to_string()),
        Just("vlan-raw-device".to_string()),
        Just("post-up".to_string()),
        Just("rename".to_string()),
        Just("inet".to_string()),
        Just("manual".to_string()),
        Just("#".to_string()),
        Just("none".to_string()),
        Just("a=b".to_string()),
        Just("eno1".to_string()),
        Just("eno1.100".to_string()),
        Just("eth0".to_string()),
        Just("eth1".to_string()),
        Just("eth10".to_string()),
        Just("vmbr0".to_string()),
        Just("\\".to_string()),
        "[a-z0-9.:=#-]{1,6}",
    ];
    (
        prop::collection::vec(word, 0..6),
        prop_oneof![Just(" "), Just("\t"), Just("  ")],
        prop_oneof![Just("\n"), Just("\r\n"), Just("\\\n"), Just("")],
    )
        .prop_map(|(words, sep, end)| format!("{}{end}", words.join(sep)))
}

fn file_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line_strategy(), 0..12).prop_map(|l| l.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let doc = Document::parse(&bytes);
        prop_assert_eq!(doc.to_bytes(), bytes.clone());
        let mut pos = 0;
        for l in doc.lines() {
            prop_assert_eq!(l.start, pos);
            prop_assert!(l.end > l.start);
            pos = l.end;
        }
        prop_assert_eq!(pos, bytes.len());
        for r in doc.references() {
            if r.token.is_contiguous() {
                prop_assert_eq!(&bytes[r.token.span.start..r.token.span.end], r.token.text.as_slice());
            }
        }
    }

    #[test]
    fn interfaces_like_files_round_trip(bytes in file_strategy()) {
        let doc = Document::parse(&bytes);
        prop_assert_eq!(doc.to_bytes(), bytes);
    }

    #[test]
    fn permutation_renames_are_reversible_and_structural(
        bytes in file_strategy(),
        perm in Just(vec!["eno1", "eth0", "eth1", "vmbr0"]).prop_shuffle(),
    ) {
        let universe = ["eno1", "eth0", "eth1", "vmbr0"];
        let fwd = RenameMap::new(universe.iter().zip(&perm).map(|(a, b)| (*a, *b))).expect("map");
        let back = RenameMap::new(perm.iter().zip(&universe).map(|(a, b)| (*a, *b))).expect("map");
        let doc = Document::parse(&bytes);
        let once = doc.rename(&fwd, "f").expect("a permutation never collides");
        let twice = once.document.rename(&back, "f").expect("inverse");
        prop_assert_eq!(twice.document.to_bytes(), bytes.clone());
        // comments and non-reference lines are untouched
        let a = doc.lines();
        let b = once.document.lines();
        prop_assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            let keep = match &x.item {
                Item::Comment | Item::Blank | Item::Source { .. } | Item::SourceDirectory { .. } => true,
                Item::Option { key, .. } => {
                    !matches!(key.as_str(), Some("bridge-ports" | "bond-slaves" | "vlan-raw-device"))
                }
                _ => false,
            };
            if keep {
                prop_assert_eq!(&bytes[x.start..x.end], &once.document.as_bytes()[y.start..y.end]);
            }
        }
    }

    #[test]
    fn other_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), text in "\\PC{0,200}|permanent addr\\PC{0,8}") {
        let _ = parse_udev_rules(Path::new("/r"), &bytes);
        let _ = parse_udev_rules(Path::new("/r"), text.as_bytes());
        let _ = parse_udev_rules(Path::new("/r"), format!("SUBSYSTEM==\"net\", {text}").as_bytes());
        let _ = parse_link_file(Path::new("/l.link"), &bytes);
        let _ = parse_link_file(Path::new("/l.link"), format!("[Link]\nName={text}\n[Match]\nMACAddress={text}").as_bytes());
        let _ = Inventory::parse("x", &bytes);
        let _ = parse_ethtool_permanent(&text);
        let _ = parse_ethtool_permanent(&format!("Permanent address:{text}"));
        let _ = parse_udev_properties(&text);
        let _ = parse_udev_db(&bytes);
        let _ = Inventory::parse("x", text.as_bytes());
    }
}

const MACS: [&str; 6] = [
    "aa:00:00:00:00:01",
    "aa:00:00:00:00:02",
    "AA:00:00:00:00:03",
    "00:00:00:00:00:00",
    "ff:ff:ff:ff:ff:ff",
    "",
];
const PCI: [&str; 4] = [
    "/sys/devices/pci0000:00/0000:01:00.0",
    "/sys/devices/pci0000:00/0000:02:00.0",
    "/mnt/x/sys/devices/pci0000:00/0000:01:00.0",
    "",
];

fn nic_strategy(names: &'static [&'static str]) -> impl Strategy<Value = Nic> {
    (
        prop::sample::select(names),
        prop::sample::select(&MACS[..]),
        prop::sample::select(&MACS[..]),
        prop::sample::select(&PCI[..]),
        prop::option::of(prop::sample::select(
            &["pci-0000:01:00.0", "pci-0000:02:00.0"][..],
        )),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(name, mac, perm, pci, id_path, virt)| {
            let mut n = Nic {
                name: name.to_string(),
                mac: mac.to_string(),
                permanent_mac: perm.to_string(),
                pci_path: pci.to_string(),
                is_virtual: virt,
                ..Nic::default()
            };
            if let Some(p) = id_path {
                n.udev_properties.insert("ID_PATH".into(), p.to_string());
            }
            n
        })
}

const NAMES: &[&str] = &[
    "eno1", "eno2", "eth0", "eth1", "ens20", "lo", "vmbr0", "enp3s0",
];

fn inventory_strategy() -> impl Strategy<Value = Vec<Nic>> {
    prop::collection::vec(nic_strategy(NAMES), 0..7).prop_map(|mut v| {
        let mut seen = BTreeSet::new();
        v.retain(|n| seen.insert(n.name.clone()));
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matcher_properties(backup in inventory_strategy(), current in inventory_strategy()) {
        let m = compute_mapping(&backup, &current);
        // (a) injective on both sides
        let olds: BTreeSet<&str> = m.matches.iter().map(|x| x.old.as_str()).collect();
        let news: BTreeSet<&str> = m.matches.iter().map(|x| x.new.as_str()).collect();
        prop_assert_eq!(olds.len(), m.matches.len());
        prop_assert_eq!(news.len(), m.matches.len());
        // (b) renames never identity
        prop_assert!(m.renames().all(|x| x.old != x.new));
        let by_b: BTreeMap<&str, &Nic> = backup.iter().map(|n| (n.name.as_str(), n)).collect();
        let by_c: BTreeMap<&str, &Nic> = current.iter().map(|n| (n.name.as_str(), n)).collect();
        for x in &m.matches {
            let (b, c) = (by_b[x.old.as_str()], by_c[x.new.as_str()]);
            // (e) never lo or virtual
            prop_assert!(b.name != "lo" && c.name != "lo" && !b.is_virtual && !c.is_virtual);
            // (f) identifier is both sides' key and unique among current candidates
            prop_assert_eq!(x.method.key(b), Some(x.identifier.clone()));
            prop_assert_eq!(x.method.key(c), Some(x.identifier.clone()));
            let holders = current
                .iter()
                .filter(|n| n.is_candidate() && x.method.key(n).as_deref() == Some(x.identifier.as_str()))
                .count();
            prop_assert_eq!(holders, 1);
            // (g) null MACs never match
            if matches!(x.method, MatchMethod::Mac | MatchMethod::PermanentMac) {
                prop_assert!(!is_null_mac(&x.identifier));
            }
        }
        // determinism: input order does not matter
        let mut rb = backup.clone();
        rb.reverse();
        let mut rc = current.clone();
        rc.reverse();
        prop_assert_eq!(compute_mapping(&rb, &rc), m.clone());
    }

    #[test]
    fn matching_itself_renames_nothing(inv in inventory_strategy()) {
        // (c)
        prop_assert_eq!(compute_mapping(&inv, &inv).renames().count(), 0);
    }

    #[test]
    fn matcher_is_equivariant(backup in inventory_strategy(), current in inventory_strategy()) {
        // (d) renaming this host's NICs by a bijection renames the result accordingly
        let sigma: BTreeMap<String, String> = current
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let new = if n.name == "lo" { "lo".to_string() } else { format!("x{i}") };
                (n.name.clone(), new)
            })
            .collect();
        let renamed: Vec<Nic> = current
            .iter()
            .map(|n| Nic { name: sigma[&n.name].clone(), ..n.clone() })
            .collect();
        let a = compute_mapping(&backup, &current);
        let b = compute_mapping(&backup, &renamed);
        let mapped: Vec<(String, String, MatchMethod, String)> = a
            .matches
            .iter()
            .map(|x| (x.old.clone(), sigma[&x.new].clone(), x.method, x.identifier.clone()))
            .collect();
        let got: Vec<(String, String, MatchMethod, String)> = b
            .matches
            .iter()
            .map(|x| (x.old.clone(), x.new.clone(), x.method, x.identifier.clone()))
            .collect();
        prop_assert_eq!(got, mapped);
        prop_assert_eq!(a.unmatched, b.unmatched);
    }

    #[test]
    fn selections_never_collapse_two_nics(backup in inventory_strategy(), current in inventory_strategy()) {
        let pl = plan(&backup, &current, &[]);
        for sel in [Selection::Safe, Selection::All] {
            let s = pl.select(sel).expect("a plan always gives a valid map");
            // a configuration with one stanza per backup interface stays collision-free
            let text: String = backup.iter().map(|n| format!("iface {} inet manual\n", n.name)).collect();
            let doc = Document::parse(text.as_bytes());
            let out = doc.rename(&s.map, "f").expect("no two NICs share a name");
            let names: Vec<String> = out
                .document
                .stanzas()
                .iter()
                .filter_map(|st| st.name.map(|t| t.lossy()))
                .collect();
            let unique: BTreeSet<&String> = names.iter().collect();
            prop_assert_eq!(unique.len(), names.len());
            // safe renames are a subset of all renames
            if sel == Selection::Safe {
                prop_assert_eq!(s.applied.clone(), pl.safe.clone());
            }
        }
    }
}
