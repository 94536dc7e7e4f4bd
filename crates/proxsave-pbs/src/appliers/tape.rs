//! The `pbs_tape` applier: `tape.cfg` (drives, changers), `tape-job.cfg`, `media-pool.cfg`
//! and `tape-encryption-keys.json`.
//!
//! Tape objects belong to `proxmox-tape`, not `proxmox-backup-manager`, and the keys file
//! cannot be re-created through any API (a key is only ever exported as a paper key): all are
//! written as files. Merge: the backup's sections (keys, by fingerprint) are added or replace
//! the host's of the same name, the host's others are kept; clean: exactly the backup's.
//! Configs are `root:backup 0640`, `tape-encryption-keys.json` `root:root 0600`; the key file
//! is never shown in a plan or a message.

use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, ChangeKind, Outcome,
    PlanContext, PlannedChange,
};
use proxsave_restore::plan::PbsBehavior;
use proxsave_restore::prompt::Level;
use proxsave_restore::roothandle::RootHandle;
use serde_json::{Value, json};

use super::common::{
    Run, Staged, ap, behavior, cfg_spec, merge_sections, mode_word, plan_file, read_live,
    read_staged, render_pbs, secret_spec, write_file,
};

/// The category.
pub const CATEGORY: &str = "pbs_tape";
/// The section-config files.
pub const TAPE_CFGS: [&str; 3] = [
    "etc/proxmox-backup/tape.cfg",
    "etc/proxmox-backup/tape-job.cfg",
    "etc/proxmox-backup/media-pool.cfg",
];
/// The encryption keys (a JSON list of `{fingerprint, key}`).
pub const TAPE_KEYS: &str = "etc/proxmox-backup/tape-encryption-keys.json";

/// The applier.
pub struct PbsTape;

inventory::submit! { ApplierRegistration(&PbsTape) }

fn sections(
    root: &RootHandle,
    rel: &str,
    backup: &proxsave_formats::section::SectionConfig,
    mode: PbsBehavior,
) -> Result<Vec<proxsave_formats::section::Section>, String> {
    match mode {
        PbsBehavior::Clean => Ok(backup.sections.clone()),
        PbsBehavior::Merge => match read_live(root, rel) {
            Some(live) => Ok(merge_sections(&live, backup)),
            None if !root.exists(&ap(rel)) => Ok(backup.sections.clone()),
            None => Err(format!(
                "the host's /{rel} does not load as section config: not merged (clean mode replaces it)"
            )),
        },
    }
}

fn key_of(v: &Value) -> Option<String> {
    v.get("fingerprint")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The keys file to write: the backup's (clean) or the host's merged with the backup's by
/// fingerprint (merge). `Err` says why not (never a key).
fn keys_text(root: &RootHandle, backup: &[u8], mode: PbsBehavior) -> Result<Vec<u8>, String> {
    let Ok(Value::Array(want)) = serde_json::from_slice::<Value>(backup) else {
        return Err(format!(
            "the backup's /{TAPE_KEYS} is not a JSON list of keys: not written"
        ));
    };
    if want.iter().any(|k| key_of(k).is_none()) {
        return Err(format!(
            "the backup's /{TAPE_KEYS} has an entry without a fingerprint: not written"
        ));
    }
    let mut out: Vec<Value> = Vec::new();
    if mode == PbsBehavior::Merge {
        if let Some(bytes) = root.read(&ap(TAPE_KEYS)).ok().flatten() {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(live)) => out = live,
                _ => {
                    return Err(format!(
                        "the host's /{TAPE_KEYS} is not a JSON list: not merged (clean mode replaces it)"
                    ));
                }
            }
        }
    }
    for k in want {
        let fp = key_of(&k);
        match out.iter_mut().find(|o| key_of(o) == fp) {
            Some(o) => *o = k,
            None => out.push(k),
        }
    }
    serde_json::to_vec_pretty(&Value::Array(out)).map_err(|e| format!("{TAPE_KEYS}: {e}"))
}

impl Applier for PbsTape {
    fn name(&self) -> &'static str {
        "pbs-tape"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        750
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        let mode = behavior(ctx.plan);
        for rel in TAPE_CFGS {
            match read_staged(ctx.stage, rel)? {
                Staged::Absent => {}
                Staged::Unusable(why) => plan.actions.push(why),
                Staged::Cfg(cfg) => match sections(ctx.root, rel, &cfg, mode) {
                    Ok(after) => {
                        plan.files.push(ap(rel));
                        plan.changes.push(plan_file(ctx.root, rel, &after, &[]));
                    }
                    Err(why) => plan.actions.push(why),
                },
            }
        }
        if let Some(bytes) = ctx.stage.read(&ap(TAPE_KEYS))? {
            match keys_text(ctx.root, &bytes, mode) {
                Ok(_) => {
                    plan.files.push(ap(TAPE_KEYS));
                    plan.changes.push(PlannedChange::call(
                        &format!("/{TAPE_KEYS}"),
                        ChangeKind::Write,
                        format!("write /{TAPE_KEYS} (root:root 0600; contents not shown: encryption keys)"),
                        None,
                        None,
                    ));
                }
                Err(why) => plan.actions.push(why),
            }
        }
        if !plan.files.is_empty() {
            plan.actions.insert(
                0,
                format!(
                    "{} mode: tape drives, jobs, media pools and encryption keys as files{}",
                    mode_word(mode),
                    if mode == PbsBehavior::Clean {
                        " (exactly the backup's)"
                    } else {
                        " (merged: the host's others kept)"
                    }
                ),
            );
        }
        plan.details = json!({ "behavior": mode_word(mode) });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mode = behavior(ctx.plan);
        let mut run = Run::default();
        let mut any = false;
        for rel in TAPE_CFGS {
            match read_staged(ctx.stage, rel)? {
                Staged::Absent => {}
                Staged::Unusable(why) => {
                    any = true;
                    run.skipped.push(why);
                }
                Staged::Cfg(cfg) => {
                    any = true;
                    match sections(ctx.root, rel, &cfg, mode) {
                        Ok(after) => write_file(
                            ctx.root,
                            rel,
                            &render_pbs(after.iter()),
                            &cfg_spec(ctx.root),
                            &mut run,
                        ),
                        Err(why) => run.skipped.push(why),
                    }
                }
            }
        }
        if let Some(bytes) = ctx.stage.read(&ap(TAPE_KEYS))? {
            any = true;
            match keys_text(ctx.root, &bytes, mode) {
                Ok(text) => match ctx.root.replace(&ap(TAPE_KEYS), &text, &secret_spec()) {
                    Ok(_) => run.done.push(format!("/{TAPE_KEYS} written")),
                    Err(e) => run.failed.push(format!("/{TAPE_KEYS}: {e}")),
                },
                Err(why) => run.skipped.push(why),
            }
        }
        if !any {
            return Ok(Vec::new());
        }
        for n in run.notes.iter().chain(run.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("{CATEGORY}: {n}"));
        }
        Ok(vec![run.outcome(CATEGORY)])
    }
}
