//! The backup's disk inventory: `lsblk` JSON and `blkid` output as the backup tool saved them.

use std::fmt;

use serde_json::Value;

use super::device::{StableRef, Tag, is_unstable_name};

/// Folder of the backup (archive-relative, no `./`) holding the inventory files.
pub const INVENTORY_DIR: &str = "var/lib/proxsave-info/commands/system";

/// The inventory files upstream writes there, in the order they are best read
/// (`lsblk_json.json` first, `blkid.txt` filling gaps). [`InventoryFormat::of`] also accepts
/// other names of the same shape (`lsblk*.json`, `blkid*.txt`).
pub const INVENTORY_FILES: &[&str] = &["lsblk_json.json", "blkid.txt"];

/// The format of an inventory file, judged by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryFormat {
    /// `lsblk -J` output.
    LsblkJson,
    /// `blkid` output (`/dev/sda1: UUID="…" TYPE="…"`, or `blkid -o export`).
    Blkid,
}

impl InventoryFormat {
    /// The format of the file named `name` (its last path component is looked at):
    /// `lsblk*.json` or `blkid*.txt`/`blkid*`; `None` for anything else (`lsblk.txt`, the
    /// table form, is not read: the JSON form holds the same facts).
    pub fn of(name: &str) -> Option<InventoryFormat> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.starts_with("lsblk") && base.ends_with(".json") {
            Some(InventoryFormat::LsblkJson)
        } else if base.starts_with("blkid") && !base.ends_with(".json") {
            Some(InventoryFormat::Blkid)
        } else {
            None
        }
    }
}

/// One block device of the backed-up host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// Its path (`/dev/sdb1`, `/dev/mapper/pve-root`).
    pub path: String,
    /// Other names it was known by (`/dev/dm-1`, `/dev/pve-root` as lsblk's NAME …).
    pub aliases: Vec<String>,
    /// Filesystem UUID.
    pub uuid: Option<String>,
    /// Partition UUID.
    pub partuuid: Option<String>,
    /// Filesystem label.
    pub label: Option<String>,
    /// Partition label.
    pub partlabel: Option<String>,
    /// Filesystem type.
    pub fstype: Option<String>,
    /// Where it was mounted.
    pub mountpoints: Vec<String>,
}

impl Device {
    /// Its stable references in the order a remap prefers them: `UUID=`, `PARTUUID=`,
    /// `LABEL=` (upstream's order), then `PARTLABEL=`.
    pub fn stable_refs(&self) -> Vec<StableRef> {
        [
            (Tag::Uuid, &self.uuid),
            (Tag::PartUuid, &self.partuuid),
            (Tag::Label, &self.label),
            (Tag::PartLabel, &self.partlabel),
        ]
        .into_iter()
        .filter_map(|(t, v)| v.as_ref().map(|v| StableRef::Tag(t, v.clone())))
        .collect()
    }

    /// Whether `path` (a `/dev/…` path) names this device.
    pub fn is_named(&self, path: &str) -> bool {
        let key = path_key(path);
        path_key(&self.path) == key || self.aliases.iter().any(|a| path_key(a) == key)
    }

    fn fill_from(&mut self, other: &Device) {
        for (mine, theirs) in [
            (&mut self.uuid, &other.uuid),
            (&mut self.partuuid, &other.partuuid),
            (&mut self.label, &other.label),
            (&mut self.partlabel, &other.partlabel),
            (&mut self.fstype, &other.fstype),
        ] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        for a in std::iter::once(&other.path).chain(&other.aliases) {
            if !self.is_named(a) {
                self.aliases.push(a.clone());
            }
        }
        for m in &other.mountpoints {
            if !self.mountpoints.contains(m) {
                self.mountpoints.push(m.clone());
            }
        }
    }
}

/// `/dev/vg/lv` and `/dev/mapper/vg-lv` compare equal.
fn path_key(path: &str) -> String {
    StableRef::parse(path).map_or_else(|| path.to_owned(), |r| r.key())
}

/// Why an inventory file could not be read.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON without lsblk's `blockdevices` array.
    #[error("no \"blockdevices\" array")]
    NoBlockDevices,
}

/// A note about an inventory file that was skipped or partly read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryWarning {
    /// The file's name as given.
    pub file: String,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for InventoryWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

/// The block devices of the backed-up host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    devices: Vec<Device>,
}

impl Inventory {
    /// An empty inventory (no remap possible).
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// Every device.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Adds a device; one already known by its path or an alias gains the facts it lacked.
    pub fn add_device(&mut self, dev: Device) {
        if dev.path.is_empty() {
            return;
        }
        let known = self
            .devices
            .iter_mut()
            .find(|d| d.is_named(&dev.path) || dev.aliases.iter().any(|a| d.is_named(a)));
        match known {
            Some(d) => d.fill_from(&dev),
            None => self.devices.push(dev),
        }
    }

    /// Adds every device of `other` (see [`Inventory::add_device`]).
    pub fn extend(&mut self, other: Inventory) {
        for d in other.devices {
            self.add_device(d);
        }
    }

    /// Reads `lsblk -J` output: any of the columns `name`, `path`, `kname`, `uuid`,
    /// `partuuid`, `label`, `partlabel`, `fstype`, `mountpoint`/`mountpoints`, `type`, nested
    /// `children`. Devices without a name or path are ignored.
    ///
    /// # Errors
    /// Not JSON, or no `blockdevices` array.
    pub fn from_lsblk_json(text: &str) -> Result<Inventory, InventoryError> {
        let v: Value = serde_json::from_str(text)?;
        let list = v
            .get("blockdevices")
            .and_then(Value::as_array)
            .ok_or(InventoryError::NoBlockDevices)?;
        let mut inv = Inventory::new();
        let mut stack: Vec<&Value> = list.iter().rev().collect();
        while let Some(obj) = stack.pop() {
            if let Some(children) = obj.get("children").and_then(Value::as_array) {
                stack.extend(children.iter().rev());
            }
            if let Some(dev) = lsblk_device(obj) {
                inv.add_device(dev);
            }
        }
        Ok(inv)
    }

    /// Reads `blkid` output, one device a line (`/dev/sda1: UUID="…" TYPE="ext4" PARTUUID="…"`)
    /// or the `blkid -o export` form (`KEY=value` lines, a blank line between devices). Lines
    /// it cannot read are ignored.
    pub fn from_blkid(text: &str) -> Inventory {
        let mut inv = Inventory::new();
        let mut export: Option<Device> = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r').trim();
            if line.is_empty() {
                if let Some(d) = export.take() {
                    inv.add_device(d);
                }
                continue;
            }
            if let Some((dev, rest)) = line.split_once(": ") {
                if dev.starts_with('/') {
                    let mut d = Device {
                        path: dev.to_owned(),
                        ..Device::default()
                    };
                    for (k, v) in blkid_pairs(rest) {
                        set_field(&mut d, &k, v);
                    }
                    inv.add_device(d);
                }
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                if k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                    let d = export.get_or_insert_with(Device::default);
                    let v = unquote_export(v);
                    if k == "DEVNAME" {
                        d.path = v;
                    } else {
                        set_field(d, k, v);
                    }
                }
            }
        }
        if let Some(d) = export.take() {
            inv.add_device(d);
        }
        inv
    }

    /// Builds the inventory from the backup's files (name, text), in the order given (put
    /// `lsblk*.json` first: the first file to name a property wins). Files of unknown name are
    /// ignored; one that cannot be read becomes a warning.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> (Inventory, Vec<InventoryWarning>) {
        let mut inv = Inventory::new();
        let mut warnings = Vec::new();
        for (name, text) in files {
            match InventoryFormat::of(name) {
                Some(InventoryFormat::LsblkJson) => match Inventory::from_lsblk_json(text) {
                    Ok(i) => inv.extend(i),
                    Err(e) => warnings.push(InventoryWarning {
                        file: name.to_owned(),
                        message: format!("not read: {e}"),
                    }),
                },
                Some(InventoryFormat::Blkid) => inv.extend(Inventory::from_blkid(text)),
                None => {}
            }
        }
        (inv, warnings)
    }

    /// The device a spec names: a `/dev/…` path (or alias, `/dev/vg/lv` ≡ `/dev/mapper/vg-lv`),
    /// or a stable tag (`UUID=…`, `/dev/disk/by-uuid/…`) matching one of its properties.
    pub fn find(&self, spec: &str) -> Option<&Device> {
        if let Some(r) = StableRef::parse(spec) {
            let key = r.key();
            if let Some(d) = self
                .devices
                .iter()
                .find(|d| d.stable_refs().iter().any(|s| s.key() == key))
            {
                return Some(d);
            }
        }
        spec.starts_with("/dev/")
            .then(|| self.devices.iter().find(|d| d.is_named(spec)))
            .flatten()
    }

    /// The stable references an unstable kernel name (`/dev/sdb1`) had on the backed-up host,
    /// best first; empty when the inventory does not know it.
    pub fn remap(&self, name: &str) -> Vec<StableRef> {
        if !is_unstable_name(name) {
            return Vec::new();
        }
        self.find(name).map(Device::stable_refs).unwrap_or_default()
    }

    /// The device mounted at `/` on the backed-up host, per lsblk.
    pub fn root_device(&self) -> Option<&Device> {
        self.devices
            .iter()
            .find(|d| d.mountpoints.iter().any(|m| m == "/"))
    }
}

fn json_str(obj: &Value, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn lsblk_device(obj: &Value) -> Option<Device> {
    let name = json_str(obj, "name");
    let kname = json_str(obj, "kname");
    let kind = json_str(obj, "type").unwrap_or_default();
    let dev_path = |n: &str| {
        if n.starts_with('/') {
            n.to_owned()
        } else {
            format!("/dev/{n}")
        }
    };
    let is_dm = kname.as_deref().is_some_and(|k| k.starts_with("dm-"))
        || matches!(kind.as_str(), "lvm" | "crypt" | "dm" | "mpath");
    let mut names: Vec<String> = Vec::new();
    if let Some(p) = json_str(obj, "path") {
        names.push(p);
    }
    if let Some(n) = &name {
        if is_dm && !n.starts_with('/') {
            names.push(format!("/dev/mapper/{n}"));
        } else {
            names.push(dev_path(n));
        }
    }
    if let Some(k) = &kname {
        names.push(dev_path(k));
    }
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let mut names = unique.into_iter();
    let path = names.next()?;
    let mut mountpoints: Vec<String> = Vec::new();
    if let Some(m) = json_str(obj, "mountpoint") {
        mountpoints.push(m);
    }
    if let Some(list) = obj.get("mountpoints").and_then(Value::as_array) {
        for m in list.iter().filter_map(Value::as_str) {
            if !m.is_empty() && !mountpoints.iter().any(|x| x == m) {
                mountpoints.push(m.to_owned());
            }
        }
    }
    Some(Device {
        path,
        aliases: names.collect(),
        uuid: json_str(obj, "uuid"),
        partuuid: json_str(obj, "partuuid"),
        label: json_str(obj, "label"),
        partlabel: json_str(obj, "partlabel"),
        fstype: json_str(obj, "fstype"),
        mountpoints,
    })
}

fn set_field(d: &mut Device, key: &str, value: String) {
    if value.is_empty() {
        return;
    }
    let slot = match key {
        "UUID" => &mut d.uuid,
        "PARTUUID" => &mut d.partuuid,
        "LABEL" => &mut d.label,
        "PARTLABEL" => &mut d.partlabel,
        "TYPE" => &mut d.fstype,
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// `KEY="value"` pairs of a blkid line; values may hold `\"` and `\\`.
fn blkid_pairs(rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// `blkid -o export` escapes shell-special characters with a backslash.
fn unquote_export(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}
