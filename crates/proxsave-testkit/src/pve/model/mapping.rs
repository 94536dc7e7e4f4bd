//! Resource mappings (`/cluster/mapping/{pci,usb,dir}`), after `PVE/API2/Cluster/Mapping/*.pm`
//! and `PVE/Mapping/{PCI,USB,Dir}.pm`.
//!
//! State: `mapping/pci.cfg`, `mapping/usb.cfg`, `mapping/directory.cfg`, written as PVE's
//! `SectionConfig` writes them with these plugins' header (the id alone on its line): the
//! required `map` lines first (one per entry, as given), then the optional keys sorted
//! (`description`, `live-migration-capable`, `mdev`), a blank line between sections.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctx, Fail, R, die, getopt, param_err, verify};
use crate::pve::schema::{self, Kind};

/// One mapping type.
struct MapType {
    /// `pci`, `usb`, `dir`.
    name: &'static str,
    /// The file under `/etc/pve`.
    file: &'static str,
    /// Top-level options besides `id`, `map`, `description`.
    flags: &'static [&'static str],
    /// Keys of a map entry: (key, required).
    entry: &'static [(&'static str, bool)],
    /// The lock's message (`create hardware mapping failed`).
    what: &'static str,
}

const TYPES: &[MapType] = &[
    MapType {
        name: "pci",
        file: "mapping/pci.cfg",
        flags: &["mdev", "live-migration-capable"],
        entry: &[
            ("node", true),
            ("id", true),
            ("path", true),
            ("subsystem-id", false),
            ("iommugroup", false),
            ("description", false),
        ],
        what: "hardware mapping",
    },
    MapType {
        name: "usb",
        file: "mapping/usb.cfg",
        flags: &[],
        entry: &[
            ("node", true),
            ("id", true),
            ("path", false),
            ("description", false),
        ],
        what: "hardware mapping",
    },
    MapType {
        name: "dir",
        file: "mapping/directory.cfg",
        flags: &[],
        entry: &[("node", true), ("path", true)],
        what: "directory mapping",
    },
];

/// One mapping: its options in file order (`map` repeated).
pub type Entry = Vec<(String, String)>;

/// The sections of a mapping file, in file order.
pub fn parse_mappings(text: &str) -> Vec<(String, Entry)> {
    let mut out: Vec<(String, Entry)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some((_, e)) = out.last_mut() {
                let t = line.trim();
                let (k, v) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
                e.push((k.to_string(), v.trim().to_string()));
            }
        } else {
            out.push((line.trim().to_string(), Vec::new()));
        }
    }
    out
}

fn write_mappings(sections: &[(String, Entry)]) -> String {
    let mut out = String::new();
    for (i, (id, e)) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(id);
        out.push('\n');
        for (k, v) in e.iter().filter(|(k, _)| k == "map") {
            out.push_str(&format!("\t{k} {v}\n"));
        }
        let mut rest: Vec<&(String, String)> = e.iter().filter(|(k, _)| k != "map").collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in rest {
            out.push_str(&format!("\t{k} {v}\n"));
        }
    }
    out
}

fn valid_hex_id(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 9
        && b[4] == b':'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_hexdigit())
}

fn valid_pci_path(v: &str) -> bool {
    v.split(';').all(|p| {
        let (dev, func) = match p.split_once('.') {
            Some((d, f)) => (d, Some(f)),
            None => (p, None),
        };
        let parts: Vec<&str> = dev.split(':').collect();
        let hex = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        parts.len() == 3
            && parts[0].len() >= 4
            && parts[1].len() == 2
            && parts[2].len() == 2
            && parts.iter().all(|s| hex(s))
            && func.is_none_or(|f| f.len() == 1 && hex(f))
    })
}

/// `parse_property_string` with the type's entry format: the message PVE gives, if any.
fn check_entry(t: &MapType, entry: &str) -> Result<BTreeMap<String, String>, String> {
    let parts =
        proxsave_formats::propstring::parse(entry).map_err(|e| format!("invalid format - {e}"))?;
    let mut out = BTreeMap::new();
    for (k, v) in parts {
        let Some(k) = k else {
            return Err(
                "invalid format - value without key, but schema does not define a default key"
                    .to_string(),
            );
        };
        if !t.entry.iter().any(|(n, _)| *n == k) {
            return Err(format!(
                "invalid format - property is not defined in schema and the schema does not allow additional properties\n{k}: property is not defined"
            ));
        }
        if out.contains_key(&k) {
            return Err(format!(
                "invalid format - duplicate key in comma-separated list property: {k}"
            ));
        }
        let bad = match (t.name, k.as_str()) {
            (_, "node") => {
                !v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') || v.is_empty()
            }
            ("pci" | "usb", "id") | ("pci", "subsystem-id") => !valid_hex_id(&v),
            ("pci", "path") => !valid_pci_path(&v),
            ("pci", "iommugroup") => !v.bytes().all(|c| c.is_ascii_digit()) || v.is_empty(),
            ("usb", "path") => {
                let (bus, port) = v.split_once('-').unwrap_or(("", ""));
                bus.is_empty()
                    || !bus.bytes().all(|c| c.is_ascii_digit())
                    || port.is_empty()
                    || !port
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            }
            ("dir", "path") => !v.starts_with('/') || v.contains([';', ',', '=', '(', ')']),
            _ => false,
        };
        if bad {
            return Err(format!(
                "invalid format - {k}: value does not match the regex pattern"
            ));
        }
        out.insert(k, v);
    }
    for (k, required) in t.entry {
        if *required && !out.contains_key(*k) {
            return Err(format!("invalid format - {k}: property is missing"));
        }
    }
    Ok(out)
}

fn mapping_json(t: &MapType, id: Option<&str>, e: &Entry, digest: &str) -> Value {
    let mut v = json!({ "type": t.name, "map": [] });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    for (k, val) in e {
        if k == "map" {
            if let Some(a) = v["map"].as_array_mut() {
                a.push(json!(val));
            }
        } else if t.flags.contains(&k.as_str()) {
            v[k] = json!(val.parse::<i64>().unwrap_or(0));
        } else {
            v[k] = json!(val);
        }
    }
    v["digest"] = json!(digest);
    v
}

impl Ctx {
    /// `/cluster/mapping…`: `seg` is the path after `mapping`.
    pub(super) fn mapping(&mut self, verb: &str, seg: &[&str], rest: &[String]) -> R<Value> {
        if let ("get", []) = (verb, seg) {
            getopt(rest, &[], &[])?;
            return Ok(json!([{"name": "dir"}, {"name": "pci"}, {"name": "usb"}]));
        }
        let Some(t) = seg
            .first()
            .and_then(|n| TYPES.iter().find(|t| t.name == *n))
        else {
            return Err(Fail::NoHandler);
        };
        let text = self.read(t.file);
        let digest = super::digest(&text);
        let mut cfg = parse_mappings(&text);
        match (verb, &seg[1..]) {
            ("get", []) => {
                getopt(rest, &[("check-node", Kind::Str)], &[])?;
                Ok(Value::Array(
                    cfg.iter()
                        .map(|(id, e)| mapping_json(t, Some(id), e, &digest))
                        .collect(),
                ))
            }
            ("get", [id]) => {
                getopt(rest, &[], &[])?;
                match cfg.iter().find(|(i, _)| i == id) {
                    Some((_, e)) => Ok(mapping_json(t, None, e, &digest)),
                    None => die(format!("mapping '{id}' not found\n")),
                }
            }
            ("create", []) => {
                let known = self.known(t, true);
                let opts = getopt(rest, &known, &["map"])?;
                let opts = verify(&opts, &known)?;
                let Some(id) = opts.get("id").and_then(|v| v.last()).cloned() else {
                    return param_err("id", "property is missing");
                };
                if !super::valid_id(&id) {
                    return param_err(
                        "id",
                        format!("invalid format - invalid configuration ID '{id}'"),
                    );
                }
                let entry = self.entry_from(t, &opts, None)?;
                if cfg.iter().any(|(i, _)| *i == id) {
                    return die(format!(
                        "create {} failed: {} ID '{id}' already defined\n",
                        t.what, t.name
                    ));
                }
                cfg.push((id, entry));
                self.write(t.file, &write_mappings(&cfg), 0o640)?;
                Ok(Value::Null)
            }
            ("set", [id]) => {
                let known = self.known(t, false);
                let opts = getopt(rest, &known, &["map"])?;
                let opts = verify(&opts, &known)?;
                if let Some(d) = opts.get("digest").and_then(|v| v.last()) {
                    if *d != digest {
                        return die(format!(
                            "update {} failed: detected modified configuration - file changed by other user? Try again.\n",
                            t.what
                        ));
                    }
                }
                let Some(pos) = cfg.iter().position(|(i, _)| i == id) else {
                    return die(format!(
                        "update {} failed: {} ID '{id}' does not exist\n",
                        t.what, t.name
                    ));
                };
                let current = cfg[pos].1.clone();
                let entry = self.entry_from(t, &opts, Some(&current))?;
                cfg[pos].1 = entry;
                self.write(t.file, &write_mappings(&cfg), 0o640)?;
                Ok(Value::Null)
            }
            ("delete", [id]) => {
                getopt(rest, &[], &[])?;
                cfg.retain(|(i, _)| i != id);
                self.write(t.file, &write_mappings(&cfg), 0o640)?;
                Ok(Value::Null)
            }
            _ => Err(Fail::NoHandler),
        }
    }

    fn known(&self, t: &MapType, create: bool) -> Vec<(&'static str, Kind)> {
        let mut k: Vec<(&'static str, Kind)> = vec![("description", Kind::Str), ("map", Kind::Str)];
        if create {
            k.push(("id", Kind::Str));
        } else {
            k.push(("delete", Kind::Str));
            k.push(("digest", Kind::Str));
        }
        for f in t.flags {
            k.push((f, Kind::Bool));
        }
        k
    }

    /// `check_config` then the section: `map` required at creation, each entry checked;
    /// on update the given options replace the current ones, `delete` removes.
    fn entry_from(
        &self,
        t: &MapType,
        opts: &BTreeMap<String, Vec<String>>,
        current: Option<&Entry>,
    ) -> R<Entry> {
        let mut errors = Vec::new();
        let maps = opts.get("map").cloned().unwrap_or_default();
        if current.is_none() && maps.is_empty() {
            errors.push(("map".to_string(), "property is missing".to_string()));
        }
        let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
        for m in &maps {
            match check_entry(t, m) {
                Ok(parsed) => {
                    if let Some(n) = parsed.get("node") {
                        *nodes.entry(n.clone()).or_default() += 1;
                    }
                }
                Err(e) => errors.push(("map".to_string(), e)),
            }
        }
        if let Some(d) = opts.get("description").and_then(|v| v.last()) {
            if d.len() > 4096 {
                errors.push((
                    "description".to_string(),
                    "value may only be 4096 characters long".to_string(),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Fail::Params(errors));
        }
        if t.name == "dir" {
            if let Some((n, c)) = nodes.iter().find(|(_, c)| **c > 1) {
                return die(format!("Node '{n}' is specified {c} times.\n"));
            }
        }
        let mut e: Entry = current.cloned().unwrap_or_default();
        if let Some(del) = opts.get("delete").and_then(|v| v.last()) {
            for k in del.split([',', ';', ' ']).filter(|k| !k.is_empty()) {
                if k == "map" || !(k == "description" || t.flags.contains(&k)) {
                    return param_err(
                        "delete",
                        format!("invalid format - '{k}' cannot be deleted"),
                    );
                }
                e.retain(|(x, _)| x != k);
            }
        }
        if !maps.is_empty() {
            e.retain(|(k, _)| k != "map");
            for m in maps {
                e.push(("map".to_string(), m));
            }
        }
        for (k, v) in opts {
            if k == "map" || k == "id" || k == "delete" || k == "digest" {
                continue;
            }
            let Some(v) = v.last() else { continue };
            let v = if t.flags.contains(&k.as_str()) {
                schema::check(Kind::Bool, v).unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            };
            e.retain(|(x, _)| x != k);
            e.push((k.clone(), v));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_files_round_trip_in_pve_order() {
        let text = "gpu\n\tmap id=10de:24b0,node=pve01,path=0000:01:00.0\n\tmap id=10de:24b0,node=pve02,path=0000:02:00.0\n\tdescription A4000\n\tmdev 1\n\nnic\n\tmap node=pve01,path=0000:03:00.0,id=8086:1521\n";
        let cfg = parse_mappings(text);
        assert_eq!(cfg.len(), 2);
        assert_eq!(write_mappings(&cfg), text);
    }

    #[test]
    fn entries_are_checked_against_the_type_format() {
        let pci = &TYPES[0];
        assert!(check_entry(pci, "node=pve1,path=0000:01:00.0,id=10de:24b0").is_ok());
        assert!(check_entry(pci, "node=pve1,path=0000:01:00,id=10de:24b0").is_ok());
        let e = check_entry(pci, "node=pve1,id=10de:24b0").unwrap_err();
        assert!(e.contains("path: property is missing"), "{e}");
        assert!(check_entry(pci, "node=pve1,path=01:00.0,id=10de:24b0").is_err());
        let dir = &TYPES[2];
        assert!(check_entry(dir, "node=pve1,path=/srv/share").is_ok());
        assert!(check_entry(dir, "node=pve1,path=relative").is_err());
    }
}
