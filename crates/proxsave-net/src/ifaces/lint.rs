//! Checks ifupdown and ifupdown2 do not make (or make only on the live system).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{ConfigSet, Flavor, Item, RefKind, Stanza, StanzaKind, key_is};

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Suspicious but accepted by the tools.
    Warning,
    /// The configuration will not work as written: never apply it live.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What a [`Finding`] is about (stable identifiers for tests and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    /// An option line outside any stanza ("misplaced option").
    OptionBeforeStanza,
    /// A malformed line (bare `iface`, family without method under classic ifupdown, option
    /// without value, include without path).
    MalformedLine,
    /// An address family the implementation does not know (ifupdown2: only inet and inet6).
    UnknownFamily,
    /// An interface name longer than 15 bytes.
    InvalidName,
    /// A method the family does not have (`inet staticc`).
    UnknownMethod,
    /// Two stanzas with one name and family (the tools merge them silently).
    DuplicateStanza,
    /// A port or slave listed by two masters.
    PortInTwoMasters,
    /// A reference to an interface this host does not have and the configuration does not create.
    MissingNic,
    /// `auto`/`allow-*` of a name without a stanza.
    AutoWithoutStanza,
    /// A `mapping` stanza (its script runs even in dry-run validators).
    MappingStanza,
    /// `source-directory` under ifupdown2.
    SourceDirectoryUnsupported,
    /// A `source` target that does not exist or cannot be read.
    MissingSource,
    /// A file included twice or nested too deeply.
    IncludeLoop,
    /// A `#` inside an option value (part of the value, not a comment).
    InlineHash,
}

/// One problem, with the file and line it is on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// File (absolute path inside the root).
    pub file: PathBuf,
    /// Physical line (1-based).
    pub line: usize,
    /// Severity.
    pub severity: Severity,
    /// What.
    pub code: FindingCode,
    /// Human-readable explanation.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.severity,
            self.message
        )
    }
}

/// What [`lint`] knows about this host.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Names of every interface this host has now (physical and virtual). `None` skips the
    /// missing-NIC checks.
    pub current_interfaces: Option<BTreeSet<String>>,
}

impl LintOptions {
    /// Options knowing every interface name of `current` (this host's inventory).
    pub fn with_inventory(current: &crate::inventory::Inventory) -> LintOptions {
        LintOptions {
            current_interfaces: Some(current.nics().iter().map(|n| n.name.clone()).collect()),
        }
    }
}

/// Families and methods of classic ifupdown.
const FAMILIES_IFUPDOWN: &[(&str, &[&str])] = &[
    (
        "inet",
        &[
            "loopback", "static", "dhcp", "manual", "bootp", "tunnel", "ppp", "wvdial", "ipv4ll",
        ],
    ),
    (
        "inet6",
        &[
            "auto", "loopback", "static", "manual", "dhcp", "v4tunnel", "6to4",
        ],
    ),
    ("ipx", &["static", "dynamic"]),
    ("can", &["static"]),
];

/// Families and methods of ifupdown2 (Proxmox's adds `auto`).
const FAMILIES_IFUPDOWN2: &[(&str, &[&str])] = &[
    (
        "inet",
        &[
            "static", "manual", "loopback", "dhcp", "dhcp6", "ppp", "tunnel", "auto",
        ],
    ),
    (
        "inet6",
        &[
            "static", "manual", "loopback", "dhcp", "dhcp6", "ppp", "tunnel", "auto",
        ],
    ),
];

/// Keys whose presence means the stanza creates its device (bridge, bond, VLAN, VXLAN, VRF, ...).
const CREATING_KEYS: &[&str] = &[
    "bridge-ports",
    "bond-slaves",
    "slaves",
    "bond-mode",
    "vlan-raw-device",
    "vlan-id",
    "vxlan-id",
    "link-type",
    "vrf-table",
    "ovs-type",
];

const CREATING_METHODS: &[&str] = &["loopback", "tunnel", "v4tunnel", "6to4", "ppp", "wvdial"];

fn creates_device(st: &Stanza<'_>) -> bool {
    st.options
        .iter()
        .any(|o| CREATING_KEYS.iter().any(|k| key_is(&o.key.text, k)))
        || st
            .method
            .and_then(|m| m.as_str())
            .is_some_and(|m| CREATING_METHODS.contains(&m))
}

/// Checks a configuration set. Findings come in file order, then line order; the include
/// problems found by [`ConfigSet::load`] are part of the result.
pub fn lint(set: &ConfigSet, opts: &LintOptions) -> Vec<Finding> {
    let mut out: Vec<Finding> = set.findings.clone();
    let mut stanza_seen: BTreeMap<(Vec<u8>, Vec<u8>), (PathBuf, usize)> = BTreeMap::new();
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for f in &set.files {
        for st in f.document.stanzas() {
            if st.kind != StanzaKind::Iface {
                continue;
            }
            if let Some(name) = st.name.and_then(|n| n.as_str()) {
                declared.insert(name.to_string());
                if creates_device(&st) {
                    created.insert(name.to_string());
                }
            }
        }
    }
    let mut masters: BTreeMap<String, Vec<(String, PathBuf, usize)>> = BTreeMap::new();
    for f in &set.files {
        let file = f.path.clone();
        let mk = |line: usize, severity, code, message: String| Finding {
            file: file.clone(),
            line,
            severity,
            code,
            message,
        };
        for line in f.document.orphan_options() {
            if let Item::Option { key, .. } = &line.item {
                out.push(mk(
                    line.line,
                    Severity::Error,
                    FindingCode::OptionBeforeStanza,
                    format!(
                        "misplaced option `{}` outside any iface stanza",
                        key.lossy()
                    ),
                ));
            }
        }
        for line in f.document.lines() {
            match &line.item {
                Item::Auto { keyword, names }
                    if names.is_empty() && set.flavor == Flavor::Ifupdown2 =>
                {
                    out.push(mk(
                        line.line,
                        Severity::Error,
                        FindingCode::MalformedLine,
                        format!("invalid {} line without interface names", keyword.lossy()),
                    ))
                }
                Item::Mapping { .. } => out.push(mk(
                    line.line,
                    Severity::Warning,
                    FindingCode::MappingStanza,
                    "mapping stanza: its script runs even under `ifup -n`".into(),
                )),
                Item::Option { key, values }
                    if !super::is_command_key(&key.text)
                        && values.iter().any(|v| v.text.first() == Some(&b'#')) =>
                {
                    out.push(mk(
                        line.line,
                        Severity::Info,
                        FindingCode::InlineHash,
                        format!(
                            "`#` in the value of `{}` is part of the value, not a comment",
                            key.lossy()
                        ),
                    ))
                }
                _ => {}
            }
        }
        for st in f.document.stanzas() {
            if st.kind != StanzaKind::Iface {
                continue;
            }
            let Some(name) = st.name else {
                out.push(mk(
                    st.line,
                    Severity::Error,
                    FindingCode::MalformedLine,
                    "`iface` without an interface name".into(),
                ));
                continue;
            };
            let n = name.lossy();
            match (st.family, st.method) {
                (Some(_), None) if set.flavor == Flavor::Ifupdown => out.push(mk(
                    st.line,
                    Severity::Error,
                    FindingCode::MalformedLine,
                    format!("iface {n}: unknown or no method"),
                )),
                (Some(fam), method) => {
                    let fam_s = fam.lossy();
                    let families = match set.flavor {
                        Flavor::Ifupdown => FAMILIES_IFUPDOWN,
                        Flavor::Ifupdown2 => FAMILIES_IFUPDOWN2,
                    };
                    match families.iter().find(|(f, _)| *f == fam_s) {
                        None => out.push(mk(
                            st.line,
                            Severity::Error,
                            FindingCode::UnknownFamily,
                            format!("iface {n}: unknown address family '{fam_s}'"),
                        )),
                        Some((_, methods)) => {
                            // ifupdown2 defaults a missing method to `static`
                            let m = method.map_or_else(|| "static".to_string(), |m| m.lossy());
                            if !methods.contains(&m.as_str()) {
                                out.push(mk(
                                    st.line,
                                    Severity::Error,
                                    FindingCode::UnknownMethod,
                                    format!("iface {n}: unsupported address method '{m}'"),
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
            if n.split(':')
                .next()
                .is_some_and(|base| base.len() > super::IFNAME_MAX)
            {
                out.push(mk(
                    st.line,
                    Severity::Error,
                    FindingCode::InvalidName,
                    format!("{n}: interface name too long (more than 15 bytes)"),
                ));
            }
            for o in &st.options {
                if o.values.is_empty() {
                    out.push(mk(
                        o.line,
                        Severity::Error,
                        FindingCode::MalformedLine,
                        format!(
                            "iface {n}: invalid syntax '{}' (option without value)",
                            o.key.lossy()
                        ),
                    ));
                }
            }
            let fam = st.family.map(|t| t.text.clone()).unwrap_or_default();
            let key = (name.text.clone(), fam);
            if let Some((pf, pl)) = stanza_seen.get(&key) {
                out.push(mk(
                    st.line,
                    Severity::Warning,
                    FindingCode::DuplicateStanza,
                    format!(
                        "duplicate stanza `iface {n}` (first at {}:{pl}); the tools merge them silently",
                        pf.display()
                    ),
                ));
            } else {
                stanza_seen.insert(key, (f.path.clone(), st.line));
            }
        }
        for r in f.document.references() {
            let Some(name) = r.token.as_str() else {
                continue;
            };
            if matches!(r.kind, RefKind::BridgePort | RefKind::BondSlave) {
                let master = r.stanza.map(|t| t.lossy()).unwrap_or_default();
                masters.entry(name.to_string()).or_default().push((
                    master,
                    f.path.clone(),
                    r.token.span.line,
                ));
            }
            if r.kind == RefKind::Auto && name != "all" && !declared.contains(name) {
                out.push(mk(
                    r.token.span.line,
                    Severity::Warning,
                    FindingCode::AutoWithoutStanza,
                    format!("`{name}` is brought up automatically but has no iface stanza"),
                ));
            }
            let Some(current) = &opts.current_interfaces else {
                continue;
            };
            let severity = if r.kind.needs_device() || r.kind == RefKind::BondPrimary {
                Severity::Error
            } else if matches!(r.kind, RefKind::Iface | RefKind::Auto) {
                Severity::Warning
            } else {
                continue;
            };
            if let Some(missing) = missing_device(name, current, &created) {
                let msg = if severity == Severity::Error {
                    format!(
                        "{} {name}: this host has no interface {missing} (ifupdown2 does not check this; the bridge or bond would come up without it)",
                        ref_label(r.kind)
                    )
                } else {
                    format!(
                        "{} {name}: this host has no interface {missing}",
                        ref_label(r.kind)
                    )
                };
                out.push(mk(
                    r.token.span.line,
                    severity,
                    FindingCode::MissingNic,
                    msg,
                ));
            }
        }
    }
    for (port, list) in masters {
        let distinct: BTreeSet<&str> = list.iter().map(|(m, _, _)| m.as_str()).collect();
        if distinct.len() > 1 {
            if let Some((_, file, line)) = list.last() {
                out.push(Finding {
                    file: file.clone(),
                    line: *line,
                    severity: Severity::Error,
                    code: FindingCode::PortInTwoMasters,
                    message: format!(
                        "{port} is enslaved to multiple interfaces: {}",
                        distinct.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
    }
    let order: BTreeMap<PathBuf, usize> = set
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    out.sort_by_key(|f| (order.get(&f.file).copied().unwrap_or(usize::MAX), f.line));
    out
}

fn ref_label(kind: RefKind) -> &'static str {
    match kind {
        RefKind::Iface => "iface",
        RefKind::Auto => "auto",
        RefKind::BridgePort => "bridge-ports",
        RefKind::BondSlave => "bond-slaves",
        RefKind::BondPrimary => "bond-primary",
        RefKind::BondMaster => "bond-master",
        RefKind::VlanRawDevice => "vlan-raw-device",
        RefKind::OtherOption => "option",
        RefKind::RenameFrom | RefKind::RenameTo => "rename",
    }
}

/// The device `name` needs that neither this host nor the configuration provides, if any.
/// A dotted VLAN (`eno1.100`) or alias (`eno1:0`) needs its parent.
fn missing_device(
    name: &str,
    current: &BTreeSet<String>,
    created: &BTreeSet<String>,
) -> Option<String> {
    if name == "lo" || current.contains(name) || created.contains(name) {
        return None;
    }
    if let Some(cut) = name.rfind(['.', ':']) {
        if cut > 0 {
            return missing_device(&name[..cut], current, created);
        }
    }
    Some(name.to_string())
}
