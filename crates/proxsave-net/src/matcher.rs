//! Matching the backup's NICs to this host's NICs, and the rename plan.
//!
//! [`compute_mapping`] is pure and deterministic. It works in rounds, one per [`MatchMethod`]
//! from strongest to weakest evidence (permanent MAC, MAC, PCI path, udev `ID_PATH`, udev
//! `ID_NET_NAME_PATH`): in each round a backup NIC not yet matched is matched to a current NIC not
//! yet used when they share a key that **no other candidate on either side has**. Keys shared by
//! two NICs on one side (bond slaves that share a MAC) are ambiguous and skipped for that method
//! only, so the NIC falls through to the next method. Because a key can match only one pair, the
//! result does not depend on iteration order, and it is injective by construction.
//!
//! Only physical NICs are candidates: never `lo`, never a virtual device (bridges, bonds,
//! veths, VLANs), never a name that is not a legal interface name.
//!
//! [`plan`] sorts the renames into safe ones and [`Conflict`]s; a NIC whose name a naming rule
//! pins is never renamed, and no selection ever gives two NICs one name.

use std::collections::{BTreeMap, BTreeSet};

use crate::ifaces::{RenameMap, RenameMapError, is_valid_ifname};
use crate::inventory::Nic;
use crate::overrides::NamingRule;

/// How a backup NIC was matched, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// Same permanent MAC (`ethtool -P`).
    PermanentMac,
    /// Same current MAC.
    Mac,
    /// Same sysfs device path (mount prefixes removed).
    PciPath,
    /// Same udev `ID_PATH`.
    UdevIdPath,
    /// Same udev `ID_NET_NAME_PATH`.
    UdevNetNamePath,
}

impl MatchMethod {
    /// All methods in matching order.
    pub const ALL: [MatchMethod; 5] = [
        MatchMethod::PermanentMac,
        MatchMethod::Mac,
        MatchMethod::PciPath,
        MatchMethod::UdevIdPath,
        MatchMethod::UdevNetNamePath,
    ];

    /// Stable name (`permanent_mac`, `mac`, `pci_path`, `udev_id_path`, `udev_net_name_path`).
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMethod::PermanentMac => "permanent_mac",
            MatchMethod::Mac => "mac",
            MatchMethod::PciPath => "pci_path",
            MatchMethod::UdevIdPath => "udev_id_path",
            MatchMethod::UdevNetNamePath => "udev_net_name_path",
        }
    }

    /// The NIC's normalised key for this method, if it has one.
    pub fn key(self, nic: &Nic) -> Option<String> {
        match self {
            MatchMethod::PermanentMac => nic.permanent_mac_key(),
            MatchMethod::Mac => nic.mac_key(),
            MatchMethod::PciPath => nic.pci_path_key(),
            MatchMethod::UdevIdPath => nic.udev("ID_PATH"),
            MatchMethod::UdevNetNamePath => nic.udev("ID_NET_NAME_PATH"),
        }
    }
}

impl std::fmt::Display for MatchMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backup NIC matched to one current NIC.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NicMatch {
    /// Name in the backup (and in the backup's configuration).
    pub old: String,
    /// Name on this host.
    pub new: String,
    /// How.
    pub method: MatchMethod,
    /// The shared key (normalised).
    pub identifier: String,
}

impl NicMatch {
    /// True when the names differ (a rename is needed).
    pub fn is_rename(&self) -> bool {
        self.old != self.new
    }
}

impl std::fmt::Display for NicMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ({}={})",
            self.old, self.new, self.method, self.identifier
        )
    }
}

/// The result of [`compute_mapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Every match, identities included, sorted by backup name.
    pub matches: Vec<NicMatch>,
    /// Backup candidates that matched nothing, sorted.
    pub unmatched: Vec<String>,
}

impl Mapping {
    /// The matches whose names differ, sorted by backup name.
    pub fn renames(&self) -> impl Iterator<Item = &NicMatch> {
        self.matches.iter().filter(|m| m.is_rename())
    }
}

fn candidates(nics: &[Nic]) -> Vec<&Nic> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<&Nic> = nics
        .iter()
        .filter(|n| n.is_candidate() && is_valid_ifname(&n.name))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.retain(|n| seen.insert(n.name.clone()));
    out
}

fn unique_keys(nics: &[&Nic], method: MatchMethod) -> BTreeMap<String, usize> {
    let mut all: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, n) in nics.iter().enumerate() {
        if let Some(k) = method.key(n) {
            all.entry(k).or_default().push(i);
        }
    }
    all.into_iter()
        .filter(|(_, v)| v.len() == 1)
        .map(|(k, v)| (k, v[0]))
        .collect()
}

/// Matches the backup's NICs to this host's, see the module documentation.
pub fn compute_mapping(backup: &[Nic], current: &[Nic]) -> Mapping {
    let b = candidates(backup);
    let c = candidates(current);
    let mut b_done = vec![false; b.len()];
    let mut c_used = vec![false; c.len()];
    let mut matches = Vec::new();
    for method in MatchMethod::ALL {
        let bk = unique_keys(&b, method);
        let ck = unique_keys(&c, method);
        for (key, bi) in bk {
            if b_done[bi] {
                continue;
            }
            let Some(&ci) = ck.get(&key) else { continue };
            if c_used[ci] {
                continue;
            }
            b_done[bi] = true;
            c_used[ci] = true;
            matches.push(NicMatch {
                old: b[bi].name.clone(),
                new: c[ci].name.clone(),
                method,
                identifier: key,
            });
        }
    }
    matches.sort();
    let unmatched = b
        .iter()
        .zip(&b_done)
        .filter(|(_, d)| !**d)
        .map(|(n, _)| n.name.clone())
        .collect();
    Mapping { matches, unmatched }
}

/// Why a rename is not safe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConflictReason {
    /// This host has an interface with the backup's name that nothing in the backup matches: the
    /// name belongs to another NIC here.
    NameTaken {
        /// That interface.
        existing: Nic,
    },
    /// A naming rule decides one of the names involved; never renamed, not even on request.
    Pinned {
        /// The rule.
        rule: NamingRule,
    },
    /// The new name is also the name of a backup interface that keeps its name: applying this
    /// rename alone would give two NICs one name.
    WouldCollapse {
        /// The backup interface that keeps the name.
        with: String,
    },
}

/// A rename that is not applied by default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The rename.
    pub rename: NicMatch,
    /// Why it is held back.
    pub reason: ConflictReason,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            ConflictReason::NameTaken { existing } => {
                let mut ids = Vec::new();
                if !existing.permanent_mac.is_empty() {
                    ids.push(format!("permMAC={}", existing.permanent_mac));
                }
                if !existing.mac.is_empty() {
                    ids.push(format!("mac={}", existing.mac));
                }
                if !existing.pci_path.is_empty() {
                    ids.push(format!("pci={}", existing.pci_path));
                }
                let ids = if ids.is_empty() {
                    "no identifiers".to_string()
                } else {
                    ids.join(" ")
                };
                write!(
                    f,
                    "{} but current {} exists ({ids})",
                    self.rename, self.rename.old
                )
            }
            ConflictReason::Pinned { rule } => {
                write!(f, "{} but a naming rule pins it: {rule}", self.rename)
            }
            ConflictReason::WouldCollapse { with } => write!(
                f,
                "{} but the backup's {with} keeps that name (two NICs would share it)",
                self.rename
            ),
        }
    }
}

/// Which renames to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// Safe renames only.
    #[default]
    Safe,
    /// Safe renames and conflicts, except pinned names and renames that would collapse two NICs.
    All,
}

/// Safe renames and conflicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// All matches (identities included), for display.
    pub matches: Vec<NicMatch>,
    /// Renames safe to apply together, sorted by old name.
    pub safe: Vec<NicMatch>,
    /// Renames held back, sorted by old name.
    pub conflicts: Vec<Conflict>,
    /// Backup NICs that matched nothing here.
    pub unmatched: Vec<String>,
    /// Every interface name of the backup (for the collapse check of [`Plan::select`]).
    pub backup_names: Vec<String>,
}

/// Drops, until nothing changes, every rename whose new name a backup interface keeps.
fn close(
    mut selected: Vec<NicMatch>,
    backup_names: &BTreeSet<&str>,
) -> (Vec<NicMatch>, Vec<Conflict>) {
    let mut dropped = Vec::new();
    loop {
        let olds: BTreeSet<String> = selected.iter().map(|m| m.old.clone()).collect();
        let (keep, drop): (Vec<NicMatch>, Vec<NicMatch>) = selected
            .into_iter()
            .partition(|m| !backup_names.contains(m.new.as_str()) || olds.contains(&m.new));
        selected = keep;
        if drop.is_empty() {
            break;
        }
        dropped.extend(drop.into_iter().map(|m| Conflict {
            reason: ConflictReason::WouldCollapse {
                with: m.new.clone(),
            },
            rename: m,
        }));
    }
    (selected, dropped)
}

/// Plans NIC renames: [`compute_mapping`], then each rename is
/// * **pinned** when a naming rule assigns the old name, assigns the new name to another NIC, or
///   names the current NIC differently (never applied);
/// * **name taken** when this host has an interface called like the old name that no backup NIC
///   matched (applied only with [`Selection::All`]);
/// * **would collapse** when its new name is a backup interface name that stays (see
///   [`ConflictReason::WouldCollapse`]);
/// * otherwise safe. Chains and swaps (`a -> b` while `b -> c`) are safe when every link is.
pub fn plan(backup: &[Nic], current: &[Nic], rules: &[NamingRule]) -> Plan {
    let mapping = compute_mapping(backup, current);
    let matched_current: BTreeSet<&str> = mapping.matches.iter().map(|m| m.new.as_str()).collect();
    let by_name: BTreeMap<&str, &Nic> = current.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut candidates = Vec::new();
    let mut conflicts = Vec::new();
    for m in mapping.renames() {
        let cur = by_name.get(m.new.as_str()).copied();
        let pinned = rules.iter().find(|r| {
            r.pins(&m.old)
                || (r.pins(&m.new) && r.mac.is_some() && !cur.is_some_and(|c| r.matches_nic(c)))
                || (cur.is_some_and(|c| r.matches_nic(c)) && !r.pins(&m.new))
        });
        if let Some(rule) = pinned {
            conflicts.push(Conflict {
                rename: m.clone(),
                reason: ConflictReason::Pinned { rule: rule.clone() },
            });
            continue;
        }
        if let Some(existing) = by_name.get(m.old.as_str()) {
            if !matched_current.contains(m.old.as_str()) {
                conflicts.push(Conflict {
                    rename: m.clone(),
                    reason: ConflictReason::NameTaken {
                        existing: (*existing).clone(),
                    },
                });
                continue;
            }
        }
        candidates.push(m.clone());
    }
    let backup_names: BTreeSet<&str> = backup.iter().map(|n| n.name.as_str()).collect();
    let (safe, dropped) = close(candidates, &backup_names);
    conflicts.extend(dropped);
    conflicts.sort_by(|a, b| a.rename.cmp(&b.rename));
    Plan {
        matches: mapping.matches,
        safe,
        conflicts,
        unmatched: mapping.unmatched,
        backup_names: backup.iter().map(|n| n.name.clone()).collect(),
    }
}

/// The renames a [`Selection`] applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selected {
    /// The validated map, ready for [`crate::ifaces::Document::rename`].
    pub map: RenameMap,
    /// The renames in it, sorted by old name.
    pub applied: Vec<NicMatch>,
    /// The renames left out, and why.
    pub skipped: Vec<Conflict>,
}

impl Plan {
    /// True when there is nothing to rename.
    pub fn is_empty(&self) -> bool {
        self.safe.is_empty() && self.conflicts.is_empty()
    }

    /// The renames to apply for `selection`. Pinned renames are never applied; with
    /// [`Selection::All`] the other conflicts are added and the collapse check runs again on the
    /// larger set.
    pub fn select(&self, selection: Selection) -> Result<Selected, RenameMapError> {
        self.select_keeping(selection, &BTreeSet::new())
    }

    /// Like [`Plan::select`], with more names that stay unless renamed — typically the `iface`
    /// names of the configuration, which may name interfaces the inventory does not list. A
    /// rename onto such a name is skipped as [`ConflictReason::WouldCollapse`].
    pub fn select_keeping(
        &self,
        selection: Selection,
        kept_names: &BTreeSet<String>,
    ) -> Result<Selected, RenameMapError> {
        let mut chosen = self.safe.clone();
        let mut skipped = Vec::new();
        for c in &self.conflicts {
            match (&c.reason, selection) {
                (ConflictReason::Pinned { .. }, _) | (_, Selection::Safe) => {
                    skipped.push(c.clone())
                }
                (_, Selection::All) => chosen.push(c.rename.clone()),
            }
        }
        let names: BTreeSet<&str> = self
            .backup_names
            .iter()
            .chain(kept_names)
            .map(String::as_str)
            .collect();
        let (mut applied, dropped) = close(chosen, &names);
        skipped.extend(dropped);
        applied.sort();
        skipped.sort_by(|a, b| a.rename.cmp(&b.rename));
        skipped.dedup();
        let map = RenameMap::new(applied.iter().map(|m| (m.old.clone(), m.new.clone())))?;
        Ok(Selected {
            map,
            applied,
            skipped,
        })
    }

    /// Text for plans and logs: `NIC mapping (backup -> current):` with one `- old -> new
    /// (method=identifier)` per rename, then the conflicts.
    pub fn describe(&self) -> String {
        let mut out = String::from("NIC mapping (backup -> current):\n");
        let renames: Vec<&NicMatch> = self.matches.iter().filter(|m| m.is_rename()).collect();
        if renames.is_empty() {
            out.push_str("- none\n");
        }
        for m in renames {
            out.push_str(&format!("- {m}\n"));
        }
        if !self.conflicts.is_empty() {
            out.push_str("NIC name conflicts (not applied by default):\n");
            for c in &self.conflicts {
                out.push_str(&format!("- {c}\n"));
            }
        }
        out
    }
}
