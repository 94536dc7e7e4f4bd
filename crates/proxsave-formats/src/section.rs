//! Section-config files: `storage.cfg`, `jobs.cfg`, `notifications.cfg`, `domains.cfg`,
//! `ha/*.cfg`, `sdn/*.cfg`, `mapping/*.cfg`, and the PBS configuration files.
//!
//! ```text
//! dir: local
//!     path /var/lib/vz
//!     content iso,vztmpl,backup
//!
//! dir: usb-backup
//!     # a comment: never a property
//!     path /mnt/usb-backup
//!     disable
//! ```
//!
//! Two readers:
//!
//! * [`parse`] follows Perl `PVE::SectionConfig` (what PVE itself reads): lines starting with
//!   optional whitespace and `#` are skipped everywhere, also inside a section; a header is
//!   `type: id` with no leading whitespace and a single-token id; a section runs until the first
//!   *empty* line (a whitespace-only line does not end it, it is reported); a property line is
//!   indented, `key` alone (a bare flag such as `disable`) or `key value` (value trimmed).
//!   Duplicate keys are kept in order (array-valued keys repeat; the schema decides elsewhere).
//!   Lines that fit nowhere are reported as [`Diag`]s and skipped, never fatal.
//! * [`parse_strict`] follows the Rust `proxmox-section-config` crate (PBS, proxmox-notify): a
//!   header starts with an alphabetic character and is split at its first `:`; a whitespace-only
//!   line ends a section; a property needs a non-empty value; a duplicate property or section
//!   id, or a line that fits nowhere, is an error.
//!
//! Writing: [`SectionConfig::to_text`] gives back the parsed text byte for byte when nothing
//! was changed; a new section is written the way PVE writes it (`type: id`, then
//! `\tkey value` or a bare `\tkey`, then an empty line); a changed section keeps its comments
//! and untouched lines (changed properties are rewritten in place); untouched sections, and
//! the comments between sections, keep their original text.
//!
//! ```
//! use proxsave_formats::section;
//!
//! let text = "dir: local\n\tpath /var/lib/vz\n\t# note\n\tdisable\n\n";
//! let (mut cfg, diags) = section::parse(text);
//! assert!(diags.is_empty());
//! let local = cfg.find("dir", "local").unwrap();
//! assert_eq!(local.get("path"), Some("/var/lib/vz"));
//! assert!(local.has("disable"));
//! assert_eq!(cfg.to_text(), text);
//!
//! cfg.push(section::Section::new("nfs", "nas").with("server", Some("10.0.0.1")));
//! assert!(cfg.to_text().ends_with("\n\nnfs: nas\n\tserver 10.0.0.1\n\n"));
//! ```

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A problem found on one line of a section-config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Diag {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, naming the line's text where useful.
    pub message: String,
}

/// One property line of a section.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prop {
    /// The key (the first token of the line).
    pub key: String,
    /// The value (rest of the line, trimmed); `None` for a bare flag such as `disable`, which
    /// PVE reads as boolean `1`.
    pub value: Option<String>,
}

impl Prop {
    /// A `key value` property.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Prop {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A bare flag (`\tkey` alone).
    pub fn flag(key: impl Into<String>) -> Self {
        Prop {
            key: key.into(),
            value: None,
        }
    }

    /// The value as PVE reads it: a bare flag is `"1"`.
    pub fn effective(&self) -> &str {
        self.value.as_deref().unwrap_or("1")
    }
}

/// The text a parsed section came from, to write it back unchanged.
#[derive(Debug, Clone, Default)]
struct Origin {
    /// Text between the previous section (or the file's head) and this header: comments,
    /// empty and ignored lines.
    leading: String,
    /// From the header line to the empty line that ended the section (included), or to the
    /// end of the file.
    text: String,
    /// `text` ends with the empty line that ends the section.
    closed: bool,
    /// What each line of `text` is, with its bytes in `text` (newline included), in order.
    lines: Vec<(Kind, Range<usize>)>,
    /// The section as parsed, to tell whether it was changed since.
    ty: String,
    id: String,
    props: Vec<Prop>,
}

/// What a line of a section's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The `type: id` line.
    Header,
    /// The property `props[i]` of the parsed section.
    Prop(usize),
    /// A comment, or a line the parser ignored.
    Other,
    /// The empty line that ended the section.
    End,
}

/// One section: `type: id` and its property lines.
///
/// Equality compares `ty`, `id` and `props` only (not `line`, not the remembered text).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    /// Section type (`dir`, `nfs`, `vzdump`, `smtp`, ...), as written.
    pub ty: String,
    /// Section id (storage id, job id, ...).
    pub id: String,
    /// Properties in file order, duplicates kept.
    pub props: Vec<Prop>,
    /// 1-based line of the header in the parsed text; 0 for a section built in code.
    pub line: usize,
    #[serde(skip)]
    origin: Option<Box<Origin>>,
}

impl PartialEq for Section {
    fn eq(&self, other: &Self) -> bool {
        self.ty == other.ty && self.id == other.id && self.props == other.props
    }
}

impl Eq for Section {}

impl Section {
    /// An empty section `ty: id` (line 0, no remembered text).
    pub fn new(ty: impl Into<String>, id: impl Into<String>) -> Self {
        Section {
            ty: ty.into(),
            id: id.into(),
            props: Vec::new(),
            line: 0,
            origin: None,
        }
    }

    /// Builder form of [`Section::push_prop`].
    pub fn with(mut self, key: &str, value: Option<&str>) -> Self {
        self.push_prop(key, value);
        self
    }

    /// Appends a property line (`None`: a bare flag), keeping any earlier line with that key.
    pub fn push_prop(&mut self, key: &str, value: Option<&str>) {
        self.props.push(Prop {
            key: key.to_string(),
            value: value.map(str::to_string),
        });
    }

    /// The first property with this key.
    pub fn prop(&self, key: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.key == key)
    }

    /// The value of the first `key` line; `None` when the key is absent *or* a bare flag
    /// (use [`Section::has`] or [`Section::effective`] for flags).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.prop(key).and_then(|p| p.value.as_deref())
    }

    /// The value of the first `key` line as PVE reads it: a bare flag is `"1"`.
    pub fn effective(&self, key: &str) -> Option<&str> {
        self.prop(key).map(Prop::effective)
    }

    /// The values of every `key` line, in order (bare flags skipped).
    pub fn get_all(&self, key: &str) -> Vec<&str> {
        self.props
            .iter()
            .filter(|p| p.key == key)
            .filter_map(|p| p.value.as_deref())
            .collect()
    }

    /// Whether a `key` line (with a value or bare) is present.
    pub fn has(&self, key: &str) -> bool {
        self.prop(key).is_some()
    }

    /// Sets `key` (`None`: a bare flag): the first `key` line is replaced in place and later
    /// ones are removed; appended when absent.
    pub fn set(&mut self, key: &str, value: Option<&str>) {
        let new = Prop {
            key: key.to_string(),
            value: value.map(str::to_string),
        };
        match self.props.iter().position(|p| p.key == key) {
            Some(first) => {
                self.props[first] = new;
                let mut index = 0;
                self.props.retain(|p| {
                    let keep = index <= first || p.key != key;
                    index += 1;
                    keep
                });
            }
            None => self.props.push(new),
        }
    }

    /// Removes every `key` line; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.props.len();
        self.props.retain(|p| p.key != key);
        before - self.props.len()
    }

    /// Whether this section differs from the text it was parsed from (always true for a
    /// section built in code).
    pub fn is_modified(&self) -> bool {
        match &self.origin {
            Some(o) => o.ty != self.ty || o.id != self.id || o.props != self.props,
            None => true,
        }
    }

    /// The section in PVE's writer style: `type: id`, `\tkey value` or bare `\tkey`, then an
    /// empty line. A `Some("")` value is written as a bare key. Values must be single-line.
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}\n", self.ty, self.id);
        for p in &self.props {
            out.push_str(&prop_line(p));
        }
        out.push('\n');
        out
    }

    /// The parsed text of this section with the changes made since: see
    /// [`SectionConfig::to_text`].
    fn render_edited(&self, o: &Origin) -> String {
        let matched = match_keys(&o.props, &self.props);
        // The last header or property line: new properties left over go right after it.
        let anchor = o
            .lines
            .iter()
            .rposition(|(k, _)| matches!(k, Kind::Header | Kind::Prop(_)))
            .unwrap_or(0);
        let mut kept = vec![false; self.props.len()];
        for j in matched.iter().flatten() {
            kept[*j] = true;
        }
        // The next kept property from `from` on (or the end): new ones before it go here.
        let next_kept = |from: usize| {
            (from..self.props.len())
                .find(|j| kept[*j])
                .unwrap_or(self.props.len())
        };
        let mut out = String::new();
        let mut next = 0;
        let emit_new = |out: &mut String, upto: usize, next: &mut usize| {
            while *next < upto {
                line_start(out);
                out.push_str(&prop_line(&self.props[*next]));
                *next += 1;
            }
        };
        for (index, (kind, range)) in o.lines.iter().enumerate() {
            let raw = &o.text[range.clone()];
            match *kind {
                Kind::Header => {
                    if o.ty == self.ty && o.id == self.id {
                        out.push_str(raw);
                    } else {
                        out.push_str(&format!("{}: {}\n", self.ty, self.id));
                    }
                    emit_new(&mut out, next_kept(0), &mut next);
                }
                Kind::Prop(i) => {
                    if let Some(j) = matched[i] {
                        emit_new(&mut out, j, &mut next);
                        line_start(&mut out);
                        if self.props[j] == o.props[i] {
                            out.push_str(raw);
                        } else {
                            out.push_str(&prop_line(&self.props[j]));
                        }
                        next = j + 1;
                        emit_new(&mut out, next_kept(next), &mut next);
                    }
                }
                Kind::Other | Kind::End => {
                    line_start(&mut out);
                    out.push_str(raw);
                }
            }
            if index == anchor {
                emit_new(&mut out, self.props.len(), &mut next);
            }
        }
        out
    }
}

/// A parsed (or built) section-config file.
///
/// Equality compares the sections only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectionConfig {
    /// The sections in file order.
    pub sections: Vec<Section>,
    /// Text before the first section (comments, empty and ignored lines).
    #[serde(skip)]
    head: String,
    /// Text after the last section that is not part of it.
    #[serde(skip)]
    tail: String,
}

impl PartialEq for SectionConfig {
    fn eq(&self, other: &Self) -> bool {
        self.sections == other.sections
    }
}

impl Eq for SectionConfig {}

impl From<Vec<Section>> for SectionConfig {
    fn from(sections: Vec<Section>) -> Self {
        SectionConfig {
            sections,
            ..SectionConfig::default()
        }
    }
}

impl SectionConfig {
    /// An empty file.
    pub fn new() -> Self {
        SectionConfig::default()
    }

    /// The section with this type and id.
    pub fn find(&self, ty: &str, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.ty == ty && s.id == id)
    }

    /// The section with this type and id, mutable.
    pub fn find_mut(&mut self, ty: &str, id: &str) -> Option<&mut Section> {
        self.sections.iter_mut().find(|s| s.ty == ty && s.id == id)
    }

    /// The first section with this id, whatever its type (ids are unique per file in PVE).
    pub fn find_id(&self, id: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }

    /// The first section with this id, mutable.
    pub fn find_id_mut(&mut self, id: &str) -> Option<&mut Section> {
        self.sections.iter_mut().find(|s| s.id == id)
    }

    /// Appends a section.
    pub fn push(&mut self, section: Section) {
        self.sections.push(section);
    }

    /// Removes and returns the first section with this type and id.
    pub fn remove(&mut self, ty: &str, id: &str) -> Option<Section> {
        let index = self
            .sections
            .iter()
            .position(|s| s.ty == ty && s.id == id)?;
        Some(self.sections.remove(index))
    }

    /// The file's text.
    ///
    /// Byte for byte the parsed input when nothing was changed. Otherwise: the file's head,
    /// then each section — its original text (and the comments before it) when unchanged;
    /// when changed, its original lines edited (comments and untouched property lines kept,
    /// changed properties rewritten in place as `\tkey value`, removed ones dropped, new ones
    /// inserted after the property before them); PVE writer style ([`Section::render`]) when
    /// new — then the file's tail. An empty line is added where needed so that every section
    /// still ends before the next.
    pub fn to_text(&self) -> String {
        let mut out = self.head.clone();
        // The last thing written is a section that did not end with an empty line.
        let mut open = false;
        for section in &self.sections {
            let origin = section.origin.as_deref();
            separate(&mut out, open);
            if let Some(o) = origin {
                out.push_str(&o.leading);
                separate(&mut out, false);
            }
            match origin {
                Some(o) if !section.is_modified() => {
                    out.push_str(&o.text);
                    open = !o.closed;
                }
                Some(o) => {
                    out.push_str(&section.render_edited(o));
                    open = !o.closed;
                }
                _ => {
                    out.push_str(&section.render());
                    open = false;
                }
            }
        }
        if !self.tail.is_empty() {
            separate(&mut out, open);
            out.push_str(&self.tail);
        }
        out
    }
}

impl fmt::Display for SectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// `\tkey value`, or `\tkey` for a bare flag (or an empty value), with its newline.
fn prop_line(p: &Prop) -> String {
    match p.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("\t{} {v}\n", p.key),
        None => format!("\t{}\n", p.key),
    }
}

/// Finishes an unterminated last line before another line is written.
fn line_start(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Pairs the parsed properties with the current ones by key, keeping order (a longest common
/// subsequence of the keys): `result[i]` is the current property that parsed property `i`
/// became, `None` when it was removed.
fn match_keys(old: &[Prop], new: &[Prop]) -> Vec<Option<usize>> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the longest common key subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i].key == new[j].key {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = vec![None; n];
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if old[i].key == new[j].key {
            out[i] = Some(j);
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Before writing more text: finish an unterminated line, and end an open section with an
/// empty line.
fn separate(out: &mut String, open: bool) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if open && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

/// Perl's `\s` on byte strings: space, `\t`, `\n`, `\r`, `\x0B`, `\x0C`.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// `^\s*#`
fn is_comment(line: &str) -> bool {
    line.trim_start_matches(is_ws).starts_with('#')
}

/// Perl truthiness of a line: `""` and `"0"` are false (they end a section in PVE).
fn perl_false(line: &str) -> bool {
    line.is_empty() || line == "0"
}

/// `^(\S+):\s*(\S+)\s*$`: type and id.
fn perl_header(line: &str) -> Option<(&str, &str)> {
    let s = line.trim_end_matches(is_ws);
    if s.is_empty() || s.starts_with(is_ws) {
        return None;
    }
    match s.find(is_ws) {
        Some(ws) => {
            // `type:` then one whitespace run then the id, which has no whitespace.
            let rest = s[ws..].trim_start_matches(is_ws);
            if rest.contains(is_ws) {
                return None;
            }
            let ty = s[..ws].strip_suffix(':')?;
            (!ty.is_empty()).then_some((ty, rest))
        }
        None => {
            // No whitespace: the greedy `(\S+):` takes the last `:` that leaves an id.
            let last = s.chars().next_back()?;
            let body = &s[..s.len() - last.len_utf8()];
            let colon = body.rfind(':')?;
            let (ty, id) = (&s[..colon], &s[colon + 1..]);
            (!ty.is_empty() && !id.is_empty()).then_some((ty, id))
        }
    }
}

/// `^\s+(\S+)(\s+(.*\S))?\s*$`: key and optional value.
fn perl_property(line: &str) -> Option<Prop> {
    if !line.starts_with(is_ws) {
        return None;
    }
    let s = line.trim_matches(is_ws);
    if s.is_empty() {
        return None;
    }
    let (key, value) = match s.find(is_ws) {
        Some(ws) => (&s[..ws], Some(s[ws..].trim_start_matches(is_ws))),
        None => (s, None),
    };
    Some(Prop {
        key: key.to_string(),
        value: value.map(str::to_string),
    })
}

/// Lines of `text` with their bytes (newline included); the line text excludes its `\n`.
fn lines(text: &str) -> Vec<(Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in text.split_inclusive('\n') {
        out.push((
            offset..offset + piece.len(),
            piece.strip_suffix('\n').unwrap_or(piece),
        ));
        offset += piece.len();
    }
    out
}

/// Shortens a line for a message.
fn shown(line: &str) -> String {
    const MAX: usize = 80;
    if line.chars().count() <= MAX {
        format!("{line:?}")
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

/// Collects sections and the text around them.
struct Builder<'a> {
    text: &'a str,
    sections: Vec<Section>,
    /// Where the text not yet owned by a section starts.
    free_from: usize,
    head: Option<String>,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        Builder {
            text,
            sections: Vec::new(),
            free_from: 0,
            head: None,
        }
    }

    /// A section whose lines are `kinds` (byte ranges in the text, in order, the header
    /// first).
    fn section(
        &mut self,
        ty: &str,
        id: &str,
        props: Vec<Prop>,
        line: usize,
        kinds: Vec<(Kind, Range<usize>)>,
    ) {
        let start = kinds.first().map_or(self.free_from, |(_, r)| r.start);
        let end = kinds.last().map_or(start, |(_, r)| r.end);
        let closed = kinds.last().is_some_and(|(k, _)| *k == Kind::End);
        let lines = kinds
            .into_iter()
            .map(|(k, r)| (k, r.start - start..r.end - start))
            .collect();
        let before = self.text[self.free_from..start].to_string();
        let leading = if self.head.is_none() {
            self.head = Some(before);
            String::new()
        } else {
            before
        };
        self.sections.push(Section {
            ty: ty.to_string(),
            id: id.to_string(),
            props: props.clone(),
            line,
            origin: Some(Box::new(Origin {
                leading,
                text: self.text[start..end].to_string(),
                closed,
                lines,
                ty: ty.to_string(),
                id: id.to_string(),
                props,
            })),
        });
        self.free_from = end;
    }

    fn finish(self) -> SectionConfig {
        let rest = self.text[self.free_from..].to_string();
        match self.head {
            Some(head) => SectionConfig {
                sections: self.sections,
                head,
                tail: rest,
            },
            None => SectionConfig {
                sections: self.sections,
                head: rest,
                tail: String::new(),
            },
        }
    }
}

/// Parses a section-config file the way PVE's Perl `SectionConfig` does. Never fails: lines
/// PVE would ignore (with a warning) are skipped and reported.
///
/// The section type is kept as written (PVE's storage plugin lower-cases it and validates ids:
/// that is the caller's business).
pub fn parse(text: &str) -> (SectionConfig, Vec<Diag>) {
    let lines = lines(text);
    let mut diags = Vec::new();
    let mut builder = Builder::new(text);
    let mut i = 0;
    while i < lines.len() {
        let (ref header_span, line) = lines[i];
        i += 1;
        if is_comment(line) || perl_false(line) {
            continue;
        }
        let Some((ty, id)) = perl_header(line) else {
            let message = if line.trim_matches(is_ws).is_empty() {
                "ignored whitespace-only line outside a section".to_string()
            } else {
                format!(
                    "ignored line {}: not a section header `type: id`",
                    shown(line)
                )
            };
            diags.push(Diag { line: i, message });
            continue;
        };
        let header_line = i;
        let mut props = Vec::new();
        let mut kinds = vec![(Kind::Header, header_span.clone())];
        while i < lines.len() {
            let (ref span, body) = lines[i];
            i += 1;
            if is_comment(body) {
                kinds.push((Kind::Other, span.clone()));
                continue;
            }
            if perl_false(body) {
                kinds.push((Kind::End, span.clone()));
                break;
            }
            match perl_property(body) {
                Some(prop) => {
                    kinds.push((Kind::Prop(props.len()), span.clone()));
                    props.push(prop);
                }
                None => {
                    kinds.push((Kind::Other, span.clone()));
                    let message = if body.trim_matches(is_ws).is_empty() {
                        format!(
                            "ignored whitespace-only line in section '{ty}: {id}' \
                             (a section ends at an empty line)"
                        )
                    } else {
                        format!(
                            "ignored line {} in section '{ty}: {id}': \
                             not an indented `key value` property",
                            shown(body)
                        )
                    };
                    diags.push(Diag { line: i, message });
                }
            }
        }
        builder.section(ty, id, props, header_line, kinds);
    }
    (builder.finish(), diags)
}

/// Parses a section-config file with the rules of the Rust `proxmox-section-config` crate
/// (PBS, proxmox-notify), minus the schema: the first problem is an error.
///
/// Rules: lines are split like [`str::lines`] (`\r\n` accepted); whitespace-only lines are
/// empty; lines whose first non-whitespace character is `#` are comments, skipped (newer
/// crate versions skip them); outside a section only a header may appear: first character
/// alphabetic, split at the first `:`, type and id trimmed and non-empty; inside a section an
/// empty line ends it, and any other line must be indented `key value` with a non-empty value;
/// a duplicate key within a section, or a duplicate section id, is an error.
pub fn parse_strict(text: &str) -> Result<SectionConfig, Diag> {
    let lines = lines(text);
    let mut builder = Builder::new(text);
    let mut seen_ids: Vec<String> = Vec::new();
    let mut i = 0;
    let err = |line: usize, message: String| Diag { line, message };
    while i < lines.len() {
        let (ref header_span, raw) = lines[i];
        i += 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (ty, id) = strict_header(line).ok_or_else(|| {
            err(
                i,
                format!(
                    "syntax error: expected a section header `type: id`, found {}",
                    shown(line)
                ),
            )
        })?;
        if seen_ids.iter().any(|s| s == id) {
            return Err(err(i, format!("duplicate section id '{id}'")));
        }
        seen_ids.push(id.to_string());
        let header_line = i;
        let mut props: Vec<Prop> = Vec::new();
        let mut kinds = vec![(Kind::Header, header_span.clone())];
        while i < lines.len() {
            let (ref span, raw) = lines[i];
            i += 1;
            let body = raw.strip_suffix('\r').unwrap_or(raw);
            if body.trim().is_empty() {
                kinds.push((Kind::End, span.clone()));
                break;
            }
            if body.trim_start().starts_with('#') {
                kinds.push((Kind::Other, span.clone()));
                continue;
            }
            if !body.starts_with(char::is_whitespace) {
                return Err(err(
                    i,
                    format!(
                        "syntax error in section '{ty}: {id}': expected an indented `key value` \
                         property, found {}",
                        shown(body)
                    ),
                ));
            }
            let s = body.trim();
            let (key, value) = match s.find(char::is_whitespace) {
                Some(ws) => (&s[..ws], s[ws..].trim()),
                None => (s, ""),
            };
            if value.is_empty() {
                return Err(err(
                    i,
                    format!("property '{key}' in section '{ty}: {id}' has no value"),
                ));
            }
            if props.iter().any(|p| p.key == key) {
                return Err(err(
                    i,
                    format!("duplicate property '{key}' in section '{ty}: {id}'"),
                ));
            }
            kinds.push((Kind::Prop(props.len()), span.clone()));
            props.push(Prop::new(key, value));
        }
        builder.section(ty, id, props, header_line, kinds);
    }
    Ok(builder.finish())
}

/// Header of the Rust crate: first char alphabetic, split at the first `:`, both trimmed.
fn strict_header(line: &str) -> Option<(&str, &str)> {
    if !line.chars().next()?.is_alphabetic() {
        return None;
    }
    let (ty, id) = line.split_once(':')?;
    let (ty, id) = (ty.trim(), id.trim());
    (!ty.is_empty() && !id.is_empty()).then_some((ty, id))
}

#[cfg(test)]
mod tests;
