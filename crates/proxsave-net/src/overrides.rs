//! Persistent NIC naming rules that outrank the configuration's names.
//!
//! A udev rule `SUBSYSTEM=="net", ATTR{address}=="…", NAME="eth0"` or a systemd `.link` file with
//! `[Match] MACAddress=…` and `[Link] Name=eth0` decides a NIC's name at boot. The matcher never
//! renames a name such a rule pins. Scanned, inside a root: every regular file of
//! `/etc/udev/rules.d/` and every `*.link` (any case) of `/etc/systemd/network/`.

use std::path::{Path, PathBuf};

use crate::inventory::{Nic, normalize_mac, usable_mac};
use crate::rootfs;

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A udev rules file.
    Udev,
    /// A systemd `.link` file.
    SystemdLink,
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuleKind::Udev => "udev",
            RuleKind::SystemdLink => "systemd-link",
        })
    }
}

/// One naming rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct NamingRule {
    /// udev or systemd-link.
    pub kind: RuleKind,
    /// The file, absolute inside the root.
    pub file: PathBuf,
    /// Line (1-based) of the `NAME=` rule or of the `.link` file's `Name=`.
    pub line: usize,
    /// The name it assigns (as written; may be a template such as `lan%n`).
    pub name: String,
    /// The MAC it matches, normalised, when it matches by MAC.
    pub mac: Option<String>,
}

impl NamingRule {
    /// True when the name is a template (`%n`, `$env{...}`, globs) rather than a literal name.
    pub fn is_template(&self) -> bool {
        self.name.contains(['%', '$', '*', '?', '['])
    }

    /// True when this rule assigns exactly `name`.
    pub fn pins(&self, name: &str) -> bool {
        !self.is_template() && self.name == name
    }

    /// True when this rule matches `nic` by MAC (current or permanent).
    pub fn matches_nic(&self, nic: &Nic) -> bool {
        let Some(mac) = &self.mac else {
            return false;
        };
        nic.mac_key().as_deref() == Some(mac) || nic.permanent_mac_key().as_deref() == Some(mac)
    }
}

impl std::fmt::Display for NamingRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}:{} name={}",
            self.kind,
            self.file.display(),
            self.line,
            self.name
        )?;
        if let Some(mac) = &self.mac {
            write!(f, " mac={mac}")?;
        }
        Ok(())
    }
}

/// A rules directory could not be listed (a missing directory is not an error).
#[derive(Debug, thiserror::Error)]
#[error("cannot list {}: {message}", path.display())]
pub struct OverrideError {
    /// Directory inside the root.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

/// One `KEY{attr} OP "value"` clause of a udev rule.
struct Clause {
    key: String,
    op: String,
    value: String,
}

/// Splits a udev rule line into clauses; quoted values may contain commas.
fn udev_clauses(line: &str) -> Vec<Clause> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && !matches!(b[i], b'=' | b'!' | b'+' | b'-' | b':') {
            if b[i] == b'{' {
                while i < b.len() && b[i] != b'}' {
                    i += 1;
                }
            }
            if i < b.len() {
                i += 1;
            }
        }
        let key = line[ks..i.min(b.len())].trim().to_string();
        let rest = &line[i.min(b.len())..];
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .iter()
            .find(|o| rest.starts_with(**o))
            .map(|o| o.to_string())
            .unwrap_or_default();
        i += op.len();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            value = line[vs..i.min(b.len())].to_string();
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&line[vs..i]);
        }
        if key.is_empty() && op.is_empty() {
            i += 1;
            continue;
        }
        out.push(Clause { key, op, value });
    }
    out
}

/// The naming rules of one udev rules file: lines matching `SUBSYSTEM=="net"` that assign
/// `NAME=` or `NAME:=` (a `NAME==` match is not an assignment and is ignored), with the
/// `ATTR{address}==` MAC when present. Backslash continuations are joined; line numbers are
/// those of the first physical line.
pub fn parse_udev_rules(file: &Path, bytes: &[u8]) -> Vec<NamingRule> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (idx, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        let (start, mut joined) = pending.take().unwrap_or((idx + 1, String::new()));
        if let Some(head) = raw.strip_suffix('\\') {
            joined.push_str(head);
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(raw);
        let t = joined.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let clauses = udev_clauses(t);
        let is_net = clauses
            .iter()
            .any(|c| c.key.eq_ignore_ascii_case("SUBSYSTEM") && c.op == "==" && c.value == "net");
        if !is_net {
            continue;
        }
        let name = clauses
            .iter()
            .rfind(|c| c.key == "NAME" && (c.op == "=" || c.op == ":="))
            .map(|c| c.value.trim().to_string())
            .filter(|n| !n.is_empty());
        let Some(name) = name else { continue };
        let mac = clauses
            .iter()
            .find(|c| c.key == "ATTR{address}" && c.op == "==")
            .and_then(|c| usable_mac(&c.value));
        out.push(NamingRule {
            kind: RuleKind::Udev,
            file: file.to_path_buf(),
            line: start,
            name,
            mac,
        });
    }
    out
}

/// The naming rules of one systemd `.link` file: `[Link] Name=` (last wins) with each MAC of
/// `[Match] MACAddress=` / `PermanentMACAddress=` (whitespace separated, lines accumulate), one
/// rule per MAC, sorted. A file with a `Name=` but no MAC match (e.g. `Path=`) gives one rule
/// without MAC; a file without `Name=` gives none.
pub fn parse_link_file(file: &Path, bytes: &[u8]) -> Vec<NamingRule> {
    let text = String::from_utf8_lossy(bytes);
    let mut section = String::new();
    let mut name: Option<(usize, String)> = None;
    let mut macs: Vec<String> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_ascii_lowercase();
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        match (section.as_str(), k.as_str()) {
            ("match", "macaddress") | ("match", "permanentmacaddress") => {
                if v.is_empty() {
                    macs.clear();
                }
                macs.extend(v.split_whitespace().filter_map(usable_mac));
            }
            ("link", "name") => {
                let n = v.trim_matches(['"', '\'']).to_string();
                name = (!n.is_empty()).then_some((idx + 1, n));
            }
            _ => {}
        }
    }
    let Some((line, name)) = name else {
        return Vec::new();
    };
    macs.sort();
    macs.dedup();
    if macs.is_empty() {
        return vec![NamingRule {
            kind: RuleKind::SystemdLink,
            file: file.to_path_buf(),
            line,
            name,
            mac: None,
        }];
    }
    macs.into_iter()
        .map(|m| NamingRule {
            kind: RuleKind::SystemdLink,
            file: file.to_path_buf(),
            line,
            name: name.clone(),
            mac: Some(normalize_mac(&m)),
        })
        .collect()
}

/// Scans `/etc/udev/rules.d/` and `/etc/systemd/network/*.link` inside `root`. Missing
/// directories give no rules. Sorted by kind, file, line, name, MAC.
pub fn scan(root: &Path) -> Result<Vec<NamingRule>, OverrideError> {
    let mut out = Vec::new();
    let dirs: [(&str, RuleKind); 2] = [
        ("/etc/udev/rules.d", RuleKind::Udev),
        ("/etc/systemd/network", RuleKind::SystemdLink),
    ];
    for (dir, kind) in dirs {
        let dir = Path::new(dir);
        let names = rootfs::list_dir(root, dir).map_err(|e| OverrideError {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        for n in names.unwrap_or_default() {
            let path = dir.join(&n);
            if kind == RuleKind::SystemdLink
                && !n.to_string_lossy().to_ascii_lowercase().ends_with(".link")
            {
                continue;
            }
            let Ok(bytes) = rootfs::read_capped(root, &path, 1024 * 1024) else {
                continue;
            };
            match kind {
                RuleKind::Udev => out.extend(parse_udev_rules(&path, &bytes)),
                RuleKind::SystemdLink => out.extend(parse_link_file(&path, &bytes)),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `NIC naming overrides detected: udev=N systemd-link=M`.
pub fn summary(rules: &[NamingRule]) -> String {
    let udev = rules.iter().filter(|r| r.kind == RuleKind::Udev).count();
    let link = rules.len() - udev;
    format!("NIC naming overrides detected: udev={udev} systemd-link={link}")
}
