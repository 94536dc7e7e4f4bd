//! `datastore.cfg`: the normaliser (pure, public) and the one reader of the file.
//!
//! PBS reads `/etc/proxmox-backup/datastore.cfg` with the Rust `proxmox-section-config`
//! grammar: a `datastore: <name>` header, then *indented* `key value` lines, one blank line
//! between sections, no comment lines. A hand-edited file often has unindented properties,
//! and then PBS refuses the whole file ("expected section properties"): no datastore at all.
//!
//! Two steps, both pure (text in, text and findings out):
//!
//! 1. [`normalize`] fixes what the guide describes: a property line under a `datastore:`
//!    header that is not indented gets four spaces. Everything else is kept byte for byte
//!    (CRLF line ends, comments, blank lines, a missing final newline). Each fix is reported
//!    with its line, and duplicate keys and duplicate datastore names are reported too (PBS
//!    keeps the last of two sections with the same name; for a key the last one wins here as
//!    well). It is idempotent and never panics.
//! 2. [`installable`] turns a (normalised) file into the text proxsave installs: only what
//!    PBS loads — headers at column 0, `\tkey value` properties (the way PBS writes them),
//!    one blank line between sections, comments and stray lines dropped and reported, the
//!    last duplicate kept. The result is read back with
//!    [`proxsave_formats::section::parse_strict`] (the grammar PBS uses): that parse is where
//!    the datastores come from, for the backup's file and for the live one alike.
//!
//! ```
//! use proxsave_pbs::datastore_cfg::normalize;
//!
//! // The guide's example: properties written without indentation.
//! let broken = "datastore: Data1\ngc-schedule 0/2:00\npath /mnt/datastore/Data1";
//! let n = normalize(broken);
//! assert_eq!(
//!     n.text,
//!     "datastore: Data1\n    gc-schedule 0/2:00\n    path /mnt/datastore/Data1"
//! );
//! assert_eq!(n.fixes.len(), 2);
//! assert_eq!(n.fixes[0].line, 2);
//! assert_eq!(normalize(&n.text).fixes.len(), 0);
//! ```

use std::fmt;

use proxsave_formats::section::{self, Diag, Section, SectionConfig};

/// The section type of a datastore.
pub const DATASTORE: &str = "datastore";

/// One line the normaliser changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    /// 1-based line number.
    pub line: usize,
    /// The line as it was (without its line end).
    pub before: String,
    /// What was done.
    pub what: &'static str,
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} ({:?})", self.line, self.what, self.before)
    }
}

/// A duplicate found in a `datastore.cfg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Duplicate {
    /// The same key twice in one datastore: the last one wins.
    Key {
        /// The datastore.
        datastore: String,
        /// The key.
        key: String,
        /// Line of the earlier occurrence (dropped).
        first: usize,
        /// Line of the occurrence kept.
        line: usize,
    },
    /// Two datastores with the same name: the last one wins (as PBS reads it).
    Name {
        /// The name.
        name: String,
        /// Header line of the earlier section (dropped).
        first: usize,
        /// Header line of the section kept.
        line: usize,
    },
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Duplicate::Key {
                datastore,
                key,
                first,
                line,
            } => write!(
                f,
                "line {line}: datastore {datastore} has duplicate key `{key}` (also line {first}); the last one is kept"
            ),
            Duplicate::Name { name, first, line } => write!(
                f,
                "line {line}: datastore {name} is defined twice (also line {first}); the last definition is kept, as PBS does"
            ),
        }
    }
}

/// What [`normalize`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The fixed text.
    pub text: String,
    /// Each line changed, in order.
    pub fixes: Vec<Fix>,
    /// Duplicate keys and names (not changed by the normaliser; [`installable`] keeps the
    /// last).
    pub duplicates: Vec<Duplicate>,
}

/// What a line is, for the normaliser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    /// Empty or whitespace only.
    Blank,
    /// First non-whitespace character `#`.
    Comment,
    /// `datastore:` (after optional whitespace).
    Header,
    /// Starts with a space or a tab.
    Indented,
    /// Anything else.
    Other,
}

/// Splits into lines keeping each line's end (`\n`, with a `\r` before it when present).
fn split_lines(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for piece in text.split_inclusive('\n') {
        let (body, end) = match piece.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match piece.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (piece, ""),
            },
        };
        out.push((body, end));
    }
    out
}

fn kind(line: &str) -> LineKind {
    let t = line.trim();
    if t.is_empty() {
        LineKind::Blank
    } else if t.starts_with('#') {
        LineKind::Comment
    } else if t.starts_with("datastore:") {
        LineKind::Header
    } else if line.starts_with([' ', '\t']) {
        LineKind::Indented
    } else {
        LineKind::Other
    }
}

/// The name of a `datastore:` header line (trimmed; may be empty).
fn header_name(line: &str) -> &str {
    line.trim()
        .strip_prefix("datastore:")
        .map(str::trim)
        .unwrap_or("")
}

/// The key of a property line (its first token).
fn prop_key(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Fixes the indentation of property lines under `datastore:` headers; see the module docs.
///
/// Rules: after the first `datastore:` header, a line that is not blank, not a comment, not a
/// header and does not start with a space or a tab gets four spaces in front. Nothing else
/// changes. Duplicate keys (within a datastore) and names are reported.
pub fn normalize(input: &str) -> Normalized {
    let mut text = String::with_capacity(input.len() + 16);
    let mut fixes = Vec::new();
    let mut in_block = false;
    for (index, (body, end)) in split_lines(input).into_iter().enumerate() {
        let k = kind(body);
        match k {
            LineKind::Header => in_block = true,
            LineKind::Other if in_block => {
                fixes.push(Fix {
                    line: index + 1,
                    before: body.to_string(),
                    what: "property not indented under its `datastore:` header: 4 spaces added",
                });
                text.push_str("    ");
            }
            _ => {}
        }
        text.push_str(body);
        text.push_str(end);
    }
    let duplicates = duplicates(&text);
    Normalized {
        text,
        fixes,
        duplicates,
    }
}

/// Duplicate keys and names of a normalised text.
fn duplicates(text: &str) -> Vec<Duplicate> {
    let mut out = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut current: Option<(String, Vec<(String, usize)>)> = None;
    for (index, (body, _)) in split_lines(text).into_iter().enumerate() {
        let line = index + 1;
        match kind(body) {
            LineKind::Header => {
                let name = header_name(body).to_string();
                if let Some((_, first)) = names.iter().rev().find(|(n, _)| *n == name) {
                    out.push(Duplicate::Name {
                        name: name.clone(),
                        first: *first,
                        line,
                    });
                }
                names.push((name.clone(), line));
                current = Some((name, Vec::new()));
            }
            LineKind::Indented => {
                if let Some((ds, keys)) = current.as_mut() {
                    let key = prop_key(body).to_string();
                    if let Some((_, first)) = keys.iter().rev().find(|(k, _)| *k == key) {
                        out.push(Duplicate::Key {
                            datastore: ds.clone(),
                            key: key.clone(),
                            first: *first,
                            line,
                        });
                    }
                    keys.push((key, line));
                }
            }
            _ => {}
        }
    }
    out
}

/// A line dropped by [`installable`] because PBS would not load it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// 1-based line number in the input.
    pub line: usize,
    /// Why.
    pub why: String,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// One datastore of a `datastore.cfg`, as PBS loads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datastore {
    /// The name.
    pub name: String,
    /// The `path` property.
    pub path: String,
    /// The section (every property, `path` included).
    pub section: Section,
}

/// A `datastore.cfg` ready to install: see [`installable`].
#[derive(Clone, Debug)]
pub struct Installable {
    /// What the normaliser fixed.
    pub fixes: Vec<Fix>,
    /// Duplicates (the last one kept).
    pub duplicates: Vec<Duplicate>,
    /// Lines left out (comments, stray lines, invalid sections).
    pub dropped: Vec<Dropped>,
    /// The datastores, in file order (after duplicates were resolved).
    pub datastores: Vec<Datastore>,
}

impl Installable {
    /// The file text PBS loads: see [`render`].
    pub fn text(&self) -> String {
        render(self.datastores.iter())
    }

    /// Every finding as a line (fixes, duplicates, dropped lines).
    pub fn findings(&self) -> Vec<String> {
        self.fixes
            .iter()
            .map(ToString::to_string)
            .chain(self.duplicates.iter().map(ToString::to_string))
            .chain(self.dropped.iter().map(ToString::to_string))
            .collect()
    }
}

/// Why a file cannot be installed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CfgError {
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
    /// The rendered text did not parse back (a bug: reported, never installed).
    #[error("{0}")]
    Grammar(Diag),
}

/// PBS's safe-id: `[A-Za-z0-9_][A-Za-z0-9._-]*`, 3 to 32 characters.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=32).contains(&b.len())
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A property key PBS's schema could know: `[a-z][a-z0-9-]*`.
fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The text of datastores the way PBS writes `datastore.cfg`: `datastore: <name>`, then
/// `\tkey value` lines, one blank line between sections, no blank line at the end.
pub fn render<'a>(datastores: impl IntoIterator<Item = &'a Datastore>) -> String {
    let mut out = String::new();
    for ds in datastores {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{DATASTORE}: {}\n", ds.name));
        for p in &ds.section.props {
            match &p.value {
                Some(v) if !v.is_empty() => out.push_str(&format!("\t{} {v}\n", p.key)),
                _ => {}
            }
        }
    }
    out
}

/// A datastore section being read: name, header line, properties (key, value, line).
type Block = (String, usize, Vec<(String, String, usize)>);

/// Normalises `bytes`, then keeps what PBS loads; see the module docs.
///
/// Dropped (each reported with its line): comment lines, lines before the first header or
/// that are not `key value` properties, whitespace-only lines inside a section are just
/// separators, properties without a value or with an impossible key, the earlier of two
/// equal keys or names, and whole datastores whose name is not a PBS id or that have no
/// `path`.
///
/// # Errors
/// The bytes are not UTF-8; the result does not parse back with PBS's grammar (a bug).
pub fn installable(bytes: &[u8]) -> Result<Installable, CfgError> {
    let input = std::str::from_utf8(bytes).map_err(|_| CfgError::NotText)?;
    let n = normalize(input);
    let mut dropped = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for (index, (body, _)) in split_lines(&n.text).into_iter().enumerate() {
        let line = index + 1;
        match kind(body) {
            LineKind::Blank => {}
            LineKind::Comment => dropped.push(Dropped {
                line,
                why: format!("comment dropped (PBS accepts no comment lines): {body:?}"),
            }),
            LineKind::Header => blocks.push((header_name(body).to_string(), line, Vec::new())),
            LineKind::Indented if !blocks.is_empty() => {
                let t = body.trim();
                let (key, value) = match t.find(char::is_whitespace) {
                    Some(ws) => (&t[..ws], t[ws..].trim()),
                    None => (t, ""),
                };
                if !is_valid_key(key) {
                    dropped.push(Dropped {
                        line,
                        why: format!("not a datastore property (`{key}`): {body:?}"),
                    });
                } else if value.is_empty() {
                    dropped.push(Dropped {
                        line,
                        why: format!("property `{key}` has no value"),
                    });
                } else if let Some(block) = blocks.last_mut() {
                    block.2.retain(|(k, _, _)| k != key);
                    block.2.push((key.to_string(), value.to_string(), line));
                }
            }
            LineKind::Indented | LineKind::Other => dropped.push(Dropped {
                line,
                why: format!("not part of a datastore section: {body:?}"),
            }),
        }
    }
    let mut datastores: Vec<Datastore> = Vec::new();
    for (name, line, mut props) in blocks {
        if !is_valid_name(&name) {
            dropped.push(Dropped {
                line,
                why: format!(
                    "datastore {name:?} dropped: not a valid PBS datastore name (3-32 of A-Z a-z 0-9 _ . -)"
                ),
            });
            continue;
        }
        let Some(path) = props
            .iter()
            .find(|(k, _, _)| k == "path")
            .map(|(_, v, _)| v.clone())
        else {
            dropped.push(Dropped {
                line,
                why: format!("datastore {name} dropped: it has no `path`"),
            });
            continue;
        };
        props.sort_by_key(|(_, _, l)| *l);
        let mut s = Section::new(DATASTORE, name.clone());
        for (k, v, _) in &props {
            s.push_prop(k, Some(v));
        }
        s.line = line;
        datastores.retain(|d| d.name != name);
        datastores.push(Datastore {
            name,
            path,
            section: s,
        });
    }
    dropped.sort_by_key(|d| d.line);
    let out = Installable {
        fixes: n.fixes,
        duplicates: n.duplicates,
        dropped,
        datastores,
    };
    // What PBS loads is read with PBS's grammar: the datastores come from that parse.
    let parsed = section::parse_strict(&out.text()).map_err(CfgError::Grammar)?;
    let datastores = from_config(&parsed, &out.datastores);
    Ok(Installable { datastores, ..out })
}

/// The datastores of a parsed text, lines taken from `origin` (the input's header lines).
fn from_config(cfg: &SectionConfig, origin: &[Datastore]) -> Vec<Datastore> {
    cfg.sections
        .iter()
        .filter(|s| s.ty == DATASTORE)
        .filter_map(|s| {
            let mut section = s.clone();
            section.line = origin
                .iter()
                .find(|d| d.name == s.id)
                .map_or(0, |d| d.section.line);
            Some(Datastore {
                name: s.id.clone(),
                path: s.get("path")?.to_string(),
                section,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_cases() {
        let cases: &[(&str, &str, usize)] = &[
            (
                "datastore: Data1\ngc-schedule 0/2:00\npath /mnt/datastore/Data1",
                "datastore: Data1\n    gc-schedule 0/2:00\n    path /mnt/datastore/Data1",
                2,
            ),
            (
                "datastore: Data1\n    gc-schedule 0/2:00\n    path /mnt/datastore/Data1\n",
                "datastore: Data1\n    gc-schedule 0/2:00\n    path /mnt/datastore/Data1\n",
                0,
            ),
            (
                "datastore: s1\n\tcomment Main\n\tpath /mnt/s1\n",
                "datastore: s1\n\tcomment Main\n\tpath /mnt/s1\n",
                0,
            ),
            (
                "datastore: A\npath /a\ndatastore: B\npath /b\n",
                "datastore: A\n    path /a\ndatastore: B\n    path /b\n",
                2,
            ),
            (
                "path /orphan\ndatastore: A\npath /a",
                "path /orphan\ndatastore: A\n    path /a",
                1,
            ),
            (
                "datastore: A\n# note\npath /a",
                "datastore: A\n# note\n    path /a",
                1,
            ),
            (
                "datastore: A\r\npath /a\r\n",
                "datastore: A\r\n    path /a\r\n",
                1,
            ),
            (
                "datastore: A\n   \npath /a",
                "datastore: A\n   \n    path /a",
                1,
            ),
            ("  datastore: A\npath /a", "  datastore: A\n    path /a", 1),
            ("datastore:A\npath /a", "datastore:A\n    path /a", 1),
            (
                "datastore: A  \npath /a   ",
                "datastore: A  \n    path /a   ",
                1,
            ),
            ("s3: r1\nbucket b", "s3: r1\nbucket b", 0),
            ("Datastore: A\npath /a", "Datastore: A\npath /a", 0),
        ];
        for (input, want, fixed) in cases {
            let n = normalize(input);
            assert_eq!(&n.text, want, "{input:?}");
            assert_eq!(n.fixes.len(), *fixed, "{input:?}");
            assert!(normalize(&n.text).fixes.is_empty());
        }
    }

    #[test]
    fn duplicates_are_found_and_the_last_is_kept() {
        let text = "datastore: Broken\n    path /mnt/a\n    path /mnt/b\n\ndatastore: Twice\n\tpath /x\n\ndatastore: Twice\n\tpath /y\n";
        let n = normalize(text);
        assert_eq!(
            n.duplicates,
            vec![
                Duplicate::Key {
                    datastore: "Broken".into(),
                    key: "path".into(),
                    first: 2,
                    line: 3
                },
                Duplicate::Name {
                    name: "Twice".into(),
                    first: 5,
                    line: 8
                }
            ]
        );
        let i = installable(text.as_bytes()).expect("installable");
        assert_eq!(
            i.text(),
            "datastore: Broken\n\tpath /mnt/b\n\ndatastore: Twice\n\tpath /y\n"
        );
        assert_eq!(i.datastores[1].path, "/y");
    }

    #[test]
    fn installable_drops_what_pbs_refuses_and_names_each_line() {
        let text = "# head\njunk\ndatastore: A1x\n# inside\ngc-schedule daily\npath /mnt/a\nFoo Bar\ndatastore: x\n\tpath /b\ndatastore: nopath\n\tcomment c\n";
        let i = installable(text.as_bytes()).expect("installable");
        assert_eq!(
            i.text(),
            "datastore: A1x\n\tgc-schedule daily\n\tpath /mnt/a\n"
        );
        let lines: Vec<usize> = i.dropped.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 7, 8, 10], "{:?}", i.dropped);
        assert!(section::parse_strict(&i.text()).is_ok());
    }

    #[test]
    fn a_file_written_by_pbs_is_installed_unchanged() {
        let text = "datastore: store1\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/datastore/store1\n\ndatastore: offsite-usb\n\tkeep-daily 7\n\tmaintenance-mode type=offline\n\tpath /media/usb-pbs/offsite\n";
        let i = installable(text.as_bytes()).expect("ok");
        assert_eq!(i.text(), text);
        assert!(i.findings().is_empty());
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("datastore: ds1".to_string()),
            Just("datastore: ds2".to_string()),
            Just("datastore:".to_string()),
            Just("  datastore: ds3".to_string()),
            Just("path /mnt/x".to_string()),
            Just("\tpath /mnt/y".to_string()),
            Just("    comment hi".to_string()),
            Just("# c".to_string()),
            Just("".to_string()),
            Just("   ".to_string()),
            Just("\u{b}key v".to_string()),
            "[ -~\t\u{a0}é]{0,12}",
        ]
    }

    fn file() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(line(), 0..12),
            prop::bool::ANY,
            prop::bool::ANY,
        )
            .prop_map(|(lines, crlf, final_nl)| {
                let sep = if crlf { "\r\n" } else { "\n" };
                let mut t = lines.join(sep);
                if final_nl {
                    t.push_str(sep);
                }
                t
            })
    }

    fn valid_file() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (
                "[a-z_][a-z0-9_.-]{2,10}",
                "/[a-z]{1,8}(/[a-z0-9]{1,8}){0,3}",
                prop::option::of("[a-z][a-z ]{0,20}[a-z]"),
                prop::bool::ANY,
            ),
            0..5,
        )
        .prop_map(|ds| {
            let mut seen = Vec::new();
            let mut out = String::new();
            for (name, path, comment, tab) in ds {
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name.clone());
                if !out.is_empty() {
                    out.push('\n');
                }
                let ind = if tab { "\t" } else { "    " };
                out.push_str(&format!("datastore: {name}\n"));
                if let Some(c) = comment {
                    out.push_str(&format!("{ind}comment {c}\n"));
                }
                out.push_str(&format!("{ind}path {path}\n"));
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, rng_seed: proptest::test_runner::RngSeed::Fixed(10), ..ProptestConfig::default() })]

        #[test]
        fn normalize_is_idempotent_and_only_adds_indentation(t in file()) {
            let n = normalize(&t);
            let again = normalize(&n.text);
            prop_assert_eq!(&again.text, &n.text);
            prop_assert!(again.fixes.is_empty());
            prop_assert_eq!(n.text.len(), t.len() + 4 * n.fixes.len());
            prop_assert_eq!(n.text.replace("    ", ""), t.replace("    ", ""));
        }

        #[test]
        fn installable_never_panics_and_always_loads(t in file()) {
            if let Ok(i) = installable(t.as_bytes()) {
                let text = i.text();
                prop_assert!(section::parse_strict(&text).is_ok(), "{:?}", text);
                prop_assert!(!text.lines().any(|l| l.trim_start().starts_with('#')));
                let again = installable(text.as_bytes()).expect("own output");
                prop_assert_eq!(again.text(), text);
                prop_assert!(again.findings().is_empty());
            }
        }

        #[test]
        fn a_valid_file_is_unchanged(t in valid_file()) {
            let n = normalize(&t);
            prop_assert_eq!(&n.text, &t);
            prop_assert!(n.fixes.is_empty() && n.duplicates.is_empty());
            let i = installable(t.as_bytes()).expect("valid");
            prop_assert!(i.findings().is_empty());
            let tabbed: String = t
                .split_inclusive('\n')
                .map(|l| match l.strip_prefix("    ") {
                    Some(rest) => format!("\t{rest}"),
                    None => l.to_string(),
                })
                .collect();
            prop_assert_eq!(i.text(), tabbed);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = installable(&b);
            if let Ok(s) = std::str::from_utf8(&b) {
                let _ = normalize(s);
            }
        }
    }
}
