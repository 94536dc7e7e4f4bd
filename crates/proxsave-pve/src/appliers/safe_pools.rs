//! `pve-safe-pools`: SAFE apply of the backup's resource pools through the API.
//!
//! The pools come from the exported `etc/pve/user.cfg` (category `pve_config_export`, read
//! through [`Applier::reads_exported`]) in PVE's real colon grammar
//! (`pool:<poolid>:<comment>:<vmid,list>:<storage,list>:`, [`crate::formats::user_cfg`]).
//!
//! 1. Definitions: `pvesh get /pools` once; a pool that is missing is created
//!    (`pvesh create /pools --poolid=<id> [--comment=<c>]`, a nested pool's parents first); one
//!    whose comment differs gets `pvesh set /pools --poolid=<id> --comment=<c>`.
//! 2. Members, after the guests and the storages (this applier runs after `storage-pve` and
//!    the SAFE guests applier): the cluster's guests (`pvesh get /cluster/resources
//!    --type=vm`, with the pool each is in) and storages (`pvesh get /storage`) are read, then
//!    each pool's members (`pvesh get /pools --poolid=<id>`); only what is missing is added
//!    with one `pvesh set /pools --poolid=<id> [--vms=…] [--storage=…] [--allow-move=1]` (PVE
//!    refuses the whole call when one of them is already a member). A guest or storage that is
//!    not on this cluster is listed, not sent. A guest in another pool is moved only with
//!    `pve.safe.pools.allow-move=yes`; otherwise it is listed.
//!
//! PVE 8.1 moved pool updates to `PUT /pools` (`--poolid`, nested pools); on an older node
//! (`No 'set' handler defined for '/pools'`, or `--poolid` unknown to `GET /pools`) the calls
//! fall back to the deprecated `/pools/<id>`.
//!
//! Questions: `pve.safe.pools` (`yes`/`no`, default `no` after a countdown),
//! `pve.safe.pools.allow-move` (`yes`/`no`, default `no`; asked when a backup pool has guests).

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
use crate::formats::user_cfg;
use crate::pvesh::{Call, Method, Param, Pvesh, PveshError};

/// The category whose export holds `etc/pve/user.cfg`.
pub const CATEGORY: &str = "pve_config_export";
/// The exported file.
pub const USER_CFG: &str = "etc/pve/user.cfg";

/// `pve.safe.pools`.
pub const Q_POOLS: QuestionSpec = QuestionSpec {
    id: "pve.safe.pools",
    prompt: "Re-create the backup's resource pools (definitions, then guests and storages as members) through the PVE API?",
    choices: &["yes", "no"],
};

/// `pve.safe.pools.allow-move`.
pub const Q_ALLOW_MOVE: QuestionSpec = QuestionSpec {
    id: "pve.safe.pools.allow-move",
    prompt: "Move a guest that is in another pool on this cluster into the backup's pool (allow-move)?",
    choices: &["yes", "no"],
};

/// A pool of the backup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolSpec {
    /// `dev`, `dev/web`.
    pub poolid: String,
    /// Decoded comment (empty: none).
    pub comment: String,
    /// Guest ids (numbers), sorted, unique.
    pub vms: Vec<u32>,
    /// Storage ids, sorted, unique.
    pub storage: Vec<String>,
}

/// The pools of a `user.cfg`, sorted by id (a parent before its children; a parent that has no
/// line of its own is added, as PVE's reader does), and the problems, each naming the line.
pub fn pool_specs(text: &str) -> (Vec<PoolSpec>, Vec<String>) {
    let (cfg, diags) = user_cfg::parse(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut notes = Vec::new();
    for d in &diags {
        let line = lines.get(d.line - 1).copied().unwrap_or("").trim();
        if line.starts_with("pool:") {
            notes.push(format!(
                "/{USER_CFG} line {}: {} (skipped)",
                d.line, d.message
            ));
        }
    }
    let mut pools: BTreeMap<String, PoolSpec> = BTreeMap::new();
    // PVE: a guest belongs to one pool; a later duplicate is ignored with a warning.
    let mut owner: BTreeMap<u32, String> = BTreeMap::new();
    for p in &cfg.pools {
        let line = line_of(&lines, &p.original.0);
        let mut id = p.poolid.clone();
        while let Some((parent, _)) = id.rsplit_once('/') {
            pools.entry(parent.to_string()).or_insert_with(|| PoolSpec {
                poolid: parent.to_string(),
                ..PoolSpec::default()
            });
            id = parent.to_string();
        }
        let spec = pools.entry(p.poolid.clone()).or_insert_with(|| PoolSpec {
            poolid: p.poolid.clone(),
            ..PoolSpec::default()
        });
        if !p.comment.is_empty() {
            spec.comment = p.comment.clone();
        }
        for v in &p.vms {
            match v.parse::<u32>() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => {
                    if let Some(other) = owner.get(&n) {
                        notes.push(format!(
                            "/{USER_CFG} line {line}: guest {n} of pool {} is already in pool {other} (ignored, as PVE does)",
                            p.poolid
                        ));
                        continue;
                    }
                    owner.insert(n, p.poolid.clone());
                    spec.vms.push(n);
                }
                _ => notes.push(format!(
                    "/{USER_CFG} line {line}: pool {}: `{v}` is not a guest id (ignored)",
                    p.poolid
                )),
            }
        }
        for s in &p.storage {
            if valid_storage_id(s) {
                spec.storage.push(s.clone());
            } else {
                notes.push(format!(
                    "/{USER_CFG} line {line}: pool {}: `{s}` is not a storage id (ignored)",
                    p.poolid
                ));
            }
        }
    }
    let mut out: Vec<PoolSpec> = pools.into_values().collect();
    for p in &mut out {
        p.vms.sort_unstable();
        p.vms.dedup();
        p.storage.sort();
        p.storage.dedup();
    }
    (out, notes)
}

fn line_of(lines: &[&str], original: &Option<String>) -> usize {
    original
        .as_deref()
        .and_then(|o| lines.iter().position(|l| l.trim() == o))
        .map_or(0, |i| i + 1)
}

/// `^[a-z][a-z0-9\-\_\.]*[a-z0-9]$` (case-insensitive), as PVE reads a pool's storages.
fn valid_storage_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A pool on the node, as `GET /pools` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePool {
    /// Comment (empty: none).
    pub comment: String,
}

/// The pools `GET /pools` returns.
pub fn node_pools(v: &Value) -> BTreeMap<String, NodePool> {
    let mut out = BTreeMap::new();
    for o in v.as_array().into_iter().flatten() {
        if let Some(id) = o.get("poolid").map(json_text) {
            out.insert(
                id,
                NodePool {
                    comment: o.get("comment").map(json_text).unwrap_or_default(),
                },
            );
        }
    }
    out
}

/// The definition call for `spec` given the node's pools (`None`: nothing to do).
pub fn definition_call(spec: &PoolSpec, node: &BTreeMap<String, NodePool>) -> Option<Call> {
    match node.get(&spec.poolid) {
        None => {
            let mut params = vec![Param::new("poolid", spec.poolid.clone())];
            if !spec.comment.is_empty() {
                params.push(Param::new("comment", spec.comment.clone()));
            }
            Some(Call::new(Method::Create, "/pools", params))
        }
        Some(here) if !spec.comment.is_empty() && here.comment != spec.comment => Some(Call::new(
            Method::Set,
            "/pools",
            vec![
                Param::new("poolid", spec.poolid.clone()),
                Param::new("comment", spec.comment.clone()),
            ],
        )),
        Some(_) => None,
    }
}

/// A pool's current members (`GET /pools --poolid=<id>`: a list of one pool; the deprecated
/// `GET /pools/<id>`: the pool itself).
pub fn pool_members(v: &Value) -> (BTreeSet<u32>, BTreeSet<String>) {
    let pool = match v {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let mut vms = BTreeSet::new();
    let mut storage = BTreeSet::new();
    for m in pool
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match m.get("type").and_then(Value::as_str) {
            Some("storage") => {
                if let Some(s) = m.get("storage").map(json_text) {
                    storage.insert(s);
                }
            }
            _ => {
                if let Some(n) = m
                    .get("vmid")
                    .map(json_text)
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    vms.insert(n);
                }
            }
        }
    }
    (vms, storage)
}

/// The cluster's guests and the pool each is in (`GET /cluster/resources --type=vm`).
pub fn cluster_guests(v: &Value) -> BTreeMap<u32, Option<String>> {
    let mut out = BTreeMap::new();
    for o in v.as_array().into_iter().flatten() {
        let Some(n) = o
            .get("vmid")
            .map(json_text)
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let pool = o.get("pool").map(json_text).filter(|p| !p.is_empty());
        out.insert(n, pool);
    }
    out
}

/// What the members step does for one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembersPlan {
    /// The call (`None`: nothing to add).
    pub call: Option<Call>,
    /// Members left out, each with the reason.
    pub left: Vec<String>,
}

/// The members call of `spec`: what it lacks on the node, guests and storages that exist
/// only; a guest in another pool only with `allow_move`.
pub fn members_call(
    spec: &PoolSpec,
    current: &(BTreeSet<u32>, BTreeSet<String>),
    guests: &BTreeMap<u32, Option<String>>,
    storages: &BTreeSet<String>,
    allow_move: bool,
) -> MembersPlan {
    let mut plan = MembersPlan::default();
    let mut vms = Vec::new();
    let mut moved = false;
    for n in &spec.vms {
        if current.0.contains(n) {
            continue;
        }
        match guests.get(n) {
            None => plan.left.push(format!(
                "pool {}: guest {n} is not on this cluster (not added)",
                spec.poolid
            )),
            Some(Some(other)) if other == &spec.poolid => {}
            Some(Some(other)) if !allow_move => plan.left.push(format!(
                "pool {}: guest {n} is in pool {other} on this cluster (not moved; answer yes to {} to move it)",
                spec.poolid, Q_ALLOW_MOVE.id
            )),
            Some(Some(_)) => {
                moved = true;
                vms.push(n.to_string());
            }
            Some(None) => vms.push(n.to_string()),
        }
    }
    let mut stores = Vec::new();
    for s in &spec.storage {
        if current.1.contains(s) {
            continue;
        }
        if storages.contains(s) {
            stores.push(s.clone());
        } else {
            plan.left.push(format!(
                "pool {}: storage {s} is not defined on this cluster (not added)",
                spec.poolid
            ));
        }
    }
    if vms.is_empty() && stores.is_empty() {
        return plan;
    }
    let mut params = vec![Param::new("poolid", spec.poolid.clone())];
    if !vms.is_empty() {
        params.push(Param::new("vms", vms.join(",")));
    }
    if !stores.is_empty() {
        params.push(Param::new("storage", stores.join(",")));
    }
    if moved {
        params.push(Param::new("allow-move", "1"));
    }
    plan.call = Some(Call::new(Method::Set, "/pools", params));
    plan
}

/// The same call on the deprecated path of PVE before 8.1 (`/pools/<id>`, no `--poolid`).
fn legacy(call: &Call) -> Call {
    let id = call
        .params
        .iter()
        .find(|p| p.key == "poolid")
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let params = call
        .params
        .iter()
        .filter(|p| p.key != "poolid")
        .cloned()
        .collect();
    Call::new(call.method, format!("/pools/{id}"), params)
}

fn no_handler(e: &PveshError) -> bool {
    e.message().contains("handler defined for")
        || matches!(e, PveshError::ParamRejected { param, .. } if param == "poolid")
}

/// Runs a pool `set` (`PUT /pools`, or `PUT /pools/<id>` on PVE before 8.1).
fn run_set(pvesh: &Pvesh<'_>, call: &Call) -> Result<(), PveshError> {
    match pvesh.call(call) {
        Ok(_) => Ok(()),
        Err(e) if call.method == Method::Set && no_handler(&e) => {
            pvesh.call(&legacy(call)).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Reads a pool's members (`GET /pools --poolid`, or `GET /pools/<id>` before 8.1).
fn read_members(
    pvesh: &Pvesh<'_>,
    id: &str,
) -> Result<(BTreeSet<u32>, BTreeSet<String>), PveshError> {
    match pvesh.get_with("/pools", &[Param::new("poolid", id)]) {
        Ok(v) => Ok(pool_members(&v)),
        Err(e) if no_handler(&e) => pvesh.get(&format!("/pools/{id}")).map(|v| pool_members(&v)),
        Err(e) => Err(e),
    }
}

/// The backup's pools and the problems of its `user.cfg`.
type Specs = (Vec<PoolSpec>, Vec<String>);

fn read_specs(stage: &Stage) -> Result<Option<Specs>, String> {
    let Some(text) = staged_text(stage, USER_CFG)? else {
        return Ok(None);
    };
    let (specs, notes) = pool_specs(&text);
    if specs.is_empty() {
        return Ok(None);
    }
    Ok(Some((specs, notes)))
}

fn ask_pools(details: Vec<String>) -> Ask {
    Ask::new(Q_POOLS, Some("no"))
        .countdown(APPLY_COUNTDOWN)
        .with_details(details)
}

fn ask_move() -> Ask {
    Ask::new(Q_ALLOW_MOVE, Some("no"))
}

fn describe(specs: &[PoolSpec]) -> Vec<String> {
    specs
        .iter()
        .map(|p| {
            let mut s = format!("pool {}", p.poolid);
            if !p.comment.is_empty() {
                s.push_str(&format!(" ({})", p.comment));
            }
            if !p.vms.is_empty() {
                let v: Vec<String> = p.vms.iter().map(u32::to_string).collect();
                s.push_str(&format!(": guests {}", v.join(",")));
            }
            if !p.storage.is_empty() {
                s.push_str(&format!("; storages {}", p.storage.join(",")));
            }
            s
        })
        .collect()
}

fn preset_yes(ctx: &PlanContext<'_>, q: &QuestionSpec) -> Result<Option<bool>, ApplyError> {
    (ctx.preset)(q.id).map(|a| yes_no(q, &a)).transpose()
}

/// The `pve-safe-pools` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SafePools;

inventory::submit! { ApplierRegistration(&SafePools) }

impl Applier for SafePools {
    fn name(&self) -> &'static str {
        "pve-safe-pools"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    /// After `storage-pve` (600), the jobs and notifications and the SAFE guests: members
    /// need the guests and storages to exist.
    fn order(&self) -> u16 {
        680
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_POOLS, Q_ALLOW_MOVE]
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
        let yes = preset_yes(ctx, &Q_POOLS)?;
        preset_yes(ctx, &Q_ALLOW_MOVE)?;
        let mut plan = ApplierPlan::default();
        let source = crate::safe_source::open(ctx.stage)?;
        plan.actions.extend(source.note());
        let (specs, notes) = match read_specs(source.stage()) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(plan),
            Err(e) => {
                plan.actions.push(e);
                return Ok(plan);
            }
        };
        plan.actions.extend(notes.iter().cloned());
        let g = gate(ctx.plan, ctx.host);
        match &g {
            Gate::Recovery => {
                plan.actions
                    .push(format!("leave the pools: {}", super::api::RECOVERY_REASON));
            }
            Gate::NoPvesh(why) => plan.actions.push(format!("skip the pools: {why}")),
            Gate::Open | Gate::Deferred => {
                if g == Gate::Open {
                    plan.questions.push(ask_pools(describe(&specs)));
                    if yes != Some(false) && specs.iter().any(|p| !p.vms.is_empty()) {
                        plan.questions.push(ask_move());
                    }
                }
                if yes == Some(false) {
                    plan.actions
                        .push(format!("leave the pools (answer `no` to {})", Q_POOLS.id));
                } else {
                    for p in &specs {
                        let call = Call::new(
                            Method::Create,
                            "/pools",
                            definition_call(p, &BTreeMap::new())
                                .map(|c| c.params)
                                .unwrap_or_default(),
                        );
                        plan.actions.push(format!(
                            "pool {}: {call} (or `set` of its comment when it exists){}",
                            p.poolid,
                            if g == Gate::Deferred {
                                " (deferred)"
                            } else {
                                ""
                            }
                        ));
                        plan.changes.push(PlannedChange::call(
                            &format!("/pools/{}", p.poolid),
                            ChangeKind::Create,
                            call.to_string(),
                            None,
                            Some(spec_text(p)),
                        ));
                    }
                    for line in describe(&specs)
                        .into_iter()
                        .zip(&specs)
                        .filter(|(_, p)| !p.vms.is_empty() || !p.storage.is_empty())
                    {
                        plan.actions.push(format!(
                            "after the guests and storages: add the members of {} that it lacks",
                            line.0
                        ));
                    }
                }
            }
        }
        plan.details = json!({
            "pools": specs.iter().map(|p| json!({
                "poolid": p.poolid, "comment": p.comment, "vms": p.vms, "storage": p.storage,
            })).collect::<Vec<_>>(),
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
        let (specs, notes) = match read_specs(source.stage()) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => {
                return Ok(vec![Outcome::new(
                    category,
                    Status::Failed { error: e },
                    "pools",
                )]);
            }
        };
        let mut tally = Tally::default();
        tally.notes.extend(notes.iter().cloned());
        let g = gate(ctx.plan, ctx.host);
        if g != Gate::Open {
            let calls: Vec<String> = specs
                .iter()
                .filter_map(|p| definition_call(p, &BTreeMap::new()))
                .map(|c| format!("{c} (or `set`)"))
                .collect();
            if g == Gate::Deferred {
                for c in &calls {
                    ctx.host.defer_note(c.clone());
                }
            }
            return Ok(vec![gated_outcome(category, &g, &calls, "the pools")]);
        }
        let answer = ctx.prompter.ask(&ask_pools(describe(&specs)))?;
        if !yes_no(&Q_POOLS, &answer)? {
            return Ok(vec![Outcome::new(
                category,
                Status::Skipped {
                    reason: format!("pools: answer `no` to {}", Q_POOLS.id),
                },
                "",
            )]);
        }
        let allow_move = if specs.iter().any(|p| !p.vms.is_empty()) {
            let a = ctx.prompter.ask(&ask_move())?;
            yes_no(&Q_ALLOW_MOVE, &a)?
        } else {
            false
        };
        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        if let Err(m) = apply_pools(&pvesh, ctx.cancel, &specs, allow_move, &mut tally)? {
            return Ok(vec![Outcome::new(
                category,
                Status::Skipped {
                    reason: format!("`pvesh` cannot be run ({m}): the pools were not applied"),
                },
                "",
            )]);
        }
        // Bad input, failures and what is left for the administrator; the rest is in the report.
        for n in notes.iter().chain(&tally.failed).chain(&tally.left) {
            ctx.prompter.say(Level::Warning, &format!("pools: {n}"));
        }
        Ok(vec![tally.outcome(category, "pools")])
    }
}

fn spec_text(p: &PoolSpec) -> String {
    let vms: Vec<String> = p.vms.iter().map(u32::to_string).collect();
    format!(
        "comment {}\nvms {}\nstorage {}\n",
        p.comment,
        vms.join(","),
        p.storage.join(",")
    )
}

fn aborted() -> ApplyError {
    ApplyError::Prompt(proxsave_restore::prompt::PromptError::Aborted)
}

/// Definitions, then members. `Ok(Err(message))`: `pvesh` cannot be run at all.
fn apply_pools(
    pvesh: &Pvesh<'_>,
    cancel: &proxsave_archive::progress::CancelToken,
    specs: &[PoolSpec],
    allow_move: bool,
    tally: &mut Tally,
) -> Result<Result<(), String>, ApplyError> {
    let missing = |e: &PveshError| match e {
        PveshError::Missing { message, .. } => Some(message.clone()),
        _ => None,
    };
    let node = match pvesh.get("/pools") {
        Ok(v) => node_pools(&v),
        Err(e) => {
            if let Some(m) = missing(&e) {
                return Ok(Err(m));
            }
            tally
                .failed
                .push(format!("pools: reading this node's pools failed: {e}"));
            return Ok(Ok(()));
        }
    };
    let mut defined: BTreeSet<String> = node.keys().cloned().collect();
    for p in specs {
        if cancel.is_cancelled() {
            return Err(aborted());
        }
        let object = format!("pool {}", p.poolid);
        match definition_call(p, &node) {
            None => {
                tally
                    .notes
                    .push(format!("{object}: already as in the backup"));
            }
            Some(call) => {
                let r = if call.method == Method::Set {
                    run_set(pvesh, &call)
                } else {
                    pvesh.call(&call).map(|_| ())
                };
                match r {
                    Ok(()) => {
                        tally.done.push(format!("{object} ({})", call.method));
                        defined.insert(p.poolid.clone());
                    }
                    Err(e) => {
                        if let Some(m) = missing(&e) {
                            return Ok(Err(m));
                        }
                        tally.failed.push(format!("{object}: {e}"));
                    }
                }
            }
        }
    }
    let with_members: Vec<&PoolSpec> = specs
        .iter()
        .filter(|p| (!p.vms.is_empty() || !p.storage.is_empty()) && defined.contains(&p.poolid))
        .collect();
    if with_members.is_empty() {
        return Ok(Ok(()));
    }
    let guests = if with_members.iter().any(|p| !p.vms.is_empty()) {
        match pvesh.get_with("/cluster/resources", &[Param::new("type", "vm")]) {
            Ok(v) => cluster_guests(&v),
            Err(e) => {
                tally.failed.push(format!(
                    "pools: reading this cluster's guests failed (no guest added): {e}"
                ));
                BTreeMap::new()
            }
        }
    } else {
        BTreeMap::new()
    };
    let storages: BTreeSet<String> = if with_members.iter().any(|p| !p.storage.is_empty()) {
        match pvesh.get("/storage") {
            Ok(v) => list_ids(&v, "storage").into_iter().collect(),
            Err(e) => {
                tally.failed.push(format!(
                    "pools: reading this cluster's storages failed (no storage added): {e}"
                ));
                BTreeSet::new()
            }
        }
    } else {
        BTreeSet::new()
    };
    for p in with_members {
        if cancel.is_cancelled() {
            return Err(aborted());
        }
        let object = format!("pool {} members", p.poolid);
        let current = match read_members(pvesh, &p.poolid) {
            Ok(c) => c,
            Err(e) => {
                tally
                    .failed
                    .push(format!("{object}: reading them failed: {e}"));
                continue;
            }
        };
        let m = members_call(p, &current, &guests, &storages, allow_move);
        tally.left.extend(m.left);
        let Some(call) = m.call else {
            continue;
        };
        match run_set(pvesh, &call) {
            Ok(()) => tally.done.push(format!("{object} (set)")),
            Err(e) => {
                if let Some(msg) = missing(&e) {
                    return Ok(Err(msg));
                }
                tally.failed.push(format!("{object}: {e}"));
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_CFG_TEXT: &str = "user:root@pam:1:0:::root@example.com:::\n\ngroup:admins:root@pam:Admins:\n\npool:dev:Dev pool:100,101:local,nas:\npool:prod/web:Web%3A front:102::\npool:bad id::::\npool:qa::abc,100:x:\n\nrole:VMOperator:VM.Audit:\n";

    #[test]
    fn pools_are_read_in_the_real_colon_grammar() {
        let (specs, notes) = pool_specs(USER_CFG_TEXT);
        let ids: Vec<&str> = specs.iter().map(|p| p.poolid.as_str()).collect();
        assert_eq!(ids, ["dev", "prod", "prod/web", "qa"]);
        assert_eq!(specs[0].comment, "Dev pool");
        assert_eq!(specs[0].vms, [100, 101]);
        assert_eq!(specs[0].storage, ["local", "nas"]);
        assert_eq!(specs[2].comment, "Web: front");
        assert_eq!(specs[2].vms, [102]);
        assert!(specs[3].vms.is_empty() && specs[3].storage.is_empty());
        assert!(
            notes[0].contains("line 7") && notes[0].contains("bad id"),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("`abc` is not a guest id")));
        assert!(
            notes
                .iter()
                .any(|n| n.contains("guest 100 of pool qa is already in pool dev"))
        );
        assert!(notes.iter().any(|n| n.contains("`x` is not a storage id")));
    }

    #[test]
    fn a_missing_pool_is_created_and_an_existing_one_gets_its_comment() {
        let (specs, _) = pool_specs("pool:dev:Dev pool:100::\n");
        let none = BTreeMap::new();
        assert_eq!(
            definition_call(&specs[0], &none).unwrap().to_string(),
            "pvesh create /pools --poolid=dev '--comment=Dev pool'"
        );
        let node = node_pools(&json!([{"poolid": "dev", "comment": "old"}]));
        assert_eq!(
            definition_call(&specs[0], &node).unwrap().to_string(),
            "pvesh set /pools --poolid=dev '--comment=Dev pool'"
        );
        let same = node_pools(&json!([{"poolid": "dev", "comment": "Dev pool"}]));
        assert!(definition_call(&specs[0], &same).is_none());
    }

    #[test]
    fn members_add_only_what_is_missing_and_move_only_with_consent() {
        let spec = PoolSpec {
            poolid: "dev".into(),
            comment: String::new(),
            vms: vec![100, 101, 102, 103],
            storage: vec!["local".into(), "nas".into(), "gone".into()],
        };
        let current = pool_members(&json!([{"poolid": "dev", "members": [
            {"type": "qemu", "vmid": 100, "id": "qemu/100", "node": "pve1"},
            {"type": "storage", "storage": "local", "id": "storage/pve1/local", "node": "pve1"}
        ]}]));
        let guests = cluster_guests(&json!([
            {"vmid": 100, "pool": "dev"}, {"vmid": 101}, {"vmid": 102, "pool": "other"}
        ]));
        let storages: BTreeSet<String> = ["local", "nas"].iter().map(|s| s.to_string()).collect();
        let m = members_call(&spec, &current, &guests, &storages, false);
        assert_eq!(
            m.call.unwrap().to_string(),
            "pvesh set /pools --poolid=dev --vms=101 --storage=nas"
        );
        assert_eq!(m.left.len(), 3, "{:?}", m.left);
        assert!(m.left[0].contains("guest 102 is in pool other"));
        assert!(m.left[1].contains("guest 103 is not on this cluster"));
        assert!(m.left[2].contains("storage gone"));
        let m = members_call(&spec, &current, &guests, &storages, true);
        assert_eq!(
            m.call.unwrap().to_string(),
            "pvesh set /pools --poolid=dev --vms=101,102 --storage=nas --allow-move=1"
        );
    }

    #[test]
    fn the_legacy_path_drops_poolid() {
        let c = Call::new(
            Method::Set,
            "/pools",
            vec![Param::new("poolid", "dev"), Param::new("vms", "100")],
        );
        assert_eq!(legacy(&c).to_string(), "pvesh set /pools/dev --vms=100");
    }
}
