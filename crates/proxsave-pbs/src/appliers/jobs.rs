//! The `pbs_jobs` applier: `sync.cfg`, `verification.cfg` and `prune.cfg` through
//! `proxmox-backup-manager sync-job|verify-job|prune-job`.
//!
//! Merge: create or update the backup's jobs. Clean: also remove the host's other jobs; this
//! applier runs before `pbs_remotes`, so the jobs go before the remotes they use (PBS refuses
//! to remove a remote a sync job uses). Per file: a failed create/update in clean mode writes
//! the backup's file instead (only that file), never after a failed removal. Without the API:
//! clean writes the files (`root:backup 0640`), merge skips and says so.

use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
};
use proxsave_restore::plan::PbsBehavior;
use proxsave_restore::prompt::Level;
use serde_json::json;

use super::common::{
    self, ApiFile, ApiKind, Desired, Run, Staged, apply_api_file, behavior, mode_word, plan_calls,
    plan_file, read_staged,
};
use crate::pbm::Pbm;

/// The category.
pub const CATEGORY: &str = "pbs_jobs";

const KEEP: [&str; 6] = [
    "keep-last",
    "keep-hourly",
    "keep-daily",
    "keep-weekly",
    "keep-monthly",
    "keep-yearly",
];

/// `proxmox-backup-manager sync-job`.
pub static SYNC: ApiKind = ApiKind {
    label: "sync job",
    words: &["sync-job"],
    id_keys: &["id"],
    remove_verb: "remove",
    secret_keys: &[],
    deletable: &[
        "owner",
        "comment",
        "schedule",
        "remove-vanished",
        "group-filter",
        "rate-in",
        "burst-in",
        "rate-out",
        "burst-out",
        "ns",
        "remote-ns",
        "max-depth",
        "transfer-last",
    ],
};

/// `proxmox-backup-manager verify-job`.
pub static VERIFY: ApiKind = ApiKind {
    label: "verify job",
    words: &["verify-job"],
    id_keys: &["id"],
    remove_verb: "remove",
    secret_keys: &[],
    deletable: &[
        "ignore-verified",
        "comment",
        "schedule",
        "outdated-after",
        "ns",
        "max-depth",
    ],
};

/// `proxmox-backup-manager prune-job`.
pub static PRUNE: ApiKind = ApiKind {
    label: "prune job",
    words: &["prune-job"],
    id_keys: &["id"],
    remove_verb: "remove",
    secret_keys: &[],
    deletable: &[
        "comment",
        "disable",
        "ns",
        "max-depth",
        KEEP[0],
        KEEP[1],
        KEEP[2],
        KEEP[3],
        KEEP[4],
        KEEP[5],
    ],
};

/// The three job files, with the section type of each.
pub static FILES: [(ApiFile, &str); 3] = [
    (
        ApiFile {
            rel: "etc/proxmox-backup/sync.cfg",
            kind: &SYNC,
            secret_file: false,
        },
        "sync",
    ),
    (
        ApiFile {
            rel: "etc/proxmox-backup/verification.cfg",
            kind: &VERIFY,
            secret_file: false,
        },
        "verification",
    ),
    (
        ApiFile {
            rel: "etc/proxmox-backup/prune.cfg",
            kind: &PRUNE,
            secret_file: false,
        },
        "prune",
    ),
];

/// The applier.
pub struct PbsJobs;

inventory::submit! { ApplierRegistration(&PbsJobs) }

fn desired(
    cfg: &proxsave_formats::section::SectionConfig,
    ty: &str,
    rel: &str,
    run: &mut Run,
) -> Vec<Desired> {
    let mut out = Vec::new();
    for s in &cfg.sections {
        if s.ty == ty {
            out.push(Desired::from_section(s, &[]));
        } else {
            run.notes.push(format!(
                "/{rel}: section `{}: {}` is not a {ty} job: ignored",
                s.ty, s.id
            ));
        }
    }
    out
}

fn no_keep(_: &serde_json::Value) -> bool {
    false
}

impl Applier for PbsJobs {
    fn name(&self) -> &'static str {
        "pbs-jobs"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        720
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        let mode = behavior(ctx.plan);
        let cancel = proxsave_archive::progress::CancelToken::new();
        let pbm = Pbm::new(ctx.host, &cancel);
        let mut jobs = Vec::new();
        for (f, ty) in &FILES {
            let cfg = match read_staged(ctx.stage, f.rel)? {
                Staged::Absent => continue,
                Staged::Unusable(why) => {
                    plan.actions.push(why);
                    continue;
                }
                Staged::Cfg(c) => c,
            };
            let mut scratch = Run::default();
            let want = desired(&cfg, ty, f.rel, &mut scratch);
            plan.actions.extend(scratch.notes);
            jobs.extend(want.iter().map(|d| format!("{} {}", f.kind.label, d.id)));
            match common::list(&pbm, f.kind) {
                Ok(current) => {
                    let ids: Vec<String> = cfg.sections.iter().map(|s| s.id.clone()).collect();
                    plan.changes.extend(plan_calls(
                        f.kind, &current, &want, &ids, mode, &no_keep,
                    ));
                }
                Err(e) => match mode {
                    PbsBehavior::Merge => plan.actions.push(format!(
                        "merge mode: the PBS API is not available now ({e}): unless it answers when this applier runs, the {}s are not applied",
                        f.kind.label
                    )),
                    PbsBehavior::Clean => {
                        plan.actions.push(format!(
                            "clean mode: the PBS API is not available now ({e}): unless it answers when this applier runs, /{} is written as the backup has it",
                            f.rel
                        ));
                        plan.changes.push(plan_file(ctx.root, f.rel, &cfg.sections, &[]));
                    }
                },
            }
            plan.files.push(common::ap(f.rel));
        }
        if !jobs.is_empty() {
            plan.actions.insert(
                0,
                format!(
                    "{} mode: sync, verify and prune jobs through the PBS API{}",
                    mode_word(mode),
                    if mode == PbsBehavior::Clean {
                        "; the host's other jobs are removed (before the remotes they use)"
                    } else {
                        ""
                    }
                ),
            );
        }
        plan.details = json!({ "behavior": mode_word(mode), "jobs": jobs });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mode = behavior(ctx.plan);
        let mut run = Run::default();
        let pbm = Pbm::new(ctx.host, ctx.cancel);
        let mut any = false;
        for (f, ty) in &FILES {
            let cfg = match read_staged(ctx.stage, f.rel)? {
                Staged::Absent => continue,
                Staged::Unusable(why) => {
                    any = true;
                    run.skipped.push(why);
                    continue;
                }
                Staged::Cfg(c) => c,
            };
            any = true;
            let want = desired(&cfg, ty, f.rel, &mut run);
            apply_api_file(ctx.root, &pbm, f, &cfg, &want, mode, &no_keep, &mut run);
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
