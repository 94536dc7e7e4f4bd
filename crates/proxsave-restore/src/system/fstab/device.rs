//! What an fstab entry mounts: stable device references, unstable kernel names, network
//! shares, swap, pseudo filesystems.

use std::fmt;

use super::parse::{Entry, escape};

/// The `NAME=` tags fstab accepts for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// `UUID=` (filesystem UUID).
    Uuid,
    /// `PARTUUID=` (GPT/MBR partition UUID).
    PartUuid,
    /// `LABEL=` (filesystem label).
    Label,
    /// `PARTLABEL=` (GPT partition name).
    PartLabel,
}

impl Tag {
    /// The tag as written in fstab, without `=`.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Uuid => "UUID",
            Tag::PartUuid => "PARTUUID",
            Tag::Label => "LABEL",
            Tag::PartLabel => "PARTLABEL",
        }
    }

    /// The udev folder that lists devices by this tag (`by-uuid`, …).
    pub fn by_dir(self) -> &'static str {
        match self {
            Tag::Uuid => "by-uuid",
            Tag::PartUuid => "by-partuuid",
            Tag::Label => "by-label",
            Tag::PartLabel => "by-partlabel",
        }
    }
}

/// A `/dev/disk/by-*` folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskBy {
    /// `by-uuid`, `by-partuuid`, `by-label`, `by-partlabel`: same meaning as the tag.
    Tag(Tag),
    /// `by-id` (model/serial/WWN).
    Id,
    /// `by-path` (bus position).
    Path,
}

impl DiskBy {
    /// The folder name under `/dev/disk`.
    pub fn dir(self) -> &'static str {
        match self {
            DiskBy::Tag(t) => t.by_dir(),
            DiskBy::Id => "by-id",
            DiskBy::Path => "by-path",
        }
    }

    fn from_dir(dir: &str) -> Option<DiskBy> {
        Some(match dir {
            "by-uuid" => DiskBy::Tag(Tag::Uuid),
            "by-partuuid" => DiskBy::Tag(Tag::PartUuid),
            "by-label" => DiskBy::Tag(Tag::Label),
            "by-partlabel" => DiskBy::Tag(Tag::PartLabel),
            "by-id" => DiskBy::Id,
            "by-path" => DiskBy::Path,
            _ => return None,
        })
    }
}

/// A device reference that names the same device on every boot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StableRef {
    /// `UUID=…`, `PARTUUID=…`, `LABEL=…`, `PARTLABEL=…` (value unescaped, quotes removed).
    Tag(Tag, String),
    /// `/dev/disk/by-<dir>/<name>` (the name as udev spells it, e.g. `\x20` for a space).
    DiskBy(DiskBy, String),
    /// `/dev/mapper/<name>` (LVM, LUKS, multipath).
    Mapper(String),
    /// `/dev/<vg>/<lv>`: the LVM link to `/dev/mapper/<vg>-<lv>`.
    Lvm {
        /// Volume group.
        vg: String,
        /// Logical volume.
        lv: String,
    },
}

impl StableRef {
    /// Reads a device spec (escapes already decoded) as a stable reference.
    pub fn parse(spec: &str) -> Option<StableRef> {
        for tag in [Tag::Uuid, Tag::PartUuid, Tag::Label, Tag::PartLabel] {
            if let Some(v) = spec
                .strip_prefix(tag.name())
                .and_then(|r| r.strip_prefix('='))
            {
                let v = strip_quotes(v);
                return (!v.is_empty()).then(|| StableRef::Tag(tag, v.to_owned()));
            }
        }
        let rest = spec.strip_prefix("/dev/")?;
        let comps: Vec<&str> = rest.split('/').collect();
        match comps.as_slice() {
            ["disk", dir, name] if is_name(name) => {
                DiskBy::from_dir(dir).map(|d| StableRef::DiskBy(d, (*name).to_owned()))
            }
            ["mapper", name] if is_name(name) && *name != "control" => {
                Some(StableRef::Mapper((*name).to_owned()))
            }
            [vg, lv] if is_lvm_name(vg) && is_lvm_name(lv) && !NOT_VG.contains(vg) => {
                Some(StableRef::Lvm {
                    vg: (*vg).to_owned(),
                    lv: (*lv).to_owned(),
                })
            }
            _ => None,
        }
    }

    /// The spec to write into fstab for this reference (escaped).
    pub fn to_fstab_spec(&self) -> String {
        escape(&self.to_string())
    }

    /// The path below the root that exists when this reference is present: its folder's
    /// components and the entry's name (`["dev", "disk", "by-uuid"]`, `"1234-…"`). The entry is
    /// usually a symlink, which is not followed.
    pub fn path_in_root(&self) -> (Vec<&str>, String) {
        match self {
            StableRef::Tag(t, v) => (vec!["dev", "disk", t.by_dir()], udev_encode(v)),
            StableRef::DiskBy(d, n) => (vec!["dev", "disk", d.dir()], n.clone()),
            StableRef::Mapper(n) => (vec!["dev", "mapper"], n.clone()),
            StableRef::Lvm { vg, lv } => (vec!["dev", vg.as_str()], lv.clone()),
        }
    }

    /// A key equal for references that name the same device by the same property:
    /// `UUID=x` and `/dev/disk/by-uuid/x` (UUIDs compared case-insensitively), `/dev/vg/lv` and
    /// `/dev/mapper/vg-lv`.
    pub fn key(&self) -> String {
        match self {
            StableRef::Tag(t, v) | StableRef::DiskBy(DiskBy::Tag(t), v) => {
                let v = match self {
                    StableRef::DiskBy(..) => udev_decode(v),
                    _ => v.clone(),
                };
                match t {
                    Tag::Uuid | Tag::PartUuid => format!("{}={}", t.name(), v.to_lowercase()),
                    Tag::Label | Tag::PartLabel => format!("{}={v}", t.name()),
                }
            }
            StableRef::DiskBy(d, n) => format!("/dev/disk/{}/{n}", d.dir()),
            StableRef::Mapper(n) => format!("/dev/mapper/{n}"),
            StableRef::Lvm { vg, lv } => {
                format!(
                    "/dev/mapper/{}-{}",
                    vg.replace('-', "--"),
                    lv.replace('-', "--")
                )
            }
        }
    }
}

impl fmt::Display for StableRef {
    /// The fstab spelling, unescaped: `UUID=…`, `/dev/disk/by-id/…`, `/dev/mapper/…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StableRef::Tag(t, v) => write!(f, "{}={v}", t.name()),
            StableRef::DiskBy(d, n) => write!(f, "/dev/disk/{}/{n}", d.dir()),
            StableRef::Mapper(n) => write!(f, "/dev/mapper/{n}"),
            StableRef::Lvm { vg, lv } => write!(f, "/dev/{vg}/{lv}"),
        }
    }
}

/// `/dev/<x>/<y>` folders that are not LVM volume groups.
const NOT_VG: &[&str] = &[
    "disk",
    "mapper",
    "md",
    "bus",
    "block",
    "char",
    "cpu",
    "dri",
    "fd",
    "input",
    "net",
    "pts",
    "shm",
    "snd",
    "mqueue",
    "hugepages",
    "vfio",
    "zvol",
    "bsg",
    "usb",
    "serial",
    "v4l",
    "bcache",
    "vg",
];

fn is_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains('/') && !n.contains('\0')
}

fn is_lvm_name(n: &str) -> bool {
    is_name(n)
        && !n.starts_with('-')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

fn strip_quotes(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Encodes a tag value the way udev names its `/dev/disk/by-*` links (libblkid's
/// `blkid_encode_string`): ASCII letters, digits and `#+-.:=@_` and valid multi-byte UTF-8 stay,
/// every other byte becomes `\xNN`.
pub fn udev_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

/// Reverses [`udev_encode`].
pub fn udev_decode(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = b
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `spec` is a kernel device name that can change between boots or machines:
/// `/dev/sdX[N]`, `/dev/vdX[N]`, `/dev/hdX[N]`, `/dev/xvdX[N]`, `/dev/nvmeXnY[pZ]`,
/// `/dev/mmcblkX[pY]`.
pub fn is_unstable_name(spec: &str) -> bool {
    let Some(name) = spec.strip_prefix("/dev/") else {
        return false;
    };
    for prefix in ["sd", "vd", "hd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            return letters > 0 && rest[letters..].bytes().all(|b| b.is_ascii_digit());
        }
    }
    if let Some(rest) = name.strip_prefix("nvme") {
        // nvme<N>n<M>[p<K>]
        let Some((_, rest)) = split_digits(rest) else {
            return false;
        };
        let Some(rest) = rest.strip_prefix('n') else {
            return false;
        };
        let Some((_, rest)) = split_digits(rest) else {
            return false;
        };
        return rest.is_empty()
            || rest
                .strip_prefix('p')
                .and_then(split_digits)
                .is_some_and(|(_, r)| r.is_empty());
    }
    if let Some(rest) = name.strip_prefix("mmcblk") {
        let Some((_, rest)) = split_digits(rest) else {
            return false;
        };
        return rest.is_empty()
            || rest
                .strip_prefix('p')
                .and_then(split_digits)
                .is_some_and(|(_, r)| r.is_empty());
    }
    false
}

/// Splits leading ASCII digits (at least one) from `s`.
fn split_digits(s: &str) -> Option<(&str, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| s.split_at(n))
}

/// Filesystem types of network mounts. `9p` and `virtiofs` are not among them: they are
/// host-to-guest shares whose source is a tag no check here can verify (skipped as
/// unsupported).
pub const NETWORK_FSTYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "sshfs",
    "fuse.sshfs",
    "glusterfs",
    "fuse.glusterfs",
    "ceph",
    "fuse.ceph",
    "davfs",
];

/// Filesystem types without a backing device.
pub const PSEUDO_FSTYPES: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "ramfs",
    "securityfs",
    "cgroup",
    "cgroup2",
    "pstore",
    "debugfs",
    "tracefs",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "bpf",
    "efivarfs",
    "binfmt_misc",
    "autofs",
    "rpc_pipefs",
    "nfsd",
    "overlay",
];

/// What an fstab entry mounts, as the merge sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A swap area (type `swap`).
    Swap,
    /// A pseudo filesystem ([`PSEUDO_FSTYPES`]).
    Pseudo,
    /// A network mount: a type in [`NETWORK_FSTYPES`], the `_netdev` option, or a source
    /// spelled `//host/share` or `host:/path`.
    Network,
    /// A device by a stable reference.
    Stable(StableRef),
    /// A kernel device name ([`is_unstable_name`]).
    Unstable(String),
    /// Anything else (bind mounts, ZFS datasets, `/dev/md*`, 9p tags …).
    Other,
}

/// Classifies an entry. Order: swap, pseudo, network type, the device spec (a stable
/// reference carrying `_netdev`, e.g. an iSCSI disk, counts as a network mount: it cannot be
/// present before the network is up), then a network-shaped source or `_netdev` on a source
/// that is not under `/dev`.
pub fn classify(entry: &Entry) -> Source {
    let fstype = entry.fstype();
    if fstype == "swap" {
        return Source::Swap;
    }
    if PSEUDO_FSTYPES.contains(&fstype) {
        return Source::Pseudo;
    }
    if NETWORK_FSTYPES.contains(&fstype) {
        return Source::Network;
    }
    let spec = entry.spec();
    let netdev = entry.has_option("_netdev");
    if let Some(r) = StableRef::parse(spec) {
        return if netdev {
            Source::Network
        } else {
            Source::Stable(r)
        };
    }
    if is_unstable_name(spec) {
        return Source::Unstable(spec.to_owned());
    }
    if spec.starts_with("//") || (!spec.starts_with('/') && spec.contains(":/")) {
        return Source::Network;
    }
    if netdev && !spec.starts_with("/dev/") {
        return Source::Network;
    }
    Source::Other
}
