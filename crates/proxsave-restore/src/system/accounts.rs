//! The accounts merge: `passwd`, `group`, `shadow`, `gshadow`, `subuid`, `subgid`, and the
//! sudoers plan. Pure and I/O-free: the `accounts` applier reads the staged and current files,
//! calls [`merge`] and [`plan_sudoers`], and writes the results with the modes of
//! [`DEBIAN_MODES`].
//!
//! # Parsers
//!
//! Every file is parsed line by line into a [`LineFile`] that keeps every line: a line that
//! does not parse is kept as it is (and named by its line number in
//! [`LineFile::warnings`]), never dropped, and `LineFile::parse(x).to_string() == x` for any
//! input (a missing final newline included). Numeric ids must be canonical decimals (`0`,
//! `1000`, not `01000` or `+5`), so that a parsed entry printed again is its line.
//!
//! # Merge rules ([`merge`])
//!
//! The range of regular accounts is `UID_MIN..=UID_MAX` and `GID_MIN..=GID_MAX` of **this
//! host's** `login.defs` (defaults 1000..=60000); everything outside it is a system account.
//!
//! - Every line of this host is kept, in its order and with its bytes; the only lines that
//!   change are a matched user's `passwd`/`shadow` lines and the member lists of this host's
//!   groups. New lines are appended at the end of each file.
//! - A backup user is **imported** when its uid is in the range, it is not `root`, its name is
//!   valid for `useradd` (the rule `pwck` applies), neither its name nor its uid exist on this
//!   host, this host has no orphan `shadow` line of that name, and its primary group can be
//!   brought (below). It gets its backup `shadow` line, or, when the backup has none (or an
//!   invalid one), the locked placeholder [`locked_shadow_line`] (`name:!::0:99999:7:::`:
//!   locked, no last-change date because the merge has no clock; Debian's `useradd`
//!   defaults for the rest).
//! - A backup user whose name and uid are this host's (a regular account) is **matched**: its
//!   `passwd` line becomes the backup's, and its `shadow` line too when the backup has a valid
//!   one (a matched user is never locked: with no backup `shadow` line the host's stays).
//! - **Primary group**: the backup group holding the user's gid (found by gid in the backup's
//!   `group`). It is fine when this host has a group of the same name and the same gid;
//!   otherwise it is imported when its gid is in the range and free here and its name is
//!   new; otherwise the user is a conflict (`primary_group`) and is not brought. A matched user
//!   whose gid did not change needs no check.
//! - **Supplementary groups**: for each backup group listing an imported or matched user, that
//!   user is added to this host's group *of the same name* (never matched by gid; this host's
//!   gid 0 group is refused), in `group` and in `gshadow`. A group this host does not have is
//!   imported (gid in range, free here) with its members limited to imported and matched
//!   users, and with its `gshadow` line (the backup's, members limited the same way, or
//!   `name:!::members`). Groups that no imported or matched user needs are not imported.
//! - **subuid/subgid**: the backup ranges of imported and matched users (owner by name or by
//!   uid) are appended unless this host already has a range for that owner (conflict) or the
//!   range overlaps any range here (conflict).
//! - **Conflicts** (same name other uid, same uid other name, a system account's name, a group
//!   gid clash, a primary group that cannot be brought, subordinate id clashes, a host line
//!   that does not parse) are reported with both sides and left as on this host.
//! - `gshadow` is never created when this host has none; `subuid`/`subgid` are created when
//!   a range is added.
//! - A missing or empty backup `passwd` skips the merge ([`Merged::Skipped`]); so does a
//!   missing or empty `passwd`, `group` or `shadow` of this host.
//! - A second merge with the same backup changes nothing.
//!
//! # Where we differ from upstream
//!
//! Upstream (proxsave's Go restore) matches privileged group memberships **by gid** (a backup
//! `sudo:x:27:bob` adds bob to whatever group has gid 27 here) and silently does not update a
//! same-name user whose primary gid exists here. Here memberships go by group name, every
//! skipped update is a reported conflict, the placeholder is the locked `!` instead of `*`,
//! the regular range comes from this host's `login.defs` instead of a fixed 1000, `gshadow`
//! members follow `group` (so `grpck` finds nothing new), lines that do not parse are kept and
//! named, and `subuid`, `subgid` and `sudoers.d` (beyond upstream's category) are merged or
//! planned too.
//!
//! # Sudoers ([`plan_sudoers`])
//!
//! `sudoers` and each `sudoers.d/<name>` drop-in are separate items; the applier runs
//! [`visudo_check_command`] (`visudo -c -f FILE`) on each staged file that the plan installs,
//! installs the ones that pass with mode 0440, and keeps the current file for the others.
//! Drop-ins whose name contains `.` or ends with `~` are skipped because `sudo` ignores them
//! in `@includedir` (they would be inert files); so are symlinks, non-regular files, empty
//! files and files that are not UTF-8. Drop-ins present here and absent from the backup are
//! kept.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

// ----------------------------------------------------------------------------------------
// Lossless line files
// ----------------------------------------------------------------------------------------

/// A line that was kept as it is because it does not parse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineWarning {
    /// 1-based line number.
    pub line: usize,
    /// Why it does not parse (never quotes a password field).
    pub message: String,
}

/// One line of a [`LineFile`]: its text (without the newline) and its entry when it parses.
#[derive(Clone, PartialEq, Eq)]
pub struct Line<E> {
    text: String,
    entry: Option<E>,
}

impl<E> Line<E> {
    /// The line's bytes, without its newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed entry, `None` for blank lines, comments and lines that do not parse.
    pub fn entry(&self) -> Option<&E> {
        self.entry.as_ref()
    }
}

impl<E> fmt::Debug for Line<E> {
    // The text may hold a password hash (shadow, gshadow): show only its length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Line({} bytes, parsed: {})",
            self.text.len(),
            self.entry.is_some()
        )
    }
}

/// One entry type of a [`LineFile`].
pub trait ParseLine: Sized {
    /// Parses one line (without its newline). `Ok(None)`: a line without an entry that needs
    /// no warning (blank, or a comment where the format has them); `Err(reason)`: the line is
    /// kept and named in a warning.
    fn parse_line(line: &str) -> Result<Option<Self>, String>;
}

/// A file parsed line by line, keeping every line; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineFile<E> {
    lines: Vec<Line<E>>,
    final_newline: bool,
    warnings: Vec<LineWarning>,
}

impl<E> Default for LineFile<E> {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            final_newline: false,
            warnings: Vec::new(),
        }
    }
}

impl<E: ParseLine> LineFile<E> {
    /// Parses `text`; never fails (see [`LineFile::warnings`]).
    pub fn parse(text: &str) -> Self {
        let (body, final_newline) = match text.strip_suffix('\n') {
            Some(body) => (body, true),
            None => (text, false),
        };
        let mut file = Self {
            lines: Vec::new(),
            final_newline,
            warnings: Vec::new(),
        };
        if text.is_empty() {
            return file;
        }
        for (index, raw) in body.split('\n').enumerate() {
            let entry = match E::parse_line(raw) {
                Ok(entry) => entry,
                Err(message) => {
                    file.warnings.push(LineWarning {
                        line: index + 1,
                        message,
                    });
                    None
                }
            };
            file.lines.push(Line {
                text: raw.to_owned(),
                entry,
            });
        }
        file
    }
}

impl<E> LineFile<E> {
    /// Every line, in order.
    pub fn lines(&self) -> &[Line<E>] {
        &self.lines
    }

    /// The lines kept as they are because they do not parse.
    pub fn warnings(&self) -> &[LineWarning] {
        &self.warnings
    }

    /// The parsed entries with their 0-based line index.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &E)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.entry.as_ref().map(|e| (i, e)))
    }

    /// True when some line holds something other than whitespace.
    pub fn has_content(&self) -> bool {
        self.lines.iter().any(|l| !l.text.trim().is_empty())
    }

    /// Appends a line (the file gets a final newline).
    fn push(&mut self, text: String, entry: Option<E>) {
        self.lines.push(Line { text, entry });
        self.final_newline = true;
    }

    /// Replaces the line at `index` (its position and the other lines stay).
    fn replace(&mut self, index: usize, text: String, entry: Option<E>) {
        if let Some(line) = self.lines.get_mut(index) {
            *line = Line { text, entry };
        }
    }

    /// The first `:`-separated field of every line that has one, with its index.
    fn keys(&self) -> impl Iterator<Item = (usize, &str)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| colon_key(&l.text).map(|k| (i, k)))
    }
}

impl<E> fmt::Display for LineFile<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&line.text)?;
        }
        if self.final_newline && !self.lines.is_empty() {
            f.write_str("\n")?;
        }
        Ok(())
    }
}

fn colon_key(text: &str) -> Option<&str> {
    let (key, _) = text.split_once(':')?;
    (!key.is_empty()).then_some(key)
}

/// A canonical decimal id: `0` or digits without a leading zero, below `u32::MAX` (which is
/// `(uid_t)-1`, never a valid id).
fn parse_id(field: &str) -> Option<u32> {
    if !is_canonical_decimal(field) {
        return None;
    }
    field.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

fn parse_u64(field: &str) -> Option<u64> {
    if !is_canonical_decimal(field) {
        return None;
    }
    field.parse().ok()
}

fn is_canonical_decimal(field: &str) -> bool {
    !field.is_empty()
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field.len() == 1 || !field.starts_with('0'))
}

/// The id in field `index` of a line that did not parse, read leniently (leading zeros,
/// surrounding spaces), so that the id it seems to use is never given to someone else.
fn best_effort_id(text: &str, index: usize) -> Option<u32> {
    let field = text.split(':').nth(index)?.trim();
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

fn fields<const N: usize>(line: &str, what: &str) -> Result<[String; N], String> {
    let parts: Vec<&str> = line.split(':').collect();
    if parts.len() != N {
        return Err(format!(
            "not a {what} entry: expected {N} `:`-separated fields, found {}",
            parts.len()
        ));
    }
    if parts[0].is_empty() {
        return Err(format!("not a {what} entry: the name is empty"));
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, part) in out.iter_mut().zip(parts) {
        *slot = part.to_owned();
    }
    Ok(out)
}

fn nis_check(line: &str) -> Result<(), String> {
    if line.starts_with('+') || line.starts_with('-') {
        Err("NIS compat entry (`+`/`-`), kept as it is".into())
    } else {
        Ok(())
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

// ----------------------------------------------------------------------------------------
// Entries
// ----------------------------------------------------------------------------------------

/// A `passwd` entry: `name:password:uid:gid:gecos:home:shell`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Password field (`x` when the hash is in `shadow`).
    pub password: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Comment (GECOS).
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl ParseLine for PasswdEntry {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        nis_check(line)?;
        let [name, password, uid, gid, gecos, home, shell] = fields::<7>(line, "passwd")?;
        let uid = parse_id(&uid).ok_or_else(|| format!("uid `{uid}` is not a valid id"))?;
        let gid = parse_id(&gid).ok_or_else(|| format!("gid `{gid}` is not a valid id"))?;
        Ok(Some(Self {
            name,
            password,
            uid,
            gid,
            gecos,
            home,
            shell,
        }))
    }
}

impl fmt::Display for PasswdEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}:{}:{}",
            self.name, self.password, self.uid, self.gid, self.gecos, self.home, self.shell
        )
    }
}

/// A `group` entry: `name:password:gid:member,member`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Password field (`x`).
    pub password: String,
    /// Group id.
    pub gid: u32,
    /// The member list as written (comma-separated).
    pub members: String,
}

impl GroupEntry {
    /// The members (empty items skipped).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        member_list(&self.members)
    }
}

impl ParseLine for GroupEntry {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        nis_check(line)?;
        let [name, password, gid, members] = fields::<4>(line, "group")?;
        let gid = parse_id(&gid).ok_or_else(|| format!("gid `{gid}` is not a valid id"))?;
        Ok(Some(Self {
            name,
            password,
            gid,
            members,
        }))
    }
}

impl fmt::Display for GroupEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.name, self.password, self.gid, self.members
        )
    }
}

fn member_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|m| !m.is_empty())
}

fn add_member(list: &str, member: &str) -> String {
    if list.is_empty() || list.ends_with(',') {
        format!("{list}{member}")
    } else {
        format!("{list},{member}")
    }
}

/// A `shadow` entry: `name:password:lastchg:min:max:warn:inactive:expire:reserved`. The
/// numeric fields are kept as written (empty or decimal digits). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    /// Login name.
    pub name: String,
    /// Password hash (`!…` locked, `*` no password).
    pub password: String,
    /// Days since the epoch of the last change (may be empty).
    pub last_change: String,
    /// Minimum days between changes.
    pub min: String,
    /// Maximum days between changes.
    pub max: String,
    /// Warning days.
    pub warn: String,
    /// Inactivity days.
    pub inactive: String,
    /// Expiry day.
    pub expire: String,
    /// Reserved field.
    pub reserved: String,
}

impl fmt::Debug for ShadowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShadowEntry")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("last_change", &self.last_change)
            .finish_non_exhaustive()
    }
}

impl ParseLine for ShadowEntry {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        nis_check(line)?;
        let [
            name,
            password,
            last_change,
            min,
            max,
            warn,
            inactive,
            expire,
            reserved,
        ] = fields::<9>(line, "shadow")?;
        for (what, value) in [
            ("last change", &last_change),
            ("minimum age", &min),
            ("maximum age", &max),
            ("warning period", &warn),
            ("inactivity period", &inactive),
            ("expiry", &expire),
        ] {
            if !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("shadow entry of `{name}`: {what} is not a number"));
            }
        }
        Ok(Some(Self {
            name,
            password,
            last_change,
            min,
            max,
            warn,
            inactive,
            expire,
            reserved,
        }))
    }
}

/// A `gshadow` entry: `name:password:admin,admin:member,member`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct GshadowEntry {
    /// Group name.
    pub name: String,
    /// Group password hash (`!` or `*`: none).
    pub password: String,
    /// The administrator list as written.
    pub admins: String,
    /// The member list as written.
    pub members: String,
}

impl GshadowEntry {
    /// The members (empty items skipped).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        member_list(&self.members)
    }

    /// The administrators (empty items skipped).
    pub fn admins(&self) -> impl Iterator<Item = &str> {
        member_list(&self.admins)
    }
}

impl fmt::Debug for GshadowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GshadowEntry")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("admins", &self.admins)
            .field("members", &self.members)
            .finish()
    }
}

impl ParseLine for GshadowEntry {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        nis_check(line)?;
        let [name, password, admins, members] = fields::<4>(line, "gshadow")?;
        Ok(Some(Self {
            name,
            password,
            admins,
            members,
        }))
    }
}

impl fmt::Display for GshadowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.name, self.password, self.admins, self.members
        )
    }
}

/// A `subuid`/`subgid` entry: `owner:start:count` (owner is a name or a uid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubidEntry {
    /// User name or uid.
    pub owner: String,
    /// First subordinate id.
    pub start: u64,
    /// Number of ids.
    pub count: u64,
}

impl SubidEntry {
    fn overlaps(&self, other: &SubidEntry) -> bool {
        let (a0, a1) = (
            u128::from(self.start),
            u128::from(self.start) + u128::from(self.count),
        );
        let (b0, b1) = (
            u128::from(other.start),
            u128::from(other.start) + u128::from(other.count),
        );
        a0 < b1 && b0 < a1
    }
}

impl ParseLine for SubidEntry {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let [owner, start, count] = fields::<3>(line, "subordinate id")?;
        let start = parse_u64(&start).ok_or_else(|| format!("start `{start}` is not a number"))?;
        let count = parse_u64(&count).ok_or_else(|| format!("count `{count}` is not a number"))?;
        Ok(Some(Self {
            owner,
            start,
            count,
        }))
    }
}

impl fmt::Display for SubidEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.owner, self.start, self.count)
    }
}

/// A `login.defs` setting: `KEY value` (surrounding double quotes removed from the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginDef {
    /// The key (`UID_MIN`).
    pub key: String,
    /// The value as `login.defs` readers see it.
    pub value: String,
}

impl ParseLine for LoginDef {
    fn parse_line(line: &str) -> Result<Option<Self>, String> {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(None);
        }
        let (key, value) = trimmed
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((trimmed, ""));
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.is_empty() {
            return Err(format!("`{key}` has no value"));
        }
        Ok(Some(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        }))
    }
}

/// `/etc/passwd`.
pub type PasswdFile = LineFile<PasswdEntry>;
/// `/etc/group`.
pub type GroupFile = LineFile<GroupEntry>;
/// `/etc/shadow`.
pub type ShadowFile = LineFile<ShadowEntry>;
/// `/etc/gshadow`.
pub type GshadowFile = LineFile<GshadowEntry>;
/// `/etc/subuid` or `/etc/subgid`.
pub type SubidFile = LineFile<SubidEntry>;

// ----------------------------------------------------------------------------------------
// login.defs
// ----------------------------------------------------------------------------------------

/// `/etc/login.defs`, parsed losslessly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginDefs {
    file: LineFile<LoginDef>,
}

/// The id ranges of regular accounts (and the system ranges, for information).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct IdRanges {
    /// `UID_MIN` (default 1000).
    pub uid_min: u32,
    /// `UID_MAX` (default 60000).
    pub uid_max: u32,
    /// `GID_MIN` (default 1000).
    pub gid_min: u32,
    /// `GID_MAX` (default 60000).
    pub gid_max: u32,
    /// `SYS_UID_MAX` (default `UID_MIN - 1`).
    pub sys_uid_max: u32,
    /// `SYS_GID_MAX` (default `GID_MIN - 1`).
    pub sys_gid_max: u32,
}

impl Default for IdRanges {
    fn default() -> Self {
        Self {
            uid_min: 1000,
            uid_max: 60000,
            gid_min: 1000,
            gid_max: 60000,
            sys_uid_max: 999,
            sys_gid_max: 999,
        }
    }
}

impl IdRanges {
    /// True for a uid of a regular user here.
    pub fn is_regular_uid(&self, uid: u32) -> bool {
        (self.uid_min..=self.uid_max).contains(&uid)
    }

    /// True for a gid of a regular group here.
    pub fn is_regular_gid(&self, gid: u32) -> bool {
        (self.gid_min..=self.gid_max).contains(&gid)
    }
}

impl LoginDefs {
    /// Parses `login.defs` text; never fails (see [`LoginDefs::warnings`]).
    pub fn parse(text: &str) -> Self {
        Self {
            file: LineFile::parse(text),
        }
    }

    /// The lines kept as they are because they do not parse.
    pub fn warnings(&self) -> &[LineWarning] {
        self.file.warnings()
    }

    /// The value of `key` (the last setting wins, as in `login.defs` readers).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.file
            .entries()
            .filter(|(_, d)| d.key == key)
            .last()
            .map(|(_, d)| d.value.as_str())
    }

    /// The numeric value of `key` as `login.defs` readers take it (`strtol` base 0: `0x…`
    /// hex, leading `0` octal, else decimal). `Err` names a value that is not a number.
    pub fn number(&self, key: &str) -> Result<Option<u64>, String> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let parsed = if let Some(hex) = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
        {
            u64::from_str_radix(hex, 16).ok()
        } else if value.len() > 1 && value.starts_with('0') {
            u64::from_str_radix(&value[1..], 8).ok()
        } else if value.bytes().all(|b| b.is_ascii_digit()) {
            value.parse().ok()
        } else {
            None
        };
        parsed
            .map(Some)
            .ok_or_else(|| format!("login.defs: `{key}` value `{value}` is not a number"))
    }

    /// The id ranges, with a warning for each value that is unusable (the default is used
    /// then; a reversed pair falls back to both defaults).
    pub fn id_ranges(&self) -> (IdRanges, Vec<String>) {
        let defaults = IdRanges::default();
        let mut warnings = Vec::new();
        let (mut uid_min, mut uid_max) = (
            self.id_value("UID_MIN", defaults.uid_min, 1, &mut warnings),
            self.id_value("UID_MAX", defaults.uid_max, 1, &mut warnings),
        );
        let (mut gid_min, mut gid_max) = (
            self.id_value("GID_MIN", defaults.gid_min, 1, &mut warnings),
            self.id_value("GID_MAX", defaults.gid_max, 1, &mut warnings),
        );
        if uid_min > uid_max {
            warnings.push(format!(
                "login.defs: UID_MIN {uid_min} > UID_MAX {uid_max}; using {}..{}",
                defaults.uid_min, defaults.uid_max
            ));
            (uid_min, uid_max) = (defaults.uid_min, defaults.uid_max);
        }
        if gid_min > gid_max {
            warnings.push(format!(
                "login.defs: GID_MIN {gid_min} > GID_MAX {gid_max}; using {}..{}",
                defaults.gid_min, defaults.gid_max
            ));
            (gid_min, gid_max) = (defaults.gid_min, defaults.gid_max);
        }
        let sys_uid_max = self.id_value("SYS_UID_MAX", uid_min - 1, 0, &mut warnings);
        let sys_gid_max = self.id_value("SYS_GID_MAX", gid_min - 1, 0, &mut warnings);
        (
            IdRanges {
                uid_min,
                uid_max,
                gid_min,
                gid_max,
                sys_uid_max,
                sys_gid_max,
            },
            warnings,
        )
    }
}

impl LoginDefs {
    fn id_value(&self, key: &str, default: u32, min: u32, warnings: &mut Vec<String>) -> u32 {
        match self.number(key) {
            Ok(None) => default,
            Ok(Some(v)) => match u32::try_from(v) {
                Ok(v) if v >= min && v != u32::MAX => v,
                _ => {
                    warnings.push(format!(
                        "login.defs: `{key}` value {v} is out of range; using {default}"
                    ));
                    default
                }
            },
            Err(message) => {
                warnings.push(format!("{message}; using {default}"));
                default
            }
        }
    }
}

impl fmt::Display for LoginDefs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.file.fmt(f)
    }
}

// ----------------------------------------------------------------------------------------
// Files, modes, owners
// ----------------------------------------------------------------------------------------

/// One of the six account database files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountFile {
    /// `etc/passwd`
    Passwd,
    /// `etc/group`
    Group,
    /// `etc/shadow`
    Shadow,
    /// `etc/gshadow`
    Gshadow,
    /// `etc/subuid`
    Subuid,
    /// `etc/subgid`
    Subgid,
}

impl AccountFile {
    /// All six, in the order they are written.
    pub const ALL: [AccountFile; 6] = [
        AccountFile::Passwd,
        AccountFile::Group,
        AccountFile::Shadow,
        AccountFile::Gshadow,
        AccountFile::Subuid,
        AccountFile::Subgid,
    ];

    /// The root-relative path (`etc/passwd`).
    pub fn path(self) -> &'static str {
        self.mode().path
    }

    /// The file name (`passwd`).
    pub fn name(self) -> &'static str {
        match self {
            AccountFile::Passwd => "passwd",
            AccountFile::Group => "group",
            AccountFile::Shadow => "shadow",
            AccountFile::Gshadow => "gshadow",
            AccountFile::Subuid => "subuid",
            AccountFile::Subgid => "subgid",
        }
    }

    /// Its mode and owner as Debian has them.
    pub fn mode(self) -> &'static FileMode {
        let index = match self {
            AccountFile::Passwd => 0,
            AccountFile::Group => 1,
            AccountFile::Shadow => 2,
            AccountFile::Gshadow => 3,
            AccountFile::Subuid => 4,
            AccountFile::Subgid => 5,
        };
        &DEBIAN_MODES[index]
    }
}

/// Mode and owner of a file as Debian installs it. Owner and group are *names*: the applier
/// resolves them in the merged files ([`uid_of`], [`gid_of`]; `shadow` has no fixed gid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FileMode {
    /// Root-relative path; `etc/sudoers.d/*` stands for every drop-in.
    pub path: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// Owner name.
    pub owner: &'static str,
    /// Group name.
    pub group: &'static str,
}

/// Modes and owners of the files of the `accounts` category, as Debian has them.
pub const DEBIAN_MODES: [FileMode; 9] = [
    FileMode {
        path: "etc/passwd",
        mode: 0o644,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/group",
        mode: 0o644,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/shadow",
        mode: 0o640,
        owner: "root",
        group: "shadow",
    },
    FileMode {
        path: "etc/gshadow",
        mode: 0o640,
        owner: "root",
        group: "shadow",
    },
    FileMode {
        path: "etc/subuid",
        mode: 0o644,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/subgid",
        mode: 0o644,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/sudoers",
        mode: 0o440,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/sudoers.d",
        mode: 0o755,
        owner: "root",
        group: "root",
    },
    FileMode {
        path: "etc/sudoers.d/*",
        mode: 0o440,
        owner: "root",
        group: "root",
    },
];

/// The Debian mode of a root-relative path of the category (`etc/sudoers.d/NAME` matches
/// the drop-in row), `None` for other paths.
pub fn debian_mode(path: &str) -> Option<&'static FileMode> {
    let drop_in = path
        .strip_prefix("etc/sudoers.d/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    let wanted = if drop_in { "etc/sudoers.d/*" } else { path };
    DEBIAN_MODES.iter().find(|m| m.path == wanted)
}

/// The gid of group `name` in a group file (its first parsed entry).
pub fn gid_of(group: &GroupFile, name: &str) -> Option<u32> {
    group
        .entries()
        .find(|(_, g)| g.name == name)
        .map(|(_, g)| g.gid)
}

/// The uid of user `name` in a passwd file (its first parsed entry).
pub fn uid_of(passwd: &PasswdFile, name: &str) -> Option<u32> {
    passwd
        .entries()
        .find(|(_, p)| p.name == name)
        .map(|(_, p)| p.uid)
}

/// True for a user or group name that `useradd`/`groupadd` accept and `pwck`/`grpck` do not
/// flag (Debian's shadow rule): 1–32 bytes of `[A-Za-z0-9_.-]`, not starting with `-`, a `$`
/// only at the end, not `.` or `..`, not all digits.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 32 || name == "." || name == ".." {
        return false;
    }
    let ok = |i: usize, b: u8| {
        b.is_ascii_alphanumeric()
            || b == b'_'
            || b == b'.'
            || (b == b'-' && i > 0)
            || (b == b'$' && i > 0 && i == bytes.len() - 1)
    };
    bytes.iter().enumerate().all(|(i, &b)| ok(i, b)) && !bytes.iter().all(u8::is_ascii_digit)
}

/// The placeholder `shadow` line of an imported user the backup has no `shadow` line for:
/// locked (`!`), no last-change date (the merge is pure and has no clock; `passwd` sets it
/// with the first password), Debian's `useradd` aging defaults (0, 99999, 7).
pub fn locked_shadow_line(name: &str) -> String {
    format!("{name}:!::0:99999:7:::")
}

// ----------------------------------------------------------------------------------------
// Merge input and output
// ----------------------------------------------------------------------------------------

/// The six account files of one side (this host or the backup), each optional.
#[derive(Clone, Debug, Default)]
pub struct AccountFiles {
    /// `etc/passwd`
    pub passwd: Option<PasswdFile>,
    /// `etc/group`
    pub group: Option<GroupFile>,
    /// `etc/shadow`
    pub shadow: Option<ShadowFile>,
    /// `etc/gshadow`
    pub gshadow: Option<GshadowFile>,
    /// `etc/subuid`
    pub subuid: Option<SubidFile>,
    /// `etc/subgid`
    pub subgid: Option<SubidFile>,
}

impl AccountFiles {
    /// Parses the texts given (files not given stay `None`).
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = (AccountFile, &'a str)>) -> Self {
        let mut files = Self::default();
        for (file, text) in texts {
            files.set(file, text);
        }
        files
    }

    /// Parses and sets one file.
    pub fn set(&mut self, file: AccountFile, text: &str) {
        match file {
            AccountFile::Passwd => self.passwd = Some(LineFile::parse(text)),
            AccountFile::Group => self.group = Some(LineFile::parse(text)),
            AccountFile::Shadow => self.shadow = Some(LineFile::parse(text)),
            AccountFile::Gshadow => self.gshadow = Some(LineFile::parse(text)),
            AccountFile::Subuid => self.subuid = Some(LineFile::parse(text)),
            AccountFile::Subgid => self.subgid = Some(LineFile::parse(text)),
        }
    }

    /// The text of one file, `None` when absent.
    pub fn text(&self, file: AccountFile) -> Option<String> {
        match file {
            AccountFile::Passwd => self.passwd.as_ref().map(ToString::to_string),
            AccountFile::Group => self.group.as_ref().map(ToString::to_string),
            AccountFile::Shadow => self.shadow.as_ref().map(ToString::to_string),
            AccountFile::Gshadow => self.gshadow.as_ref().map(ToString::to_string),
            AccountFile::Subuid => self.subuid.as_ref().map(ToString::to_string),
            AccountFile::Subgid => self.subgid.as_ref().map(ToString::to_string),
        }
    }

    /// The parse warnings of every file present.
    pub fn warnings(&self) -> Vec<(AccountFile, &LineWarning)> {
        fn tag<E>(file: AccountFile, f: &Option<LineFile<E>>) -> Vec<(AccountFile, &LineWarning)> {
            f.iter()
                .flat_map(|f| f.warnings())
                .map(|w| (file, w))
                .collect()
        }
        let mut out = tag(AccountFile::Passwd, &self.passwd);
        out.extend(tag(AccountFile::Group, &self.group));
        out.extend(tag(AccountFile::Shadow, &self.shadow));
        out.extend(tag(AccountFile::Gshadow, &self.gshadow));
        out.extend(tag(AccountFile::Subuid, &self.subuid));
        out.extend(tag(AccountFile::Subgid, &self.subgid));
        out
    }
}

/// The result of [`merge`].
#[derive(Clone, Debug)]
pub enum Merged {
    /// Nothing merged, with the reason (missing or empty backup `passwd`, …).
    Skipped(String),
    /// The merge was computed (it may change nothing).
    Done(Box<MergeOutcome>),
}

impl Merged {
    /// The outcome, `None` when skipped.
    pub fn outcome(&self) -> Option<&MergeOutcome> {
        match self {
            Merged::Done(outcome) => Some(outcome),
            Merged::Skipped(_) => None,
        }
    }
}

/// The merged files and the report. `Debug` shows file sizes, not contents (hashes).
#[derive(Clone)]
pub struct MergeOutcome {
    /// The new text of each file that changes, in [`AccountFile::ALL`] order. A file not
    /// listed stays as it is. Holds password hashes: never log or serialise it.
    pub files: Vec<(AccountFile, String)>,
    /// What was done, for people ([`MergeReport::summary`]) and JSON.
    pub report: MergeReport,
}

impl fmt::Debug for MergeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<(AccountFile, usize)> = self
            .files
            .iter()
            .map(|(file, text)| (*file, text.len()))
            .collect();
        f.debug_struct("MergeOutcome")
            .field("files", &sizes)
            .field("report", &self.report)
            .finish()
    }
}

impl MergeOutcome {
    /// The new text of `file` when it changes.
    pub fn file(&self, file: AccountFile) -> Option<&str> {
        self.files
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, t)| t.as_str())
    }
}

/// A user named in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRef {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
}

/// A matched user whose lines were replaced by the backup's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserUpdate {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// The files whose line changed (`passwd`, `shadow`).
    pub files: Vec<AccountFile>,
}

/// A group added to this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupAdded {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Its members (imported and matched users only).
    pub members: Vec<String>,
}

/// A user added to one of this host's groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// Login name.
    pub user: String,
    /// This host's group (same name as in the backup).
    pub group: String,
}

/// A subordinate id range added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubidAdded {
    /// `subuid` or `subgid`.
    pub file: AccountFile,
    /// Owner as written (name or uid).
    pub owner: String,
    /// First id.
    pub start: u64,
    /// Number of ids.
    pub count: u64,
}

/// Kinds of conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The user exists here with another uid.
    SameNameOtherUid,
    /// The uid belongs to another user here.
    SameUidOtherName,
    /// The name is one of this host's system accounts.
    SystemAccount,
    /// A group's gid belongs to another group here.
    GroupGidClash,
    /// The user's primary group cannot be brought.
    PrimaryGroup,
    /// This host has a `shadow`/`gshadow` line of that name without a `passwd`/`group` line.
    OrphanShadowLine,
    /// This host already has subordinate ids for the owner.
    SubidOwner,
    /// The range overlaps one of this host's ranges.
    SubidOverlap,
    /// This host's line of that name does not parse.
    UnparsedHostLine,
}

/// A conflict: left as on this host, with both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// What kind.
    pub kind: ConflictKind,
    /// The user, group or range concerned.
    pub subject: String,
    /// This host's side.
    pub host: String,
    /// The backup's side.
    pub backup: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: this host has {}, the backup has {}",
            self.subject, self.host, self.backup
        )
    }
}

/// A backup entry not brought for a reason other than a conflict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The user, group or line concerned.
    pub subject: String,
    /// Why.
    pub reason: String,
}

/// Which side a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// This host's file.
    Host,
    /// The backup's file.
    Backup,
}

/// A line kept as it is (or an unusable `login.defs` value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileWarning {
    /// Whose file.
    pub side: Side,
    /// Root-relative path (`etc/passwd`).
    pub file: String,
    /// 1-based line number (0 when not about a line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Host => "this host's",
            Side::Backup => "the backup's",
        };
        if self.line > 0 {
            write!(
                f,
                "{side} {} line {}: {} (kept as it is)",
                self.file, self.line, self.message
            )
        } else {
            write!(f, "{side} {}: {}", self.file, self.message)
        }
    }
}

/// What the merge did (JSON-serialisable; holds no password).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// The regular ranges used (this host's `login.defs`).
    pub ranges: IdRanges,
    /// Users imported.
    pub users_added: Vec<UserRef>,
    /// Imported users given the locked placeholder `shadow` line.
    pub users_locked: Vec<String>,
    /// Matched users whose lines changed.
    pub users_updated: Vec<UserUpdate>,
    /// Groups imported.
    pub groups_added: Vec<GroupAdded>,
    /// Users added to this host's groups.
    pub memberships_added: Vec<Membership>,
    /// Subordinate id ranges added.
    pub subids_added: Vec<SubidAdded>,
    /// Conflicts, left as on this host.
    pub conflicts: Vec<Conflict>,
    /// Backup entries not brought for other reasons.
    pub refused: Vec<Refusal>,
    /// Backup users outside the regular range (system accounts: this host's are kept).
    pub system_users_ignored: usize,
    /// Lines kept as they are, unusable settings.
    pub warnings: Vec<FileWarning>,
    /// The files that change.
    pub files_changed: Vec<AccountFile>,
}

impl MergeReport {
    /// True when the merge changes nothing.
    pub fn is_noop(&self) -> bool {
        self.files_changed.is_empty()
    }

    /// A human summary, one item per line.
    pub fn summary(&self) -> String {
        let mut out = Vec::new();
        let list = |items: Vec<String>| items.join(", ");
        if self.files_changed.is_empty() {
            out.push("accounts: nothing to change".to_owned());
        } else {
            out.push(format!(
                "accounts: {} changed",
                list(
                    self.files_changed
                        .iter()
                        .map(|f| f.path().to_owned())
                        .collect()
                )
            ));
        }
        if !self.users_added.is_empty() {
            out.push(format!(
                "users added: {}",
                list(
                    self.users_added
                        .iter()
                        .map(|u| format!("{} ({})", u.name, u.uid))
                        .collect()
                )
            ));
        }
        if !self.users_locked.is_empty() {
            out.push(format!(
                "locked (no password in the backup): {}",
                self.users_locked.join(", ")
            ));
        }
        if !self.users_updated.is_empty() {
            out.push(format!(
                "users updated: {}",
                list(
                    self.users_updated
                        .iter()
                        .map(|u| {
                            let files: Vec<&str> = u.files.iter().map(|f| f.name()).collect();
                            format!("{} ({}: {})", u.name, u.uid, files.join(", "))
                        })
                        .collect()
                )
            ));
        }
        if !self.groups_added.is_empty() {
            out.push(format!(
                "groups added: {}",
                list(
                    self.groups_added
                        .iter()
                        .map(|g| {
                            if g.members.is_empty() {
                                format!("{} ({})", g.name, g.gid)
                            } else {
                                format!("{} ({}: {})", g.name, g.gid, g.members.join(", "))
                            }
                        })
                        .collect()
                )
            ));
        }
        if !self.memberships_added.is_empty() {
            out.push(format!(
                "memberships added: {}",
                list(
                    self.memberships_added
                        .iter()
                        .map(|m| format!("{} in {}", m.user, m.group))
                        .collect()
                )
            ));
        }
        if !self.subids_added.is_empty() {
            out.push(format!(
                "subordinate ids added: {}",
                list(
                    self.subids_added
                        .iter()
                        .map(|s| format!("{} {}:{}:{}", s.file.name(), s.owner, s.start, s.count))
                        .collect()
                )
            ));
        }
        if !self.conflicts.is_empty() {
            out.push(format!(
                "conflicts (left as on this host): {}",
                self.conflicts.len()
            ));
            out.extend(self.conflicts.iter().map(|c| format!("  - {c}")));
        }
        if !self.refused.is_empty() {
            out.push(format!("not brought: {}", self.refused.len()));
            out.extend(
                self.refused
                    .iter()
                    .map(|r| format!("  - {}: {}", r.subject, r.reason)),
            );
        }
        if !self.warnings.is_empty() {
            out.push(format!("warnings: {}", self.warnings.len()));
            out.extend(self.warnings.iter().map(|w| format!("  - {w}")));
        }
        let mut text = out.join("\n");
        text.push('\n');
        text
    }
}

// ----------------------------------------------------------------------------------------
// Merge
// ----------------------------------------------------------------------------------------

/// This host's names and ids, from every line (best effort for lines that do not parse, so
/// that their name and id are never reused).
struct HostIndex {
    /// User name → uid (`None`: its first line does not parse).
    users: HashMap<String, Option<u32>>,
    uids: HashMap<u32, String>,
    /// Group name → gid (`None`: its first line does not parse).
    groups: HashMap<String, Option<u32>>,
    gids: HashMap<u32, String>,
    shadow: HashSet<String>,
    gshadow: HashSet<String>,
}

impl HostIndex {
    fn new(
        passwd: &PasswdFile,
        group: &GroupFile,
        shadow: &ShadowFile,
        gshadow: Option<&GshadowFile>,
    ) -> Self {
        let mut index = HostIndex {
            users: HashMap::new(),
            uids: HashMap::new(),
            groups: HashMap::new(),
            gids: HashMap::new(),
            shadow: shadow.keys().map(|(_, k)| k.to_owned()).collect(),
            gshadow: gshadow
                .map(|g| g.keys().map(|(_, k)| k.to_owned()).collect())
                .unwrap_or_default(),
        };
        for (i, key) in passwd.keys() {
            let line = &passwd.lines[i];
            let parsed = line.entry.as_ref().map(|e| e.uid);
            index.users.entry(key.to_owned()).or_insert(parsed);
            if let Some(uid) = parsed.or_else(|| best_effort_id(&line.text, 2)) {
                index.uids.entry(uid).or_insert_with(|| key.to_owned());
            }
        }
        for (i, key) in group.keys() {
            let line = &group.lines[i];
            let parsed = line.entry.as_ref().map(|e| e.gid);
            index.groups.entry(key.to_owned()).or_insert(parsed);
            if let Some(gid) = parsed.or_else(|| best_effort_id(&line.text, 2)) {
                index.gids.entry(gid).or_insert_with(|| key.to_owned());
            }
        }
        index
    }
}

fn required<'a, E>(file: &'a Option<LineFile<E>>, path: &str) -> Result<&'a LineFile<E>, String> {
    match file {
        None => Err(format!(
            "this host has no {path}; accounts are not merged into an incomplete system"
        )),
        Some(f) if !f.has_content() => Err(format!(
            "this host's {path} is empty; accounts are not merged into an incomplete system"
        )),
        Some(f) => Ok(f),
    }
}

fn first_index<E>(file: &LineFile<E>, key: &str) -> Option<usize> {
    file.keys().find(|(_, k)| *k == key).map(|(i, _)| i)
}

fn first_parsed<E>(file: &LineFile<E>, mut pred: impl FnMut(&E) -> bool) -> Option<(usize, &E)> {
    file.entries().find(|(_, e)| pred(e))
}

/// A backup user that will be brought.
enum Accepted<'a> {
    Import {
        entry: &'a PasswdEntry,
        text: &'a str,
    },
    Match {
        entry: &'a PasswdEntry,
        text: &'a str,
        host_line: usize,
    },
}

impl Accepted<'_> {
    fn entry(&self) -> &PasswdEntry {
        match self {
            Accepted::Import { entry, .. } | Accepted::Match { entry, .. } => entry,
        }
    }
}

/// The backup's groups: first line of each name wins.
struct BackupGroups<'a> {
    order: Vec<&'a GroupEntry>,
    by_name: HashMap<&'a str, &'a GroupEntry>,
    by_gid: HashMap<u32, &'a GroupEntry>,
}

impl<'a> BackupGroups<'a> {
    fn new(file: Option<&'a GroupFile>) -> Self {
        let mut groups = BackupGroups {
            order: Vec::new(),
            by_name: HashMap::new(),
            by_gid: HashMap::new(),
        };
        for (_, g) in file.into_iter().flat_map(|f| f.entries()) {
            if groups.by_name.contains_key(g.name.as_str()) {
                continue;
            }
            groups.by_name.insert(&g.name, g);
            groups.by_gid.entry(g.gid).or_insert(g);
            groups.order.push(g);
        }
        groups
    }
}

/// Groups the merge will import: name → gid, and gid → name.
#[derive(Default)]
struct Planned {
    by_name: HashMap<String, u32>,
    by_gid: HashMap<u32, String>,
}

impl Planned {
    fn add(&mut self, name: &str, gid: u32) {
        self.by_name.insert(name.to_owned(), gid);
        self.by_gid.insert(gid, name.to_owned());
    }
}

fn user_desc(name: &str, uid: u32) -> String {
    format!("{name} (uid {uid})")
}

fn group_desc(name: &str, gid: u32) -> String {
    format!("group {name} (gid {gid})")
}

/// Checks that the backup's primary group of `user` exists here with the same name and gid,
/// or can be imported. `Ok(Some)`: a group to import.
fn resolve_primary<'a>(
    user: &PasswdEntry,
    groups: &BackupGroups<'a>,
    host: &HostIndex,
    planned: &Planned,
    ranges: &IdRanges,
) -> Result<Option<&'a GroupEntry>, Conflict> {
    let conflict = |host_side: String, backup_side: String| Conflict {
        kind: ConflictKind::PrimaryGroup,
        subject: format!("user {}", user.name),
        host: host_side,
        backup: backup_side,
    };
    let Some(&group) = groups.by_gid.get(&user.gid) else {
        return Err(conflict(
            "no group to compare".into(),
            format!("primary gid {} without a group in its group file", user.gid),
        ));
    };
    let backup_side = format!("primary {}", group_desc(&group.name, group.gid));
    match host.groups.get(group.name.as_str()) {
        Some(Some(gid)) if *gid == group.gid => return Ok(None),
        Some(Some(gid)) => return Err(conflict(group_desc(&group.name, *gid), backup_side)),
        Some(None) => {
            return Err(Conflict {
                kind: ConflictKind::UnparsedHostLine,
                subject: format!("user {}", user.name),
                host: format!("a group line for {} that does not parse", group.name),
                backup: backup_side,
            });
        }
        None => {}
    }
    if planned.by_name.get(&group.name) == Some(&group.gid) {
        return Ok(None);
    }
    if groups.by_name.get(group.name.as_str()).map(|g| g.gid) != Some(group.gid) {
        return Err(conflict(
            format!("no group {}", group.name),
            format!("{backup_side}, listed twice with different gids"),
        ));
    }
    if !is_valid_name(&group.name) || has_control(&group.password) {
        return Err(conflict(
            format!("no group {}", group.name),
            format!("{backup_side}, not a valid group line"),
        ));
    }
    if !ranges.is_regular_gid(group.gid) {
        return Err(conflict(
            format!("no group {}", group.name),
            format!("{backup_side}, outside this host's GID_MIN..GID_MAX"),
        ));
    }
    if let Some(other) = host
        .gids
        .get(&group.gid)
        .or_else(|| planned.by_gid.get(&group.gid))
    {
        return Err(conflict(group_desc(other, group.gid), backup_side));
    }
    if host.gshadow.contains(&group.name) {
        return Err(Conflict {
            kind: ConflictKind::OrphanShadowLine,
            subject: format!("user {}", user.name),
            host: format!("a gshadow line for {} without a group line", group.name),
            backup: backup_side,
        });
    }
    Ok(Some(group))
}

/// Merges the backup's regular accounts into this host's; see the module docs for the rules.
/// `defs` is this host's `login.defs` (an empty one gives the defaults).
pub fn merge(current: &AccountFiles, backup: &AccountFiles, defs: &LoginDefs) -> Merged {
    let bpasswd = match &backup.passwd {
        None => return Merged::Skipped("the backup has no etc/passwd".into()),
        Some(f) if !f.has_content() => {
            return Merged::Skipped("the backup's etc/passwd is empty".into());
        }
        Some(f) => f,
    };
    let host_files = required(&current.passwd, "etc/passwd").and_then(|p| {
        Ok((
            p,
            required(&current.group, "etc/group")?,
            required(&current.shadow, "etc/shadow")?,
        ))
    });
    let (passwd, group, shadow) = match host_files {
        Ok(files) => files,
        Err(reason) => return Merged::Skipped(reason),
    };

    let (ranges, range_warnings) = defs.id_ranges();
    let mut report = MergeReport {
        ranges,
        ..MergeReport::default()
    };
    for w in defs.warnings() {
        report.warnings.push(FileWarning {
            side: Side::Host,
            file: "etc/login.defs".into(),
            line: w.line,
            message: w.message.clone(),
        });
    }
    for message in range_warnings {
        report.warnings.push(FileWarning {
            side: Side::Host,
            file: "etc/login.defs".into(),
            line: 0,
            message,
        });
    }
    for (side, files) in [(Side::Host, current), (Side::Backup, backup)] {
        for (file, w) in files.warnings() {
            report.warnings.push(FileWarning {
                side,
                file: file.path().into(),
                line: w.line,
                message: w.message.clone(),
            });
        }
    }

    let host = HostIndex::new(passwd, group, shadow, current.gshadow.as_ref());
    let groups = BackupGroups::new(backup.group.as_ref());
    let mut planned = Planned::default();

    // Users.
    let mut accepted: Vec<Accepted<'_>> = Vec::new();
    let mut seen_names: HashSet<&str> = HashSet::new();
    let mut seen_uids: HashSet<u32> = HashSet::new();
    for (index, entry) in bpasswd.entries() {
        let text = bpasswd.lines[index].text.as_str();
        let name = entry.name.as_str();
        if !ranges.is_regular_uid(entry.uid) {
            report.system_users_ignored += 1;
            continue;
        }
        let subject = format!("user {name}");
        if seen_names.contains(name) || seen_uids.contains(&entry.uid) {
            report.refused.push(Refusal {
                subject,
                reason: format!(
                    "line {} repeats a name or uid of the backup's passwd (the first is used)",
                    index + 1
                ),
            });
            continue;
        }
        seen_names.insert(name);
        seen_uids.insert(entry.uid);
        let refusal = if name == "root" {
            Some("root is never imported")
        } else if !is_valid_name(name) {
            Some("not a valid user name")
        } else if has_control(text) {
            Some("its passwd line holds control characters")
        } else {
            None
        };
        if let Some(reason) = refusal {
            report.refused.push(Refusal {
                subject,
                reason: reason.into(),
            });
            continue;
        }
        let backup_side = user_desc(name, entry.uid);
        let host_line = match host.users.get(name) {
            Some(None) => {
                report.conflicts.push(Conflict {
                    kind: ConflictKind::UnparsedHostLine,
                    subject,
                    host: "a passwd line that does not parse".into(),
                    backup: backup_side,
                });
                continue;
            }
            Some(Some(uid)) if *uid != entry.uid => {
                let kind = if ranges.is_regular_uid(*uid) {
                    ConflictKind::SameNameOtherUid
                } else {
                    ConflictKind::SystemAccount
                };
                report.conflicts.push(Conflict {
                    kind,
                    subject,
                    host: user_desc(name, *uid),
                    backup: backup_side,
                });
                continue;
            }
            Some(Some(_)) => first_parsed(passwd, |p| p.name == name),
            None => {
                if let Some(other) = host.uids.get(&entry.uid) {
                    report.conflicts.push(Conflict {
                        kind: ConflictKind::SameUidOtherName,
                        subject: format!("uid {}", entry.uid),
                        host: user_desc(other, entry.uid),
                        backup: backup_side,
                    });
                    continue;
                }
                if host.shadow.contains(name) {
                    report.conflicts.push(Conflict {
                        kind: ConflictKind::OrphanShadowLine,
                        subject,
                        host: format!("a shadow line for {name} without a passwd line"),
                        backup: backup_side,
                    });
                    continue;
                }
                None
            }
        };
        let same_gid = host_line.is_some_and(|(_, p)| p.gid == entry.gid);
        if !same_gid {
            match resolve_primary(entry, &groups, &host, &planned, &ranges) {
                Ok(Some(g)) => planned.add(&g.name, g.gid),
                Ok(None) => {}
                Err(conflict) => {
                    report.conflicts.push(conflict);
                    continue;
                }
            }
        }
        accepted.push(match host_line {
            Some((host_line, _)) => Accepted::Match {
                entry,
                text,
                host_line,
            },
            None => Accepted::Import { entry, text },
        });
    }

    let mut out_passwd = passwd.clone();
    let mut out_group = group.clone();
    let mut out_shadow = shadow.clone();
    let mut out_gshadow = current.gshadow.clone();
    let mut out_subuid = current.subuid.clone();
    let mut out_subgid = current.subgid.clone();

    // passwd and shadow lines.
    let backup_shadow: HashMap<&str, (&ShadowEntry, &str)> = {
        let mut map = HashMap::new();
        if let Some(file) = &backup.shadow {
            for (i, e) in file.entries() {
                let text = file.lines[i].text.as_str();
                if !has_control(text) {
                    map.entry(e.name.as_str()).or_insert((e, text));
                }
            }
        }
        map
    };
    for user in &accepted {
        match *user {
            Accepted::Import { entry, text } => {
                out_passwd.push(text.to_owned(), Some(entry.clone()));
                report.users_added.push(UserRef {
                    name: entry.name.clone(),
                    uid: entry.uid,
                });
                match backup_shadow.get(entry.name.as_str()) {
                    Some((s, text)) => out_shadow.push((*text).to_owned(), Some((*s).clone())),
                    None => {
                        let line = locked_shadow_line(&entry.name);
                        let parsed = ShadowEntry::parse_line(&line).ok().flatten();
                        out_shadow.push(line, parsed);
                        report.users_locked.push(entry.name.clone());
                    }
                }
            }
            Accepted::Match {
                entry,
                text,
                host_line,
            } => {
                let mut files = Vec::new();
                if out_passwd.lines[host_line].text != text {
                    out_passwd.replace(host_line, text.to_owned(), Some(entry.clone()));
                    files.push(AccountFile::Passwd);
                }
                if let Some((s, text)) = backup_shadow.get(entry.name.as_str()) {
                    match first_index(&out_shadow, &entry.name) {
                        Some(i) if out_shadow.lines[i].text == *text => {}
                        Some(i) => {
                            out_shadow.replace(i, (*text).to_owned(), Some((*s).clone()));
                            files.push(AccountFile::Shadow);
                        }
                        None => {
                            out_shadow.push((*text).to_owned(), Some((*s).clone()));
                            files.push(AccountFile::Shadow);
                        }
                    }
                }
                if !files.is_empty() {
                    report.users_updated.push(UserUpdate {
                        name: entry.name.clone(),
                        uid: entry.uid,
                        files,
                    });
                }
            }
        }
    }

    // Groups: memberships in this host's groups (by name), imported groups.
    let verified: HashSet<&str> = accepted.iter().map(|u| u.entry().name.as_str()).collect();
    let backup_gshadow: HashMap<&str, &GshadowEntry> = {
        let mut map = HashMap::new();
        for (_, e) in backup.gshadow.iter().flat_map(|f| f.entries()) {
            map.entry(e.name.as_str()).or_insert(e);
        }
        map
    };
    for &bg in &groups.order {
        let name = bg.name.as_str();
        let is_planned = planned.by_name.get(name) == Some(&bg.gid);
        let mut members: Vec<&str> = Vec::new();
        for m in bg.members() {
            if verified.contains(m) && !members.contains(&m) {
                members.push(m);
            }
        }
        if members.is_empty() && !is_planned {
            continue;
        }
        let subject = format!("group {name}");
        match host.groups.get(name) {
            Some(None) => {
                report.conflicts.push(Conflict {
                    kind: ConflictKind::UnparsedHostLine,
                    subject,
                    host: "a group line that does not parse".into(),
                    backup: format!("{} with {}", group_desc(name, bg.gid), members.join(",")),
                });
            }
            Some(Some(0)) => {
                for m in members {
                    report.refused.push(Refusal {
                        subject: format!("{m} in group {name}"),
                        reason: format!(
                            "this host's group {name} has gid 0; no member is ever added to it"
                        ),
                    });
                }
            }
            Some(Some(_)) => {
                let Some((index, host_group)) = first_parsed(&out_group, |g| g.name == name) else {
                    continue;
                };
                let mut updated = host_group.clone();
                let mut added = Vec::new();
                for m in members {
                    if !updated.members().any(|x| x == m) {
                        updated.members = add_member(&updated.members, m);
                        added.push(m);
                    }
                }
                if added.is_empty() {
                    continue;
                }
                out_group.replace(index, updated.to_string(), Some(updated));
                if let Some(gshadow) = out_gshadow.as_mut()
                    && let Some((gi, gs)) = first_parsed(gshadow, |g| g.name == name)
                {
                    let mut gs = gs.clone();
                    let before = gs.members.clone();
                    for m in &added {
                        if !gs.members().any(|x| x == *m) {
                            gs.members = add_member(&gs.members, m);
                        }
                    }
                    if gs.members != before {
                        gshadow.replace(gi, gs.to_string(), Some(gs));
                    }
                }
                for m in added {
                    report.memberships_added.push(Membership {
                        user: m.to_owned(),
                        group: name.to_owned(),
                    });
                }
            }
            None => {
                if !is_planned {
                    let brought = members.join(",");
                    if !is_valid_name(name) || has_control(&bg.password) {
                        report.refused.push(Refusal {
                            subject,
                            reason: format!(
                                "not a valid group line; memberships of {brought} not brought"
                            ),
                        });
                        continue;
                    }
                    if !ranges.is_regular_gid(bg.gid) {
                        report.refused.push(Refusal {
                            subject: group_desc(name, bg.gid),
                            reason: format!(
                                "a system group this host does not have; memberships of {brought} not brought"
                            ),
                        });
                        continue;
                    }
                    if let Some(other) = host.gids.get(&bg.gid) {
                        report.conflicts.push(Conflict {
                            kind: ConflictKind::GroupGidClash,
                            subject: format!("gid {}", bg.gid),
                            host: group_desc(other, bg.gid),
                            backup: group_desc(name, bg.gid),
                        });
                        continue;
                    }
                    if let Some(other) = planned.by_gid.get(&bg.gid) {
                        report.refused.push(Refusal {
                            subject: group_desc(name, bg.gid),
                            reason: format!("the backup's group {other} has the same gid"),
                        });
                        continue;
                    }
                    if host.gshadow.contains(name) {
                        report.conflicts.push(Conflict {
                            kind: ConflictKind::OrphanShadowLine,
                            subject,
                            host: format!("a gshadow line for {name} without a group line"),
                            backup: group_desc(name, bg.gid),
                        });
                        continue;
                    }
                    planned.add(name, bg.gid);
                }
                let entry = GroupEntry {
                    name: name.to_owned(),
                    password: bg.password.clone(),
                    gid: bg.gid,
                    members: members.join(","),
                };
                out_group.push(entry.to_string(), Some(entry));
                if let Some(gshadow) = out_gshadow.as_mut() {
                    let line = match backup_gshadow.get(name) {
                        Some(g) if !has_control(&g.password) => GshadowEntry {
                            name: name.to_owned(),
                            password: g.password.clone(),
                            admins: g
                                .admins()
                                .filter(|a| verified.contains(a))
                                .collect::<Vec<_>>()
                                .join(","),
                            members: members.join(","),
                        },
                        _ => GshadowEntry {
                            name: name.to_owned(),
                            password: "!".into(),
                            admins: String::new(),
                            members: members.join(","),
                        },
                    };
                    gshadow.push(line.to_string(), Some(line));
                }
                report.groups_added.push(GroupAdded {
                    name: name.to_owned(),
                    gid: bg.gid,
                    members: members.iter().map(|m| (*m).to_owned()).collect(),
                });
            }
        }
    }

    // Subordinate ids.
    let owners: Vec<(&str, String)> = accepted
        .iter()
        .map(|u| (u.entry().name.as_str(), u.entry().uid.to_string()))
        .collect();
    for (kind, host_file, backup_file, out) in [
        (
            AccountFile::Subuid,
            current.subuid.as_ref(),
            backup.subuid.as_ref(),
            &mut out_subuid,
        ),
        (
            AccountFile::Subgid,
            current.subgid.as_ref(),
            backup.subgid.as_ref(),
            &mut out_subgid,
        ),
    ] {
        let Some(backup_file) = backup_file else {
            continue;
        };
        let host_entries: Vec<&SubidEntry> = host_file
            .into_iter()
            .flat_map(|f| f.entries().map(|(_, e)| e))
            .collect();
        let host_texts: HashSet<&str> = host_file
            .into_iter()
            .flat_map(|f| f.lines.iter().map(|l| l.text.as_str()))
            .collect();
        let host_owners: HashSet<&str> = host_file
            .into_iter()
            .flat_map(|f| f.keys().map(|(_, k)| k))
            .collect();
        let mut added: Vec<&SubidEntry> = Vec::new();
        for (index, entry) in backup_file.entries() {
            let text = backup_file.lines[index].text.as_str();
            let Some((name, uid)) = owners
                .iter()
                .find(|(name, uid)| entry.owner == *name || entry.owner == *uid)
            else {
                continue;
            };
            if host_texts.contains(text) {
                continue;
            }
            let subject = format!("{} {text}", kind.name());
            if host_owners.contains(name) || host_owners.contains(uid.as_str()) {
                let mine: Vec<String> = host_entries
                    .iter()
                    .filter(|h| h.owner == *name || h.owner == *uid)
                    .map(|h| h.to_string())
                    .collect();
                report.conflicts.push(Conflict {
                    kind: ConflictKind::SubidOwner,
                    subject,
                    host: if mine.is_empty() {
                        format!("a line for {name} that does not parse")
                    } else {
                        mine.join(", ")
                    },
                    backup: text.to_owned(),
                });
                continue;
            }
            if let Some(other) = host_entries.iter().find(|h| h.overlaps(entry)) {
                report.conflicts.push(Conflict {
                    kind: ConflictKind::SubidOverlap,
                    subject,
                    host: other.to_string(),
                    backup: text.to_owned(),
                });
                continue;
            }
            let refusal = if has_control(text) {
                Some("the line holds control characters".to_owned())
            } else {
                added
                    .iter()
                    .find(|a| a.overlaps(entry))
                    .map(|a| format!("overlaps {a}, also brought from the backup"))
            };
            if let Some(reason) = refusal {
                report.refused.push(Refusal { subject, reason });
                continue;
            }
            out.get_or_insert_with(LineFile::default)
                .push(text.to_owned(), Some(entry.clone()));
            added.push(entry);
            report.subids_added.push(SubidAdded {
                file: kind,
                owner: entry.owner.clone(),
                start: entry.start,
                count: entry.count,
            });
        }
    }

    let merged = AccountFiles {
        passwd: Some(out_passwd),
        group: Some(out_group),
        shadow: Some(out_shadow),
        gshadow: out_gshadow,
        subuid: out_subuid,
        subgid: out_subgid,
    };
    let mut files = Vec::new();
    for file in AccountFile::ALL {
        if let Some(text) = merged.text(file)
            && current.text(file).as_deref() != Some(text.as_str())
        {
            files.push((file, text));
        }
    }
    report.files_changed = files.iter().map(|(f, _)| *f).collect();
    Merged::Done(Box::new(MergeOutcome { files, report }))
}

// ----------------------------------------------------------------------------------------
// Sudoers
// ----------------------------------------------------------------------------------------

/// What a staged path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StagedKind {
    /// A regular file.
    Regular,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Directory,
    /// Anything else (device, FIFO, socket).
    Other,
}

/// A staged `sudoers` file as the applier found it.
#[derive(Clone, Copy, Debug)]
pub struct StagedSudoers<'a> {
    /// Root-relative path: `etc/sudoers` or `etc/sudoers.d/NAME` (the same in the stage and
    /// in the root).
    pub path: &'a str,
    /// What the staged path is.
    pub kind: StagedKind,
    /// The staged content (empty unless [`StagedKind::Regular`]).
    pub content: &'a [u8],
    /// The current file at the same path in the root, `None` when there is none.
    pub current: Option<&'a [u8]>,
}

/// What happens to one sudoers file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SudoersAction {
    /// Check the staged file with [`visudo_check_command`]; when it passes, install it
    /// (mode and owner from [`debian_mode`]); when it fails, keep the current one.
    Install,
    /// The staged file equals the current one.
    Unchanged,
    /// Not installed.
    Skip {
        /// Why.
        reason: String,
    },
}

/// One file of a [`SudoersPlan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SudoersItem {
    /// Root-relative path (stage and root).
    pub path: String,
    /// What happens to it.
    #[serde(flatten)]
    pub action: SudoersAction,
}

/// What the applier does with the staged `sudoers` and `sudoers.d` drop-ins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SudoersPlan {
    /// One item per staged file, `etc/sudoers` first, then drop-ins by name.
    pub items: Vec<SudoersItem>,
}

impl SudoersPlan {
    /// The items to check with `visudo` and install.
    pub fn to_install(&self) -> impl Iterator<Item = &SudoersItem> {
        self.items
            .iter()
            .filter(|i| i.action == SudoersAction::Install)
    }

    /// One line per item.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            let what = match &item.action {
                SudoersAction::Install => "install after visudo -c".to_owned(),
                SudoersAction::Unchanged => "unchanged".to_owned(),
                SudoersAction::Skip { reason } => format!("skipped: {reason}"),
            };
            out.push_str(&format!("{}: {what}\n", item.path));
        }
        out
    }
}

/// Why `sudo` would ignore a drop-in of that name in `@includedir`, if it would.
pub fn ignored_drop_in_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.contains('/') {
        Some("not a file name")
    } else if name.contains('.') {
        Some("its name contains `.`, which sudo ignores in sudoers.d")
    } else if name.ends_with('~') {
        Some("its name ends with `~`, which sudo ignores in sudoers.d")
    } else {
        None
    }
}

/// Plans the staged `sudoers` files (see the module docs). Pure: the applier gathers the
/// staged and current contents, then runs `visudo` on each item to install.
pub fn plan_sudoers(staged: &[StagedSudoers<'_>]) -> SudoersPlan {
    let mut items: Vec<SudoersItem> = staged
        .iter()
        .map(|s| SudoersItem {
            path: s.path.to_owned(),
            action: sudoers_action(s),
        })
        .collect();
    items.sort_by(|a, b| {
        (a.path != "etc/sudoers", &a.path).cmp(&(b.path != "etc/sudoers", &b.path))
    });
    items.dedup_by(|a, b| a.path == b.path);
    SudoersPlan { items }
}

fn sudoers_action(s: &StagedSudoers<'_>) -> SudoersAction {
    let skip = |reason: &str| SudoersAction::Skip {
        reason: reason.to_owned(),
    };
    if s.path != "etc/sudoers" {
        let Some(name) = s.path.strip_prefix("etc/sudoers.d/") else {
            return skip("not a sudoers file");
        };
        if let Some(reason) = ignored_drop_in_name(name) {
            return skip(reason);
        }
    }
    match s.kind {
        StagedKind::Regular => {}
        StagedKind::Symlink => {
            return skip("a symlink in the backup; sudoers files are never links");
        }
        StagedKind::Directory => return skip("a directory, not a file"),
        StagedKind::Other => return skip("not a regular file"),
    }
    if s.content.is_empty() {
        return skip("empty in the backup");
    }
    if std::str::from_utf8(s.content).is_err() {
        return skip("not valid UTF-8");
    }
    if s.current == Some(s.content) {
        return SudoersAction::Unchanged;
    }
    SudoersAction::Install
}

/// The check the applier runs on each staged file to install: `visudo -c -f FILE` (FILE is
/// the staged file's real path). Note that `visudo` follows `@include`/`@includedir` lines of
/// the checked file on the live system, not inside the root.
pub fn visudo_check_command(file: &str) -> crate::host::HostCommand {
    crate::host::HostCommand::new("visudo", ["-c", "-f", file])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(passwd: &str, group: &str, shadow: &str, gshadow: Option<&str>) -> AccountFiles {
        let mut f = AccountFiles::from_texts([
            (AccountFile::Passwd, passwd),
            (AccountFile::Group, group),
            (AccountFile::Shadow, shadow),
        ]);
        if let Some(g) = gshadow {
            f.set(AccountFile::Gshadow, g);
        }
        f
    }

    fn host() -> AccountFiles {
        files(
            "root:x:0:0:root:/root:/bin/bash\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n",
            "root:x:0:\nsudo:x:27:\nbackup:x:34:\nalice:x:1000:\n",
            "root:$y$root:19000:0:99999:7:::\nbackup:*:19000:0:99999:7:::\nalice:$y$alice:19000:0:99999:7:::\n",
            Some("root:*::\nsudo:*::\nbackup:*::\nalice:!::\n"),
        )
    }

    fn done(m: Merged) -> MergeOutcome {
        match m {
            Merged::Done(o) => *o,
            Merged::Skipped(r) => panic!("skipped: {r}"),
        }
    }

    fn merge_default(current: &AccountFiles, backup: &AccountFiles) -> MergeOutcome {
        done(merge(current, backup, &LoginDefs::default()))
    }

    #[test]
    fn ids_must_be_canonical_decimals() {
        assert_eq!(parse_id("0"), Some(0));
        assert_eq!(parse_id("1000"), Some(1000));
        assert_eq!(parse_id("4294967294"), Some(4_294_967_294));
        for bad in [
            "",
            "01000",
            "+5",
            "-1",
            " 1",
            "1e3",
            "4294967295",
            "99999999999",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_follow_shadows_rule() {
        for ok in ["alice", "_apt", "www-data", "a.b", "host$", "Bob", "1a"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a:b",
            "a,b",
            "a/b",
            ".",
            "..",
            "123",
            "a$b",
            "$",
            &"x".repeat(33),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn unparsable_lines_are_kept_and_named() {
        let text = "root:x:0:0:root:/root:/bin/bash\ngarbage\n+::::::\n\nbob:x:01001:1001::/:/bin/sh\ncarol:x:1002:1002::/home/carol:/bin/sh";
        let file = PasswdFile::parse(text);
        assert_eq!(file.to_string(), text);
        assert_eq!(file.lines().len(), 6);
        let lines: Vec<usize> = file.warnings().iter().map(|w| w.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        assert!(file.warnings()[1].message.contains("NIS"));
        assert!(file.warnings()[2].message.contains("uid `01001`"));
        assert_eq!(file.entries().count(), 2);
    }

    #[test]
    fn shadow_warnings_and_debug_never_show_the_hash() {
        let file = ShadowFile::parse("alice:$6$secret$hash:x:0:99999:7:::\nbob:$6$secret$hash\n");
        for w in file.warnings() {
            assert!(!w.message.contains("secret"), "{}", w.message);
        }
        assert_eq!(file.warnings().len(), 2);
        let entry = ShadowEntry::parse_line("carol:$6$secret$hash:19000:0:99999:7:::")
            .ok()
            .flatten();
        assert!(entry.is_some());
        assert!(!format!("{entry:?}{file:?}").contains("secret"));
        let current = host();
        let backup = files(
            "bob:x:1001:1001::/home/bob:/bin/sh\n",
            "bob:x:1001:\n",
            "bob:$6$secret$hash:19000:0:99999:7:::\n",
            None,
        );
        let merged = merge(&current, &backup, &LoginDefs::default());
        assert!(merged.outcome().is_some());
        assert!(!format!("{merged:?}{current:?}").contains("secret"));
    }

    #[test]
    fn login_defs_values_as_shadow_reads_them() {
        let defs = LoginDefs::parse(
            "# comment\nUID_MIN 500\nUID_MIN\t0x3e8\nUID_MAX \"070000\"\nGID_MIN 2000\nGID_MAX 1000\nBROKEN\n",
        );
        assert_eq!(defs.get("UID_MIN"), Some("0x3e8"));
        assert_eq!(defs.number("UID_MIN"), Ok(Some(1000)));
        assert_eq!(defs.number("UID_MAX"), Ok(Some(0o70000)));
        let (ranges, warnings) = defs.id_ranges();
        assert_eq!((ranges.uid_min, ranges.uid_max), (1000, 0o70000));
        assert_eq!((ranges.gid_min, ranges.gid_max), (1000, 60000));
        assert_eq!(ranges.sys_uid_max, 999);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("GID_MIN 2000 > GID_MAX 1000"));
        assert_eq!(defs.warnings().len(), 1);
        assert_eq!(defs.warnings()[0].line, 7);
        let (zero, warnings) = LoginDefs::parse("UID_MIN 0\nUID_MAX nine\n").id_ranges();
        assert_eq!((zero.uid_min, zero.uid_max), (1000, 60000));
        assert_eq!(warnings.len(), 2);
        assert_eq!(LoginDefs::default().id_ranges().0, IdRanges::default());
    }

    #[test]
    fn modes_and_owner_lookups() {
        assert_eq!(AccountFile::Shadow.mode().mode, 0o640);
        assert_eq!(AccountFile::Shadow.mode().group, "shadow");
        assert_eq!(AccountFile::Gshadow.path(), "etc/gshadow");
        assert_eq!(
            debian_mode("etc/sudoers.d/alice").map(|m| m.mode),
            Some(0o440)
        );
        assert_eq!(debian_mode("etc/sudoers").map(|m| m.mode), Some(0o440));
        assert_eq!(debian_mode("etc/subgid").map(|m| m.mode), Some(0o644));
        assert_eq!(debian_mode("etc/sudoers.d/a/b"), None);
        assert_eq!(debian_mode("etc/hosts"), None);
        let group = GroupFile::parse("root:x:0:\nbroken\nshadow:x:42:\nshadow:x:43:\n");
        assert_eq!(gid_of(&group, "shadow"), Some(42));
        assert_eq!(gid_of(&group, "nope"), None);
        let passwd = PasswdFile::parse("root:x:0:0::/root:/bin/sh\n");
        assert_eq!(uid_of(&passwd, "root"), Some(0));
    }

    #[test]
    fn a_host_without_its_base_files_is_not_merged_into() {
        let backup = files(
            "bob:x:1001:1001::/home/bob:/bin/sh\n",
            "bob:x:1001:\n",
            "",
            None,
        );
        let mut current = host();
        current.shadow = Some(ShadowFile::parse(""));
        let Merged::Skipped(reason) = merge(&current, &backup, &LoginDefs::default()) else {
            panic!("merged into a host without shadow");
        };
        assert!(reason.contains("etc/shadow is empty"), "{reason}");
        current.group = None;
        let Merged::Skipped(reason) = merge(&current, &backup, &LoginDefs::default()) else {
            panic!("merged into a host without group");
        };
        assert!(reason.contains("no etc/group"), "{reason}");
    }

    #[test]
    fn memberships_go_by_group_name_never_by_gid() {
        // The backup's gid 27 is `admins`; this host's gid 27 is `sudo`.
        let backup = files(
            "bob:x:1001:1001::/home/bob:/bin/sh\n",
            "admins:x:27:bob\nbob:x:1001:\nroot:x:0:bob\n",
            "bob:$y$bob:19000:0:99999:7:::\n",
            None,
        );
        let current = {
            let mut h = host();
            h.set(
                AccountFile::Group,
                "root:x:0:\nsudo:x:27:\nbackup:x:34:\nalice:x:1000:\n",
            );
            h
        };
        let out = merge_default(&current, &backup);
        let group = out.file(AccountFile::Group).unwrap_or_default();
        assert!(group.contains("\nsudo:x:27:\n"), "{group}");
        assert!(group.starts_with("root:x:0:\n"), "{group}");
        assert!(group.ends_with("bob:x:1001:\n"), "{group}");
        let refused: Vec<&str> = out
            .report
            .refused
            .iter()
            .map(|r| r.subject.as_str())
            .collect();
        assert_eq!(refused, ["group admins (gid 27)", "bob in group root"]);
    }

    #[test]
    fn root_system_names_and_clashes_are_never_imported() {
        let backup = files(
            concat!(
                "root:x:1005:1005::/root:/bin/sh\n",
                "backup:x:1006:1006::/home/backup:/bin/sh\n",
                "alice:x:1007:1007::/home/alice:/bin/sh\n",
                "zed:x:1000:1000::/home/zed:/bin/sh\n",
                "bad name:x:1008:1008::/:/bin/sh\n",
                "ok:x:1009:1009::/home/ok:/bin/sh\n",
                "dup:x:1009:1009::/:/bin/sh\n",
                "high:x:60001:60001::/:/bin/sh\n",
            ),
            "ok:x:1009:\n",
            "",
            None,
        );
        let out = merge_default(&host(), &backup);
        let kinds: Vec<ConflictKind> = out.report.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ConflictKind::SystemAccount,
                ConflictKind::SameNameOtherUid,
                ConflictKind::SameUidOtherName
            ]
        );
        let refused: Vec<&str> = out
            .report
            .refused
            .iter()
            .map(|r| r.subject.as_str())
            .collect();
        assert_eq!(refused, ["user root", "user bad name", "user dup"]);
        assert_eq!(out.report.system_users_ignored, 1);
        let added: Vec<&str> = out
            .report
            .users_added
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(added, ["ok"]);
        assert_eq!(out.report.users_locked, ["ok"]);
        let shadow = out.file(AccountFile::Shadow).unwrap_or_default();
        assert!(shadow.ends_with("\nok:!::0:99999:7:::\n"), "{shadow}");
    }

    #[test]
    fn a_primary_group_that_cannot_be_brought_is_a_conflict() {
        let backup = files(
            concat!(
                "bob:x:1001:34::/home/bob:/bin/sh\n",
                "carl:x:1002:1000::/home/carl:/bin/sh\n",
                "dina:x:1003:1003::/home/dina:/bin/sh\n",
                "eve:x:1004:100::/home/eve:/bin/sh\n",
            ),
            "backup:x:34:\nalice:x:1000:\nusers:x:100:\n",
            "",
            None,
        );
        let out = merge_default(&host(), &backup);
        let text: Vec<String> = out
            .report
            .conflicts
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(out.report.users_added.len(), 2, "{text:?}");
        // bob: backup's gid 34 is `backup`, the same here: fine. carl: `alice` 1000, same here.
        let conflicts: Vec<(&str, ConflictKind)> = out
            .report
            .conflicts
            .iter()
            .map(|c| (c.subject.as_str(), c.kind))
            .collect();
        assert_eq!(
            conflicts,
            [
                ("user dina", ConflictKind::PrimaryGroup),
                ("user eve", ConflictKind::PrimaryGroup)
            ],
            "{text:?}"
        );
        assert!(text[0].contains("without a group"), "{}", text[0]);
        assert!(
            text[1].contains("outside this host's GID_MIN..GID_MAX"),
            "{}",
            text[1]
        );
    }

    #[test]
    fn a_matched_user_keeps_its_password_when_the_backup_has_none() {
        let backup = files(
            "alice:x:1000:1000:Alice:/home/alice:/bin/zsh\n",
            "alice:x:1000:\n",
            "",
            None,
        );
        let out = merge_default(&host(), &backup);
        assert_eq!(out.report.files_changed, [AccountFile::Passwd]);
        assert!(out.report.users_locked.is_empty());
        let passwd = out.file(AccountFile::Passwd).unwrap_or_default();
        assert!(passwd.ends_with("alice:x:1000:1000:Alice:/home/alice:/bin/zsh\n"));
    }

    #[test]
    fn orphan_shadow_lines_and_unparsed_host_lines_block_an_import() {
        let mut current = host();
        current.set(
            AccountFile::Passwd,
            "root:x:0:0:root:/root:/bin/bash\nbroken:x:1001\nodd:x:01002:1:::\n",
        );
        current.set(
            AccountFile::Shadow,
            "root:*:19000:0:99999:7:::\nghost:!:19000:0:99999:7:::\n",
        );
        let backup = files(
            concat!(
                "broken:x:1005:1005::/:/bin/sh\n",
                "ghost:x:1006:1006::/:/bin/sh\n",
                "taker:x:1002:1002::/:/bin/sh\n",
            ),
            "broken:x:1005:\nghost:x:1006:\ntaker:x:1002:\n",
            "",
            None,
        );
        let out = merge_default(&current, &backup);
        let kinds: Vec<ConflictKind> = out.report.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ConflictKind::UnparsedHostLine,
                ConflictKind::OrphanShadowLine,
                ConflictKind::SameUidOtherName
            ],
            "{:?}",
            out.report.conflicts
        );
        let host_warnings: Vec<usize> = out
            .report
            .warnings
            .iter()
            .filter(|w| w.side == Side::Host)
            .map(|w| w.line)
            .collect();
        assert_eq!(host_warnings, [2, 3]);
        assert!(out.files.is_empty());
    }

    #[test]
    fn appended_lines_follow_a_file_without_a_final_newline() {
        let mut current = host();
        current.set(AccountFile::Passwd, "root:x:0:0:root:/root:/bin/bash");
        let backup = files(
            "bob:x:1001:1001::/home/bob:/bin/sh\n",
            "bob:x:1001:\n",
            "",
            None,
        );
        let out = merge_default(&current, &backup);
        assert_eq!(
            out.file(AccountFile::Passwd),
            Some("root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n")
        );
    }

    #[test]
    fn no_gshadow_here_means_none_is_created() {
        let mut current = host();
        current.gshadow = None;
        let backup = files(
            "bob:x:1001:1001::/home/bob:/bin/sh\n",
            "bob:x:1001:\nsudo:x:27:bob\n",
            "",
            Some("bob:!::\nsudo:*::bob\n"),
        );
        let out = merge_default(&current, &backup);
        assert_eq!(out.file(AccountFile::Gshadow), None);
        assert_eq!(out.report.memberships_added.len(), 1);
    }

    #[test]
    fn subordinate_ids_by_owner_and_overlap() {
        let mut current = host();
        current.set(AccountFile::Subuid, "alice:100000:65536\n");
        let mut backup = files(
            "alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\ncarl:x:1002:1002::/:/bin/sh\n",
            "alice:x:1000:\nbob:x:1001:\ncarl:x:1002:\n",
            "",
            None,
        );
        backup.set(
            AccountFile::Subuid,
            "alice:200000:65536\n1001:150000:65536\ncarl:300000:65536\ncarl:310000:10\nnobody:400000:1\n",
        );
        backup.set(AccountFile::Subgid, "1001:165536:65536\n");
        let out = merge_default(&current, &backup);
        assert_eq!(
            out.file(AccountFile::Subuid),
            Some("alice:100000:65536\ncarl:300000:65536\n")
        );
        // No subgid here yet: created.
        assert_eq!(out.file(AccountFile::Subgid), Some("1001:165536:65536\n"));
        let kinds: Vec<ConflictKind> = out.report.conflicts.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [ConflictKind::SubidOwner, ConflictKind::SubidOverlap]
        );
        assert_eq!(out.report.refused.len(), 1);
        assert!(
            out.report.refused[0]
                .reason
                .contains("overlaps carl:300000:65536")
        );
    }

    #[test]
    fn sudoers_drop_in_names_sudo_ignores() {
        assert_eq!(ignored_drop_in_name("alice"), None);
        assert_eq!(ignored_drop_in_name("README"), None);
        assert!(ignored_drop_in_name("alice.conf").is_some());
        assert!(ignored_drop_in_name("alice~").is_some());
        assert!(ignored_drop_in_name("").is_some());
        let plan = plan_sudoers(&[StagedSudoers {
            path: "etc/sudoers.d/latin1",
            kind: StagedKind::Regular,
            content: b"# caf\xe9\n",
            current: None,
        }]);
        assert_eq!(
            plan.items[0].action,
            SudoersAction::Skip {
                reason: "not valid UTF-8".into()
            }
        );
        let json = serde_json::to_value(&plan).unwrap_or_default();
        assert_eq!(json["items"][0]["action"], "skip");
        assert_eq!(json["items"][0]["path"], "etc/sudoers.d/latin1");
        let check = visudo_check_command("/stage/etc/sudoers");
        assert_eq!(check.program, "visudo");
        assert_eq!(check.args, ["-c", "-f", "/stage/etc/sudoers"]);
    }
}
