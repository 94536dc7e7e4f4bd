//! A lossless model of `interfaces(5)` files (ifupdown and ifupdown2).
//!
//! [`Document::parse`] accepts any bytes and never fails; [`Document::to_bytes`] gives back exactly
//! the bytes parsed (comments, tabs, CRLF line ends, a missing final newline, backslash
//! continuations and bytes that are not UTF-8 included). Every word of a line is a [`Token`] that
//! knows its byte [`Span`] in the file, so edits ([`Document::rename`]) splice only the bytes of the
//! names they change.
//!
//! The grammar follows both implementations: a *logical line* is one or more physical lines joined
//! by a trailing backslash; a line whose first word starts with `#` is a comment (comments exist only
//! at the start of a line: a `#` later in a line is part of the value); the first word decides the
//! [`Item`]. Options belong to the last `iface` or `mapping` stanza, and any other top-level keyword
//! (`auto`, `allow-*`, `source`, ...) ends that stanza, as in both implementations.

mod config_set;
mod lint;
mod rename;

pub use config_set::{ConfigFile, ConfigSet, Flavor, LoadError};
pub use lint::{Finding, FindingCode, LintOptions, Severity, lint};
pub use rename::IFNAME_MAX;
pub use rename::{
    Edit, Mention, MentionKind, RenameError, RenameMap, RenameMapError, Renamed, is_valid_ifname,
    rename_name,
};

/// A byte range of a [`Document`] and the 1-based physical line it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
    /// Physical line (1-based) of the first byte.
    pub line: usize,
}

/// One whitespace-separated word of a logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The word's bytes (a backslash continuation inside a word is removed).
    pub text: Vec<u8>,
    /// Where the word is in the file.
    pub span: Span,
}

impl Token {
    /// The word as text when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.text).ok()
    }

    /// The word as text, non-UTF-8 bytes replaced.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    /// True when the word's bytes are contiguous in the file (not split by a continuation), so it
    /// can be replaced in place.
    pub fn is_contiguous(&self) -> bool {
        self.span.end - self.span.start == self.text.len()
    }
}

/// One `a=b` pair of a `rename` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenamePair {
    /// The current kernel name (`a`).
    pub from: Token,
    /// The new name (`b`).
    pub to: Token,
}

/// What a logical line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Only whitespace.
    Blank,
    /// A comment (first word starts with `#`).
    Comment,
    /// `auto`, `allow-<class>`, `no-auto-down` or `no-scripts` with the interface names it lists.
    Auto {
        /// The keyword.
        keyword: Token,
        /// The listed names.
        names: Vec<Token>,
    },
    /// `iface NAME [FAMILY METHOD] [inherits TEMPLATE]...` — starts a stanza.
    Iface {
        /// The interface name (absent on a bare `iface`).
        name: Option<Token>,
        /// Address family (`inet`, `inet6`, ...).
        family: Option<Token>,
        /// Method (`static`, `manual`, ...).
        method: Option<Token>,
        /// Any further words (`inherits X`).
        rest: Vec<Token>,
    },
    /// `vlan NAME` (ifupdown2: a bridge VLAN stanza) — starts a stanza.
    Vlan {
        /// The name.
        name: Option<Token>,
        /// Any further words.
        rest: Vec<Token>,
    },
    /// `mapping PATTERN...` — starts a mapping stanza.
    Mapping {
        /// The patterns.
        patterns: Vec<Token>,
    },
    /// `source PATH` (a glob).
    Source {
        /// The path pattern (absent on a bare `source`).
        path: Option<Token>,
    },
    /// `source-directory DIR`.
    SourceDirectory {
        /// The directory (absent on a bare `source-directory`).
        path: Option<Token>,
    },
    /// `rename a=b ...`.
    Rename {
        /// The pairs, words without `=` are ignored.
        pairs: Vec<RenamePair>,
    },
    /// Any other line: an option `KEY VALUE...` (inside a stanza, or misplaced).
    Option {
        /// The key.
        key: Token,
        /// The value words.
        values: Vec<Token>,
    },
}

/// A logical line: one or more physical lines joined by backslashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Physical line number (1-based) of the first physical line.
    pub line: usize,
    /// Bytes of the whole logical line in the file, line terminators included.
    pub start: usize,
    /// One past the last byte (after the final terminator).
    pub end: usize,
    /// The logical line's meaning.
    pub item: Item,
}

/// A parsed interfaces(5) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    bytes: Vec<u8>,
    lines: Vec<Line>,
}

/// An option of a stanza.
#[derive(Debug, Clone, Copy)]
pub struct StanzaOption<'a> {
    /// The key.
    pub key: &'a Token,
    /// The values.
    pub values: &'a [Token],
    /// Line of the option.
    pub line: usize,
}

/// What opened a [`Stanza`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `iface`.
    Iface,
    /// `mapping`.
    Mapping,
    /// `vlan` (ifupdown2).
    Vlan,
}

/// An `iface`, `mapping` or `vlan` stanza and the options that follow it.
#[derive(Debug, Clone)]
pub struct Stanza<'a> {
    /// The `iface`/`vlan` name, or the first pattern of a `mapping`.
    pub name: Option<&'a Token>,
    /// Address family.
    pub family: Option<&'a Token>,
    /// Method.
    pub method: Option<&'a Token>,
    /// What opened the stanza.
    pub kind: StanzaKind,
    /// Line of the `iface`/`mapping` keyword.
    pub line: usize,
    /// The options, in file order.
    pub options: Vec<StanzaOption<'a>>,
}

impl Stanza<'_> {
    /// The values of the first option whose key equals `key` (`-` and `_` are the same).
    pub fn option(&self, key: &str) -> Option<&[Token]> {
        self.options
            .iter()
            .find(|o| key_is(&o.key.text, key))
            .map(|o| o.values)
    }
}

/// What kind of reference to an interface a word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    /// The name of an `iface` stanza.
    Iface,
    /// A name listed by `auto`, `allow-*`, `no-auto-down` or `no-scripts`.
    Auto,
    /// A value of `bridge-ports` / `bridge_ports`.
    BridgePort,
    /// A value of `bond-slaves` / `bond_slaves` / `slaves`.
    BondSlave,
    /// The value of `bond-primary` / `bond_primary`.
    BondPrimary,
    /// The value of `bond-master` / `bond_master` (classic ifenslave).
    BondMaster,
    /// The value of `vlan-raw-device` / `vlan_raw_device`.
    VlanRawDevice,
    /// Other interface-valued options: `vxlan-physdev`, `ovs_bridge`, `ovs_ports`, `ovs_bonds`.
    OtherOption,
    /// The old name of a `rename old=new` pair.
    RenameFrom,
    /// The new name of a `rename old=new` pair.
    RenameTo,
}

impl RefKind {
    /// True for references whose NIC must exist for ifupdown2 to bring the master up
    /// (bridge ports, bond slaves, VLAN raw devices).
    pub fn needs_device(self) -> bool {
        matches!(
            self,
            RefKind::BridgePort | RefKind::BondSlave | RefKind::VlanRawDevice
        )
    }
}

/// One word of the file that names an interface.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    /// Which kind of word.
    pub kind: RefKind,
    /// The word.
    pub token: &'a Token,
    /// The stanza (iface name) the word belongs to, for option values.
    pub stanza: Option<&'a Token>,
}

/// True when the option key `k` (bytes) equals `want`, treating `-` and `_` alike.
pub(crate) fn key_is(k: &[u8], want: &str) -> bool {
    k.len() == want.len()
        && k.iter().zip(want.bytes()).all(|(a, b)| {
            let a = if *a == b'_' { b'-' } else { *a };
            let b = if b == b'_' { b'-' } else { b };
            a == b
        })
}

/// The reference kind of an interface-valued option key, if it is one.
pub(crate) fn option_ref_kind(key: &[u8]) -> Option<RefKind> {
    const TABLE: &[(&str, RefKind)] = &[
        ("bridge-ports", RefKind::BridgePort),
        ("bond-slaves", RefKind::BondSlave),
        ("slaves", RefKind::BondSlave),
        ("bond-primary", RefKind::BondPrimary),
        ("bond-master", RefKind::BondMaster),
        ("vlan-raw-device", RefKind::VlanRawDevice),
        ("vxlan-physdev", RefKind::OtherOption),
        ("ovs-bridge", RefKind::OtherOption),
        ("ovs-ports", RefKind::OtherOption),
        ("ovs-bonds", RefKind::OtherOption),
    ];
    TABLE
        .iter()
        .find(|(k, _)| key_is(key, k))
        .map(|(_, kind)| *kind)
}

/// Keys whose values are shell commands (never rewritten, only listed when they mention a NIC).
pub(crate) fn is_command_key(key: &[u8]) -> bool {
    [
        "pre-up",
        "up",
        "post-up",
        "down",
        "pre-down",
        "post-down",
        "script",
    ]
    .iter()
    .any(|k| key_is(key, k))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c')
}

impl Document {
    /// Parses any bytes. Never fails: what is not understood is an [`Item::Option`] or a
    /// malformed [`Item::Iface`], for [`lint`] to report.
    pub fn parse(bytes: &[u8]) -> Document {
        let mut lines = Vec::new();
        let mut pos = 0usize;
        let mut phys = 1usize;
        while pos < bytes.len() {
            let start = pos;
            let first_line = phys;
            // (byte, offset) of the joined logical line
            let mut joined: Vec<(u8, usize)> = Vec::new();
            loop {
                let nl = bytes[pos..].iter().position(|b| *b == b'\n');
                let (content_end, next) = match nl {
                    Some(i) => {
                        let nl_at = pos + i;
                        let ce = if nl_at > pos && bytes[nl_at - 1] == b'\r' {
                            nl_at - 1
                        } else {
                            nl_at
                        };
                        (ce, nl_at + 1)
                    }
                    None => (bytes.len(), bytes.len()),
                };
                let content = &bytes[pos..content_end];
                let continued = content.last() == Some(&b'\\') && next < bytes.len();
                let keep = if continued {
                    content.len() - 1
                } else {
                    content.len()
                };
                joined.extend(
                    content[..keep]
                        .iter()
                        .enumerate()
                        .map(|(i, b)| (*b, pos + i)),
                );
                pos = next;
                if nl.is_some() {
                    phys += 1;
                }
                if !continued {
                    break;
                }
            }
            let tokens = tokenize(&joined, bytes, first_line);
            lines.push(Line {
                line: first_line,
                start,
                end: pos,
                item: classify(tokens),
            });
        }
        Document {
            bytes: bytes.to_vec(),
            lines,
        }
    }

    /// The file's bytes, exactly as parsed (or as produced by an edit).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The file's bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The logical lines in file order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The `iface` and `mapping` stanzas with their options, in file order.
    pub fn stanzas(&self) -> Vec<Stanza<'_>> {
        let mut out: Vec<Stanza<'_>> = Vec::new();
        let mut open = false;
        for line in &self.lines {
            match &line.item {
                Item::Blank | Item::Comment => {}
                Item::Iface {
                    name,
                    family,
                    method,
                    ..
                } => {
                    out.push(Stanza {
                        name: name.as_ref(),
                        family: family.as_ref(),
                        method: method.as_ref(),
                        kind: StanzaKind::Iface,
                        line: line.line,
                        options: Vec::new(),
                    });
                    open = true;
                }
                Item::Mapping { patterns } => {
                    out.push(Stanza {
                        name: patterns.first(),
                        family: None,
                        method: None,
                        kind: StanzaKind::Mapping,
                        line: line.line,
                        options: Vec::new(),
                    });
                    open = true;
                }
                Item::Vlan { name, .. } => {
                    out.push(Stanza {
                        name: name.as_ref(),
                        family: None,
                        method: None,
                        kind: StanzaKind::Vlan,
                        line: line.line,
                        options: Vec::new(),
                    });
                    open = true;
                }
                Item::Option { key, values } => {
                    if let (true, Some(stanza)) = (open, out.last_mut()) {
                        stanza.options.push(StanzaOption {
                            key,
                            values,
                            line: line.line,
                        });
                    }
                }
                Item::Auto { .. }
                | Item::Source { .. }
                | Item::SourceDirectory { .. }
                | Item::Rename { .. } => open = false,
            }
        }
        out
    }

    /// Options that appear before any stanza (or after a non-stanza keyword): misplaced.
    pub fn orphan_options(&self) -> Vec<&Line> {
        let mut open = false;
        let mut out = Vec::new();
        for line in &self.lines {
            match &line.item {
                Item::Blank | Item::Comment => {}
                Item::Iface { .. } | Item::Mapping { .. } | Item::Vlan { .. } => open = true,
                Item::Option { .. } => {
                    if !open {
                        out.push(line);
                    }
                }
                _ => open = false,
            }
        }
        out
    }

    /// Every word that names an interface: `iface` names, `auto`/`allow-*` lists, values of
    /// interface-valued options (`bridge-ports`, `bond-slaves`, `bond-primary`,
    /// `vlan-raw-device`, ...) and both sides of `rename` pairs. Values that are not interface
    /// names (`none`, the pattern after `glob`/`regex`, words with glob characters) are left out.
    pub fn references(&self) -> Vec<Reference<'_>> {
        let mut out = Vec::new();
        let mut current: Option<&Token> = None;
        let mut open = false;
        for line in &self.lines {
            match &line.item {
                Item::Blank | Item::Comment => {}
                Item::Iface { name, .. } => {
                    current = name.as_ref();
                    open = true;
                    if let Some(name) = name {
                        out.push(Reference {
                            kind: RefKind::Iface,
                            token: name,
                            stanza: None,
                        });
                    }
                }
                Item::Mapping { .. } | Item::Vlan { .. } => {
                    current = None;
                    open = true;
                }
                Item::Auto { names, .. } => {
                    open = false;
                    current = None;
                    out.extend(names.iter().filter(|t| is_name_word(t)).map(|t| Reference {
                        kind: RefKind::Auto,
                        token: t,
                        stanza: None,
                    }));
                }
                Item::Rename { pairs } => {
                    open = false;
                    current = None;
                    for p in pairs {
                        out.push(Reference {
                            kind: RefKind::RenameFrom,
                            token: &p.from,
                            stanza: None,
                        });
                        out.push(Reference {
                            kind: RefKind::RenameTo,
                            token: &p.to,
                            stanza: None,
                        });
                    }
                }
                Item::Source { .. } | Item::SourceDirectory { .. } => {
                    open = false;
                    current = None;
                }
                Item::Option { key, values } => {
                    if !open {
                        continue;
                    }
                    let Some(kind) = option_ref_kind(&key.text) else {
                        continue;
                    };
                    let mut skip_next = false;
                    for v in values {
                        if skip_next {
                            skip_next = false;
                            continue;
                        }
                        if v.text == b"glob" || v.text == b"regex" {
                            skip_next = true;
                            continue;
                        }
                        if !is_name_word(v) {
                            continue;
                        }
                        out.push(Reference {
                            kind,
                            token: v,
                            stanza: current,
                        });
                    }
                }
            }
        }
        out
    }
}

/// True when a word can be an interface name (not `none`, no glob characters, valid UTF-8).
fn is_name_word(t: &Token) -> bool {
    let Some(s) = t.as_str() else {
        return false;
    };
    !s.is_empty()
        && s != "none"
        && !s.starts_with('#')
        && !s
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'/' | b'=' | b'"' | b'\''))
}

fn tokenize(joined: &[(u8, usize)], bytes: &[u8], first_line: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < joined.len() {
        if is_space(joined[i].0) {
            i += 1;
            continue;
        }
        let s = i;
        while i < joined.len() && !is_space(joined[i].0) {
            i += 1;
        }
        let start = joined[s].1;
        let end = joined[i - 1].1 + 1;
        let line = first_line
            + bytes[..start.min(bytes.len())]
                .iter()
                .skip(joined[0].1)
                .filter(|b| **b == b'\n')
                .count();
        out.push(Token {
            text: joined[s..i].iter().map(|(b, _)| *b).collect(),
            span: Span { start, end, line },
        });
    }
    out
}

fn classify(tokens: Vec<Token>) -> Item {
    let mut it = tokens.into_iter();
    let Some(first) = it.next() else {
        return Item::Blank;
    };
    let rest: Vec<Token> = it.collect();
    let kw = first.text.as_slice();
    if kw.first() == Some(&b'#') {
        return Item::Comment;
    }
    match kw {
        b"iface" => {
            let mut r = rest.into_iter();
            Item::Iface {
                name: r.next(),
                family: r.next(),
                method: r.next(),
                rest: r.collect(),
            }
        }
        b"mapping" => Item::Mapping { patterns: rest },
        b"vlan" => {
            let mut r = rest.into_iter();
            Item::Vlan {
                name: r.next(),
                rest: r.collect(),
            }
        }
        b"source" => Item::Source {
            path: rest.into_iter().next(),
        },
        b"source-directory" => Item::SourceDirectory {
            path: rest.into_iter().next(),
        },
        b"rename" => Item::Rename {
            pairs: rest.into_iter().filter_map(split_pair).collect(),
        },
        b"auto" | b"no-auto-down" | b"no-scripts" => Item::Auto {
            keyword: first,
            names: rest,
        },
        _ if kw.starts_with(b"allow-") => Item::Auto {
            keyword: first,
            names: rest,
        },
        _ => Item::Option {
            key: first,
            values: rest,
        },
    }
}

fn split_pair(t: Token) -> Option<RenamePair> {
    let eq = t.text.iter().position(|b| *b == b'=')?;
    if !t.is_contiguous() {
        return None;
    }
    let from = Token {
        text: t.text[..eq].to_vec(),
        span: Span {
            start: t.span.start,
            end: t.span.start + eq,
            line: t.span.line,
        },
    };
    let to = Token {
        text: t.text[eq + 1..].to_vec(),
        span: Span {
            start: t.span.start + eq + 1,
            end: t.span.end,
            line: t.span.line,
        },
    };
    Some(RenamePair { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_joins_and_keeps_bytes() {
        let src = b"iface eno1 inet manual\r\n\tpost-up echo a \\\r\n  b\nauto \\\neno1";
        let doc = Document::parse(src);
        assert_eq!(doc.to_bytes(), src);
        assert_eq!(doc.lines().len(), 3);
        assert_eq!(doc.lines()[1].line, 2);
        assert_eq!(doc.lines()[2].line, 4);
        let Item::Auto { names, .. } = &doc.lines()[2].item else {
            panic!("auto expected: {:?}", doc.lines()[2].item);
        };
        assert_eq!(names[0].text, b"eno1");
        assert_eq!(names[0].span.line, 5);
        assert_eq!(&src[names[0].span.start..names[0].span.end], b"eno1");
    }
}
