//! Guest configuration files: `qemu-server/<vmid>.conf` and `lxc/<vmid>.conf`.
//!
//! Grammar (qemu-server `parse_vm_config`, pve-container `parse_pct_config`):
//!
//! * blank lines are ignored;
//! * `#text` lines are the description of the section they are in (each line decoded with
//!   `decode_text`, the lines joined with line feeds);
//! * `[name]` starts a snapshot section (`name` = `[a-z][a-z0-9_-]+`, any case); qemu also has
//!   `[PENDING]` and `[special:cloudinit]`, LXC `[pve:pending]`; everything before the first
//!   header is the current configuration;
//! * `key: value` with key `[a-z][a-z_]*\d*` (qemu also `-`), the value trimmed and not empty;
//! * LXC raw keys `lxc.<name>` with `:` or `=` as separator (they may repeat; the value may be
//!   empty).
//!
//! The parser keeps every line as written: [`GuestConfig::write`] gives the input back byte
//! for byte. A line that fits none of the forms is an error naming its line number (PVE warns
//! and drops such a line; a restore skips the whole guest rather than guess).
//!
//! ```
//! use proxsave_pve::formats::guest::{GuestConfig, Kind, SectionKind};
//!
//! let text = "#Web%20frontend\nmemory: 4096\nparent: s1\n\n[s1]\nmemory: 2048\nsnaptime: 1\n";
//! let cfg = GuestConfig::parse(Kind::Qemu, text).unwrap();
//! assert_eq!(cfg.current().description(), "Web frontend");
//! assert_eq!(cfg.current().get("memory"), Some("4096"));
//! assert_eq!(cfg.snapshots().next().unwrap().kind, SectionKind::Snapshot("s1".into()));
//! assert_eq!(cfg.write(), text);
//! ```

use std::fmt;

use proxsave_formats::text::decode_text;

/// The guest type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A virtual machine (`qemu-server/`).
    Qemu,
    /// A container (`lxc/`).
    Lxc,
}

impl Kind {
    /// The API's name: `qemu` or `lxc`.
    pub fn api(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    /// The folder under `/etc/pve/nodes/<node>/`: `qemu-server` or `lxc`.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu-server",
            Kind::Lxc => "lxc",
        }
    }

    /// `VM` or `CT`, for messages.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Qemu => "VM",
            Kind::Lxc => "CT",
        }
    }
}

/// Which section of a guest config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// The current configuration (before any header).
    Current,
    /// A snapshot `[name]`.
    Snapshot(String),
    /// Pending changes: qemu `[PENDING]`, LXC `[pve:pending]`.
    Pending,
    /// qemu `[special:cloudinit]`.
    Cloudinit,
}

/// One line of a section, kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// An empty or whitespace-only line.
    Blank {
        /// The text as written (with its line feed, if it had one).
        raw: String,
    },
    /// A `#` description line.
    Comment {
        /// The text as written.
        raw: String,
        /// The text after `#`, decoded.
        text: String,
    },
    /// `key: value`.
    Prop {
        /// The text as written.
        raw: String,
        /// The key.
        key: String,
        /// The value, trimmed.
        value: String,
        /// 1-based line number in the file.
        line: usize,
    },
    /// An LXC raw key `lxc.x: value` or `lxc.x = value`.
    Raw {
        /// The text as written.
        raw: String,
        /// The key (`lxc.apparmor.profile`).
        key: String,
        /// The value, trimmed (may be empty).
        value: String,
        /// 1-based line number in the file.
        line: usize,
    },
}

impl Line {
    /// The text as written.
    pub fn raw(&self) -> &str {
        match self {
            Line::Blank { raw }
            | Line::Comment { raw, .. }
            | Line::Prop { raw, .. }
            | Line::Raw { raw, .. } => raw,
        }
    }
}

/// A section: the current configuration, a snapshot, the pending changes or cloud-init.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Which section.
    pub kind: SectionKind,
    /// The header line as written (`None` for the current configuration).
    pub header: Option<String>,
    /// Its lines, in order.
    pub lines: Vec<Line>,
}

impl Section {
    /// The description: the `#` lines, decoded, joined with line feeds.
    pub fn description(&self) -> String {
        let lines: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Comment { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        lines.join("\n")
    }

    /// The `key: value` properties, in order (raw `lxc.*` keys not included).
    pub fn props(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Prop { key, value, .. } => Some((key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// The raw `lxc.*` keys, in order.
    pub fn raw_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Raw { key, value, .. } => Some((key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// The value of `key` (the last one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }
}

/// A guest configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestConfig {
    /// VM or CT.
    pub kind: Kind,
    /// The sections in file order; the first is always [`SectionKind::Current`].
    pub sections: Vec<Section>,
}

/// A line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

fn is_key(kind: Kind, key: &str) -> bool {
    let b = key.as_bytes();
    if b.is_empty() || !b[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < b.len()
        && (b[i].is_ascii_lowercase() || b[i] == b'_' || (kind == Kind::Qemu && b[i] == b'-'))
    {
        i += 1;
    }
    b[i..].iter().all(u8::is_ascii_digit)
}

fn is_snapshot_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
}

fn is_raw_key(key: &str) -> bool {
    key.len() > 4
        && key.starts_with("lxc.")
        && key[4..].bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.')
        })
}

impl GuestConfig {
    /// Parses `text`.
    ///
    /// # Errors
    /// The first line that fits none of the forms (see the module docs).
    pub fn parse(kind: Kind, text: &str) -> Result<GuestConfig, ParseError> {
        let mut sections = vec![Section {
            kind: SectionKind::Current,
            header: None,
            lines: Vec::new(),
        }];
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = i + 1;
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            let body = body.strip_suffix('\r').unwrap_or(body);
            let fail = |reason: String| ParseError {
                line: line_no,
                reason,
            };
            let current = sections.last_mut().expect("never empty");
            if body.trim().is_empty() {
                current.lines.push(Line::Blank { raw: raw.into() });
                continue;
            }
            if let Some(rest) = body.strip_prefix('#') {
                current.lines.push(Line::Comment {
                    raw: raw.into(),
                    text: decode_text(rest),
                });
                continue;
            }
            let t = body.trim();
            if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                let sk = match (kind, inner) {
                    (Kind::Qemu, "PENDING") | (Kind::Lxc, "pve:pending") => SectionKind::Pending,
                    (Kind::Qemu, "special:cloudinit") => SectionKind::Cloudinit,
                    (_, n) if is_snapshot_name(n) => SectionKind::Snapshot(n.to_string()),
                    (_, n) => return Err(fail(format!("not a section name: [{n}]"))),
                };
                if sections.iter().any(|s| s.kind == sk) {
                    return Err(fail(format!("section [{inner}] appears twice")));
                }
                sections.push(Section {
                    kind: sk,
                    header: Some(raw.into()),
                    lines: Vec::new(),
                });
                continue;
            }
            let current = sections.last_mut().expect("never empty");
            if kind == Kind::Lxc && body.starts_with("lxc.") {
                let at = body.find([':', '=']);
                if let Some(at) = at {
                    let key = body[..at].trim_end();
                    if is_raw_key(key) {
                        current.lines.push(Line::Raw {
                            raw: raw.into(),
                            key: key.into(),
                            value: body[at + 1..].trim().into(),
                            line: line_no,
                        });
                        continue;
                    }
                }
                return Err(fail(format!("not a raw lxc key line: {}", shorten(body))));
            }
            match body.split_once(':') {
                Some((key, value)) if is_key(kind, key) && !value.trim().is_empty() => {
                    current.lines.push(Line::Prop {
                        raw: raw.into(),
                        key: key.into(),
                        value: value.trim().into(),
                        line: line_no,
                    });
                }
                Some((key, _)) if is_key(kind, key) => {
                    return Err(fail(format!("key `{key}` has no value")));
                }
                _ => {
                    return Err(fail(format!("not a `key: value` line: {}", shorten(body))));
                }
            }
        }
        Ok(GuestConfig { kind, sections })
    }

    /// The file text, byte for byte as parsed.
    pub fn write(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            if let Some(h) = &s.header {
                out.push_str(h);
            }
            for l in &s.lines {
                out.push_str(l.raw());
            }
        }
        out
    }

    /// The current configuration.
    pub fn current(&self) -> &Section {
        &self.sections[0]
    }

    /// The snapshot sections.
    pub fn snapshots(&self) -> impl Iterator<Item = &Section> {
        self.sections
            .iter()
            .filter(|s| matches!(s.kind, SectionKind::Snapshot(_)))
    }

    /// The pending section, if any.
    pub fn pending(&self) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.kind == SectionKind::Pending)
    }

    /// The file text of the current configuration alone (its lines as written, without
    /// snapshot, pending and cloud-init sections), minus the keys in `drop`.
    pub fn current_text_without(&self, drop: &[&str]) -> String {
        let mut out = String::new();
        for l in &self.current().lines {
            if let Line::Prop { key, .. } = l
                && drop.contains(&key.as_str())
            {
                continue;
            }
            out.push_str(l.raw());
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }

    /// The name shown for the guest: `name` (VM) or `hostname` (CT) of the current
    /// configuration.
    pub fn display_name(&self) -> Option<&str> {
        self.current().get(match self.kind {
            Kind::Qemu => "name",
            Kind::Lxc => "hostname",
        })
    }
}

fn shorten(s: &str) -> String {
    let escaped: String = s.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 60 {
        format!("{}…", escaped.chars().take(60).collect::<String>())
    } else {
        escaped
    }
}

/// Why a key of a guest's current configuration is not sent to the API's `set`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Written by PVE itself (`meta`, `digest`, `vmstate`, `running*`, `snaptime`, `parent`,
    /// `lock`): never a value to restore.
    Internal,
    /// Fixed at creation (`unprivileged` of a CT): reported when it differs.
    ReadOnly,
    /// A raw `lxc.*` key: the API does not take it; reported as manual work.
    RawLxc,
}

/// The keys the API's config `set` does not take, per kind (qemu-server
/// `json_config_properties` leaves out `parent snaptime vmstate meta runningmachine runningcpu
/// running-nets-host-mtu`; pve-container refuses `parent snaptime`, the read-only
/// `unprivileged` and every `lxc.*` key; `digest` is a checksum, `lock` a state of the backed
/// up host).
pub fn denied(kind: Kind, key: &str) -> Option<Denied> {
    match (kind, key) {
        (_, "parent" | "snaptime" | "digest" | "lock") => Some(Denied::Internal),
        (Kind::Qemu, "meta" | "vmstate" | "runningmachine" | "runningcpu") => {
            Some(Denied::Internal)
        }
        (Kind::Qemu, k) if k.starts_with("running-") => Some(Denied::Internal),
        (Kind::Lxc, "unprivileged") => Some(Denied::ReadOnly),
        (Kind::Lxc, k) if k.starts_with("lxc.") => Some(Denied::RawLxc),
        _ => None,
    }
}

/// True for a key that holds a volume: qemu `ide|sata|scsi|virtio<N>`, `efidisk0`,
/// `tpmstate0`, `unused<N>`; LXC `rootfs`, `mp<N>`, `unused<N>`.
pub fn is_volume_key(kind: Kind, key: &str) -> bool {
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match kind {
        Kind::Qemu => {
            ["ide", "sata", "scsi", "virtio", "unused"]
                .iter()
                .any(|p| numbered(p))
                || key == "efidisk0"
                || key == "tpmstate0"
        }
        Kind::Lxc => key == "rootfs" || numbered("mp") || numbered("unused"),
    }
}

/// The storage volume (`storage:volname`) a volume key's value refers to; `None` for no
/// volume (`none`, `cdrom`), a host path (`/dev/sdb`, a bind mount) or an allocation request
/// (`local-lvm:8`, a size in GiB, which only `create` takes).
pub fn volume_of(kind: Kind, value: &str) -> Option<String> {
    let parts = proxsave_formats::propstring::parse(value).ok()?;
    let explicit = match kind {
        Kind::Qemu => "file",
        Kind::Lxc => "volume",
    };
    let v = parts
        .iter()
        .find(|(k, _)| k.is_none() || k.as_deref() == Some(explicit))
        .map(|(_, v)| v.as_str())?;
    if v.starts_with('/') || v == "none" || v == "cdrom" {
        return None;
    }
    let (storage, name) = v.split_once(':')?;
    if storage.is_empty() || name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QEMU: &str = "#Web%20frontend\n#second line\nagent: 1\nboot: order=scsi0;net0\ncores: 2\nmemory: 4096\nmeta: creation-qemu=9.0.2,ctime=1718000000\nname: web01\nnet0: virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1\nparent: pre-upgrade\nscsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G\nscsihw: virtio-scsi-single\nvmgenid: 5c3f0000-0000-0000-0000-000000000000\n\n[pre-upgrade]\ncores: 1\nmemory: 2048\nsnaptime: 1717990000\n\n[PENDING]\nmemory: 8192\n";

    const LXC: &str = "arch: amd64\ncores: 2\nfeatures: nesting=1\nhostname: ct101\nmemory: 2048\nnet0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth\nostype: debian\nrootfs: local-lvm:vm-101-disk-0,size=8G\nunprivileged: 1\nlxc.apparmor.profile: unconfined\nlxc.cgroup2.devices.allow = c 10:200 rwm\n";

    #[test]
    fn qemu_sections_description_and_bytes() {
        let c = GuestConfig::parse(Kind::Qemu, QEMU).unwrap();
        assert_eq!(c.write(), QEMU);
        assert_eq!(c.current().description(), "Web frontend\nsecond line");
        assert_eq!(c.current().get("memory"), Some("4096"));
        assert_eq!(c.display_name(), Some("web01"));
        assert_eq!(c.snapshots().count(), 1);
        assert_eq!(c.pending().unwrap().get("memory"), Some("8192"));
        assert!(!c.current().props().any(|(k, _)| k == "snaptime"));
        let cur = c.current_text_without(&["parent", "meta"]);
        assert!(!cur.contains("parent") && !cur.contains("meta:") && !cur.contains("[pre"));
        assert!(cur.ends_with("vmgenid: 5c3f0000-0000-0000-0000-000000000000\n"));
    }

    #[test]
    fn lxc_raw_keys_both_separators() {
        let c = GuestConfig::parse(Kind::Lxc, LXC).unwrap();
        assert_eq!(c.write(), LXC);
        let raw: Vec<_> = c.current().raw_keys().collect();
        assert_eq!(
            raw,
            [
                ("lxc.apparmor.profile", "unconfined"),
                ("lxc.cgroup2.devices.allow", "c 10:200 rwm")
            ]
        );
        assert_eq!(c.current().get("unprivileged"), Some("1"));
        assert_eq!(c.display_name(), Some("ct101"));
        // lxc.* keys are no raw keys in a VM config
        assert!(GuestConfig::parse(Kind::Qemu, "lxc.x: 1\n").is_err());
        let lx = GuestConfig::parse(Kind::Lxc, "[pve:pending]\ncores: 4\n").unwrap();
        assert!(lx.pending().is_some());
    }

    #[test]
    fn errors_name_the_line() {
        let e = GuestConfig::parse(Kind::Qemu, "cores: 2\nthis is not a config\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = GuestConfig::parse(Kind::Qemu, "cores: 2\nmemory:\n").unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (2, "key `memory` has no value")
        );
        let e = GuestConfig::parse(Kind::Qemu, "[ab]\n[ab]\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = GuestConfig::parse(Kind::Qemu, "[special:other]\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = GuestConfig::parse(Kind::Qemu, "Cores: 2\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn deny_lists() {
        for k in [
            "meta",
            "parent",
            "snaptime",
            "vmstate",
            "runningmachine",
            "runningcpu",
            "running-nets-host-mtu",
            "digest",
        ] {
            assert_eq!(denied(Kind::Qemu, k), Some(Denied::Internal), "{k}");
        }
        assert_eq!(denied(Kind::Qemu, "memory"), None);
        assert_eq!(denied(Kind::Qemu, "unprivileged"), None);
        assert_eq!(denied(Kind::Lxc, "unprivileged"), Some(Denied::ReadOnly));
        assert_eq!(
            denied(Kind::Lxc, "lxc.apparmor.profile"),
            Some(Denied::RawLxc)
        );
        assert_eq!(denied(Kind::Lxc, "parent"), Some(Denied::Internal));
        assert_eq!(denied(Kind::Lxc, "meta"), None);
    }

    #[test]
    fn volumes() {
        let q = Kind::Qemu;
        assert!(is_volume_key(q, "scsi0") && is_volume_key(q, "unused12"));
        assert!(is_volume_key(q, "efidisk0") && !is_volume_key(q, "scsihw"));
        assert!(!is_volume_key(q, "net0") && !is_volume_key(q, "scsi"));
        assert!(is_volume_key(Kind::Lxc, "rootfs") && is_volume_key(Kind::Lxc, "mp3"));
        assert_eq!(
            volume_of(q, "local-lvm:vm-100-disk-0,iothread=1,size=32G").as_deref(),
            Some("local-lvm:vm-100-disk-0")
        );
        assert_eq!(
            volume_of(q, "media=cdrom,file=local:iso/d.iso").as_deref(),
            Some("local:iso/d.iso")
        );
        assert_eq!(volume_of(q, "none,media=cdrom"), None);
        assert_eq!(volume_of(q, "/dev/sdb"), None);
        assert_eq!(volume_of(q, "local-lvm:32"), None);
        assert_eq!(volume_of(Kind::Lxc, "/srv/data,mp=/data"), None);
        assert_eq!(
            volume_of(Kind::Lxc, "volume=tank:subvol-1-disk-0,mp=/d").as_deref(),
            Some("tank:subvol-1-disk-0")
        );
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z_]{0,8}[0-9]{0,2}: [!-~][ -~]{0,20}[!-~]".prop_map(|s| s),
            "#[ -~]{0,20}".prop_map(|s| s),
            Just(String::new()),
            "[ \t]{1,3}".prop_map(|s| s),
        ]
    }

    proptest! {
        #[test]
        fn write_gives_the_input_back(
            cur in proptest::collection::vec(line(), 0..10),
            snaps in proptest::collection::vec(("[a-z][a-z0-9_-]{1,8}", proptest::collection::vec(line(), 0..5)), 0..3),
            pending in proptest::option::of(proptest::collection::vec(line(), 0..4)),
            crlf in any::<bool>(),
            final_nl in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut lines = cur.clone();
            let mut names: Vec<String> = Vec::new();
            for (n, ls) in &snaps {
                if names.contains(n) { continue; }
                names.push(n.clone());
                lines.push(format!("[{n}]"));
                lines.extend(ls.iter().cloned());
            }
            if let Some(p) = &pending {
                lines.push("[PENDING]".into());
                lines.extend(p.iter().cloned());
            }
            let mut text = lines.join(nl);
            if final_nl && !text.is_empty() { text.push_str(nl); }
            let c = GuestConfig::parse(Kind::Qemu, &text).unwrap();
            prop_assert_eq!(c.write(), text);
            prop_assert_eq!(c.snapshots().count(), names.len());
            prop_assert_eq!(c.pending().is_some(), pending.is_some());
            // the current section holds exactly the properties written before the first header
            let want: Vec<(String, String)> = cur.iter().filter(|l| !l.starts_with('#') && l.contains(':'))
                .map(|l| { let (k, v) = l.split_once(':').unwrap(); (k.to_string(), v.trim().to_string()) }).collect();
            let got: Vec<(String, String)> = c.current().props().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), lxc in any::<bool>()) {
            let text = String::from_utf8_lossy(&bytes);
            let kind = if lxc { Kind::Lxc } else { Kind::Qemu };
            if let Ok(c) = GuestConfig::parse(kind, &text) {
                prop_assert_eq!(c.write(), text.as_ref());
            }
        }
    }
}
