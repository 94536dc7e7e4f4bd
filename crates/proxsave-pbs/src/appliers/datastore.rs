//! The `datastore_pbs` applier: `datastore.cfg` (with the datastore safety rules and chunk
//! store creation) and `s3.cfg`.
//!
//! Plan: the backup's `datastore.cfg` goes through [`crate::datastore_cfg::installable`] (the
//! one reader), each datastore gets a [`Verdict`] ([`crate::safety::assess`], the host's
//! mount probe), and the plan lists them. Apply, `--pbs-behavior`:
//!
//! * the deferred datastores are written to `/etc/proxmox-backup/datastore.cfg.deferred`
//!   with the command that brings each back — never into the live file;
//! * **API** (when `proxmox-backup-manager datastore list` answers): `datastore create`
//!   (`--reuse-datastore true` for an existing chunk store) or `datastore update`, each
//!   checked with `datastore list` (creation runs as a PBS task); in clean mode the host's
//!   datastores the backup lacks are removed from the configuration (`datastore remove`, never
//!   `--destroy-data`) — a failed removal is reported and no file is written after it;
//! * **file** (clean mode, when the API is unavailable or a call failed): chunk stores created
//!   the way PBS does ([`crate::chunkstore`]), then `datastore.cfg` written atomically,
//!   `root:backup 0640`, with exactly the backup's applied datastores;
//! * merge mode without the API: nothing is written, and the outcome says so.
//!
//! `s3.cfg` (PBS 4 S3 endpoints): `s3 endpoint create|update` through the API (the access and
//! secret keys redacted everywhere), else in clean mode the file, `root:backup 0640`.

use proxsave_archive::path::ArchivePath;
use proxsave_formats::section::{self, Section};
use proxsave_restore::applier::{
    Answer, Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, ChangeKind,
    FileSpec, Outcome, PlanContext, PlannedChange, QuestionSpec, Status,
};
use proxsave_restore::host::Host;
use proxsave_restore::plan::{PbsBehavior, Plan};
use proxsave_restore::prompt::Level;
use proxsave_restore::roothandle::RootHandle;
use serde_json::json;

use crate::chunkstore;
use crate::datastore_cfg::{self, Datastore, Installable};
use crate::pbm::{Arg, Call, Pbm, PbmError, Version};
use crate::safety::{self, PathState, Verdict};

/// The category.
pub const CATEGORY: &str = "datastore_pbs";
/// The live datastore configuration.
pub const DATASTORE_CFG: &str = "etc/proxmox-backup/datastore.cfg";
/// Where deferred datastores are kept.
pub const DEFERRED_CFG: &str = "etc/proxmox-backup/datastore.cfg.deferred";
/// The S3 endpoints configuration (PBS 4).
pub const S3_CFG: &str = "etc/proxmox-backup/s3.cfg";
/// The PBS command-line tool.
pub const PBM: &str = "proxmox-backup-manager";

/// `pbs.datastores.create`.
pub const Q_CREATE: QuestionSpec = QuestionSpec {
    id: "pbs.datastores.create",
    prompt: "Create PBS chunk stores for the backup's datastores whose folder is empty or missing (mounted, safe paths only)?",
    choices: &["yes", "no"],
};

/// The applier.
pub struct DatastorePbs;

inventory::submit! { ApplierRegistration(&DatastorePbs) }

fn ap(p: &str) -> ArchivePath {
    ArchivePath::from_user(p).unwrap_or_else(|_| unreachable!("constant path {p}"))
}

/// One datastore of the backup with its decision.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The datastore.
    pub ds: Datastore,
    /// Apply or defer.
    pub verdict: Verdict,
}

/// What the plan phase worked out (recomputed by apply: the stage and the root are the same).
struct Inputs {
    /// The backup's datastore.cfg, read; `None` when not staged.
    cfg: Option<Installable>,
    /// Why the staged datastore.cfg is not used (empty, not text, no datastore).
    unusable: Option<String>,
    decided: Vec<Decided>,
    /// The staged s3.cfg when it parses with PBS's grammar.
    s3: Option<section::SectionConfig>,
    s3_bad: Option<String>,
}

fn behavior(plan: &Plan) -> PbsBehavior {
    plan.pbs_behavior.unwrap_or(PbsBehavior::Merge)
}

fn yes_no(a: &Answer) -> Result<bool, ApplyError> {
    match a.value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id: Q_CREATE.id,
            reason: format!("`{other}` is not `yes` or `no`"),
        }),
    }
}

fn read_inputs(
    stage: &proxsave_restore::applier::Stage,
    root: &RootHandle,
    host: &Host,
    create: bool,
) -> Result<Inputs, ApplyError> {
    let mut inputs = Inputs {
        cfg: None,
        unusable: None,
        decided: Vec::new(),
        s3: None,
        s3_bad: None,
    };
    if let Some(bytes) = stage.read(&ap(DATASTORE_CFG))? {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            inputs.unusable = Some(
                "the backup's datastore.cfg is empty: not written (the host's is kept)".into(),
            );
        } else {
            match datastore_cfg::installable(&bytes) {
                Err(e) => {
                    inputs.unusable = Some(format!(
                        "the backup's datastore.cfg cannot be used ({e}): not written"
                    ));
                }
                Ok(i) if i.datastores.is_empty() => {
                    inputs.unusable = Some(format!(
                        "the backup's datastore.cfg has no valid datastore section: not written{}",
                        if i.findings().is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", i.findings().join("; "))
                        }
                    ));
                }
                Ok(i) => inputs.cfg = Some(i),
            }
        }
    }
    if let Some(cfg) = &inputs.cfg {
        let is_mounted =
            |p: &ArchivePath| host.mounts.is_mount_point(&host.root.join(p.as_os_str()));
        let mut owner: Option<Result<chunkstore::Owner, String>> = None;
        for ds in &cfg.datastores {
            let mut verdict = safety::assess(root, &ds.path, &is_mounted);
            if let Verdict::Apply(PathState::Missing | PathState::Empty) = verdict {
                if !create {
                    verdict = Verdict::Defer(format!(
                        "its folder has no chunk store and the answer to {} is `no`",
                        Q_CREATE.id
                    ));
                } else if let Err(e) = owner.get_or_insert_with(|| chunkstore::backup_owner(root)) {
                    verdict = Verdict::Defer(format!("no chunk store can be created: {e}"));
                }
            }
            inputs.decided.push(Decided {
                ds: ds.clone(),
                verdict,
            });
        }
    }
    if let Some(bytes) = stage.read(&ap(S3_CFG))? {
        match std::str::from_utf8(&bytes) {
            Ok(t) if t.trim().is_empty() => {
                inputs.s3_bad = Some("the backup's s3.cfg is empty: not written".into());
            }
            Ok(t) => match section::parse_strict(t) {
                Ok(c) if !c.sections.is_empty() => inputs.s3 = Some(c),
                Ok(_) => {
                    inputs.s3_bad = Some("the backup's s3.cfg has no section: not written".into())
                }
                Err(d) => {
                    inputs.s3_bad = Some(format!(
                        "the backup's s3.cfg is not a valid section-config file (/{S3_CFG} {d}): not written"
                    ));
                }
            },
            Err(_) => inputs.s3_bad = Some("the backup's s3.cfg is not text: not written".into()),
        }
    }
    Ok(inputs)
}

/// The command that brings a deferred datastore back.
pub fn re_enable_command(ds: &Datastore) -> String {
    let mut cmd = format!(
        "{PBM} datastore create {} {}",
        ds.name,
        shell_word(&ds.path)
    );
    for p in &ds.section.props {
        if p.key == "path" {
            continue;
        }
        if let Some(v) = &p.value {
            cmd.push_str(&format!(" --{} {}", p.key, shell_word(v)));
        }
    }
    cmd
}

fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The text of `datastore.cfg.deferred`: a comment block per datastore (the reason and the
/// command), then its section.
pub fn deferred_text(deferred: &[(&Datastore, &str)]) -> String {
    let mut out = String::from(
        "# Datastores from the backup that proxsave did NOT put into datastore.cfg.\n\
         # PBS does not read this file. Once the reason below is fixed (e.g. the disk is\n\
         # mounted), bring a datastore back with the command under it; if its disk already\n\
         # holds the datastore (a .chunks folder), add `--reuse-datastore true` (PBS 3.3+),\n\
         # or copy its section into datastore.cfg and restart proxmox-backup-proxy.\n",
    );
    for (ds, why) in deferred {
        out.push_str(&format!(
            "\n# {}: deferred: {}\n# {}\n",
            ds.name,
            why.replace('\n', " "),
            re_enable_command(ds)
        ));
        out.push_str(&datastore_cfg::render([*ds]));
    }
    out
}

/// A datastore of the host, as `datastore list` shows it.
#[derive(Clone, Debug)]
struct Row {
    name: String,
    path: String,
    /// The row's other keys (properties set on the host).
    keys: Vec<String>,
}

/// `datastore list`. `Err`: the API does not answer (or answers nonsense).
fn list_datastores(pbm: &Pbm<'_>) -> Result<Vec<Row>, PbmError> {
    // `version` first: with host actions deferred nothing runs (and nothing is recorded).
    pbm.version()?;
    let rows = pbm.list(&["datastore"])?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name = ["name", "store"]
                .iter()
                .find_map(|k| r.get(*k).and_then(|v| v.as_str()))?;
            let path = r.get("path").and_then(|p| p.as_str()).unwrap_or("");
            let keys = r
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            Some(Row {
                name: name.to_string(),
                path: path.to_string(),
                keys,
            })
        })
        .collect())
}

/// `--key=value` options of a datastore's properties except `path`.
fn ds_args(ds: &Datastore) -> Vec<Arg> {
    ds.section
        .props
        .iter()
        .filter(|p| p.key != "path")
        .filter_map(|p| p.value.as_ref().map(|v| Arg::new(&p.key, v)))
        .collect()
}

/// The gid of `backup` in the root (config files are `root:backup`).
fn backup_gid(root: &RootHandle) -> Option<u32> {
    chunkstore::backup_owner(root).ok().map(|o| o.gid)
}

fn cfg_spec(root: &RootHandle) -> FileSpec {
    FileSpec {
        mode: Some(0o640),
        uid: Some(0),
        gid: backup_gid(root),
        backup_stamp: None,
    }
}

impl Applier for DatastorePbs {
    fn name(&self) -> &'static str {
        "datastore-pbs"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        700
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_CREATE]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let create = match (ctx.preset)(Q_CREATE.id) {
            Some(a) => yes_no(&a)?,
            None => true,
        };
        let inputs = read_inputs(ctx.stage, ctx.root, ctx.host, create)?;
        let mode = behavior(ctx.plan);
        let mut plan = ApplierPlan::default();
        if let Some(why) = &inputs.unusable {
            plan.actions.push(why.clone());
        }
        if let Some(why) = &inputs.s3_bad {
            plan.actions.push(why.clone());
        }
        let cancel = proxsave_archive::progress::CancelToken::new();
        let pbm = Pbm::new(ctx.host, &cancel);
        let api = list_datastores(&pbm);
        if let Some(cfg) = &inputs.cfg {
            for f in cfg.findings() {
                plan.actions.push(format!("datastore.cfg {f}"));
            }
            if inputs.decided.iter().any(|d| {
                matches!(
                    d.verdict,
                    Verdict::Apply(PathState::Missing | PathState::Empty)
                )
            }) {
                plan.questions.push(Ask::new(Q_CREATE, Some("yes")));
            }
            for d in &inputs.decided {
                plan.actions.push(format!(
                    "datastore {} ({}): {}",
                    d.ds.name, d.ds.path, d.verdict
                ));
            }
            plan.actions.push(match (&api, mode) {
                (Ok(_), _) => format!(
                    "{} mode: through the PBS API ({PBM}; it must answer when this applier runs){}",
                    mode_word(mode),
                    if mode == PbsBehavior::Clean {
                        ", removing the host's datastores the backup lacks from the configuration (data kept)"
                    } else {
                        ""
                    }
                ),
                (Err(why), PbsBehavior::Clean) => format!(
                    "clean mode: the PBS API is not available now ({why}): unless it answers when this applier runs, chunk stores are created and /{DATASTORE_CFG} is written with exactly the backup's applied datastores"
                ),
                (Err(why), PbsBehavior::Merge) => format!(
                    "merge mode: the PBS API is not available now ({why}): unless it answers when this applier runs, nothing is applied (merge never rewrites the file)"
                ),
            });
            let applied: Vec<(&Datastore, PathState)> = inputs
                .decided
                .iter()
                .filter_map(|d| match d.verdict {
                    Verdict::Apply(s) => Some((&d.ds, s)),
                    Verdict::Defer(_) => None,
                })
                .collect();
            match &api {
                Ok(current) => {
                    plan_api_changes(&mut plan, &pbm, mode, &inputs.decided, &applied, current)
                }
                Err(_) if mode == PbsBehavior::Clean => {
                    let before = ctx.root.read(&ap(DATASTORE_CFG)).ok().flatten();
                    let after = datastore_cfg::render(applied.iter().map(|(d, _)| *d));
                    plan.changes.push(PlannedChange::file(
                        &format!("/{DATASTORE_CFG}"),
                        before.as_deref(),
                        Some(after.as_bytes()),
                    ));
                }
                Err(_) => {}
            }
            let deferred: Vec<(&Datastore, &str)> = inputs
                .decided
                .iter()
                .filter_map(|d| match &d.verdict {
                    Verdict::Defer(why) => Some((&d.ds, why.as_str())),
                    _ => None,
                })
                .collect();
            if !deferred.is_empty() {
                plan.changes.push(PlannedChange::file(
                    &format!("/{DEFERRED_CFG}"),
                    ctx.root.read(&ap(DEFERRED_CFG)).ok().flatten().as_deref(),
                    Some(deferred_text(&deferred).as_bytes()),
                ));
            }
            plan.files.push(ap(DATASTORE_CFG));
            plan.files.push(ap(DEFERRED_CFG));
        }
        if let Some(s3) = &inputs.s3 {
            let ids: Vec<&str> = s3.sections.iter().map(|s| s.id.as_str()).collect();
            plan.actions.push(format!(
                "S3 endpoints {}: through the API, else (clean mode) /{S3_CFG}",
                ids.join(", ")
            ));
            plan.files.push(ap(S3_CFG));
        }
        plan.details = json!({
            "behavior": mode_word(mode),
            "api": api.is_ok(),
            "datastores": inputs.decided.iter().map(|d| json!({
                "name": d.ds.name,
                "path": d.ds.path,
                "verdict": match &d.verdict { Verdict::Apply(_) => "apply", Verdict::Defer(_) => "defer" },
                "state": match &d.verdict { Verdict::Apply(s) => json!(s), Verdict::Defer(_) => json!(null) },
                "reason": match &d.verdict { Verdict::Defer(w) => Some(w.clone()), Verdict::Apply(_) => None },
            })).collect::<Vec<_>>(),
            "findings": inputs.cfg.as_ref().map(Installable::findings).unwrap_or_default(),
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mut create = true;
        // Asked only when a chunk store would be created.
        let probe = read_inputs(ctx.stage, ctx.root, ctx.host, true)?;
        if probe.decided.iter().any(|d| {
            matches!(
                d.verdict,
                Verdict::Apply(PathState::Missing | PathState::Empty)
            )
        }) {
            let a = ctx.prompter.ask(&Ask::new(Q_CREATE, Some("yes")))?;
            create = yes_no(&a)?;
        }
        let inputs = if create {
            probe
        } else {
            read_inputs(ctx.stage, ctx.root, ctx.host, false)?
        };
        let mode = behavior(ctx.plan);
        let mut run = Run::default();
        if let Some(why) = &inputs.unusable {
            run.notes.push(why.clone());
        }
        if let Some(why) = &inputs.s3_bad {
            run.notes.push(why.clone());
        }
        let (host, cancel) = (ctx.host, ctx.cancel);
        let pbm = Pbm::new(host, cancel);
        let api = list_datastores(&pbm);
        if let Some(cfg) = &inputs.cfg {
            run.notes.extend(
                cfg.findings()
                    .into_iter()
                    .map(|f| format!("datastore.cfg {f}")),
            );
            apply_datastores(ctx, &pbm, mode, &inputs.decided, api.clone(), &mut run);
        }
        if let Some(s3) = &inputs.s3 {
            apply_s3(ctx, &pbm, mode, s3, api.is_ok(), &mut run);
        }
        for n in run.notes.iter().chain(run.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("{CATEGORY}: {n}"));
        }
        Ok(vec![run.outcome()])
    }
}

fn mode_word(m: PbsBehavior) -> &'static str {
    match m {
        PbsBehavior::Merge => "merge",
        PbsBehavior::Clean => "clean",
    }
}

#[derive(Default)]
struct Run {
    done: Vec<String>,
    deferred: Vec<String>,
    failed: Vec<String>,
    notes: Vec<String>,
    skipped: Vec<String>,
}

impl Run {
    fn outcome(&self) -> Outcome {
        let mut lines = Vec::new();
        if !self.failed.is_empty() {
            lines.push(format!("failed: {}", self.failed.join("; ")));
        }
        if !self.deferred.is_empty() {
            lines.push(format!(
                "deferred (kept in /{DEFERRED_CFG}, not in datastore.cfg): {}",
                self.deferred.join("; ")
            ));
        }
        if !self.skipped.is_empty() {
            lines.push(format!("not applied: {}", self.skipped.join("; ")));
        }
        if !self.done.is_empty() {
            lines.push(format!("done: {}", self.done.join("; ")));
        }
        lines.extend(self.notes.iter().cloned());
        let detail = lines.join("\n");
        let status = if !self.failed.is_empty() {
            if self.done.is_empty() {
                Status::Failed {
                    error: self.failed.join("; "),
                }
            } else {
                Status::PartlyApplied
            }
        } else if !self.deferred.is_empty() {
            Status::Deferred {
                todo: format!(
                    "{} datastore(s) deferred ({}): see /{DEFERRED_CFG} for the command that brings each back",
                    self.deferred.len(),
                    self.deferred
                        .iter()
                        .map(|d| d.split(':').next().unwrap_or_default().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        } else if self.done.is_empty() && !self.skipped.is_empty() {
            Status::Skipped {
                reason: self.skipped.join("; "),
            }
        } else {
            Status::Applied
        };
        Outcome::new(CATEGORY, status, detail)
    }
}

fn apply_datastores(
    ctx: &mut ApplyContext<'_>,
    pbm: &Pbm<'_>,
    mode: PbsBehavior,
    decided: &[Decided],
    api: Result<Vec<Row>, PbmError>,
    run: &mut Run,
) {
    let applied: Vec<(&Datastore, PathState)> = decided
        .iter()
        .filter_map(|d| match d.verdict {
            Verdict::Apply(s) => Some((&d.ds, s)),
            Verdict::Defer(_) => None,
        })
        .collect();
    let mut deferred: Vec<(Datastore, String)> = decided
        .iter()
        .filter_map(|d| match &d.verdict {
            Verdict::Defer(why) => Some((d.ds.clone(), why.clone())),
            Verdict::Apply(_) => None,
        })
        .collect();
    let mut use_file = false;
    match api {
        Ok(current) => {
            let mut api_failed = false;
            let mut remove_failed = false;
            // Datastores the API put in place in this run (the file fallback keeps them).
            let mut api_done: Vec<String> = Vec::new();
            if mode == PbsBehavior::Clean {
                for row in &current {
                    // A deferred datastore the host has keeps the host's definition.
                    if decided.iter().any(|d| d.ds.name == row.name) {
                        continue;
                    }
                    let call = Call::new(["datastore", "remove"], [row.name.as_str()]);
                    match pbm.call(&call) {
                        Ok(_) => run.done.push(format!(
                            "datastore {} removed from the configuration (clean mode; its data is kept on {})",
                            row.name, row.path
                        )),
                        Err(e) => {
                            remove_failed = true;
                            run.failed.push(format!("datastore {}: {e}", row.name));
                        }
                    }
                }
            }
            for (ds, state) in &applied {
                let existing = current.iter().find(|r| r.name == ds.name);
                let result = match existing {
                    Some(row) if row.path == ds.path || row.path.is_empty() => {
                        api_update(pbm, ds, row, mode).map_err(|e| e.to_string())
                    }
                    Some(row) if mode == PbsBehavior::Merge => {
                        run.notes.push(format!(
                            "datastore {}: the host has it at {}, the backup at {}: path left unchanged (merge mode; clean mode moves it)",
                            ds.name, row.path, ds.path
                        ));
                        api_update(pbm, ds, row, mode).map_err(|e| e.to_string())
                    }
                    Some(row) => api_move(ctx, pbm, ds, *state, row),
                    None => api_create(ctx, pbm, ds, *state),
                };
                match result {
                    Ok(what) => {
                        api_done.push(ds.name.clone());
                        run.done.push(what);
                    }
                    Err(e) => {
                        api_failed = true;
                        run.failed.push(format!("datastore {}: {e}", ds.name));
                    }
                }
            }
            if remove_failed {
                run.notes.push(
                    "clean 1:1 incomplete: a datastore could not be removed; datastore.cfg is not rewritten after a failed removal"
                        .into(),
                );
            } else if api_failed && mode == PbsBehavior::Clean {
                run.notes.push(
                    "clean mode: an API call failed: datastore.cfg is written as a file instead"
                        .into(),
                );
                run.failed.retain(|f| !f.starts_with("datastore "));
                use_file = true;
            }
            if use_file {
                file_fallback(ctx, &applied, &api_done, &mut deferred, run);
            }
        }
        Err(why) => match mode {
            PbsBehavior::Merge => {
                run.skipped.push(format!(
                    "the PBS API is not available ({why}): the datastores were not applied (merge mode never rewrites datastore.cfg; run the restore again with the PBS services up, or use --pbs-behavior clean)"
                ));
            }
            PbsBehavior::Clean => {
                run.notes.push(format!(
                    "the PBS API is not available ({why}): datastore.cfg is written as a file (clean mode)"
                ));
                file_fallback(ctx, &applied, &[], &mut deferred, run);
            }
        },
    }
    if !deferred.is_empty() {
        let refs: Vec<(&Datastore, &str)> = deferred.iter().map(|(d, w)| (d, w.as_str())).collect();
        if let Err(e) = ctx.root.replace(
            &ap(DEFERRED_CFG),
            deferred_text(&refs).as_bytes(),
            &cfg_spec(ctx.root),
        ) {
            run.failed.push(format!("/{DEFERRED_CFG}: {e}"));
        }
        for (d, why) in &deferred {
            run.deferred.push(format!("{}: {} ({why})", d.name, d.path));
        }
    }
}

/// Clean mode without a working API: chunk stores created the way PBS does, then
/// `datastore.cfg` written with exactly the backup's applied datastores.
fn file_fallback(
    ctx: &mut ApplyContext<'_>,
    applied: &[(&Datastore, PathState)],
    api_done: &[String],
    deferred: &mut Vec<(Datastore, String)>,
    run: &mut Run,
) {
    let owner = chunkstore::backup_owner(ctx.root);
    let mut keep: Vec<Datastore> = Vec::new();
    for (ds, state) in applied {
        if api_done.contains(&ds.name) {
            keep.push((*ds).clone());
            continue;
        }
        if matches!(state, PathState::Missing | PathState::Empty) {
            let made = owner.clone().and_then(|o| {
                safety::validate_path(&ds.path)
                    .and_then(|p| chunkstore::create(ctx.root, &p, o).map_err(|e| e.to_string()))
            });
            match made {
                Ok(c) => run.done.push(format!(
                    "datastore {}: chunk store created at {} ({} prefix folders, backup:backup)",
                    ds.name, ds.path, c.prefixes
                )),
                Err(e) => {
                    run.failed.push(format!(
                        "datastore {}: the chunk store could not be created: {e}",
                        ds.name
                    ));
                    deferred.push((
                        (*ds).clone(),
                        format!("its chunk store could not be created: {e}"),
                    ));
                    continue;
                }
            }
        } else {
            run.done.push(format!(
                "datastore {}: existing chunk store at {} kept as it is",
                ds.name, ds.path
            ));
        }
        keep.push((*ds).clone());
    }
    if keep.is_empty() {
        run.skipped.push(format!(
            "no datastore of the backup can be applied: /{DATASTORE_CFG} is left as it is"
        ));
        return;
    }
    let text = datastore_cfg::render(keep.iter());
    match ctx
        .root
        .replace(&ap(DATASTORE_CFG), text.as_bytes(), &cfg_spec(ctx.root))
    {
        Ok(_) => run.done.push(format!(
            "/{DATASTORE_CFG} written with {} datastore(s): {}",
            keep.len(),
            keep.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => run.failed.push(format!("/{DATASTORE_CFG}: {e}")),
    }
}

/// `datastore update NAME --k=v …` (clean mode: `--delete` for what the backup lacks).
fn update_call(ds: &Datastore, row: &Row, mode: PbsBehavior) -> Call {
    let mut call = Call::new(["datastore", "update"], [ds.name.as_str()]);
    call.args = ds_args(ds);
    if mode == PbsBehavior::Clean {
        for k in &row.keys {
            let kept = matches!(k.as_str(), "name" | "store" | "path" | "digest")
                || ds.section.get(k).is_some();
            if !kept {
                call.args.push(Arg::new("delete", k));
            }
        }
    }
    call
}

fn api_update(
    pbm: &Pbm<'_>,
    ds: &Datastore,
    row: &Row,
    mode: PbsBehavior,
) -> Result<String, PbmError> {
    pbm.call(&update_call(ds, row, mode))?;
    Ok(format!("datastore {} updated", ds.name))
}

/// `datastore create NAME PATH [--reuse-datastore=true] --k=v …`.
fn create_call(ds: &Datastore, reuse: bool) -> Call {
    let mut call = Call::new(
        ["datastore", "create"],
        [ds.name.as_str(), ds.path.as_str()],
    );
    if reuse {
        call = call.arg("reuse-datastore", "true");
    }
    call.args.extend(ds_args(ds));
    call
}

/// True when PBS is known to be older than 3.3 (no `--reuse-datastore`).
fn cannot_reuse(pbm: &Pbm<'_>) -> bool {
    matches!(pbm.version(), Ok(Some(v)) if v < REUSE_SINCE)
}

/// The plan's changes when the API answers: the calls apply will make.
fn plan_api_changes(
    plan: &mut ApplierPlan,
    pbm: &Pbm<'_>,
    mode: PbsBehavior,
    decided: &[Decided],
    applied: &[(&Datastore, PathState)],
    current: &[Row],
) {
    let target = |name: &str| format!("/config/datastore/{name}");
    if mode == PbsBehavior::Clean {
        for row in current
            .iter()
            .filter(|r| !decided.iter().any(|d| d.ds.name == r.name))
        {
            plan.changes.push(PlannedChange::call(
                &target(&row.name),
                ChangeKind::Delete,
                format!(
                    "{} (configuration only; the data at {} is kept)",
                    Call::new(["datastore", "remove"], [row.name.as_str()]),
                    row.path
                ),
                None,
                None,
            ));
        }
    }
    for (ds, state) in applied {
        let after = Some(datastore_cfg::render([*ds]));
        let reuse = *state == PathState::Existing;
        let change = match current.iter().find(|r| r.name == ds.name) {
            Some(row)
                if row.path == ds.path || row.path.is_empty() || mode == PbsBehavior::Merge =>
            {
                PlannedChange::call(
                    &target(&ds.name),
                    ChangeKind::Set,
                    update_call(ds, row, mode).to_string(),
                    None,
                    after,
                )
            }
            Some(row) => PlannedChange::call(
                &target(&ds.name),
                ChangeKind::Create,
                format!(
                    "{} then {} (moved from {}; put back there if the creation fails)",
                    Call::new(["datastore", "remove"], [ds.name.as_str()]),
                    create_call(ds, reuse),
                    row.path
                ),
                None,
                after,
            ),
            None if reuse && cannot_reuse(pbm) => PlannedChange::call(
                &format!("/{DATASTORE_CFG}"),
                ChangeKind::Write,
                format!(
                    "add datastore {} to /{DATASTORE_CFG} (PBS before 3.3 cannot adopt an existing chunk store through its API)",
                    ds.name
                ),
                None,
                after,
            ),
            None => PlannedChange::call(
                &target(&ds.name),
                ChangeKind::Create,
                create_call(ds, reuse).to_string(),
                None,
                after,
            ),
        };
        plan.changes.push(change);
    }
}

/// Clean mode, the host has the datastore at another path: remove it, create it at the
/// backup's path; when that fails, put it back at the old one.
fn api_move(
    ctx: &mut ApplyContext<'_>,
    pbm: &Pbm<'_>,
    ds: &Datastore,
    state: PathState,
    row: &Row,
) -> Result<String, String> {
    pbm.call(&Call::new(["datastore", "remove"], [ds.name.as_str()]))
        .map_err(|e| e.to_string())?;
    match api_create(ctx, pbm, ds, state) {
        Ok(what) => Ok(format!("{what} (moved from {})", row.path)),
        Err(e) => {
            let old = Datastore {
                path: row.path.clone(),
                ..ds.clone()
            };
            match api_create(ctx, pbm, &old, PathState::Existing) {
                Ok(_) => Err(format!(
                    "{e}; the datastore was put back at its old path {}",
                    row.path
                )),
                Err(e2) => Err(format!(
                    "{e}; putting it back at {} failed too ({e2}): its data is still on disk, re-create it by hand",
                    row.path
                )),
            }
        }
    }
}

/// PBS 3.3 added `--reuse-datastore` to adopt an existing chunk store through the API.
const REUSE_SINCE: Version = Version(3, 3, 0);

/// `datastore create` through the API, then `datastore list` to see it (creation runs as a
/// PBS task). An existing chunk store is adopted with `--reuse-datastore` (PBS 3.3+); an
/// older PBS has no API for that, so its definition is added to `datastore.cfg` (the chunk
/// store is not touched either way).
fn api_create(
    ctx: &mut ApplyContext<'_>,
    pbm: &Pbm<'_>,
    ds: &Datastore,
    state: PathState,
) -> Result<String, String> {
    if state == PathState::Existing && cannot_reuse(pbm) {
        return add_definition(
            ctx,
            ds,
            "PBS before 3.3 cannot adopt an existing chunk store through its API",
        );
    }
    match pbm.call(&create_call(ds, state == PathState::Existing)) {
        Ok(_) => {}
        Err(PbmError::ParamRejected { param, .. }) if param == "reuse-datastore" => {
            return add_definition(
                ctx,
                ds,
                "this PBS does not know --reuse-datastore (PBS before 3.3)",
            );
        }
        Err(e) => return Err(e.to_string()),
    }
    let now = list_datastores(pbm).map_err(|e| e.to_string())?;
    if now.iter().any(|r| r.name == ds.name) {
        Ok(match state {
            PathState::Existing => format!(
                "datastore {} added (existing chunk store at {} reused)",
                ds.name, ds.path
            ),
            _ => format!(
                "datastore {} created at {} (PBS built its chunk store)",
                ds.name, ds.path
            ),
        })
    } else {
        Err(format!(
            "`{PBM} datastore create {}` returned, but `datastore list` does not show it (see the PBS task log)",
            ds.name
        ))
    }
}

/// Adds (or replaces) one datastore's definition in the live `datastore.cfg`, keeping the
/// others: for an existing chunk store on a PBS that cannot adopt one through its API.
fn add_definition(ctx: &mut ApplyContext<'_>, ds: &Datastore, why: &str) -> Result<String, String> {
    let live = ctx
        .root
        .read(&ap(DATASTORE_CFG))
        .map_err(|e| format!("/{DATASTORE_CFG} cannot be read: {e}"))?
        .unwrap_or_default();
    let mut list = if live.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        let cfg = datastore_cfg::installable(&live)
            .map_err(|e| format!("the live /{DATASTORE_CFG} cannot be read ({e}): not changed"))?;
        if !cfg.dropped.is_empty() || !cfg.duplicates.is_empty() {
            return Err(format!(
                "the live /{DATASTORE_CFG} has lines PBS does not load ({}): not changed",
                cfg.findings().join("; ")
            ));
        }
        cfg.datastores
    };
    match list.iter_mut().find(|d| d.name == ds.name) {
        Some(d) => *d = ds.clone(),
        None => list.push(ds.clone()),
    }
    let text = datastore_cfg::render(list.iter());
    ctx.root
        .replace(&ap(DATASTORE_CFG), text.as_bytes(), &cfg_spec(ctx.root))
        .map_err(|e| format!("/{DATASTORE_CFG}: {e}"))?;
    Ok(format!(
        "datastore {}: its definition was added to /{DATASTORE_CFG} ({why}); the existing chunk store at {} is kept as it is",
        ds.name, ds.path
    ))
}

/// S3 endpoint keys whose values are secrets.
const S3_SECRET_KEYS: [&str; 2] = ["access-key", "secret-key"];

fn s3_call(verb: &str, s: &Section) -> Call {
    let mut call = Call::new(["s3", "endpoint", verb], [s.id.as_str()]);
    for p in &s.props {
        if let Some(v) = &p.value {
            call = if S3_SECRET_KEYS.contains(&p.key.as_str()) {
                call.secret(&p.key, v)
            } else {
                call.arg(&p.key, v)
            };
        }
    }
    call
}

fn apply_s3(
    ctx: &mut ApplyContext<'_>,
    pbm: &Pbm<'_>,
    mode: PbsBehavior,
    s3: &section::SectionConfig,
    api: bool,
    run: &mut Run,
) {
    if api {
        let mut failed = false;
        let mut remove_failed = false;
        if mode == PbsBehavior::Clean {
            match pbm.ids(&["s3", "endpoint"], &["id", "name"]) {
                Ok(ids) => {
                    for id in ids
                        .iter()
                        .filter(|id| !s3.sections.iter().any(|s| s.id == **id))
                    {
                        match pbm.call(&Call::new(["s3", "endpoint", "remove"], [id.as_str()])) {
                            Ok(_) => run
                                .done
                                .push(format!("S3 endpoint {id} removed (clean mode)")),
                            Err(e) => {
                                remove_failed = true;
                                run.failed.push(format!("S3 endpoint {id}: {e}"));
                            }
                        }
                    }
                }
                Err(e) => {
                    remove_failed = true;
                    run.failed.push(format!(
                        "S3 endpoints: cannot list them, clean 1:1 cannot be enforced: {e}"
                    ));
                }
            }
        }
        for s in &s3.sections {
            let r = match pbm.call(&s3_call("create", s)) {
                Ok(_) => Ok(()),
                Err(PbmError::AlreadyExists { .. }) => pbm
                    .call(&s3_call("update", s))
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match r {
                Ok(()) => run.done.push(format!("S3 endpoint {} applied", s.id)),
                Err(e) => {
                    failed = true;
                    run.failed.push(format!("S3 endpoint {}: {e}", s.id));
                }
            }
        }
        if !(failed && mode == PbsBehavior::Clean) || remove_failed {
            return;
        }
        run.notes.push(
            "clean mode: an S3 endpoint call failed: s3.cfg is written as a file instead".into(),
        );
        run.failed.retain(|f| !f.starts_with("S3 endpoint "));
    } else if mode == PbsBehavior::Merge {
        run.skipped.push(
            "S3 endpoints: the PBS API is not available (merge mode never rewrites s3.cfg)".into(),
        );
        return;
    }
    let text = s3.sections.iter().map(Section::render).collect::<String>();
    let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
    match ctx
        .root
        .replace(&ap(S3_CFG), text.as_bytes(), &cfg_spec(ctx.root))
    {
        Ok(_) => run.done.push(format!(
            "/{S3_CFG} written ({} endpoint(s))",
            s3.sections.len()
        )),
        Err(e) => run.failed.push(format!("/{S3_CFG}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deferred_file_names_the_reason_and_the_command() {
        let i =
            datastore_cfg::installable(b"datastore: store3\n\tcomment Off site\n\tpath /mnt/ds3\n")
                .expect("ok");
        let t = deferred_text(&[(&i.datastores[0], "not mounted")]);
        assert!(t.contains("# store3: deferred: not mounted\n"), "{t}");
        assert!(
            t.contains(
                "# proxmox-backup-manager datastore create store3 /mnt/ds3 --comment 'Off site'\n"
            ),
            "{t}"
        );
        assert!(
            t.ends_with("datastore: store3\n\tcomment Off site\n\tpath /mnt/ds3\n"),
            "{t}"
        );
    }
}
