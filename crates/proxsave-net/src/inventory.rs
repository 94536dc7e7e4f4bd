//! NIC inventories: the backup's JSON file and this host's sysfs.
//!
//! The JSON format is the one the backup tool writes (`network_inventory.json`): every field but
//! `name` omitted when empty or zero, `interfaces` is `null` when the host had no interfaces. The
//! structs here read every variant (fields missing, `null` anywhere, unknown fields ignored) and
//! write the same keys back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::rootfs;

/// Archive entry names of the inventory, in lookup order (first hit wins).
pub const INVENTORY_CANDIDATES: [&str; 3] = [
    "./var/lib/proxsave-info/commands/system/network_inventory.json",
    "./commands/network_inventory.json",
    "./var/lib/proxsave-info/network_inventory.json",
];

/// Largest inventory read: 10 MiB.
pub const MAX_INVENTORY_BYTES: u64 = 10 * 1024 * 1024;

/// Rank of an archive entry name among [`INVENTORY_CANDIDATES`] (0 is best), or `None`.
///
/// Accepts the names with `./`, with `/` or with no prefix (the backup tool requires `./`
/// exactly; an archive written without it would silently lose NIC mapping).
pub fn inventory_candidate_rank(entry_name: &str) -> Option<usize> {
    let bare = entry_name
        .strip_prefix("./")
        .or_else(|| entry_name.strip_prefix('/'))
        .unwrap_or(entry_name);
    INVENTORY_CANDIDATES
        .iter()
        .position(|c| c.strip_prefix("./") == Some(bare))
}

/// Why no inventory could be used: the NIC repair is skipped with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// No candidate entry in the backup.
    #[error(
        "backup does not include network inventory (update ProxSave and create a new backup to enable NIC mapping)"
    )]
    Missing,
    /// The entry is not a regular file.
    #[error("{path}: network inventory is not a regular file")]
    NotRegular {
        /// Entry name.
        path: String,
    },
    /// The entry is empty (or only whitespace).
    #[error("{path}: network inventory is empty")]
    Empty {
        /// Entry name.
        path: String,
    },
    /// The entry is larger than [`MAX_INVENTORY_BYTES`].
    #[error("{path}: network inventory is {size} bytes, more than the limit of 10 MiB")]
    Oversize {
        /// Entry name.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The entry is not the expected JSON.
    #[error("{path}:{line}:{column}: network inventory is not valid JSON: {message}")]
    NotJson {
        /// Entry name.
        path: String,
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
        /// serde_json's message.
        message: String,
    },
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let m: Option<BTreeMap<String, Option<String>>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// One interface of an inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Kernel name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Current MAC address (sysfs `address`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac: String,
    /// Permanent MAC (`ethtool -P`), lower case.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub permanent_mac: String,
    /// Kernel driver.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub driver: String,
    /// Real path of the sysfs `device` link (`/sys/devices/pci0000:00/0000:00:1f.6`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub pci_path: String,
    /// Interface index.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub ifindex: i64,
    /// Operational state (`up`, `down`, ...).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub oper_state: String,
    /// Link speed in Mbit/s.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub speed_mbps: i64,
    /// True for software devices (bridges, bonds, veths, VLANs, ...): sysfs path under
    /// `/virtual/`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub is_virtual: bool,
    /// udev properties (`ID_PATH`, `ID_NET_NAME_PATH`, ...).
    #[serde(
        default,
        deserialize_with = "null_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub udev_properties: BTreeMap<String, String>,
    /// `/sys/class/net/<name>`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub system_net_path: String,
}

/// An inventory: the backup's, or this host's from [`collect_sysfs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// When it was taken (RFC 3339).
    #[serde(default, deserialize_with = "null_default")]
    pub generated_at: String,
    /// The host it was taken on.
    #[serde(default, deserialize_with = "null_default")]
    pub hostname: String,
    /// True when `ethtool`/`udevadm` were not run (backup of a mounted root).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub host_commands_skipped: bool,
    /// Why they were not run.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub host_commands_skipped_reason: String,
    /// The interfaces, sorted by name; `None` for JSON `null`.
    #[serde(default)]
    pub interfaces: Option<Vec<Nic>>,
}

impl Inventory {
    /// The interfaces (empty for `null`).
    pub fn nics(&self) -> &[Nic] {
        self.interfaces.as_deref().unwrap_or(&[])
    }

    /// Parses an inventory read from the archive entry `path` (named in errors). Checks size
    /// ([`MAX_INVENTORY_BYTES`]) and emptiness first.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Inventory, InventoryError> {
        if bytes.len() as u64 > MAX_INVENTORY_BYTES {
            return Err(InventoryError::Oversize {
                path: path.to_string(),
                size: bytes.len() as u64,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(InventoryError::Empty {
                path: path.to_string(),
            });
        }
        serde_json::from_slice(bytes).map_err(|e| InventoryError::NotJson {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }
}

/// Normalises a MAC address: trimmed, lower case, a leading `mac:` removed.
pub fn normalize_mac(mac: &str) -> String {
    let m = mac.trim().to_ascii_lowercase();
    m.strip_prefix("mac:").unwrap_or(&m).trim().to_string()
}

/// True for addresses that identify nothing: empty, all zero (drivers without a permanent
/// address) or all `ff` (broadcast).
pub fn is_null_mac(mac: &str) -> bool {
    let hex: Vec<u8> = normalize_mac(mac)
        .bytes()
        .filter(|b| *b != b':' && *b != b'-' && *b != b'.')
        .collect();
    hex.is_empty() || hex.iter().all(|b| *b == b'0') || hex.iter().all(|b| *b == b'f')
}

/// The normalised MAC, or `None` when it identifies nothing ([`is_null_mac`]).
pub fn usable_mac(mac: &str) -> Option<String> {
    (!is_null_mac(mac)).then(|| normalize_mac(mac))
}

/// A sysfs device path with any prefix before `/sys/devices/` removed (backups of a mounted root
/// record the mount prefix) and a trailing `virtioN` dropped (the PCI function is the identity,
/// not the virtio enumeration index), or `None` for empty or virtual paths.
pub fn normalize_pci_path(path: &str) -> Option<String> {
    let p = path.trim();
    if p.is_empty() || p.contains("/virtual/") {
        return None;
    }
    let p = match p.find("/sys/devices/") {
        Some(i) => &p[i..],
        None => p,
    };
    // virtio NICs: `…/0000:00:03.0/virtio2` — the virtio index is an enumeration order, the PCI
    // function is the identity
    let p = match p.rsplit_once('/') {
        Some((head, last))
            if last.len() > 6
                && last.starts_with("virtio")
                && last[6..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => p,
    };
    Some(p.to_string())
}

impl Nic {
    /// The permanent MAC if it identifies something.
    pub fn permanent_mac_key(&self) -> Option<String> {
        usable_mac(&self.permanent_mac)
    }

    /// The current MAC if it identifies something.
    pub fn mac_key(&self) -> Option<String> {
        usable_mac(&self.mac)
    }

    /// The PCI path without mount prefixes.
    pub fn pci_path_key(&self) -> Option<String> {
        normalize_pci_path(&self.pci_path)
    }

    /// A trimmed, non-empty udev property.
    pub fn udev(&self, key: &str) -> Option<String> {
        self.udev_properties
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// True when this NIC can take part in matching: named, not `lo`, not virtual, and with at
    /// least one identifier.
    pub fn is_candidate(&self) -> bool {
        let name = self.name.trim();
        !name.is_empty()
            && name == self.name
            && name != "lo"
            && !self.is_virtual
            && !self.pci_path.contains("/virtual/")
            && (self.permanent_mac_key().is_some()
                || self.mac_key().is_some()
                || self.pci_path_key().is_some()
                || self.udev("ID_PATH").is_some()
                || self.udev("ID_NET_NAME_PATH").is_some())
    }
}

/// The permanent address in `ethtool -P` output (`Permanent address: 00:11:...`, any case),
/// normalised; `None` when absent.
pub fn parse_ethtool_permanent(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let t = l.trim();
        let prefix = "permanent address:";
        let head = t.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix) {
            return None;
        }
        let v = normalize_mac(t.get(prefix.len()..).unwrap_or_default());
        (!v.is_empty()).then_some(v)
    })
}

/// `KEY=VALUE` lines of `udevadm info -q property` output; empty values dropped.
pub fn parse_udev_properties(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// `E:KEY=VALUE` lines of a udev database file (`/run/udev/data/n<ifindex>`); empty values dropped.
pub fn parse_udev_db(bytes: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// This host's interfaces could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list {}: {message}", path.display())]
pub struct CollectError {
    /// The directory inside the root.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

const SMALL: u64 = 4096;

fn read_small(root: &Path, path: &Path) -> Option<String> {
    rootfs::read_capped(root, path, SMALL)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
}

/// Lists this host's interfaces from `<root>/sys/class/net`, sorted by name.
///
/// Per interface: `address` (normalised), `ifindex`, `operstate`, the `device` link resolved
/// inside the root (PCI path) and its `driver`, virtual when the class entry's link or real path
/// goes through `/virtual/`, udev properties from `<root>/run/udev/data/n<ifindex>` (the database
/// `udevadm info` reads; empty values dropped). The permanent MAC comes from `permanent_mac`
/// (the caller runs `ethtool -P NAME` and passes [`parse_ethtool_permanent`] of its output); it
/// is asked only for interfaces that are neither `lo` nor virtual.
pub fn collect_sysfs(
    root: &Path,
    permanent_mac: &dyn Fn(&str) -> Option<String>,
) -> Result<Inventory, CollectError> {
    let class = Path::new("/sys/class/net");
    let names = match rootfs::list_dir(root, class) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(CollectError {
                path: class.to_path_buf(),
                message: "no such directory".into(),
            });
        }
        Err(e) => {
            return Err(CollectError {
                path: class.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let mut nics = Vec::new();
    for raw in names {
        let Some(name) = raw.to_str().map(str::to_string) else {
            continue;
        };
        if name.trim().is_empty() {
            continue;
        }
        let entry = class.join(&name);
        if !rootfs::is_dir(root, &entry) {
            continue; // bonding_masters and other plain files
        }
        let link = std::fs::read_link(root.join(entry.strip_prefix("/").unwrap_or(&entry)))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let real = rootfs::resolve(root, &entry)
            .map(|r| r.inner.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_virtual = link.contains("/virtual/") || real.contains("/virtual/");
        let mac = read_small(root, &entry.join("address"))
            .map(|m| normalize_mac(&m))
            .unwrap_or_default();
        let ifindex = read_small(root, &entry.join("ifindex"))
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|i| *i > 0)
            .unwrap_or(0);
        let oper_state = read_small(root, &entry.join("operstate")).unwrap_or_default();
        let device = entry.join("device");
        let (pci_path, driver) = if rootfs::is_dir(root, &device) {
            let pci = rootfs::resolve(root, &device)
                .map(|r| r.inner.to_string_lossy().into_owned())
                .unwrap_or_default();
            let drv_path = device.join("driver");
            let drv = if rootfs::is_dir(root, &drv_path) {
                rootfs::resolve(root, &drv_path)
                    .and_then(|r| {
                        r.inner
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                    })
                    .unwrap_or_default()
            } else {
                String::new()
            };
            (pci, drv)
        } else {
            (String::new(), String::new())
        };
        let udev_properties = if ifindex > 0 {
            rootfs::read_capped(
                root,
                &Path::new("/run/udev/data").join(format!("n{ifindex}")),
                1024 * 1024,
            )
            .map(|b| parse_udev_db(&b))
            .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let permanent_mac = if name != "lo" && !is_virtual {
            permanent_mac(&name)
                .map(|m| normalize_mac(&m))
                .unwrap_or_default()
        } else {
            String::new()
        };
        nics.push(Nic {
            system_net_path: format!("/sys/class/net/{name}"),
            name,
            mac,
            permanent_mac,
            driver,
            pci_path,
            ifindex,
            oper_state,
            speed_mbps: 0,
            is_virtual,
            udev_properties,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Inventory {
        generated_at: String::new(),
        hostname: read_small(root, Path::new("/etc/hostname")).unwrap_or_default(),
        host_commands_skipped: false,
        host_commands_skipped_reason: String::new(),
        interfaces: Some(nics),
    })
}
