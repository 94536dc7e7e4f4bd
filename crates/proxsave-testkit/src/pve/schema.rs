//! The parameter schemas the double checks, taken from the Proxmox sources (see
//! `docs/pve-double.md` for the file each table comes from).

/// How a value is checked and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any single-line string.
    Str,
    /// A boolean (`1/0`, `yes/no`, `on/off`, `true/false`), stored as `1`/`0`.
    Bool,
    /// A non-negative integer.
    Int,
    /// One of the listed words.
    Enum(&'static [&'static str]),
    /// The storage `content` list (checked against the type's content types).
    Content,
}

/// One option of a storage type: PVE's `options()` entry with its property's kind.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// Name.
    pub key: &'static str,
    /// `fixed => 1`: set at creation, never changed.
    pub fixed: bool,
    /// `optional => 1`.
    pub optional: bool,
    /// Kind of value.
    pub kind: Kind,
}

const fn o(key: &'static str, kind: Kind) -> Opt {
    Opt {
        key,
        fixed: false,
        optional: true,
        kind,
    }
}

const fn fixed(key: &'static str) -> Opt {
    Opt {
        key,
        fixed: true,
        optional: false,
        kind: Kind::Str,
    }
}

const fn fixed_optional(key: &'static str, kind: Kind) -> Opt {
    Opt {
        key,
        fixed: true,
        optional: true,
        kind,
    }
}

const PREALLOC: Kind = Kind::Enum(&["off", "metadata", "falloc", "full"]);
const S: Kind = Kind::Str;
const B: Kind = Kind::Bool;

/// One storage type: its options, content types (valid, default) and whether PVE marks it
/// shared, and its formats.
#[derive(Debug)]
pub struct StorageType {
    /// Section type (`dir`, `nfs`, ...).
    pub name: &'static str,
    /// `options()`.
    pub options: &'static [Opt],
    /// `plugindata.content[0]`: valid content types.
    pub content: &'static [&'static str],
    /// `plugindata.content[1]`: the default content.
    pub default_content: &'static [&'static str],
    /// `plugindata.format[0]` (empty: no `format` option).
    pub formats: &'static [&'static str],
    /// In `@SHARED_STORAGE`: `shared 1` implied.
    pub shared: bool,
    /// `plugindata.sensitive-properties`: passed to the hooks, never written to storage.cfg.
    pub sensitive: &'static [&'static str],
}

/// Every type PVE 8/9 knows (the `type` enumeration of `POST /storage`).
pub const ALL_TYPES: &[&str] = &[
    "btrfs",
    "cephfs",
    "cifs",
    "dir",
    "esxi",
    "glusterfs",
    "iscsi",
    "iscsidirect",
    "lvm",
    "lvmthin",
    "nfs",
    "pbs",
    "rbd",
    "zfs",
    "zfspool",
];

/// The types the double models.
pub const STORAGE_TYPES: &[StorageType] = &[
    StorageType {
        name: "dir",
        options: &[
            fixed("path"),
            o("content-dirs", S),
            o("nodes", S),
            o("shared", B),
            o("disable", B),
            o("prune-backups", S),
            o("max-protected-backups", Kind::Int),
            o("content", Kind::Content),
            o("format", S),
            o("mkdir", B),
            o("create-base-path", B),
            o("create-subdirs", B),
            o("is_mountpoint", S),
            o("bwlimit", S),
            o("preallocation", PREALLOC),
            fixed_optional("snapshot-as-volume-chain", B),
        ],
        content: &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import",
        ],
        default_content: &["images", "rootdir"],
        formats: &["raw", "qcow2", "vmdk", "subvol"],
        shared: false,
        sensitive: &[],
    },
    StorageType {
        name: "lvmthin",
        options: &[
            fixed("thinpool"),
            fixed("vgname"),
            o("nodes", S),
            o("disable", B),
            o("content", Kind::Content),
            o("bwlimit", S),
        ],
        content: &["images", "rootdir"],
        default_content: &["images", "rootdir"],
        formats: &[],
        shared: false,
        sensitive: &[],
    },
    StorageType {
        name: "lvm",
        options: &[
            fixed("vgname"),
            o("nodes", S),
            o("shared", B),
            o("disable", B),
            o("saferemove", B),
            o(
                "saferemove-stepsize",
                Kind::Enum(&["1", "2", "4", "8", "16", "32"]),
            ),
            o("saferemove_throughput", S),
            o("content", Kind::Content),
            fixed_optional("base", S),
            o("tagged_only", B),
            o("bwlimit", S),
            o("snapshot-as-volume-chain", B),
        ],
        content: &["images", "rootdir"],
        default_content: &["images"],
        formats: &["raw", "qcow2"],
        shared: false,
        sensitive: &[],
    },
    StorageType {
        name: "zfspool",
        options: &[
            fixed("pool"),
            o("blocksize", S),
            o("sparse", B),
            o("nodes", S),
            o("disable", B),
            o("content", Kind::Content),
            o("bwlimit", S),
            o("mountpoint", S),
        ],
        content: &["images", "rootdir"],
        default_content: &["images", "rootdir"],
        formats: &["raw", "subvol"],
        shared: false,
        sensitive: &[],
    },
    StorageType {
        name: "nfs",
        options: &[
            fixed("path"),
            o("content-dirs", S),
            fixed("server"),
            fixed("export"),
            o("nodes", S),
            o("disable", B),
            o("prune-backups", S),
            o("max-protected-backups", Kind::Int),
            o("options", S),
            o("content", Kind::Content),
            o("format", S),
            o("mkdir", B),
            o("create-base-path", B),
            o("create-subdirs", B),
            o("bwlimit", S),
            o("preallocation", PREALLOC),
            fixed_optional("snapshot-as-volume-chain", B),
        ],
        content: &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
        ],
        default_content: &["images"],
        formats: &["raw", "qcow2", "vmdk"],
        shared: true,
        sensitive: &[],
    },
    StorageType {
        name: "cifs",
        options: &[
            fixed("path"),
            o("content-dirs", S),
            fixed("server"),
            fixed("share"),
            o("subdir", S),
            o("nodes", S),
            o("disable", B),
            o("prune-backups", S),
            o("max-protected-backups", Kind::Int),
            o("content", Kind::Content),
            o("format", S),
            o("username", S),
            o("password", S),
            o("domain", S),
            o(
                "smbversion",
                Kind::Enum(&["default", "2.0", "2.1", "3", "3.0", "3.11"]),
            ),
            o("mkdir", B),
            o("create-base-path", B),
            o("create-subdirs", B),
            o("bwlimit", S),
            o("preallocation", PREALLOC),
            o("options", S),
            fixed_optional("snapshot-as-volume-chain", B),
        ],
        content: &[
            "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import",
        ],
        default_content: &["images"],
        formats: &["raw", "qcow2", "vmdk"],
        shared: true,
        sensitive: &["password"],
    },
    StorageType {
        name: "pbs",
        options: &[
            fixed("server"),
            fixed("datastore"),
            o("namespace", S),
            o("port", Kind::Int),
            o("nodes", S),
            o("disable", B),
            o("content", Kind::Content),
            o("username", S),
            o("password", S),
            o("encryption-key", S),
            o("master-pubkey", S),
            o("prune-backups", S),
            o("max-protected-backups", Kind::Int),
            o("fingerprint", S),
        ],
        content: &["backup", "none"],
        default_content: &["backup"],
        formats: &[],
        shared: true,
        sensitive: &["encryption-key", "master-pubkey", "password"],
    },
];

/// The modelled type named `name`.
pub fn storage_type(name: &str) -> Option<&'static StorageType> {
    STORAGE_TYPES.iter().find(|t| t.name == name)
}

impl StorageType {
    /// The option named `key`.
    pub fn opt(&self, key: &str) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.key == key)
    }
}

/// Whether `key` is an option of any modelled type (what `pvesh create /storage` accepts).
pub fn any_storage_option(key: &str) -> Option<&'static Opt> {
    STORAGE_TYPES.iter().find_map(|t| t.opt(key))
}

/// `datacenter.cfg` keys (`PVE::DataCenterConfig` schema), with their kinds.
pub const DATACENTER: &[(&str, Kind)] = &[
    ("bwlimit", S),
    ("consent-text", S),
    ("console", Kind::Enum(&["applet", "vv", "html5", "xtermjs"])),
    ("crs", S),
    ("description", S),
    ("email_from", S),
    ("fencing", Kind::Enum(&["watchdog", "hardware", "both"])),
    ("ha", S),
    ("http_proxy", S),
    ("keyboard", Kind::Enum(KEYMAPS)),
    (
        "language",
        Kind::Enum(&[
            "ar", "ca", "da", "de", "en", "es", "eu", "fa", "fr", "hr", "he", "it", "ja", "ka",
            "kr", "nb", "nl", "nn", "pl", "pt_BR", "ru", "sl", "sv", "tr", "ukr", "zh_CN", "zh_TW",
        ]),
    ),
    ("location", S),
    ("mac_prefix", S),
    ("max_workers", Kind::Int),
    ("migration", S),
    ("migration_unsecure", B),
    ("next-id", S),
    ("notify", S),
    ("registered-tags", S),
    ("replication", S),
    ("tag-style", S),
    ("u2f", S),
    ("user-tag-access", S),
    ("webauthn", S),
];

/// `PVE::Tools::kvmkeymaplist`.
pub const KEYMAPS: &[&str] = &[
    "de", "de-ch", "da", "en-gb", "en-us", "es", "fi", "fr", "fr-be", "fr-ca", "fr-ch", "hu", "is",
    "it", "ja", "lt", "mk", "nl", "no", "pl", "pt", "pt-br", "sv", "sl", "tr",
];

/// vzdump job options (`PVE::VZDump::Common` confdesc plus the job API's own), with kinds.
pub const VZDUMP: &[(&str, Kind)] = &[
    ("all", B),
    ("bwlimit", Kind::Int),
    ("comment", S),
    ("compress", S),
    ("dow", S),
    ("dumpdir", S),
    ("enabled", B),
    ("exclude", S),
    ("exclude-path", S),
    ("fleecing", S),
    ("ionice", Kind::Int),
    ("lockwait", Kind::Int),
    ("mailnotification", Kind::Enum(&["always", "failure"])),
    ("mailto", S),
    ("mode", Kind::Enum(&["snapshot", "suspend", "stop"])),
    ("node", S),
    ("notes-template", S),
    (
        "notification-mode",
        Kind::Enum(&["auto", "legacy-sendmail", "notification-system"]),
    ),
    (
        "pbs-change-detection-mode",
        Kind::Enum(&["legacy", "data", "metadata"]),
    ),
    ("performance", S),
    ("pigz", Kind::Int),
    ("pool", S),
    ("protected", B),
    ("prune-backups", S),
    ("quiet", B),
    ("remove", B),
    ("repeat-missed", B),
    ("schedule", S),
    ("script", S),
    ("starttime", S),
    ("stdexcludes", B),
    ("stop", B),
    ("stopwait", Kind::Int),
    ("storage", S),
    ("tmpdir", S),
    ("vmid", S),
    ("zstd", Kind::Int),
];

/// Replication job options (`PVE::ReplicationConfig`, type `local`).
pub const REPLICATION: &[(&str, Kind)] = &[
    ("comment", S),
    ("disable", B),
    ("rate", S),
    ("remove_job", Kind::Enum(&["local", "full"])),
    ("schedule", S),
    ("source", S),
    ("target", S),
];

/// A notification section type: its public keys (with array-ness) and its private keys.
#[derive(Debug)]
pub struct NotifyType {
    /// Section type and API path segment (`smtp`, ..., `matcher`).
    pub name: &'static str,
    /// Public keys: (key, is an array, kind).
    pub keys: &'static [(&'static str, bool, Kind)],
    /// Keys kept in `priv/notifications.cfg`.
    pub private: &'static [(&'static str, bool)],
    /// Keys that must be given at creation.
    pub required: &'static [&'static str],
}

/// proxmox-notify's endpoint and matcher types.
pub const NOTIFY_TYPES: &[NotifyType] = &[
    NotifyType {
        name: "sendmail",
        keys: &[
            ("mailto", true, S),
            ("mailto-user", true, S),
            ("from-address", false, S),
            ("author", false, S),
            ("comment", false, S),
            ("disable", false, B),
        ],
        private: &[],
        required: &[],
    },
    NotifyType {
        name: "smtp",
        keys: &[
            ("server", false, S),
            ("port", false, Kind::Int),
            ("mode", false, Kind::Enum(&["insecure", "starttls", "tls"])),
            ("username", false, S),
            ("mailto", true, S),
            ("mailto-user", true, S),
            ("from-address", false, S),
            ("author", false, S),
            ("comment", false, S),
            ("disable", false, B),
        ],
        private: &[("password", false)],
        required: &["server", "from-address"],
    },
    NotifyType {
        name: "gotify",
        keys: &[
            ("server", false, S),
            ("comment", false, S),
            ("disable", false, B),
        ],
        private: &[("token", false)],
        required: &["server", "token"],
    },
    NotifyType {
        name: "webhook",
        keys: &[
            ("url", false, S),
            ("method", false, Kind::Enum(&["post", "put", "get"])),
            ("header", true, S),
            ("body", false, S),
            ("comment", false, S),
            ("disable", false, B),
        ],
        private: &[("secret", true)],
        required: &["url", "method"],
    },
    NotifyType {
        name: "matcher",
        keys: &[
            ("match-field", true, S),
            ("match-severity", true, S),
            ("match-calendar", true, S),
            ("target", true, S),
            ("mode", false, Kind::Enum(&["all", "any"])),
            ("invert-match", false, B),
            ("comment", false, S),
            ("disable", false, B),
        ],
        private: &[],
        required: &[],
    },
];

/// The notification type named `name`.
pub fn notify_type(name: &str) -> Option<&'static NotifyType> {
    NOTIFY_TYPES.iter().find(|t| t.name == name)
}

/// Checks `value` against `kind`; returns the stored form or PVE's message.
pub fn check(kind: Kind, value: &str) -> Result<String, String> {
    match kind {
        Kind::Str | Kind::Content => Ok(value.to_string()),
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "1" | "yes" | "on" | "true" => Ok("1".into()),
            "0" | "no" | "off" | "false" => Ok("0".into()),
            _ => Err(format!("type check ('boolean') failed - got '{value}'")),
        },
        Kind::Int => {
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                Ok(value.to_string())
            } else {
                Err(format!("type check ('integer') failed - got '{value}'"))
            }
        }
        Kind::Enum(words) => {
            if words.contains(&value) {
                Ok(value.to_string())
            } else {
                Err(format!(
                    "value '{value}' does not have a value in the enumeration '{}'",
                    words.join(", ")
                ))
            }
        }
    }
}
