//! `pve-safe-mappings`: SAFE apply of the backup's resource mappings (PCI, USB, directory)
//! through the API.
//!
//! Sources, per type (read through [`Applier::reads_exported`]):
//! 1. `var/lib/proxsave-info/commands/pve/mapping_{pci,usb,dir}.json` (category
//!    `proxsave_info`): the output of `pvesh get /cluster/mapping/<type>` that the backup
//!    collects on a cluster node — a list, or `{"data": [...]}`; `map` entries as property
//!    strings (or objects).
//! 2. When that file is absent (standalone nodes): the exported `etc/pve/mapping/pci.cfg`,
//!    `usb.cfg`, `directory.cfg` (category `pve_config_export`), read in PVE's grammar (the id
//!    alone on its header line, then `\tkey value` lines, `map` repeated).
//!
//! Kept: `description`, every `map` entry as the backup has it, and for PCI `mdev` and
//! `live-migration-capable`.
//!
//! Per type, `pvesh get /cluster/mapping/<type>` once; a mapping that is missing is created
//! (`pvesh create /cluster/mapping/<type> --id=<id> [--description=…] [--mdev=…]
//! [--live-migration-capable=…] --map=<entry> …`); one that exists is merged: its map becomes
//! the union of this cluster's entries and the backup's (an entry is the same when its
//! `key=value` parts are, in any order), sent with one `pvesh set
//! /cluster/mapping/<type>/<id> --map=…` (PVE replaces the whole list). This cluster's
//! description and flags stay; the backup's fill in only what is missing, a difference is
//! reported. Existence comes from the list the API returns, not from error wording (upstream
//! looked for `id` in the single-item `GET`, which PVE never returns, so its merge never ran).
//!
//! Question: `pve.safe.mappings` (`yes`/`no`, default `no` after a countdown).

use std::collections::{BTreeMap, BTreeSet};

use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, ChangeKind, Outcome,
    PlanContext, PlannedChange, QuestionSpec, Stage, Status,
};
use proxsave_restore::prompt::Level;
use serde_json::{Value, json};

use super::api::{Gate, Tally, gate, gated_outcome, json_text, list_ids, staged_text, yes_no};
use super::cluster_files::APPLY_COUNTDOWN;
use super::safe_guests::is_safe_run;
use crate::pvesh::{Call, Method, Param, Pvesh, PveshError};

/// The category the `.cfg` files come from (and the outcome's category).
pub const CATEGORY: &str = "pve_config_export";
/// The category of the collected `mapping_*.json`.
pub const INFO_CATEGORY: &str = "proxsave_info";

/// `pve.safe.mappings`.
pub const Q_MAPPINGS: QuestionSpec = QuestionSpec {
    id: "pve.safe.mappings",
    prompt: "Re-create the backup's resource mappings (PCI, USB, directory) through the PVE API, merging the entries of mappings that exist?",
    choices: &["yes", "no"],
};

/// A mapping type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapKind {
    /// `/cluster/mapping/pci`.
    Pci,
    /// `/cluster/mapping/usb`.
    Usb,
    /// `/cluster/mapping/dir` (PVE 8.4+).
    Dir,
}

impl MapKind {
    /// Every type, in the order they are applied.
    pub const ALL: [MapKind; 3] = [MapKind::Pci, MapKind::Usb, MapKind::Dir];

    /// `pci`, `usb`, `dir`.
    pub fn name(self) -> &'static str {
        match self {
            MapKind::Pci => "pci",
            MapKind::Usb => "usb",
            MapKind::Dir => "dir",
        }
    }

    /// The collected JSON in the backup.
    pub fn json_path(self) -> String {
        format!(
            "var/lib/proxsave-info/commands/pve/mapping_{}.json",
            self.name()
        )
    }

    /// The exported config file.
    pub fn cfg_path(self) -> &'static str {
        match self {
            MapKind::Pci => "etc/pve/mapping/pci.cfg",
            MapKind::Usb => "etc/pve/mapping/usb.cfg",
            MapKind::Dir => "etc/pve/mapping/directory.cfg",
        }
    }

    /// The API path of the type's list.
    pub fn api(self) -> String {
        format!("/cluster/mapping/{}", self.name())
    }

    /// Top-level boolean options besides `description` and `map`.
    fn flags(self) -> &'static [&'static str] {
        match self {
            MapKind::Pci => &["mdev", "live-migration-capable"],
            _ => &[],
        }
    }
}

/// A mapping of the backup, or of this cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingSpec {
    /// The logical id.
    pub id: String,
    /// Description (empty: none).
    pub description: String,
    /// `mdev`, `live-migration-capable` as `1`/`0` (PCI only).
    pub flags: BTreeMap<String, String>,
    /// The map entries (property strings), in order, without duplicates.
    pub map: Vec<String>,
}

/// An entry's parts, to compare entries whatever their key order.
pub fn entry_parts(e: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in e.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => out.insert(k.trim().to_string(), v.trim().to_string()),
            None => out.insert(String::new(), part.to_string()),
        };
    }
    out
}

fn push_entry(map: &mut Vec<String>, e: String) {
    let parts = entry_parts(&e);
    if !parts.is_empty() && !map.iter().any(|m| entry_parts(m) == parts) {
        map.push(e);
    }
}

/// An entry given as an object: `node` first, then `path`, `id`, then the rest sorted.
fn entry_from_object(o: &serde_json::Map<String, Value>) -> String {
    let rank = |k: &str| match k {
        "node" => 0,
        "path" => 1,
        "id" => 2,
        _ => 3,
    };
    let mut keys: Vec<&String> = o.keys().collect();
    keys.sort_by(|a, b| (rank(a), a.as_str()).cmp(&(rank(b), b.as_str())));
    keys.iter()
        .filter_map(|k| {
            let v = json_text(&o[k.as_str()]);
            (!v.is_empty()).then(|| format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn flag_value(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        Value::Number(n) => Some(if n.as_i64() == Some(0) { "0" } else { "1" }.into()),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "yes" | "on" | "true" => Some("1".into()),
            "0" | "no" | "off" | "false" => Some("0".into()),
            _ => None,
        },
        _ => None,
    }
}

/// `pve-configid`: `[a-z][a-z0-9_-]+`, case-insensitive.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
}

/// The mappings of a `pvesh get /cluster/mapping/<type>` answer (the backup's JSON or this
/// cluster's list), sorted by id, and the problems, each naming `source`.
pub fn from_json(kind: MapKind, v: &Value, source: &str) -> (Vec<MappingSpec>, Vec<String>) {
    let items = match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match o.get("data") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut notes = Vec::new();
    if !v.is_array() && !v.get("data").is_some_and(Value::is_array) {
        notes.push(format!("{source}: not a list of mappings (skipped)"));
    }
    let mut out: BTreeMap<String, MappingSpec> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = item.get("id").map(json_text).filter(|s| !s.is_empty()) else {
            notes.push(format!("{source}: item {} has no id (skipped)", i + 1));
            continue;
        };
        if !valid_id(&id) {
            notes.push(format!(
                "{source}: mapping id `{}` is not valid (skipped)",
                id.escape_debug()
            ));
            continue;
        }
        let mut spec = MappingSpec {
            id: id.clone(),
            description: item.get("description").map(json_text).unwrap_or_default(),
            ..MappingSpec::default()
        };
        for f in kind.flags() {
            if let Some(v) = item.get(*f).and_then(flag_value) {
                spec.flags.insert((*f).to_string(), v);
            }
        }
        let entries: Vec<Value> = match item.get("map") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::String(s)) => vec![Value::String(s.clone())],
            _ => Vec::new(),
        };
        for e in entries {
            match e {
                Value::String(s) => push_entry(&mut spec.map, s.trim().to_string()),
                Value::Object(o) => push_entry(&mut spec.map, entry_from_object(&o)),
                _ => notes.push(format!(
                    "{source}: mapping {id}: a map entry is not a string (skipped)"
                )),
            }
        }
        out.insert(id, spec);
    }
    (out.into_values().collect(), notes)
}

/// The mappings of a `mapping/*.cfg` file, sorted by id, and the problems (`source line N`).
pub fn from_cfg(kind: MapKind, text: &str, source: &str) -> (Vec<MappingSpec>, Vec<String>) {
    let mut out: BTreeMap<String, MappingSpec> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let id = line.trim();
            if id.contains(char::is_whitespace) || !valid_id(id) {
                notes.push(format!(
                    "{source} line {n}: `{}` is not a mapping id (section skipped)",
                    id.escape_debug()
                ));
                current = None;
                continue;
            }
            out.insert(
                id.to_string(),
                MappingSpec {
                    id: id.to_string(),
                    ..MappingSpec::default()
                },
            );
            current = Some(id.to_string());
            continue;
        }
        let Some(spec) = current.as_ref().and_then(|c| out.get_mut(c)) else {
            continue;
        };
        let t = line.trim();
        let (k, v) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let v = v.trim();
        match k {
            "map" => push_entry(&mut spec.map, v.to_string()),
            "description" => spec.description = v.to_string(),
            f if kind.flags().contains(&f) => match flag_value(&Value::String(v.to_string())) {
                Some(b) => {
                    spec.flags.insert(f.to_string(), b);
                }
                None => notes.push(format!(
                    "{source} line {n}: `{f}` is not a boolean (ignored)"
                )),
            },
            other => notes.push(format!(
                "{source} line {n}: unknown option `{}` (ignored)",
                other.escape_debug()
            )),
        }
    }
    (out.into_values().collect(), notes)
}

/// The `create` call of a mapping missing on this cluster.
pub fn create_call(kind: MapKind, spec: &MappingSpec) -> Call {
    let mut params = vec![Param::new("id", spec.id.clone())];
    if !spec.description.is_empty() {
        params.push(Param::text("description", spec.description.clone()));
    }
    for (k, v) in &spec.flags {
        params.push(Param::new(k.clone(), v.clone()));
    }
    for e in &spec.map {
        params.push(Param::new("map", e.clone()));
    }
    Call::new(Method::Create, kind.api(), params)
}

/// The merge of `spec` into the existing `here`: the `set` call (`None`: nothing to add) and
/// the notes (what differs and stays as this cluster has it).
pub fn merge_call(
    kind: MapKind,
    spec: &MappingSpec,
    here: &MappingSpec,
) -> (Option<Call>, Vec<String>) {
    let object = format!("mapping {}/{}", kind.name(), spec.id);
    let mut notes = Vec::new();
    let mut union = here.map.clone();
    for e in &spec.map {
        push_entry(&mut union, e.clone());
    }
    let added = union.len() - here.map.len();
    let mut params = Vec::new();
    if !spec.description.is_empty() {
        if here.description.is_empty() {
            params.push(Param::text("description", spec.description.clone()));
        } else if here.description != spec.description {
            notes.push(format!(
                "{object}: description differs (this cluster `{}`, the backup `{}`): this cluster's kept",
                here.description.escape_debug(),
                spec.description.escape_debug()
            ));
        }
    }
    for (k, v) in &spec.flags {
        match here.flags.get(k) {
            None if v == "1" => params.push(Param::new(k.clone(), v.clone())),
            Some(h) if h != v => notes.push(format!(
                "{object}: `{k}` is {h} on this cluster, {v} in the backup: this cluster's kept"
            )),
            _ => {}
        }
    }
    if added > 0 {
        for e in &union {
            params.push(Param::new("map", e.clone()));
        }
    }
    if params.is_empty() {
        notes.push(format!("{object}: already has every entry of the backup"));
        return (None, notes);
    }
    if added > 0 {
        notes.push(format!(
            "{object}: merged, {added} entry(ies) of the backup added to the {} of this cluster",
            here.map.len()
        ));
    }
    (
        Some(Call::new(
            Method::Set,
            format!("{}/{}", kind.api(), spec.id),
            params,
        )),
        notes,
    )
}

/// The backup's mappings of every type (JSON first, the `.cfg` when it is absent), and the
/// problems. `Err`: a file cannot be read.
type Specs = Vec<(MapKind, Vec<MappingSpec>)>;

/// `json` holds the backup's JSON files, `pve` its `/etc/pve` (the stage, or the tree rebuilt
/// from `config.db`).
fn read(json: &Stage, pve: &Stage) -> Result<(Specs, Vec<String>), String> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for kind in MapKind::ALL {
        let json_path = kind.json_path();
        let (specs, n) = if let Some(text) = staged_text(json, &json_path)? {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => from_json(kind, &v, &format!("/{json_path}")),
                Err(e) => (
                    Vec::new(),
                    vec![format!("/{json_path}: not JSON ({e}); skipped")],
                ),
            }
        } else if let Some(text) = staged_text(pve, kind.cfg_path())? {
            from_cfg(kind, &text, &format!("/{}", kind.cfg_path()))
        } else {
            continue;
        };
        notes.extend(n);
        if !specs.is_empty() {
            out.push((kind, specs));
        }
    }
    Ok((out, notes))
}

fn describe(all: &[(MapKind, Vec<MappingSpec>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, specs) in all {
        for s in specs {
            let mut line = format!("mapping {}/{}", kind.name(), s.id);
            if !s.description.is_empty() {
                line.push_str(&format!(" ({})", s.description.escape_debug()));
            }
            line.push_str(&format!(": {} entry(ies)", s.map.len()));
            out.push(line);
        }
    }
    out
}

fn spec_text(s: &MappingSpec) -> String {
    let mut t = String::new();
    if !s.description.is_empty() {
        t.push_str(&format!("description {}\n", s.description.escape_debug()));
    }
    for (k, v) in &s.flags {
        t.push_str(&format!("{k} {v}\n"));
    }
    for e in &s.map {
        t.push_str(&format!("map {e}\n"));
    }
    t
}

fn ask(details: Vec<String>) -> Ask {
    Ask::new(Q_MAPPINGS, Some("no"))
        .countdown(APPLY_COUNTDOWN)
        .with_details(details)
}

/// The `pve-safe-mappings` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SafeMappings;

inventory::submit! { ApplierRegistration(&SafeMappings) }

impl Applier for SafeMappings {
    fn name(&self) -> &'static str {
        "pve-safe-mappings"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY, INFO_CATEGORY]
    }

    /// After the storages (600), the jobs and notifications, before the SAFE guests: a guest's
    /// `hostpci`/`usb`/`virtiofs` may name a mapping.
    fn order(&self) -> u16 {
        630
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_MAPPINGS]
    }

    fn reads_exported(&self) -> bool {
        true
    }

    fn also_reads(&self) -> &'static [&'static str] {
        crate::safe_source::ALSO_READS
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        // Only in a SAFE cluster restore (RECOVERY brings /etc/pve back with the database).
        if !is_safe_run(ctx.plan) {
            return Ok(ApplierPlan::default());
        }
        let yes = (ctx.preset)(Q_MAPPINGS.id)
            .map(|a| yes_no(&Q_MAPPINGS, &a))
            .transpose()?;
        let mut plan = ApplierPlan::default();
        let source = crate::safe_source::open(ctx.stage)?;
        plan.actions.extend(source.note());
        let (all, notes) = match read(ctx.stage, source.stage()) {
            Ok(x) => x,
            Err(e) => {
                plan.actions.push(e);
                return Ok(plan);
            }
        };
        if all.is_empty() && notes.is_empty() {
            return Ok(plan);
        }
        plan.actions.extend(notes.iter().cloned());
        let g = gate(ctx.plan, ctx.host);
        match &g {
            Gate::Recovery => plan.actions.push(format!(
                "leave the resource mappings: {}",
                super::api::RECOVERY_REASON
            )),
            Gate::NoPvesh(why) => plan
                .actions
                .push(format!("skip the resource mappings: {why}")),
            Gate::Open | Gate::Deferred if !all.is_empty() => {
                if g == Gate::Open {
                    plan.questions.push(ask(describe(&all)));
                }
                if yes == Some(false) {
                    plan.actions.push(format!(
                        "leave the resource mappings (answer `no` to {})",
                        Q_MAPPINGS.id
                    ));
                } else {
                    for (kind, specs) in &all {
                        for s in specs {
                            let c = create_call(*kind, s);
                            plan.actions.push(format!(
                                "mapping {}/{}: {c} (or a `set` merging its entries when it exists){}",
                                kind.name(),
                                s.id,
                                if g == Gate::Deferred { " (deferred)" } else { "" }
                            ));
                            plan.changes.push(PlannedChange::call(
                                &format!("{}/{}", kind.api(), s.id),
                                ChangeKind::Create,
                                c.to_string(),
                                None,
                                Some(spec_text(s)),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        plan.details = json!({
            "mappings": all.iter().flat_map(|(k, specs)| specs.iter().map(move |s| json!({
                "type": k.name(), "id": s.id, "description": s.description,
                "flags": s.flags, "map": s.map,
            }))).collect::<Vec<_>>(),
            "bad_input": notes,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        if !is_safe_run(ctx.plan) {
            return Ok(Vec::new());
        }
        let source = crate::safe_source::open(ctx.stage)?;
        let category = source.category();
        let (all, notes) = match read(ctx.stage, source.stage()) {
            Ok(x) => x,
            Err(e) => {
                return Ok(vec![Outcome::new(
                    category,
                    Status::Failed { error: e },
                    "resource mappings",
                )]);
            }
        };
        if all.is_empty() {
            if notes.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![Outcome::new(
                category,
                Status::Skipped {
                    reason: "no usable resource mapping in the backup".into(),
                },
                notes.join("\n"),
            )]);
        }
        let mut tally = Tally::default();
        tally.notes.extend(notes.iter().cloned());
        let g = gate(ctx.plan, ctx.host);
        if g != Gate::Open {
            let calls: Vec<String> = all
                .iter()
                .flat_map(|(k, specs)| {
                    specs
                        .iter()
                        .map(|s| format!("{} (or `set`)", create_call(*k, s)))
                })
                .collect();
            if g == Gate::Deferred {
                for c in &calls {
                    ctx.host.defer_note(c.clone());
                }
            }
            return Ok(vec![gated_outcome(
                category,
                &g,
                &calls,
                "the resource mappings",
            )]);
        }
        let answer = ctx.prompter.ask(&ask(describe(&all)))?;
        if !yes_no(&Q_MAPPINGS, &answer)? {
            return Ok(vec![Outcome::new(
                category,
                Status::Skipped {
                    reason: format!("resource mappings: answer `no` to {}", Q_MAPPINGS.id),
                },
                "",
            )]);
        }
        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        // The cluster's nodes: an entry for another node (the backup's old name) is kept, and
        // listed as work to do (the guests using the mapping find no device on this cluster).
        let nodes: Option<BTreeSet<String>> = pvesh
            .get("/nodes")
            .ok()
            .map(|v| list_ids(&v, "node").into_iter().collect());
        if let Some(nodes) = &nodes {
            tally.left.extend(foreign_entries(&all, nodes));
        }
        for (kind, specs) in &all {
            if ctx.cancel.is_cancelled() {
                return Err(ApplyError::Prompt(
                    proxsave_restore::prompt::PromptError::Aborted,
                ));
            }
            if let Err(m) = apply_kind(&pvesh, *kind, specs, &mut tally) {
                return Ok(vec![Outcome::new(
                    category,
                    Status::Skipped {
                        reason: format!(
                            "`pvesh` cannot be run ({m}): the resource mappings were not applied"
                        ),
                    },
                    "",
                )]);
            }
        }
        for n in notes.iter().chain(&tally.failed).chain(&tally.left) {
            ctx.prompter.say(Level::Warning, &format!("mappings: {n}"));
        }
        Ok(vec![tally.outcome(category, "resource mappings")])
    }
}

/// The backup's map entries naming a node that is not one of `nodes`, one line per mapping.
pub fn foreign_entries(
    all: &[(MapKind, Vec<MappingSpec>)],
    nodes: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, specs) in all {
        for s in specs {
            let foreign: BTreeSet<String> = s
                .map
                .iter()
                .filter_map(|e| entry_parts(e).remove("node"))
                .filter(|n| !nodes.contains(n))
                .collect();
            if foreign.is_empty() {
                continue;
            }
            let names: Vec<String> = foreign
                .iter()
                .map(|n| n.escape_debug().to_string())
                .collect();
            out.push(format!(
                "mapping {}/{}: the entries for node(s) {} are kept, but no node of this cluster has that name: add an entry for this cluster's device (Datacenter > Resource Mappings)",
                kind.name(),
                s.id,
                names.join(", ")
            ));
        }
    }
    out
}

/// One type: read this cluster's list once, then create or merge each mapping.
/// `Err(message)`: `pvesh` cannot be run at all.
fn apply_kind(
    pvesh: &Pvesh<'_>,
    kind: MapKind,
    specs: &[MappingSpec],
    tally: &mut Tally,
) -> Result<(), String> {
    let here: BTreeMap<String, MappingSpec> = match pvesh.get(&kind.api()) {
        Ok(v) => from_json(kind, &v, &kind.api())
            .0
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect(),
        Err(PveshError::Missing { message, .. }) => return Err(message),
        Err(e) => {
            let why = if e.message().contains("handler defined for") {
                format!(
                    "this node's PVE has no {} (directory mappings need PVE 8.4 or later)",
                    kind.api()
                )
            } else {
                format!("reading this cluster's mappings failed: {e}")
            };
            let ids: BTreeSet<&str> = specs.iter().map(|s| s.id.as_str()).collect();
            for id in ids {
                tally
                    .failed
                    .push(format!("mapping {}/{id}: {why}", kind.name()));
            }
            return Ok(());
        }
    };
    for s in specs {
        let object = format!("mapping {}/{}", kind.name(), s.id);
        if s.map.is_empty() {
            tally
                .left
                .push(format!("{object}: no map entry in the backup (not sent)"));
            continue;
        }
        let call = match here.get(&s.id) {
            None => Some(create_call(kind, s)),
            Some(h) => {
                let (c, notes) = merge_call(kind, s, h);
                tally.notes.extend(notes);
                c
            }
        };
        if let Some(call) = call {
            tally.call(pvesh, &object, &call)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collected_json_keeps_description_mdev_and_live_migration() {
        let v: Value = serde_json::from_str(
            r#"{"data":[{"id":"gpu","description":"A4000","mdev":1,"live-migration-capable":true,
                "map":["node=pve01,path=0000:01:00.0,id=10de:24b0","path=0000:01:00.0,id=10de:24b0,node=pve01",
                       {"node":"pve02","id":"10de:24b0","path":"0000:02:00.0"}]},
               {"id":"bad id","map":[]},{"map":[]}]}"#,
        )
        .unwrap();
        let (specs, notes) = from_json(MapKind::Pci, &v, "/x.json");
        assert_eq!(specs.len(), 1);
        let s = &specs[0];
        assert_eq!(s.description, "A4000");
        assert_eq!(s.flags["mdev"], "1");
        assert_eq!(s.flags["live-migration-capable"], "1");
        assert_eq!(
            s.map,
            [
                "node=pve01,path=0000:01:00.0,id=10de:24b0",
                "node=pve02,path=0000:02:00.0,id=10de:24b0"
            ]
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(
            create_call(MapKind::Pci, s).to_string(),
            "pvesh create /cluster/mapping/pci --id=gpu --description=A4000 --live-migration-capable=1 --mdev=1 --map=node=pve01,path=0000:01:00.0,id=10de:24b0 --map=node=pve02,path=0000:02:00.0,id=10de:24b0"
        );
    }

    #[test]
    fn the_exported_cfg_is_read_in_pve_grammar() {
        let text = "share\n\tmap node=pve1,path=/srv/share\n\tdescription Shared data\n\tbogus 1\n\nbad id\n\tmap node=x,path=/y\n";
        let (specs, notes) = from_cfg(MapKind::Dir, text, "/etc/pve/mapping/directory.cfg");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].description, "Shared data");
        assert_eq!(specs[0].map, ["node=pve1,path=/srv/share"]);
        assert!(
            notes[0].contains("line 4") && notes[0].contains("bogus"),
            "{notes:?}"
        );
        assert!(notes[1].contains("line 6"), "{notes:?}");
    }

    #[test]
    fn an_existing_mapping_gets_the_union_of_its_entries() {
        let backup = MappingSpec {
            id: "gpu".into(),
            description: "A4000".into(),
            flags: [("mdev".to_string(), "1".to_string())]
                .into_iter()
                .collect(),
            map: vec![
                "node=pve01,path=0000:01:00.0,id=10de:24b0".into(),
                "id=10de:24b0,path=0000:02:00.0,node=pve02".into(),
            ],
        };
        let here = MappingSpec {
            id: "gpu".into(),
            description: String::new(),
            flags: BTreeMap::new(),
            map: vec!["node=pve02,path=0000:02:00.0,id=10de:24b0".into()],
        };
        let (call, notes) = merge_call(MapKind::Pci, &backup, &here);
        assert_eq!(
            call.unwrap().to_string(),
            "pvesh set /cluster/mapping/pci/gpu --description=A4000 --mdev=1 --map=node=pve02,path=0000:02:00.0,id=10de:24b0 --map=node=pve01,path=0000:01:00.0,id=10de:24b0"
        );
        assert!(
            notes[0].contains("1 entry(ies) of the backup added"),
            "{notes:?}"
        );
        let (call, notes) = merge_call(MapKind::Pci, &backup, &backup);
        assert!(call.is_none());
        assert!(notes[0].contains("already has every entry"));
    }

    #[test]
    fn entries_for_unknown_nodes_are_listed_once_per_mapping() {
        let spec = MappingSpec {
            id: "gpu".into(),
            map: vec![
                "node=old-node,path=0000:01:00.0,id=10de:24b0".into(),
                "node=pve1,path=0000:02:00.0,id=10de:24b0".into(),
                "id=10de:24b0,node=old-node,path=0000:03:00.0".into(),
            ],
            ..MappingSpec::default()
        };
        let nodes: BTreeSet<String> = ["pve1".to_string()].into_iter().collect();
        let lines = foreign_entries(&[(MapKind::Pci, vec![spec.clone()])], &nodes);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("mapping pci/gpu: the entries for node(s) old-node are kept"));
        let all: BTreeSet<String> = ["pve1", "old-node"].iter().map(|s| s.to_string()).collect();
        assert!(foreign_entries(&[(MapKind::Pci, vec![spec])], &all).is_empty());
    }
}
