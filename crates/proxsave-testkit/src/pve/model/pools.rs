//! Resource pools (`/pools`, PVE 8.1+, and the deprecated `/pools/{poolid}`) and
//! `/cluster/resources`, after `PVE/API2/Pool.pm` and `PVE/API2/Cluster.pm`.
//!
//! Pools live where PVE keeps them: the `pool:<poolid>:<comment>:<vmid,list>:<storage,list>:`
//! lines of `user.cfg`. The double rewrites only those lines (sorted by id, members sorted,
//! the comment `encode_text`-escaped) and keeps every other line as it is; when the file has
//! no pool line yet they go after the users, tokens and groups, as PVE's writer orders them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Ctx, Fail, R, die, getopt, param_err, split_list, verify};
use crate::pve::schema::Kind;

/// One pool of `user.cfg`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// Decoded comment.
    pub comment: String,
    /// Guest ids.
    pub vms: BTreeSet<u32>,
    /// Storage ids.
    pub storage: BTreeSet<String>,
}

/// `encode_text`: `%XX` for `:`, `%`, control and non-ASCII bytes.
fn encode_text(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' && b != b':' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_text(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `PVE::AccessControl::verify_poolname`.
fn verify_poolname(id: &str) -> Result<(), String> {
    if id.split('/').count() > 3 {
        return Err(format!(
            "pool name '{id}' nested too deeply (max levels = 3)"
        ));
    }
    let ok = !id.is_empty()
        && id.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!("pool name '{id}' contains invalid characters"))
    }
}

/// The pools of `user.cfg` text, and which pool each guest is in (the first line naming it
/// wins, as PVE's parser keeps it).
pub fn parse_pools(text: &str) -> (BTreeMap<String, Pool>, BTreeMap<u32, String>) {
    let mut pools = BTreeMap::new();
    let mut owner = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().split(':').map(str::trim).collect();
        if fields.first() != Some(&"pool")
            || fields.len() < 2
            || verify_poolname(fields[1]).is_err()
        {
            continue;
        }
        let id = fields[1].to_string();
        let mut pool = Pool {
            comment: decode_text(fields.get(2).copied().unwrap_or("")),
            ..Pool::default()
        };
        for v in split_list(fields.get(3).copied().unwrap_or("")) {
            if let Ok(n) = v.parse::<u32>() {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry(n) {
                    e.insert(id.clone());
                    pool.vms.insert(n);
                }
            }
        }
        for s in split_list(fields.get(4).copied().unwrap_or("")) {
            pool.storage.insert(s);
        }
        pools.insert(id, pool);
    }
    (pools, owner)
}

fn pool_line(id: &str, p: &Pool) -> String {
    let vms: Vec<String> = p.vms.iter().map(u32::to_string).collect();
    let storage: Vec<&str> = p.storage.iter().map(String::as_str).collect();
    format!(
        "pool:{id}:{}:{}:{}:",
        encode_text(&p.comment),
        vms.join(","),
        storage.join(",")
    )
}

/// `user.cfg` with its pool lines replaced by `pools`.
pub(super) fn write_pools(text: &str, pools: &BTreeMap<String, Pool>) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_pool = |l: &str| l.trim_start().starts_with("pool:");
    let new: Vec<String> = pools.iter().map(|(id, p)| pool_line(id, p)).collect();
    let mut out: Vec<String> = Vec::new();
    if let Some(first) = lines.iter().position(|l| is_pool(l)) {
        for (i, l) in lines.iter().enumerate() {
            if i == first {
                out.extend(new.iter().cloned());
            }
            if !is_pool(l) {
                out.push((*l).to_string());
            }
        }
    } else {
        let after = lines
            .iter()
            .rposition(|l| {
                let t = l.trim_start();
                t.starts_with("user:") || t.starts_with("token:") || t.starts_with("group:")
            })
            .map_or(0, |i| i + 1);
        out.extend(lines[..after].iter().map(|l| (*l).to_string()));
        if !new.is_empty() {
            if after > 0 {
                out.push(String::new());
            }
            out.extend(new.iter().cloned());
            if lines.get(after).is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
        }
        out.extend(lines[after..].iter().map(|l| (*l).to_string()));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

const UPDATE: &[(&str, Kind)] = &[
    ("poolid", Kind::Str),
    ("comment", Kind::Str),
    ("vms", Kind::Str),
    ("storage", Kind::Str),
    ("allow-move", Kind::Bool),
    ("delete", Kind::Bool),
];

impl Ctx {
    fn pools_now(&self) -> (BTreeMap<String, Pool>, BTreeMap<u32, String>) {
        parse_pools(&self.read("user.cfg"))
    }

    /// The pool each guest is in (`/cluster/resources` shows it as `pool`).
    pub(super) fn pool_owners(&self) -> BTreeMap<u32, String> {
        self.pools_now().1
    }

    fn save_pools(&self, pools: &BTreeMap<String, Pool>) -> R<()> {
        let text = write_pools(&self.read("user.cfg"), pools);
        self.write("user.cfg", &text, 0o640)
    }

    /// `/pools…`: `seg` is the path after `pools`.
    pub(super) fn pools(&mut self, verb: &str, seg: &[&str], rest: &[String]) -> R<Value> {
        match (verb, seg) {
            ("get", []) => {
                let opts = getopt(
                    rest,
                    &[
                        ("poolid", Kind::Str),
                        ("type", Kind::Enum(&["qemu", "lxc", "storage"])),
                    ],
                    &[],
                )?;
                let opts = verify(&opts, &[("type", Kind::Enum(&["qemu", "lxc", "storage"]))])?;
                let (pools, _) = self.pools_now();
                match opts.get("poolid").and_then(|v| v.last()) {
                    None => {
                        if opts.contains_key("type") {
                            return param_err("type", "argument requires 'poolid'");
                        }
                        Ok(Value::Array(
                            pools
                                .iter()
                                .map(|(id, p)| {
                                    let mut v = json!({ "poolid": id });
                                    if !p.comment.is_empty() {
                                        v["comment"] = json!(p.comment);
                                    }
                                    v
                                })
                                .collect(),
                        ))
                    }
                    Some(id) => {
                        let ty = opts.get("type").and_then(|v| v.last()).cloned();
                        let v = self.pool_json(&pools, id, ty.as_deref())?;
                        let mut v = v;
                        v["poolid"] = json!(id);
                        Ok(Value::Array(vec![v]))
                    }
                }
            }
            ("get", [id]) => {
                let opts = getopt(
                    rest,
                    &[("type", Kind::Enum(&["qemu", "lxc", "storage"]))],
                    &[],
                )?;
                let ty = one_of(&opts, "type");
                let (pools, _) = self.pools_now();
                self.pool_json(&pools, id, ty.as_deref())
            }
            ("create", []) => {
                let opts = getopt(rest, &[("poolid", Kind::Str), ("comment", Kind::Str)], &[])?;
                let Some(id) = one_of(&opts, "poolid") else {
                    return param_err("poolid", "property is missing");
                };
                if let Err(m) = verify_poolname(&id) {
                    return param_err("poolid", format!("invalid format - {m}"));
                }
                let (mut pools, _) = self.pools_now();
                if pools.contains_key(&id) {
                    return die(format!("create pool failed: pool '{id}' already exists\n"));
                }
                if let Some((parent, _)) = id.rsplit_once('/') {
                    if !pools.contains_key(parent) {
                        return die(format!(
                            "create pool failed: parent '{parent}' does not exist\n"
                        ));
                    }
                }
                pools.insert(
                    id,
                    Pool {
                        comment: one_of(&opts, "comment").unwrap_or_default(),
                        ..Pool::default()
                    },
                );
                self.save_pools(&pools)?;
                Ok(Value::Null)
            }
            ("set", []) => {
                let opts = getopt(rest, UPDATE, &[])?;
                let opts = verify(&opts, UPDATE)?;
                let Some(id) = opts.get("poolid").and_then(|v| v.last()).cloned() else {
                    return param_err("poolid", "property is missing");
                };
                self.pool_update(&id, &opts)
            }
            ("set", [id]) => {
                let opts = getopt(rest, &UPDATE[1..], &[])?;
                let opts = verify(&opts, &UPDATE[1..])?;
                self.pool_update(id, &opts)
            }
            ("delete", []) | ("delete", [_]) => {
                let opts = getopt(rest, &[("poolid", Kind::Str)], &[])?;
                let id = match seg {
                    [id] => (*id).to_string(),
                    _ => match one_of(&opts, "poolid") {
                        Some(id) => id,
                        None => return param_err("poolid", "property is missing"),
                    },
                };
                let (mut pools, _) = self.pools_now();
                let Some(p) = pools.get(&id) else {
                    return die(format!("delete pool failed: pool '{id}' does not exist\n"));
                };
                let guests = self.vmlist();
                if let Some(v) = p
                    .vms
                    .iter()
                    .find(|v| guests.iter().any(|l| l.vmid == u64::from(**v)))
                {
                    return die(format!(
                        "delete pool failed: pool '{id}' is not empty (contains VM {v})\n"
                    ));
                }
                let storage = self.storage_cfg();
                if let Some(s) = p.storage.iter().find(|s| storage.find_id(s).is_some()) {
                    return die(format!(
                        "delete pool failed: pool '{id}' is not empty (contains storage '{s}')\n"
                    ));
                }
                pools.remove(&id);
                self.save_pools(&pools)?;
                Ok(Value::Null)
            }
            _ => Err(Fail::NoHandler),
        }
    }

    fn pool_json(&self, pools: &BTreeMap<String, Pool>, id: &str, ty: Option<&str>) -> R<Value> {
        let Some(p) = pools.get(id) else {
            return die(format!("pool '{id}' does not exist\n"));
        };
        let st = self.state();
        let guests = self.vmlist();
        let mut members = Vec::new();
        for vmid in &p.vms {
            let Some(g) = guests.iter().find(|l| l.vmid == u64::from(*vmid)) else {
                continue;
            };
            if ty.is_some_and(|t| t != g.kind) {
                continue;
            }
            members.push(json!({
                "id": format!("{}/{vmid}", g.kind), "type": g.kind, "vmid": vmid,
                "node": g.node, "status": "stopped",
            }));
        }
        if ty.is_none_or(|t| t == "storage") {
            let cfg = self.storage_cfg();
            for s in &p.storage {
                if cfg.find_id(s).is_none() {
                    continue;
                }
                members.push(json!({
                    "id": format!("storage/{}/{s}", st.node), "type": "storage",
                    "storage": s, "node": st.node, "status": "available",
                }));
            }
        }
        let mut v = json!({ "members": members });
        if !p.comment.is_empty() {
            v["comment"] = json!(p.comment);
        }
        Ok(v)
    }

    fn pool_update(&mut self, id: &str, opts: &BTreeMap<String, Vec<String>>) -> R<Value> {
        let fail = |m: String| die(format!("update pools failed: {m}\n"));
        if let Err(m) = verify_poolname(id) {
            return param_err("poolid", format!("invalid format - {m}"));
        }
        let mut vms = Vec::new();
        if let Some(list) = one_of(opts, "vms") {
            for v in split_list(&list) {
                match v.parse::<u32>() {
                    Ok(n) if (100..=999_999_999).contains(&n) => vms.push(n),
                    _ => {
                        return param_err(
                            "vms",
                            format!("invalid format - value does not look like a valid VM ID: {v}"),
                        );
                    }
                }
            }
        }
        let (mut pools, mut owner) = self.pools_now();
        if !pools.contains_key(id) {
            return fail(format!("pool '{id}' does not exist"));
        }
        let delete = one_of(opts, "delete").as_deref() == Some("1");
        let allow_move = one_of(opts, "allow-move").as_deref() == Some("1");
        if let Some(c) = one_of(opts, "comment") {
            if let Some(p) = pools.get_mut(id) {
                p.comment = c;
            }
        }
        for n in vms {
            let member = pools.get(id).is_some_and(|p| p.vms.contains(&n));
            if delete {
                if !member {
                    return fail(format!("VM {n} is not a pool member"));
                }
                if let Some(p) = pools.get_mut(id) {
                    p.vms.remove(&n);
                }
                owner.remove(&n);
                continue;
            }
            if member {
                return fail(format!("VM {n} is already a pool member"));
            }
            if let Some(other) = owner.get(&n).cloned() {
                if !allow_move {
                    return fail(format!(
                        "VM {n} belongs already to pool '{other}' and 'allow-move' is not set"
                    ));
                }
                if let Some(p) = pools.get_mut(&other) {
                    p.vms.remove(&n);
                }
            }
            if let Some(p) = pools.get_mut(id) {
                p.vms.insert(n);
            }
            owner.insert(n, id.to_string());
        }
        if let Some(list) = one_of(opts, "storage") {
            for s in split_list(&list) {
                let member = pools.get(id).is_some_and(|p| p.storage.contains(&s));
                if delete {
                    if !member {
                        return fail(format!("Storage '{s}' is not a pool member"));
                    }
                    if let Some(p) = pools.get_mut(id) {
                        p.storage.remove(&s);
                    }
                } else {
                    if member {
                        return fail(format!("Storage '{s}' is already a pool member"));
                    }
                    if let Some(p) = pools.get_mut(id) {
                        p.storage.insert(s);
                    }
                }
            }
        }
        self.save_pools(&pools)?;
        Ok(Value::Null)
    }
}

fn one_of(opts: &BTreeMap<String, Vec<String>>, key: &str) -> Option<String> {
    opts.get(key).and_then(|v| v.last().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_lines_are_replaced_in_place_and_other_lines_kept() {
        let text = "user:root@pam:1:0:::root@example.com:::\n\ngroup:admins:root@pam::\n\npool:old:Old::local:\n\nrole:R:VM.Audit:\n";
        let (mut pools, _) = parse_pools(text);
        pools.insert(
            "dev".into(),
            Pool {
                comment: "Dev: pool".into(),
                vms: [101, 100].into_iter().collect(),
                storage: BTreeSet::new(),
            },
        );
        assert_eq!(
            write_pools(text, &pools),
            "user:root@pam:1:0:::root@example.com:::\n\ngroup:admins:root@pam::\n\npool:dev:Dev%3A pool:100,101::\npool:old:Old::local:\n\nrole:R:VM.Audit:\n"
        );
        let bare = "user:root@pam:1:0:::::::\n\nacl:1:/:root@pam:Administrator:\n";
        assert_eq!(
            write_pools(bare, &pools),
            "user:root@pam:1:0:::::::\n\npool:dev:Dev%3A pool:100,101::\npool:old:Old::local:\n\nacl:1:/:root@pam:Administrator:\n"
        );
    }
}
