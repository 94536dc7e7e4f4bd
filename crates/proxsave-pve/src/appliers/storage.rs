//! `storage-pve`: the `storage_pve` category — `/etc/vzdump.conf`, the storage definitions
//! of `storage.cfg` with their secrets, the storages' directories, and `datacenter.cfg`.
//!
//! # Plan
//! Reads the staged `etc/vzdump.conf`, `etc/pve/storage.cfg` (sections that do not parse are
//! named, file and line, and left out), `etc/pve/priv/storage/*` and `etc/pve/datacenter.cfg`;
//! checks answers given up front to `pve.storage.apply` and `pve.datacenter.apply`. When the API
//! part may run (not RECOVERY, host actions run, `pvesh` present) it reads the host with
//! `pvesh get` only, to list each change call it would make (secrets as `<redacted>`). Its files
//! (`etc/vzdump.conf`, `etc/pve/storage.cfg`, `etc/pve/datacenter.cfg`, the storages'
//! `etc/pve/priv/storage/<id>.pw|.enc|.master.pem`) go into the safety backup.
//!
//! # Apply
//! 1. `/etc/vzdump.conf` is written as the backup has it (owner root, mode 0644, the previous
//!    file is in the safety backup), also in RECOVERY, also with deferred host actions.
//! 2. RECOVERY: nothing else (the cluster database brings `/etc/pve` back). Deferred host
//!    actions: no `pvesh` call at all; the calls are listed as the to-do. No `pvesh`: skipped.
//! 3. `pve.storage.apply` (`yes` default): per section, in file order, `pvesh get
//!    /storage/<id>`; it exists ⇒ `pvesh set /storage/<id>` with every option but `type` and
//!    the options PVE fixes at creation (a fixed option whose value differs from the host's is
//!    reported, not sent), `--delete` for options the host has and the backup does not
//!    (never `content` or `shared`, which PVE fills in); it does not ⇒ `pvesh create /storage
//!    --storage=<id> --type=<type> …`. Bare flags go as `1`. Secrets come from the backup's
//!    `priv/storage/<id>.pw` (`--password`) and `<id>.enc` (`--encryption-key` with the key
//!    JSON; the `encryption-key` line of `storage.cfg` is only its fingerprint), so the files
//!    PVE then writes equal the backup's. Storages the host has and the backup lacks are left
//!    and listed. Then the directories of the backup's enabled path-based storages, for their
//!    content types ([`crate::storage_dirs`]); never on the root filesystem for a mountpoint
//!    that is not mounted, never under a system path.
//! 4. `pve.datacenter.apply` (`yes` default): `pvesh set /cluster/options` with the backup's
//!    options and `--description` from its `#` lines; options this node has and the backup
//!    lacks are left and listed.
//!
//! A failed call names the object, the call and PVE's message; the next object still goes;
//! the category ends `partly applied`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use proxsave_archive::path::ArchivePath;
use proxsave_formats::section::Section;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, FileSpec, Outcome,
    PlanContext, PlannedChange, QuestionSpec, RootHandle, Stage, Status,
};
use proxsave_restore::host::Host;
use proxsave_restore::prompt::Level;
use serde_json::{Value, json};

use super::api::{
    Gate, Tally, Upsert, ap, ask_yes, check_preset, gate, gated_outcome, json_text, list_ids,
    planned_change, same_as, section_params, staged_files, staged_sections, staged_text, yes_no,
};
use crate::pvesh::{Call, Method, Param, Pvesh};

/// The category.
pub const CATEGORY: &str = "storage_pve";
/// `/etc/vzdump.conf`.
pub const VZDUMP_CONF: &str = "etc/vzdump.conf";
/// The storage definitions.
pub const STORAGE_CFG: &str = "etc/pve/storage.cfg";
/// The datacenter options.
pub const DATACENTER_CFG: &str = "etc/pve/datacenter.cfg";
/// The storages' secrets.
pub const PRIV_STORAGE: &str = "etc/pve/priv/storage";

/// `pve.storage.apply`.
pub const Q_STORAGE: QuestionSpec = QuestionSpec {
    id: "pve.storage.apply",
    prompt: "Apply the backup's storage definitions (storage.cfg) through the PVE API?",
    choices: &["yes", "no"],
};

/// `pve.datacenter.apply`.
pub const Q_DATACENTER: QuestionSpec = QuestionSpec {
    id: "pve.datacenter.apply",
    prompt: "Apply the backup's datacenter options (datacenter.cfg) through the PVE API?",
    choices: &["yes", "no"],
};

/// The `storage-pve` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoragePve;

inventory::submit! { ApplierRegistration(&StoragePve) }

/// The options PVE fixes when a storage of `ty` is created (pve-storage plugins' `options`,
/// `fixed => 1`).
pub fn fixed_options(ty: &str) -> &'static [&'static str] {
    match ty {
        "dir" => &["path", "snapshot-as-volume-chain"],
        "nfs" => &["path", "server", "export", "snapshot-as-volume-chain"],
        "cifs" => &["path", "server", "share", "snapshot-as-volume-chain"],
        "cephfs" | "btrfs" => &["path"],
        "lvm" => &["vgname", "base"],
        "lvmthin" => &["vgname", "thinpool"],
        "zfspool" => &["pool"],
        "zfs" => &["portal", "target", "pool", "blocksize", "iscsiprovider"],
        "iscsi" | "iscsidirect" => &["portal", "target"],
        "pbs" => &["server", "datastore"],
        _ => &[],
    }
}

/// Options PVE fills in itself when reading `storage.cfg`: never deleted.
const COMPUTED: &[&str] = &["type", "storage", "digest", "content", "shared"];

/// Storage types whose password lives in `priv/storage/<id>.pw`.
const PASSWORD_TYPES: &[&str] = &["cifs", "pbs", "esxi"];

/// One storage of the backup, ready to apply.
#[derive(Clone, Debug)]
pub(crate) struct StorageDef {
    pub id: String,
    pub ty: String,
    pub section: Section,
    pub upsert: Upsert,
    /// Keys the backup has (to compute `--delete`).
    pub keys: BTreeSet<String>,
    pub notes: Vec<String>,
}

/// The staged secret files, by name.
type Secrets = BTreeMap<String, Vec<u8>>;

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The definition of one staged section.
pub(crate) fn storage_def(s: &Section, secrets: &Secrets) -> StorageDef {
    let id = s.id.clone();
    let ty = s.ty.clone();
    let mut notes = Vec::new();
    let mut params = section_params(
        s,
        &[
            "type",
            "storage",
            "digest",
            "password",
            "encryption-key",
            "master-pubkey",
        ],
    );
    let mut keys: BTreeSet<String> = s.props.iter().map(|p| p.key.clone()).collect();
    if PASSWORD_TYPES.contains(&ty.as_str())
        && let Some(pw) = secrets.get(&format!("{id}.pw"))
    {
        let line = first_line(pw);
        let value = if ty == "cifs" {
            line.strip_prefix("password=").unwrap_or(&line).to_string()
        } else {
            line
        };
        params.push(Param::secret("password", value));
        keys.insert("password".into());
    }
    if s.has("encryption-key") {
        match secrets.get(&format!("{id}.enc")) {
            Some(key) => {
                let text = String::from_utf8_lossy(key).trim_end().to_string();
                params.push(Param::secret("encryption-key", text));
            }
            None => notes.push(format!(
                "storage {id}: storage.cfg names an encryption key, but the backup has no priv/storage/{id}.enc: the storage is applied without its key (add it by hand)"
            )),
        }
    }
    if s.has("master-pubkey") {
        match secrets.get(&format!("{id}.master.pem")) {
            Some(pem) => params.push(Param::new(
                "master-pubkey",
                base64::engine::general_purpose::STANDARD.encode(pem),
            )),
            None => notes.push(format!(
                "storage {id}: storage.cfg has a master public key, but the backup has no priv/storage/{id}.master.pem: applied without it"
            )),
        }
    }
    let upsert = Upsert {
        object: format!("storage {id}"),
        get_path: format!("/storage/{id}"),
        set_path: format!("/storage/{id}"),
        create_path: "/storage".into(),
        create_first: vec![
            Param::new("storage", id.clone()),
            Param::new("type", ty.clone()),
        ],
        params,
        fixed: fixed_options(&ty).to_vec(),
    };
    StorageDef {
        id,
        ty,
        section: s.clone(),
        upsert,
        keys,
        notes,
    }
}

/// A list option (`content`, `nodes`) as a set; other values as they are.
fn normal(key: &str, v: &str) -> Vec<String> {
    if matches!(key, "content" | "nodes") {
        let mut l: Vec<String> = v
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        l.sort();
        l.dedup();
        l
    } else {
        vec![v.to_string()]
    }
}

/// What to do with one storage, once the host was read.
#[derive(Debug)]
pub(crate) enum StorageStep {
    Call(Call, Vec<String>),
    Unchanged(Vec<String>),
    Failed(String),
}

impl StorageDef {
    /// The step given the host's config of this id (`None`: it has none).
    pub(crate) fn step(&self, current: Option<&Value>) -> StorageStep {
        let Some(current) = current else {
            return StorageStep::Call(self.upsert.create_call(), self.notes.clone());
        };
        let here_ty = current.get("type").map(json_text).unwrap_or_default();
        if !here_ty.is_empty() && here_ty != self.ty {
            return StorageStep::Failed(format!(
                "storage {}: this host has it as type `{here_ty}`, the backup as `{}`: not changed (remove it or rename one of them)",
                self.id, self.ty
            ));
        }
        let (mut call, mut notes) = self.upsert.set_call(current);
        let mut all_notes = self.notes.clone();
        all_notes.append(&mut notes);
        let same = call.params.iter().all(|p| {
            !p.secret
                && current
                    .get(&p.key)
                    .is_some_and(|v| normal(&p.key, &json_text(v)) == normal(&p.key, &p.value))
        });
        let mut delete: Vec<String> = current
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| {
                        !COMPUTED.contains(&k.as_str())
                            && !self.keys.contains(k.as_str())
                            && !self.upsert.fixed.contains(&k.as_str())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        delete.sort();
        if same && delete.is_empty() {
            return StorageStep::Unchanged(all_notes);
        }
        if !delete.is_empty() {
            call.params.push(Param::new("delete", delete.join(",")));
        }
        StorageStep::Call(call, all_notes)
    }
}

/// Everything read from the stage.
struct Inputs {
    vzdump: Option<Vec<u8>>,
    storages: Vec<StorageDef>,
    has_storage_cfg: bool,
    datacenter: Option<crate::formats::datacenter::DatacenterCfg>,
    /// Bad input: sections and files left out, named.
    bad: Vec<String>,
    secret_files: Vec<String>,
}

fn read_inputs(stage: &Stage) -> Result<Inputs, ApplyError> {
    let mut bad = Vec::new();
    let vzdump = stage.read(&ap(VZDUMP_CONF))?;
    let secrets = staged_files(stage, PRIV_STORAGE);
    let mut storages = Vec::new();
    let mut has_storage_cfg = false;
    match staged_sections(stage, STORAGE_CFG) {
        Ok(Some((cfg, diags))) => {
            has_storage_cfg = true;
            bad.extend(diags);
            storages.extend(cfg.sections.iter().map(|s| storage_def(s, &secrets)));
        }
        Ok(None) => {}
        Err(e) => bad.push(e),
    }
    let datacenter =
        match staged_text(stage, DATACENTER_CFG) {
            Ok(Some(text)) => {
                let (cfg, diags) = crate::formats::datacenter::parse(&text);
                bad.extend(diags.iter().map(|d| {
                    format!("/{DATACENTER_CFG} line {}: {} (skipped)", d.line, d.message)
                }));
                Some(cfg)
            }
            Ok(None) => None,
            Err(e) => {
                bad.push(e);
                None
            }
        };
    let secret_files = storages
        .iter()
        .flat_map(|s| {
            ["pw", "enc", "master.pem"]
                .iter()
                .map(move |ext| format!("{}.{ext}", s.id))
        })
        .collect();
    Ok(Inputs {
        vzdump,
        storages,
        has_storage_cfg,
        datacenter,
        bad,
        secret_files,
    })
}

impl Inputs {
    fn files(&self, recovery: bool) -> Vec<ArchivePath> {
        let mut files = Vec::new();
        if self.vzdump.is_some() {
            files.push(ap(VZDUMP_CONF));
        }
        if recovery {
            return files;
        }
        if self.has_storage_cfg {
            files.push(ap(STORAGE_CFG));
            for f in &self.secret_files {
                if let Ok(p) = ArchivePath::from_user(&format!("{PRIV_STORAGE}/{f}")) {
                    files.push(p);
                }
            }
        }
        if self.datacenter.is_some() {
            files.push(ap(DATACENTER_CFG));
        }
        files
    }

    /// The `/cluster/options` call, if the backup has anything to set.
    fn datacenter_call(&self) -> Option<Call> {
        let dc = self.datacenter.as_ref()?;
        let params: Vec<Param> = dc
            .cluster_options()
            .into_iter()
            .map(|(k, v)| {
                if k == "description" {
                    Param::text(k, v)
                } else {
                    Param::new(k, v)
                }
            })
            .collect();
        (!params.is_empty()).then(|| Call::new(Method::Set, "/cluster/options", params))
    }
}

/// The lines shown before `pve.storage.apply`.
fn storage_details(defs: &[StorageDef]) -> Vec<String> {
    vec![format!(
        "{} storage definition(s) in the backup: {}",
        defs.len(),
        defs.iter()
            .map(|d| format!("{} ({})", d.id, d.ty))
            .collect::<Vec<_>>()
            .join(", ")
    )]
}

/// Options this node's `datacenter.cfg` has and the backup's lacks (listed, left).
fn datacenter_left(
    root: &RootHandle,
    backup: &crate::formats::datacenter::DatacenterCfg,
) -> Vec<String> {
    let Ok(Some(bytes)) = root.read(&ap(DATACENTER_CFG)) else {
        return Vec::new();
    };
    let (live, _) = crate::formats::datacenter::parse(&String::from_utf8_lossy(&bytes));
    backup
        .keys_missing_from_here(&live)
        .into_iter()
        .map(|k| format!("datacenter option `{k}` (this node has it, the backup does not)"))
        .collect()
}

/// Storages on the host that the backup lacks.
fn storages_left(pvesh: &Pvesh<'_>, defs: &[StorageDef]) -> Vec<String> {
    match pvesh.get("/storage") {
        Ok(v) => list_ids(&v, "storage")
            .into_iter()
            .filter(|id| !defs.iter().any(|d| &d.id == id))
            .map(|id| format!("storage {id} (on this host, not in the backup)"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn write_vzdump(ctx: &ApplyContext<'_>, bytes: &[u8]) -> Result<String, String> {
    let path = ap(VZDUMP_CONF);
    if let Ok(Some(cur)) = ctx.root.read(&path)
        && cur == bytes
    {
        return Ok("/etc/vzdump.conf is already as in the backup".into());
    }
    // No `.bak-…` copy: the safety backup holds the previous file (and a rollback then
    // leaves nothing behind).
    ctx.root
        .replace(
            &path,
            bytes,
            &FileSpec {
                mode: Some(0o644),
                uid: Some(0),
                gid: Some(0),
                backup_stamp: None,
            },
        )
        .map(|_| "/etc/vzdump.conf written".to_string())
        .map_err(|e| format!("/etc/vzdump.conf could not be written: {e}"))
}

/// Creates the directories of the backup's enabled path-based storages
/// ([`crate::storage_dirs`]), never on the root filesystem for a mountpoint that is not
/// mounted.
fn storage_dirs(root: &RootHandle, host: &Host, defs: &[StorageDef], tally: &mut Tally) {
    for d in defs {
        let plan = match crate::storage_dirs::storage_dirs(&d.section) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(why) => {
                tally
                    .notes
                    .push(format!("storage {}: directories not created: {why}", d.id));
                continue;
            }
        };
        let wanted = plan.to_create();
        if wanted.is_empty() {
            continue;
        }
        if let Some(mp) = &plan.mount_point
            && !host
                .mounts
                .is_mount_point(&host.root.join(mp.trim_start_matches('/')))
        {
            tally.notes.push(format!(
                "storage {}: {mp} is not mounted: its directories are not created (they would land on the root filesystem); mount it, PVE creates them when it activates the storage",
                d.id
            ));
            continue;
        }
        let mut made = 0usize;
        let mut errors = Vec::new();
        for dir in wanted {
            let rel = dir.trim_start_matches('/');
            let Ok(p) = ArchivePath::from_user(rel) else {
                errors.push(format!("{dir}: not a usable path"));
                continue;
            };
            if root.exists(&p) {
                continue;
            }
            match root.create_dir_all(&p, 0o755) {
                Ok(()) => made += 1,
                Err(e) => errors.push(format!("{dir}: {e}")),
            }
        }
        if made > 0 {
            tally.notes.push(format!(
                "storage {}: created {made} director{} under {}",
                d.id,
                if made == 1 { "y" } else { "ies" },
                plan.path
            ));
        }
        if !errors.is_empty() {
            tally.notes.push(format!(
                "storage {}: directories not created: {}",
                d.id,
                errors.join("; ")
            ));
        }
    }
}

impl Applier for StoragePve {
    fn name(&self) -> &'static str {
        "storage-pve"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        600
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_STORAGE, Q_DATACENTER]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let inputs = read_inputs(ctx.stage)?;
        let storage_yes = check_preset(ctx, &Q_STORAGE)?;
        let dc_yes = check_preset(ctx, &Q_DATACENTER)?;
        let g = gate(ctx.plan, ctx.host);
        let mut plan = ApplierPlan {
            files: inputs.files(g == Gate::Recovery),
            ..ApplierPlan::default()
        };
        if let Some(bytes) = &inputs.vzdump {
            let current = ctx.root.read(&ap(VZDUMP_CONF)).ok().flatten();
            if current.as_deref() == Some(bytes.as_slice()) {
                plan.actions
                    .push("/etc/vzdump.conf is already as in the backup".into());
            } else {
                plan.actions
                    .push("write /etc/vzdump.conf as in the backup".into());
                plan.changes.push(PlannedChange::file(
                    "/etc/vzdump.conf",
                    current.as_deref(),
                    Some(bytes),
                ));
            }
        }
        plan.actions.extend(inputs.bad.iter().cloned());
        let mut calls: Vec<String> = Vec::new();
        let mut left: Vec<String> = Vec::new();
        match &g {
            Gate::Recovery => {
                if inputs.has_storage_cfg || inputs.datacenter.is_some() {
                    plan.actions.push(format!(
                        "leave storage.cfg and datacenter.cfg: {}",
                        super::api::RECOVERY_REASON
                    ));
                }
            }
            Gate::NoPvesh(why) => plan
                .actions
                .push(format!("skip storage.cfg and datacenter.cfg: {why}")),
            Gate::Deferred | Gate::Open => {
                let cancel = proxsave_archive::progress::CancelToken::new();
                let pvesh = Pvesh::new(ctx.host, &cancel);
                let open = g == Gate::Open;
                if inputs.has_storage_cfg && storage_yes {
                    for d in &inputs.storages {
                        if !open {
                            let c = d.upsert.create_call();
                            plan.changes
                                .push(planned_change(&d.upsert.set_path, &c, None));
                            calls.push(format!("{c} (or `set` when storage {} exists)", d.id));
                            continue;
                        }
                        let current = match pvesh.get(&d.upsert.get_path) {
                            Ok(v) => Some(v),
                            Err(e) if e.is_not_found() => None,
                            Err(e) => {
                                plan.actions
                                    .push(format!("storage {}: cannot be read: {e}", d.id));
                                continue;
                            }
                        };
                        match d.step(current.as_ref()) {
                            StorageStep::Call(c, notes) => {
                                plan.changes.push(planned_change(
                                    &d.upsert.set_path,
                                    &c,
                                    current.as_ref(),
                                ));
                                calls.push(c.to_string());
                                plan.actions.extend(notes);
                            }
                            StorageStep::Unchanged(notes) => {
                                plan.actions
                                    .push(format!("storage {}: already as in the backup", d.id));
                                plan.actions.extend(notes);
                            }
                            StorageStep::Failed(why) => plan.actions.push(why),
                        }
                    }
                    if open {
                        left.extend(storages_left(&pvesh, &inputs.storages));
                    }
                } else if inputs.has_storage_cfg {
                    plan.actions.push(format!(
                        "leave the storages (answer `no` to {})",
                        Q_STORAGE.id
                    ));
                }
                if let Some(c) = inputs.datacenter_call() {
                    if !dc_yes {
                        plan.actions.push(format!(
                            "leave datacenter.cfg (answer `no` to {})",
                            Q_DATACENTER.id
                        ));
                    } else {
                        let cur = if open {
                            pvesh.get("/cluster/options").ok()
                        } else {
                            None
                        };
                        if let Some(dc) = &inputs.datacenter {
                            left.extend(datacenter_left(ctx.root, dc));
                        }
                        if cur.as_ref().is_some_and(|v| same_as(&c.params, v)) {
                            plan.actions
                                .push("datacenter options: already as in the backup".into());
                        } else {
                            plan.changes
                                .push(planned_change("/cluster/options", &c, cur.as_ref()));
                            calls.push(c.to_string());
                        }
                    }
                }
                let verb = if open { "call" } else { "call (deferred)" };
                plan.actions
                    .extend(calls.iter().map(|c| format!("{verb}: {c}")));
                plan.actions
                    .extend(left.iter().map(|l| format!("leave {l}")));
            }
        }
        if g == Gate::Open {
            if inputs.has_storage_cfg {
                plan.questions
                    .push(ask_yes(Q_STORAGE, storage_details(&inputs.storages)));
            }
            if inputs.datacenter.is_some() {
                plan.questions.push(ask_yes(Q_DATACENTER, Vec::new()));
            }
        }
        plan.details = json!({
            "vzdump_conf": inputs.vzdump.is_some(),
            "storages": inputs.storages.iter().map(|d| json!({"id": d.id, "type": d.ty})).collect::<Vec<_>>(),
            "calls": calls,
            "left": left,
            "bad_input": inputs.bad,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let inputs = read_inputs(ctx.stage)?;
        let mut tally = Tally::default();
        tally.notes.extend(inputs.bad.iter().cloned());
        let mut summary: Vec<String> = Vec::new();
        let mut vz_failed = None;
        if let Some(bytes) = &inputs.vzdump {
            match write_vzdump(ctx, bytes) {
                Ok(s) => summary.push(s),
                Err(e) => vz_failed = Some(e),
            }
        }
        let g = gate(ctx.plan, ctx.host);
        let nothing_api = !inputs.has_storage_cfg && inputs.datacenter.is_none();
        if g != Gate::Open || nothing_api {
            let mut out = if nothing_api {
                Outcome::new(CATEGORY, Status::Applied, "")
            } else {
                let calls: Vec<String> = inputs
                    .storages
                    .iter()
                    .map(|d| format!("{} (or `set`)", d.upsert.create_call()))
                    .chain(inputs.datacenter_call().map(|c| c.to_string()))
                    .collect();
                if g == Gate::Deferred {
                    for c in &calls {
                        ctx.host.defer_note(c.clone());
                    }
                }
                gated_outcome(CATEGORY, &g, &calls, "storage.cfg and datacenter.cfg")
            };
            if let Some(e) = vz_failed {
                out.status = Status::Failed { error: e };
            } else if !summary.is_empty() {
                if matches!(out.status, Status::Skipped { .. }) && inputs.vzdump.is_some() {
                    // vzdump.conf was applied; say what was not.
                    let why = match &out.status {
                        Status::Skipped { reason } => reason.clone(),
                        _ => String::new(),
                    };
                    out.status = Status::Applied;
                    summary.push(why);
                }
                let rest = std::mem::take(&mut out.detail);
                out.detail = summary
                    .into_iter()
                    .chain((!rest.is_empty()).then_some(rest))
                    .collect::<Vec<_>>()
                    .join("\n");
            } else if nothing_api {
                out.status = Status::Skipped {
                    reason: "the backup has no vzdump.conf, storage.cfg or datacenter.cfg".into(),
                };
            }
            for n in &tally.notes {
                ctx.prompter
                    .say(Level::Warning, &format!("storage_pve: {n}"));
            }
            if !tally.notes.is_empty() {
                out.detail.push('\n');
                out.detail.push_str(&tally.notes.join("\n"));
            }
            return Ok(vec![out]);
        }

        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        let mut missing: Option<String> = None;
        if inputs.has_storage_cfg {
            let answer = ctx
                .prompter
                .ask(&ask_yes(Q_STORAGE, storage_details(&inputs.storages)))?;
            if yes_no(&Q_STORAGE, &answer)? {
                for d in &inputs.storages {
                    if ctx.cancel.is_cancelled() {
                        return Err(ApplyError::Prompt(
                            proxsave_restore::prompt::PromptError::Aborted,
                        ));
                    }
                    let current = match pvesh.get(&d.upsert.get_path) {
                        Ok(v) => Some(v),
                        Err(e) if e.is_not_found() => None,
                        Err(crate::pvesh::PveshError::Missing { message, .. }) => {
                            missing = Some(message);
                            break;
                        }
                        Err(e) => {
                            tally
                                .failed
                                .push(format!("storage {}: reading it failed: {e}", d.id));
                            continue;
                        }
                    };
                    match d.step(current.as_ref()) {
                        StorageStep::Call(c, notes) => {
                            tally.notes.extend(notes);
                            if let Err(m) = tally.call(&pvesh, &d.upsert.object, &c) {
                                missing = Some(m);
                                break;
                            }
                        }
                        StorageStep::Unchanged(notes) => {
                            tally.notes.extend(notes);
                            tally
                                .notes
                                .push(format!("storage {}: already as in the backup", d.id));
                        }
                        StorageStep::Failed(why) => tally.failed.push(why),
                    }
                }
                if missing.is_none() {
                    tally.left.extend(storages_left(&pvesh, &inputs.storages));
                    storage_dirs(ctx.root, ctx.host, &inputs.storages, &mut tally);
                }
            } else {
                tally
                    .left
                    .push(format!("the storages (answer `no` to {})", Q_STORAGE.id));
            }
        }
        if missing.is_none()
            && let Some(call) = inputs.datacenter_call()
        {
            let answer = ctx.prompter.ask(&ask_yes(Q_DATACENTER, Vec::new()))?;
            if yes_no(&Q_DATACENTER, &answer)? {
                let cur = pvesh.get("/cluster/options").ok();
                if let Some(dc) = &inputs.datacenter {
                    tally.left.extend(datacenter_left(ctx.root, dc));
                }
                if cur.as_ref().is_some_and(|c| same_as(&call.params, c)) {
                    tally
                        .notes
                        .push("datacenter options: already as in the backup".into());
                } else if let Err(m) = tally.call(&pvesh, "datacenter options", &call) {
                    missing = Some(m);
                }
            } else {
                tally.left.push(format!(
                    "datacenter.cfg (answer `no` to {})",
                    Q_DATACENTER.id
                ));
            }
        }
        for n in tally.notes.iter().chain(tally.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("storage_pve: {n}"));
        }
        if let Some(m) = missing {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!(
                        "`pvesh` cannot be run ({m}): storage.cfg and datacenter.cfg not applied"
                    ),
                },
                summary.join("\n"),
            )]);
        }
        let mut out = tally.outcome(CATEGORY, &summary.join("; "));
        if let Some(e) = vz_failed {
            out.status = Status::PartlyApplied;
            out.detail = format!("{e}\n{}", out.detail);
        }
        Ok(vec![out])
    }
}

#[cfg(test)]
mod tests;
