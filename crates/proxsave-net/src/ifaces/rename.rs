//! Structural renames of interface names.

use std::collections::{BTreeMap, BTreeSet};

use super::{Document, Item, RefKind, StanzaKind, Token, is_command_key};

/// Longest legal Linux network device name, in bytes (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

/// True when `name` is a legal Linux netdev name: 1 to 15 bytes, not `.` or `..`, no `/`, `:`,
/// whitespace or control bytes.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// Why a rename map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenameMapError {
    /// A key or value is not a legal interface name.
    #[error("invalid interface name {name:?} in the rename map")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// Two old names would get the same new name.
    #[error("rename map gives two interfaces one name: {first} and {second} both -> {target}")]
    Collision {
        /// First old name.
        first: String,
        /// Second old name.
        second: String,
        /// The shared new name.
        target: String,
    },
    /// One old name listed twice with different new names.
    #[error("rename map lists {name} twice")]
    DuplicateKey {
        /// The old name.
        name: String,
    },
}

/// A validated set of simultaneous renames `old -> new`.
///
/// Applied in one pass against the *original* names, so swaps (`{eth0: eth1, eth1: eth0}`) and
/// chains (`{a: b, b: c}`) are correct. Identity pairs are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenameMap {
    map: BTreeMap<String, String>,
}

impl RenameMap {
    /// Validates and builds a map: every name legal, no key twice with different values, no two
    /// keys to one value.
    pub fn new<I, K, V>(pairs: I) -> Result<RenameMap, RenameMapError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in pairs {
            let (k, v) = (k.into(), v.into());
            for n in [&k, &v] {
                if !is_valid_ifname(n) {
                    return Err(RenameMapError::InvalidName { name: n.clone() });
                }
            }
            if k == v {
                continue;
            }
            match map.get(&k) {
                Some(old) if *old != v => return Err(RenameMapError::DuplicateKey { name: k }),
                Some(_) => {}
                None => {
                    map.insert(k, v);
                }
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, v) in &map {
            if let Some(first) = seen.insert(v, k) {
                return Err(RenameMapError::Collision {
                    first: first.to_string(),
                    second: k.clone(),
                    target: v.clone(),
                });
            }
        }
        Ok(RenameMap { map })
    }

    /// The new name for exactly `old`.
    pub fn get(&self, old: &str) -> Option<&str> {
        self.map.get(old).map(String::as_str)
    }

    /// The pairs, sorted by old name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of renames.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is renamed.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The new text of one interface name under `map`, or `None` when it is unchanged.
///
/// An exact key wins (`vmbr0.100` renames only `vmbr0.100`, never `vmbr0.1000`); otherwise the
/// longest prefix that ends before a `.` (VLAN) or `:` (alias) is looked up, so renaming `eno1`
/// turns `eno1.100` into `enp3s0.100` and `eno1:0` into `enp3s0:0`. `eno10`, `veth0`, `eth0a` never
/// match `eno1`/`eth0`.
pub fn rename_name(name: &str, map: &RenameMap) -> Option<String> {
    if let Some(new) = map.get(name) {
        return Some(new.to_string());
    }
    let cuts: Vec<usize> = name
        .char_indices()
        .filter(|(_, c)| *c == '.' || *c == ':')
        .map(|(i, _)| i)
        .collect();
    for cut in cuts.into_iter().rev() {
        if let Some(new) = map.get(&name[..cut]) {
            return Some(format!("{new}{}", &name[cut..]));
        }
    }
    None
}

/// One replaced word.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edit {
    /// Physical line (1-based) of the word.
    pub line: usize,
    /// What the word is.
    pub kind: RefKind,
    /// Old text.
    pub old: String,
    /// New text.
    pub new: String,
}

/// Where a renamed NIC is mentioned but was deliberately NOT rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    /// In a comment.
    Comment,
    /// In a command (`pre-up`, `post-up`, `down`, ... or a mapping `script`).
    Command,
    /// In another option's value that is not an interface reference.
    OtherOption,
    /// An interface reference split by a backslash continuation (cannot be replaced in place).
    SplitWord,
}

/// A line that mentions a renamed NIC but was left as it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mention {
    /// Physical line (1-based).
    pub line: usize,
    /// Where.
    pub kind: MentionKind,
    /// The renamed old names mentioned there.
    pub names: Vec<String>,
}

/// The result of [`Document::rename`].
#[derive(Debug, Clone)]
pub struct Renamed {
    /// The new document.
    pub document: Document,
    /// Every replaced word, in file order.
    pub edits: Vec<Edit>,
    /// Lines mentioning a renamed NIC that were left untouched.
    pub mentions: Vec<Mention>,
}

impl Renamed {
    /// True when a byte changed.
    pub fn changed(&self) -> bool {
        !self.edits.is_empty()
    }
}

/// Why a rename was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenameError {
    /// After renaming, two stanzas of one family would share a name that they did not share
    /// before (two NICs collapsed into one).
    #[error(
        "{file}:{line}: renaming would give two `iface {name}` stanzas (also line {other_line})"
    )]
    Collision {
        /// File (as given by the caller).
        file: String,
        /// Line of the second stanza.
        line: usize,
        /// Line of the first stanza.
        other_line: usize,
        /// The shared new name.
        name: String,
    },
}

/// Word-level scan for mentions: maximal runs of `[A-Za-z0-9_.-]` (`:` excluded so IPv6 and
/// `a:b` split), matched whole, by dotted prefix, or by any dot-separated part.
fn mentioned(text: &[u8], map: &RenameMap) -> Vec<String> {
    let mut found = BTreeSet::new();
    let is_tok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let mut i = 0;
    while i < text.len() {
        if !is_tok(text[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < text.len() && is_tok(text[i]) {
            i += 1;
        }
        let Ok(word) = std::str::from_utf8(&text[s..i]) else {
            continue;
        };
        if map.get(word).is_some() {
            found.insert(word.to_string());
            continue;
        }
        for part in word.split('.') {
            if map.get(part).is_some() {
                found.insert(part.to_string());
            }
        }
    }
    found.into_iter().collect()
}

impl Document {
    /// Renames interfaces structurally: only the words listed by [`Document::references`] change
    /// (`iface`, `auto`/`allow-*`, `bridge-ports`, `bond-slaves`, `bond-primary`,
    /// `vlan-raw-device`, dotted VLANs, `rename` pairs). Comments and commands stay as they are and
    /// are listed in [`Renamed::mentions`] when they mention a renamed name.
    ///
    /// `file` only names the document in errors. Refused when two stanzas of one family would end
    /// up with one name that they did not share before.
    pub fn rename(&self, map: &RenameMap, file: &str) -> Result<Renamed, RenameError> {
        let mut splices: Vec<(usize, usize, String)> = Vec::new();
        let mut edits = Vec::new();
        let mut mentions: Vec<Mention> = Vec::new();
        let mut split_lines: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for r in self.references() {
            let Some(old) = r.token.as_str() else {
                continue;
            };
            let Some(new) = rename_name(old, map) else {
                continue;
            };
            if !r.token.is_contiguous() {
                split_lines
                    .entry(r.token.span.line)
                    .or_default()
                    .insert(old.to_string());
                continue;
            }
            splices.push((r.token.span.start, r.token.span.end, new.clone()));
            edits.push(Edit {
                line: r.token.span.line,
                kind: r.kind,
                old: old.to_string(),
                new,
            });
        }
        if !map.is_empty() {
            for line in &self.lines {
                let raw = &self.bytes[line.start..line.end];
                let kind = match &line.item {
                    Item::Comment => Some(MentionKind::Comment),
                    Item::Option { key, .. } if is_command_key(&key.text) => {
                        Some(MentionKind::Command)
                    }
                    Item::Option { key, .. } if super::option_ref_kind(&key.text).is_none() => {
                        Some(MentionKind::OtherOption)
                    }
                    _ => None,
                };
                if let Some(kind) = kind {
                    let text = match &line.item {
                        Item::Option { values, .. } => values_bytes(values),
                        _ => raw.to_vec(),
                    };
                    let names = mentioned(&text, map);
                    if !names.is_empty() {
                        mentions.push(Mention {
                            line: line.line,
                            kind,
                            names,
                        });
                    }
                }
            }
        }
        for (line, names) in split_lines {
            mentions.push(Mention {
                line,
                kind: MentionKind::SplitWord,
                names: names.into_iter().collect(),
            });
        }
        mentions.sort_by_key(|m| (m.line, m.kind));
        splices.sort_by_key(|s| s.0);
        let mut out = Vec::with_capacity(self.bytes.len());
        let mut pos = 0;
        for (s, e, new) in &splices {
            out.extend_from_slice(&self.bytes[pos..*s]);
            out.extend_from_slice(new.as_bytes());
            pos = *e;
        }
        out.extend_from_slice(&self.bytes[pos..]);
        let document = Document::parse(&out);
        check_collisions(&[(file, self)], &[(file, &document)])?;
        Ok(Renamed {
            document,
            edits,
            mentions,
        })
    }
}

fn values_bytes(values: &[Token]) -> Vec<u8> {
    let mut v = Vec::new();
    for t in values {
        v.extend_from_slice(&t.text);
        v.push(b' ');
    }
    v
}

/// Refuses `after` when stanzas that had different names in `before` share one (name, family)
/// in `after`. `after[i]` must be the rename of `before[i]` (same stanzas, same order).
pub(crate) fn check_collisions(
    before: &[(&str, &Document)],
    after: &[(&str, &Document)],
) -> Result<(), RenameError> {
    // (new name, family) -> [(old name, file, line)]
    type Key = (Vec<u8>, Vec<u8>);
    let mut groups: BTreeMap<Key, Vec<(Vec<u8>, String, usize)>> = BTreeMap::new();
    for ((_, b), (file, a)) in before.iter().zip(after) {
        for (sb, sa) in b.stanzas().iter().zip(a.stanzas().iter()) {
            if sa.kind != StanzaKind::Iface {
                continue;
            }
            let (Some(nb), Some(na)) = (sb.name, sa.name) else {
                continue;
            };
            let fam = sa.family.map(|f| f.text.clone()).unwrap_or_default();
            groups.entry((na.text.clone(), fam)).or_default().push((
                nb.text.clone(),
                file.to_string(),
                sa.line,
            ));
        }
    }
    for (key, places) in &groups {
        let first = &places[0];
        if let Some(other) = places.iter().find(|p| p.0 != first.0) {
            return Err(RenameError::Collision {
                file: other.1.clone(),
                line: other.2,
                other_line: first.2,
                name: String::from_utf8_lossy(&key.0).into_owned(),
            });
        }
    }
    Ok(())
}
