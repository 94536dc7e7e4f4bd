//! The smart merge: this host's fstab, untouched, plus a marked block of the backup's mounts
//! that are safe here.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::device::{Source, StableRef, classify};
use super::inventory::{Device, Inventory};
use super::parse::{Entry, Fstab, LineKind, normalise_mountpoint, unescape};

/// Mountpoints never proposed: this host's own system mounts. `/var` goes beyond upstream's
/// list: an old `/var` mounted over a new install hides its package database and state.
pub const CRITICAL_MOUNTPOINTS: &[&str] = &["/", "/boot", "/boot/efi", "/usr", "/var"];

/// First words of the comment opening the block the merge appends.
pub const BLOCK_START: &str = "# --- proxsave: mounts restored from backup";
/// The comment closing it.
pub const BLOCK_END: &str = "# --- end proxsave ---";

/// Which proposals to add (the `fstab.merge` decision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Every safe proposal.
    All,
    /// None: the file stays as it is.
    None,
    /// These mountpoints (each must be a safe proposal).
    Mountpoints(Vec<String>),
}

impl FromStr for Choice {
    type Err = String;

    /// `all`, `none`, or a comma-separated list of mountpoints (`\040` escapes and trailing
    /// `/` accepted).
    fn from_str(s: &str) -> Result<Choice, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") {
            return Ok(Choice::All);
        }
        if t.eq_ignore_ascii_case("none") {
            return Ok(Choice::None);
        }
        let list: Vec<String> = t
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| normalise_mountpoint(&unescape(m)))
            .collect();
        if list.is_empty() {
            return Err("expected `all`, `none` or a comma-separated list of mountpoints".into());
        }
        if let Some(bad) = list.iter().find(|m| !m.starts_with('/')) {
            return Err(format!("`{bad}` is not an absolute mountpoint"));
        }
        Ok(Choice::Mountpoints(list))
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::All => f.write_str("all"),
            Choice::None => f.write_str("none"),
            Choice::Mountpoints(m) => f.write_str(&m.join(",")),
        }
    }
}

/// How a proposal mounts its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalKind {
    /// A network mount (gets `_netdev` and `nofail`).
    Network,
    /// A local device by a stable reference present on this host (gets `nofail`).
    Device,
}

/// A backup mount that is safe to add here.
#[derive(Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Its mountpoint (normalised).
    pub mountpoint: String,
    /// The source as the added line names it (unescaped; the stable reference for a remapped
    /// kernel name).
    pub device: String,
    /// The kernel name the backup used, when it was remapped to `device`.
    pub remapped_from: Option<String>,
    /// The filesystem type.
    pub fstype: String,
    /// Network or device.
    pub kind: ProposalKind,
    /// Its line number in the backup's fstab.
    pub backup_line: usize,
    line: String,
}

impl Proposal {
    /// The fstab line that adds it (the backup's line, source remapped and `nofail`/`_netdev`
    /// appended to its options; the rest as the backup wrote it), without line end.
    ///
    /// # Security
    /// Holds the options, which may hold credentials (CIFS `password=`): write it to the file,
    /// never show or log it. Show the proposal with `Display`.
    pub fn fstab_line(&self) -> &str {
        &self.line
    }
}

impl fmt::Display for Proposal {
    /// `device → mountpoint (type)`, never the options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {} ({})", self.device, self.mountpoint, self.fstype)?;
        if let Some(from) = &self.remapped_from {
            write!(f, " [was {from} in the backup]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Proposal {
    /// Like `Display`: the line (with its options) is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proposal")
            .field("mountpoint", &self.mountpoint)
            .field("device", &self.device)
            .field("remapped_from", &self.remapped_from)
            .field("fstype", &self.fstype)
            .field("kind", &self.kind)
            .field("backup_line", &self.backup_line)
            .finish_non_exhaustive()
    }
}

/// Why a backup entry is not proposed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// One of [`CRITICAL_MOUNTPOINTS`].
    Critical,
    /// A swap area.
    Swap,
    /// A pseudo filesystem.
    Pseudo,
    /// The mountpoint is not an absolute path.
    NotAbsolute,
    /// This host's fstab already mounts something there.
    MountpointInUse,
    /// An earlier merge already added it (it is in a proxsave block of this host's fstab).
    AlreadyRestored,
    /// This host's fstab already mounts the same device elsewhere.
    DeviceInUse {
        /// Where.
        mountpoint: String,
    },
    /// This host's fstab mounts something below it, earlier in the file: added after, it
    /// would hide that mount.
    ParentOfExisting {
        /// The mountpoint below it.
        below: String,
    },
    /// The backup lists the mountpoint again; the entry on `line` is the one proposed.
    Duplicate {
        /// Backup line of the proposed entry.
        line: usize,
    },
    /// The stable reference does not exist on this host.
    NotPresent(StableRef),
    /// A kernel device name the backup's disk inventory does not know.
    NoStableRef,
    /// A kernel device name whose stable references (from the inventory) do not exist here.
    RemapNotPresent(Vec<StableRef>),
    /// A source no check here can verify (bind mount, ZFS dataset, `/dev/md*`, 9p …).
    Unsupported,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Critical => {
                f.write_str("a system mountpoint; this host's own is kept, never the backup's")
            }
            SkipReason::Swap => f.write_str("swap areas are never restored"),
            SkipReason::Pseudo => f.write_str("a pseudo filesystem; this host has its own"),
            SkipReason::NotAbsolute => f.write_str("the mountpoint is not an absolute path"),
            SkipReason::MountpointInUse => {
                f.write_str("this host's fstab already mounts something there (kept)")
            }
            SkipReason::AlreadyRestored => f.write_str("already added by an earlier restore"),
            SkipReason::DeviceInUse { mountpoint } => {
                write!(
                    f,
                    "this host's fstab already mounts this device at {mountpoint}"
                )
            }
            SkipReason::ParentOfExisting { below } => write!(
                f,
                "this host's fstab mounts {below} below it; added after that line it would hide it"
            ),
            SkipReason::Duplicate { line } => write!(
                f,
                "the backup lists this mountpoint more than once; its line {line} is proposed"
            ),
            SkipReason::NotPresent(r) => write!(f, "{r} does not exist on this host"),
            SkipReason::NoStableRef => f.write_str(
                "a kernel device name that may be another disk here, and the backup's disk \
                 inventory has no UUID, PARTUUID or LABEL for it; add it by UUID= by hand",
            ),
            SkipReason::RemapNotPresent(refs) => {
                let refs: Vec<String> = refs.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "a kernel device name; on the backed-up host it was {}, and none of these \
                     exists on this host",
                    refs.join(" / ")
                )
            }
            SkipReason::Unsupported => f.write_str(
                "a source this merge cannot check (bind mount, dataset, RAID or VM share); \
                 add it by hand if needed",
            ),
        }
    }
}

/// A backup entry that is not proposed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its line in the backup's fstab.
    pub backup_line: usize,
    /// Its source (unescaped).
    pub device: String,
    /// Its mountpoint (normalised).
    pub mountpoint: String,
    /// Its filesystem type.
    pub fstype: String,
    /// Why it is not proposed.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    /// `device → mountpoint (type): reason`, never the options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} → {} ({}): {}",
            self.device, self.mountpoint, self.fstype, self.reason
        )
    }
}

/// Which file a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FstabFile {
    /// This host's fstab.
    Current,
    /// The backup's fstab.
    Backup,
}

/// A line of either file that did not parse (kept as it is), or a caveat about one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeWarning {
    /// Which file.
    pub file: FstabFile,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong (never the line's content).
    pub message: String,
}

impl fmt::Display for MergeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = match self.file {
            FstabFile::Current => "this host's fstab",
            FstabFile::Backup => "the backup's fstab",
        };
        write!(f, "{file}, line {}: {}", self.line, self.message)
    }
}

/// Whether the backup comes from the machine whose fstab is current (decides the default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootMatch {
    /// Both root entries name the same device.
    Same {
        /// This host's root source.
        device: String,
    },
    /// They name different devices.
    Different {
        /// This host's root source.
        current: String,
        /// The backup's root source.
        backup: String,
    },
    /// One side has no `/` entry.
    NotComparable(FstabFile),
}

/// The outcome of [`merge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeResult {
    /// The new fstab: this host's text byte for byte, then (when something is added) a line
    /// end if it lacked one, a blank line and the marked block.
    ///
    /// # Security
    /// Holds the added lines' options (credentials); write it, never log it.
    pub text: String,
    /// Every safe proposal, parents before the mountpoints below them.
    pub proposals: Vec<Proposal>,
    /// The mountpoints the text adds (the chosen proposals), in order.
    pub added: Vec<String>,
    /// Backup entries not proposed, with the reason.
    pub skipped: Vec<Skipped>,
    /// Lines of either file that did not parse.
    pub warnings: Vec<MergeWarning>,
    /// The default answer: [`Choice::All`] when the backup's root device is this host's,
    /// otherwise [`Choice::None`].
    pub default_choice: Choice,
    /// How the root devices compared.
    pub root: RootMatch,
}

impl MergeResult {
    /// Whether the text differs from this host's fstab.
    pub fn changed(&self) -> bool {
        !self.added.is_empty()
    }
}

/// A mountpoint chosen that is not a safe proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotProposed {
    /// The mountpoint as normalised.
    pub mountpoint: String,
    /// Why the backup entry for it was skipped, if it has one.
    pub reason: Option<SkipReason>,
}

impl fmt::Display for NotProposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{} is not a safe proposal ({r})", self.mountpoint),
            None => write!(
                f,
                "{} is not a safe proposal (the backup's fstab does not mount it)",
                self.mountpoint
            ),
        }
    }
}

/// Why a merge could not be made.
#[non_exhaustive]
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// The choice names mountpoints that are not safe proposals.
    #[error("{}", join_not_proposed(.0))]
    NotProposed(Vec<NotProposed>),
}

fn join_not_proposed(list: &[NotProposed]) -> String {
    let parts: Vec<String> = list.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

fn is_block_start(body: &str) -> bool {
    body.trim().starts_with(BLOCK_START)
}

fn is_block_end(body: &str) -> bool {
    body.trim() == BLOCK_END
}

/// The key two device specs share when they name the same device by the same property.
fn spec_key(spec: &str) -> String {
    StableRef::parse(spec).map_or_else(|| spec.to_owned(), |r| r.key())
}

/// Keys of a device's stable names (tags, `/dev/mapper`, LVM paths); kernel names are left
/// out: they mean another disk on another machine.
fn stable_keys(d: &Device, out: &mut Vec<String>) {
    out.extend(d.stable_refs().iter().map(StableRef::key));
    for p in std::iter::once(&d.path).chain(&d.aliases) {
        if let Some(r) = StableRef::parse(p) {
            out.push(r.key());
        }
    }
}

fn compare_roots(current: &Fstab, backup: &Fstab, inv: &Inventory) -> RootMatch {
    let Some(cur) = current.root_entry() else {
        return RootMatch::NotComparable(FstabFile::Current);
    };
    let Some(bak) = backup.root_entry() else {
        return RootMatch::NotComparable(FstabFile::Backup);
    };
    let mut keys = vec![spec_key(bak.spec())];
    if let Some(d) = inv.find(bak.spec()) {
        stable_keys(d, &mut keys);
    }
    if let Some(d) = inv.root_device() {
        stable_keys(d, &mut keys);
    }
    if keys.contains(&spec_key(cur.spec())) {
        RootMatch::Same {
            device: cur.spec().to_owned(),
        }
    } else {
        RootMatch::Different {
            current: cur.spec().to_owned(),
            backup: bak.spec().to_owned(),
        }
    }
}

/// Whether `child` lies strictly below `parent` (both normalised absolute paths).
fn is_below(child: &str, parent: &str) -> bool {
    child.len() > parent.len()
        && child.starts_with(parent)
        && (parent == "/" || child.as_bytes().get(parent.len()) == Some(&b'/'))
}

/// The added line: the backup's line with the source replaced (remap) and options extended.
fn build_line(body: &str, entry: &Entry, spec: Option<&str>, network: bool) -> String {
    let mut needed: Vec<&str> = Vec::new();
    if network && !entry.has_option("_netdev") {
        needed.push("_netdev");
    }
    if !entry.has_option("nofail") {
        needed.push("nofail");
    }
    let mut s = body.to_owned();
    if !needed.is_empty() {
        let extra = needed.join(",");
        match (entry.span(3), entry.span(2)) {
            (Some((a, b)), _) => s.replace_range(a..b, &format!("{},{extra}", &body[a..b])),
            (None, Some((_, e))) => s.insert_str(e, &format!(" defaults,{extra}")),
            (None, None) => {}
        }
    }
    if let (Some(spec), Some((a, b))) = (spec, entry.span(0)) {
        s.replace_range(a..b, spec);
    }
    s.trim_start_matches([' ', '\t']).to_owned()
}

/// `text` on one line: a control character or line end would break a comment line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Merges the backup's fstab into this host's.
///
/// `present` says whether a stable reference exists on this host (see
/// [`stable_ref_present`](super::stable_ref_present)); `origin` names the backup in the block's
/// marker (e.g. `pve1/2024-05-01`); `choice` picks the proposals to add. See the
/// [module docs](super) for the rules.
///
/// # Errors
/// [`MergeError::NotProposed`] when `choice` names mountpoints that are not safe proposals.
pub fn merge(
    current: &Fstab,
    backup: &Fstab,
    inv: &Inventory,
    present: &dyn Fn(&StableRef) -> bool,
    origin: &str,
    choice: Choice,
) -> Result<MergeResult, MergeError> {
    let mut warnings: Vec<MergeWarning> = Vec::new();
    for (file, fstab) in [(FstabFile::Current, current), (FstabFile::Backup, backup)] {
        warnings.extend(fstab.warnings().into_iter().map(|w| MergeWarning {
            file,
            line: w.line,
            message: w.message,
        }));
    }

    // What this host's fstab already mounts, and whether an earlier merge added it.
    let mut in_block = false;
    let mut current_mps: HashMap<String, bool> = HashMap::new();
    let mut current_order: Vec<String> = Vec::new();
    let mut current_devices: HashMap<String, String> = HashMap::new();
    for line in current.lines() {
        match line.kind() {
            LineKind::Comment if is_block_start(line.body()) => in_block = true,
            LineKind::Comment if is_block_end(line.body()) => in_block = false,
            LineKind::Entry(e) => {
                if !current_mps.contains_key(e.mountpoint()) {
                    current_order.push(e.mountpoint().to_owned());
                }
                current_mps
                    .entry(e.mountpoint().to_owned())
                    .or_insert(in_block);
                if matches!(classify(e), Source::Stable(_) | Source::Unstable(_)) {
                    current_devices
                        .entry(spec_key(e.spec()))
                        .or_insert_with(|| e.mountpoint().to_owned());
                }
            }
            _ => {}
        }
    }

    let mut proposals: Vec<Proposal> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut proposed_at: HashMap<String, usize> = HashMap::new();
    for line in backup.lines() {
        let Some(e) = line.entry() else { continue };
        let n = line.number();
        let mp = e.mountpoint();
        let mut skip = |reason: SkipReason| {
            skipped.push(Skipped {
                backup_line: n,
                device: e.spec().to_owned(),
                mountpoint: mp.to_owned(),
                fstype: e.fstype().to_owned(),
                reason,
            });
        };
        let source = classify(e);
        match source {
            Source::Swap => {
                skip(SkipReason::Swap);
                continue;
            }
            Source::Pseudo => {
                skip(SkipReason::Pseudo);
                continue;
            }
            _ => {}
        }
        if !mp.starts_with('/') {
            skip(SkipReason::NotAbsolute);
            continue;
        }
        if CRITICAL_MOUNTPOINTS.contains(&mp) {
            skip(SkipReason::Critical);
            continue;
        }
        if let Some(&ours) = current_mps.get(mp) {
            skip(if ours {
                SkipReason::AlreadyRestored
            } else {
                SkipReason::MountpointInUse
            });
            continue;
        }
        if let Some(below) = current_order.iter().find(|c| is_below(c, mp)) {
            skip(SkipReason::ParentOfExisting {
                below: below.clone(),
            });
            continue;
        }
        if let Some(&first) = proposed_at.get(mp) {
            skip(SkipReason::Duplicate { line: first });
            continue;
        }
        let (kind, stable, remapped_from) = match source {
            Source::Network => (ProposalKind::Network, None, None),
            Source::Stable(r) => {
                if !present(&r) {
                    skip(SkipReason::NotPresent(r));
                    continue;
                }
                (ProposalKind::Device, Some(r), None)
            }
            Source::Unstable(name) => {
                let refs = inv.remap(&name);
                if refs.is_empty() {
                    skip(SkipReason::NoStableRef);
                    continue;
                }
                match refs.iter().find(|r| present(r)) {
                    Some(r) => (ProposalKind::Device, Some(r.clone()), Some(name)),
                    None => {
                        skip(SkipReason::RemapNotPresent(refs));
                        continue;
                    }
                }
            }
            Source::Other | Source::Swap | Source::Pseudo => {
                skip(SkipReason::Unsupported);
                continue;
            }
        };
        if let Some(r) = &stable {
            if let Some(at) = current_devices.get(&r.key()) {
                skip(SkipReason::DeviceInUse {
                    mountpoint: at.clone(),
                });
                continue;
            }
        }
        let new_spec = remapped_from
            .as_ref()
            .and(stable.as_ref())
            .map(StableRef::to_fstab_spec);
        let device = match (&remapped_from, &stable) {
            (Some(_), Some(r)) => r.to_string(),
            _ => e.spec().to_owned(),
        };
        proposed_at.insert(mp.to_owned(), n);
        proposals.push(Proposal {
            mountpoint: mp.to_owned(),
            device,
            remapped_from,
            fstype: e.fstype().to_owned(),
            kind,
            backup_line: n,
            line: build_line(
                line.body(),
                e,
                new_spec.as_deref(),
                kind == ProposalKind::Network,
            ),
        });
    }
    // Parents before what is mounted below them (stable otherwise).
    proposals.sort_by_key(|p| p.mountpoint.matches('/').count());

    let root = compare_roots(current, backup, inv);
    let default_choice = match root {
        RootMatch::Same { .. } => Choice::All,
        _ => Choice::None,
    };

    let chosen: Vec<&Proposal> = match &choice {
        Choice::All => proposals.iter().collect(),
        Choice::None => Vec::new(),
        Choice::Mountpoints(list) => {
            let wanted: Vec<String> = list
                .iter()
                .map(|m| normalise_mountpoint(&unescape(m.trim())))
                .collect();
            let mut bad: Vec<NotProposed> = Vec::new();
            for w in &wanted {
                if !proposals.iter().any(|p| &p.mountpoint == w)
                    && !bad.iter().any(|b| &b.mountpoint == w)
                {
                    bad.push(NotProposed {
                        mountpoint: w.clone(),
                        reason: skipped
                            .iter()
                            .find(|s| &s.mountpoint == w)
                            .map(|s| s.reason.clone()),
                    });
                }
            }
            if !bad.is_empty() {
                return Err(MergeError::NotProposed(bad));
            }
            proposals
                .iter()
                .filter(|p| wanted.contains(&p.mountpoint))
                .collect()
        }
    };

    let mut text = current.to_string();
    if !chosen.is_empty() {
        let nl = if current.uses_crlf() { "\r\n" } else { "\n" };
        if !text.is_empty() {
            if text.ends_with('\r') {
                text.push('\n');
            } else if !text.ends_with('\n') {
                text.push_str(nl);
            }
            text.push_str(nl);
        }
        let origin = one_line(origin);
        if origin.is_empty() {
            text.push_str(&format!("{BLOCK_START} ---{nl}"));
        } else {
            text.push_str(&format!("{BLOCK_START} {origin} ---{nl}"));
        }
        for p in &chosen {
            if let Some(from) = &p.remapped_from {
                text.push_str(&format!(
                    "# {} in the backup (line {}) is {} here{nl}",
                    one_line(from),
                    p.backup_line,
                    one_line(&p.device)
                ));
            }
            text.push_str(&p.line);
            text.push_str(nl);
        }
        text.push_str(BLOCK_END);
        text.push_str(nl);
    }

    Ok(MergeResult {
        text,
        added: chosen.iter().map(|p| p.mountpoint.clone()).collect(),
        proposals,
        skipped,
        warnings,
        default_choice,
        root,
    })
}
