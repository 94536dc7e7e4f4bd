//! The lossless fstab parser.

use std::fmt;

/// A parsed fstab that remembers every byte of its text.
///
/// `Fstab::parse(x).to_string() == x` for any `x`: lines are split after each `\n` and kept
/// with their terminator; comments, blank lines, odd spacing and lines that do not parse stay
/// as they were.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fstab {
    lines: Vec<Line>,
}

/// One line of an fstab, with its terminator (`\n`, `\r\n`, or none for a last line without one).
#[derive(Clone, PartialEq, Eq)]
pub struct Line {
    number: usize,
    raw: String,
    kind: LineKind,
}

/// What a line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Only blanks (spaces, tabs, carriage returns).
    Blank,
    /// First non-blank character is `#`.
    Comment,
    /// A mount entry.
    Entry(Entry),
    /// A line `mount` would reject; kept as it is. The reason names what is wrong, never the
    /// line's content (which may hold credentials).
    Invalid(String),
}

/// One mount entry: `spec mountpoint fstype [options [dump [pass]]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    spec_raw: String,
    spec: String,
    mountpoint_raw: String,
    mountpoint: String,
    fstype: String,
    options: Option<String>,
    dump: Option<u32>,
    pass: Option<u32>,
    /// Byte ranges of the fields inside the line (without terminator).
    spans: Vec<(usize, usize)>,
    extra_fields: bool,
}

/// A line the parser could not read as an entry (or read with a caveat), by line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWarning {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it (never the line's content).
    pub message: String,
}

impl fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Fstab {
    /// Parses `text`. Never fails: what cannot be read is kept raw as [`LineKind::Invalid`].
    pub fn parse(text: &str) -> Fstab {
        let lines = text
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, raw)| Line {
                number: i + 1,
                raw: raw.to_owned(),
                kind: classify_line(body_of(raw)),
            })
            .collect();
        Fstab { lines }
    }

    /// Every line, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The entries with their 1-based line numbers, in order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.lines.iter().filter_map(|l| match &l.kind {
            LineKind::Entry(e) => Some((l.number, e)),
            _ => None,
        })
    }

    /// The lines that did not parse, and entries with fields `mount` ignores.
    pub fn warnings(&self) -> Vec<ParseWarning> {
        self.lines
            .iter()
            .filter_map(|l| match &l.kind {
                LineKind::Invalid(reason) => Some(ParseWarning {
                    line: l.number,
                    message: format!("not a valid fstab entry ({reason}); kept as it is"),
                }),
                LineKind::Entry(e) if e.extra_fields => Some(ParseWarning {
                    line: l.number,
                    message: "fields after the sixth are ignored by mount".to_owned(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The first entry mounted at `/`, if any.
    pub fn root_entry(&self) -> Option<&Entry> {
        self.entries()
            .map(|(_, e)| e)
            .find(|e| e.mountpoint() == "/")
    }

    /// Whether the text uses `\r\n` line ends (judged by its first line end).
    pub fn uses_crlf(&self) -> bool {
        self.lines
            .iter()
            .find(|l| l.raw.ends_with('\n'))
            .is_some_and(|l| l.raw.ends_with("\r\n"))
    }
}

impl fmt::Display for Fstab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            f.write_str(&l.raw)?;
        }
        Ok(())
    }
}

impl Line {
    /// 1-based line number.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The line exactly as in the file, terminator included.
    ///
    /// # Security
    /// May hold credentials (CIFS `password=` options); never log it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The line without its terminator and trailing carriage returns.
    ///
    /// # Security
    /// As [`Line::raw`].
    pub fn body(&self) -> &str {
        body_of(&self.raw)
    }

    /// What the line is.
    pub fn kind(&self) -> &LineKind {
        &self.kind
    }

    /// The entry on this line, if it is one.
    pub fn entry(&self) -> Option<&Entry> {
        match &self.kind {
            LineKind::Entry(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Debug for Line {
    /// Shows the line's number and kind, not its text (options may hold credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Line")
            .field("number", &self.number)
            .field("bytes", &self.raw.len())
            .field("kind", &self.kind)
            .finish()
    }
}

impl Entry {
    /// The device field as written (escapes kept).
    pub fn spec_raw(&self) -> &str {
        &self.spec_raw
    }

    /// The device field with `\ooo` escapes decoded (`UUID=…`, `/dev/sdb1`, `server:/export`).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The mountpoint field as written.
    pub fn mountpoint_raw(&self) -> &str {
        &self.mountpoint_raw
    }

    /// The mountpoint, escapes decoded and normalised (see [`normalise_mountpoint`]).
    pub fn mountpoint(&self) -> &str {
        &self.mountpoint
    }

    /// The filesystem type.
    pub fn fstype(&self) -> &str {
        &self.fstype
    }

    /// The options field, if present.
    ///
    /// # Security
    /// May hold credentials (CIFS `password=`); never show or log it.
    pub fn options(&self) -> Option<&str> {
        self.options.as_deref()
    }

    /// Whether the comma-separated options contain `name` (exactly, or as `name=…`).
    pub fn has_option(&self, name: &str) -> bool {
        self.options.as_deref().is_some_and(|o| {
            o.split(',')
                .any(|item| item == name || item.split_once('=').is_some_and(|(k, _)| k == name))
        })
    }

    /// The dump field (0 when absent).
    pub fn dump(&self) -> u32 {
        self.dump.unwrap_or(0)
    }

    /// The fsck pass field (0 when absent).
    pub fn pass(&self) -> u32 {
        self.pass.unwrap_or(0)
    }

    /// Byte range of field `i` (0 = spec … 5 = pass) inside the line's body.
    pub(crate) fn span(&self, i: usize) -> Option<(usize, usize)> {
        self.spans.get(i).copied()
    }
}

impl fmt::Debug for Entry {
    /// Hides the options (they may hold credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("spec", &self.spec)
            .field("mountpoint", &self.mountpoint)
            .field("fstype", &self.fstype)
            .field("options", &self.options.as_ref().map(|_| "<hidden>"))
            .field("dump", &self.dump)
            .field("pass", &self.pass)
            .finish()
    }
}

/// A line without its `\n` and any carriage returns before it.
pub(crate) fn body_of(raw: &str) -> &str {
    raw.strip_suffix('\n').unwrap_or(raw).trim_end_matches('\r')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Fields of a line body and their byte ranges, split on spaces and tabs.
fn fields(body: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in body.char_indices() {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, body.len()));
    }
    out
}

fn number(field: &str, what: &str) -> Result<u32, String> {
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        field
            .parse()
            .map_err(|_| format!("the {what} field is out of range"))
    } else {
        Err(format!("the {what} field is not a number"))
    }
}

fn classify_line(body: &str) -> LineKind {
    let trimmed = body.trim_start_matches(is_blank);
    if trimmed.is_empty() {
        return LineKind::Blank;
    }
    if trimmed.starts_with('#') {
        return LineKind::Comment;
    }
    let mut spans = fields(body);
    // An inline comment (a field starting with `#`) ends the entry, as upstream reads it;
    // mount itself ignores anything after the sixth field.
    if let Some(pos) = spans.iter().position(|&(s, _)| body[s..].starts_with('#')) {
        spans.truncate(pos);
    }
    if spans.len() < 3 {
        return LineKind::Invalid(format!(
            "{} field{}, at least 3 needed (device, mountpoint, type)",
            spans.len(),
            if spans.len() == 1 { "" } else { "s" }
        ));
    }
    let extra_fields = spans.len() > 6;
    spans.truncate(6);
    let field = |i: usize| spans.get(i).map(|&(s, e)| &body[s..e]);
    let dump = match field(4).map(|f| number(f, "dump")).transpose() {
        Ok(v) => v,
        Err(e) => return LineKind::Invalid(e),
    };
    let pass = match field(5).map(|f| number(f, "pass")).transpose() {
        Ok(v) => v,
        Err(e) => return LineKind::Invalid(e),
    };
    let spec_raw = field(0).unwrap_or_default().to_owned();
    let mountpoint_raw = field(1).unwrap_or_default().to_owned();
    let entry = Entry {
        spec: unescape(&spec_raw),
        mountpoint: normalise_mountpoint(&unescape(&mountpoint_raw)),
        spec_raw,
        mountpoint_raw,
        fstype: unescape(field(2).unwrap_or_default()),
        options: field(3).map(str::to_owned),
        dump,
        pass,
        spans,
        extra_fields,
    };
    LineKind::Entry(entry)
}

/// Decodes fstab's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash,
/// and any other `\ooo` as libmount does). Other backslashes stay.
pub fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && matches!(b[i + 1], b'0'..=b'3')
            && matches!(b[i + 2], b'0'..=b'7')
            && matches!(b[i + 3], b'0'..=b'7')
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a value for an fstab field: space, tab, newline and backslash as `\ooo`.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\r' => out.push_str("\\015"),
            '\\' => out.push_str("\\134"),
            '#' if out.is_empty() => out.push_str("\\043"),
            c => out.push(c),
        }
    }
    out
}

/// Normalises an (unescaped) mountpoint for comparison: an absolute path loses repeated `/`,
/// `.` components and its trailing `/` (`/` itself stays `/`). `..` is kept (resolving it
/// would need the file system). Anything else (`none`, `swap`, relative) is returned as is.
pub fn normalise_mountpoint(mountpoint: &str) -> String {
    if !mountpoint.starts_with('/') {
        return mountpoint.to_owned();
    }
    let mut out = String::with_capacity(mountpoint.len());
    for comp in mountpoint.split('/').filter(|c| !c.is_empty() && *c != ".") {
        out.push('/');
        out.push_str(comp);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}
