//! `pve-jobs`: the `pve_jobs` category — the backup jobs of `jobs.cfg` and the replication
//! jobs of `replication.cfg`, through the API.
//!
//! - `vzdump` sections of `jobs.cfg`: `pvesh get /cluster/backup/<id>`, then `pvesh set
//!   /cluster/backup/<id> …` or `pvesh create /cluster/backup --id=<id> …` (every option of the
//!   section, bare flags as `1`).
//! - `replication.cfg` (`local: <guest>-<n>`): applied through `/cluster/replication` (`set` or
//!   `create --id=… --type=local --target=…`; `target` is fixed at creation, `source` is PVE's
//!   own bookkeeping and never sent) only when the guest exists in this cluster (`pvesh get
//!   /cluster/resources --type=vm`) and the target is one of its nodes (`pvesh get /nodes`);
//!   otherwise listed.
//! - Other job types (`realm-sync`, …) and the legacy `vzdump.cron` are listed as not applied.
//!
//! Gates, question (`pve.jobs.apply`), failures: as the other API appliers (see
//! [`super::storage`]).

use proxsave_archive::path::ArchivePath;
use proxsave_formats::section::Section;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
    QuestionSpec, Stage, Status,
};
use proxsave_restore::prompt::Level;
use serde_json::json;

use super::api::{
    Gate, Tally, Upsert, ap, apply_upserts, ask_yes, check_preset, decode_text, gate,
    gated_outcome, json_text, plan_upserts, section_params, staged_sections, yes_no,
};
use crate::pvesh::{Param, Pvesh};

/// The category.
pub const CATEGORY: &str = "pve_jobs";
/// The backup (and other) jobs.
pub const JOBS_CFG: &str = "etc/pve/jobs.cfg";
/// The replication jobs.
pub const REPLICATION_CFG: &str = "etc/pve/replication.cfg";
/// The legacy cron file of backup jobs.
pub const VZDUMP_CRON: &str = "etc/pve/vzdump.cron";

/// `pve.jobs.apply`.
pub const Q_JOBS: QuestionSpec = QuestionSpec {
    id: "pve.jobs.apply",
    prompt: "Apply the backup's backup and replication jobs through the PVE API?",
    choices: &["yes", "no"],
};

/// The `pve-jobs` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PveJobs;

inventory::submit! { ApplierRegistration(&PveJobs) }

/// The upsert of a `vzdump` section.
pub(crate) fn backup_job(s: &Section) -> Upsert {
    Upsert {
        object: format!("backup job {}", s.id),
        get_path: format!("/cluster/backup/{}", s.id),
        set_path: format!("/cluster/backup/{}", s.id),
        create_path: "/cluster/backup".into(),
        create_first: vec![Param::new("id", s.id.clone())],
        params: section_params(s, &["type", "id", "digest"]),
        fixed: Vec::new(),
    }
}

/// The upsert of a replication section.
pub(crate) fn replication_job(s: &Section) -> Upsert {
    let mut params = section_params(s, &["type", "id", "digest", "source", "guest", "jobnum"]);
    for p in &mut params {
        if p.key == "comment" {
            p.value = decode_text(&p.value);
        }
    }
    Upsert {
        object: format!("replication job {}", s.id),
        get_path: format!("/cluster/replication/{}", s.id),
        set_path: format!("/cluster/replication/{}", s.id),
        create_path: "/cluster/replication".into(),
        create_first: vec![
            Param::new("id", s.id.clone()),
            Param::new("type", s.ty.clone()),
        ],
        params,
        fixed: vec!["target"],
    }
}

struct Inputs {
    backup: Vec<Upsert>,
    replication: Vec<(Section, Upsert)>,
    /// Listed as not applied.
    not_applied: Vec<String>,
    bad: Vec<String>,
    files: Vec<ArchivePath>,
}

fn read_inputs(stage: &Stage) -> Inputs {
    let mut i = Inputs {
        backup: Vec::new(),
        replication: Vec::new(),
        not_applied: Vec::new(),
        bad: Vec::new(),
        files: Vec::new(),
    };
    match staged_sections(stage, JOBS_CFG) {
        Ok(Some((cfg, diags))) => {
            i.files.push(ap(JOBS_CFG));
            i.bad.extend(diags);
            for s in &cfg.sections {
                if s.ty.eq_ignore_ascii_case("vzdump") {
                    i.backup.push(backup_job(s));
                } else {
                    i.not_applied.push(format!(
                        "{} job {}: not applied (only backup jobs are restored from jobs.cfg; recreate it by hand)",
                        s.ty, s.id
                    ));
                }
            }
        }
        Ok(None) => {}
        Err(e) => i.bad.push(e),
    }
    match staged_sections(stage, REPLICATION_CFG) {
        Ok(Some((cfg, diags))) => {
            i.files.push(ap(REPLICATION_CFG));
            i.bad.extend(diags);
            for s in &cfg.sections {
                if s.ty == "local" {
                    i.replication.push((s.clone(), replication_job(s)));
                } else {
                    i.bad.push(format!(
                        "/{REPLICATION_CFG} line {}: replication job {} of unknown type `{}` (skipped)",
                        s.line, s.id, s.ty
                    ));
                }
            }
        }
        Ok(None) => {}
        Err(e) => i.bad.push(e),
    }
    if stage.exists(&ap(VZDUMP_CRON)) {
        i.not_applied.push(
            "vzdump.cron: not applied (the legacy cron file of backup jobs; PVE keeps backup jobs in jobs.cfg)".into(),
        );
    }
    i
}

/// The guests and nodes of this cluster (`None` when they cannot be read).
fn cluster_members(pvesh: &Pvesh<'_>) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let guests = pvesh
        .get_with("/cluster/resources", &[Param::new("type", "vm")])
        .ok()
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|o| o.get("vmid").map(json_text))
                    .collect()
            })
        });
    let nodes = pvesh
        .get("/nodes")
        .ok()
        .map(|v| super::api::list_ids(&v, "node"));
    (guests, nodes)
}

/// Splits the replication jobs into those that can be applied and those listed (why).
fn replication_ready(pvesh: &Pvesh<'_>, jobs: &[(Section, Upsert)]) -> (Vec<Upsert>, Vec<String>) {
    if jobs.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let (guests, nodes) = cluster_members(pvesh);
    let mut ready = Vec::new();
    let mut left = Vec::new();
    for (s, u) in jobs {
        let guest = s.id.split('-').next().unwrap_or_default().to_string();
        let target = s.get("target").unwrap_or_default().to_string();
        // Unknown (the list cannot be read): PVE's own check on `create` decides.
        let guest_ok = guests.as_ref().is_none_or(|g| g.contains(&guest));
        let node_ok = nodes.as_ref().is_none_or(|n| n.contains(&target));
        if guest_ok && node_ok {
            ready.push(u.clone());
        } else {
            let mut why = Vec::new();
            if !guest_ok {
                why.push(format!("guest {guest} is not in this cluster"));
            }
            if !node_ok {
                why.push(format!("target node `{target}` is not in this cluster"));
            }
            left.push(format!(
                "replication job {}: not applied ({}); restore the guest, then add the job again",
                s.id,
                why.join(", ")
            ));
        }
    }
    (ready, left)
}

impl Applier for PveJobs {
    fn name(&self) -> &'static str {
        "pve-jobs"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        610
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_JOBS]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let inputs = read_inputs(ctx.stage);
        let yes = check_preset(ctx, &Q_JOBS)?;
        let g = gate(ctx.plan, ctx.host);
        let mut plan = ApplierPlan::default();
        plan.actions.extend(inputs.bad.iter().cloned());
        let any = !inputs.backup.is_empty() || !inputs.replication.is_empty();
        match &g {
            Gate::Recovery => {
                plan.actions
                    .push(format!("leave the jobs: {}", super::api::RECOVERY_REASON));
            }
            Gate::NoPvesh(why) => plan.actions.push(format!("skip the jobs: {why}")),
            Gate::Open | Gate::Deferred if any => {
                plan.files = inputs.files.clone();
                if g == Gate::Open {
                    plan.questions.push(ask_yes(Q_JOBS, Vec::new()));
                }
                if !yes {
                    plan.actions
                        .push(format!("leave the jobs (answer `no` to {})", Q_JOBS.id));
                } else {
                    let cancel = proxsave_archive::progress::CancelToken::new();
                    let pvesh = Pvesh::new(ctx.host, &cancel);
                    let open = g == Gate::Open;
                    plan_upserts(&pvesh, open, &inputs.backup, &mut plan);
                    if open {
                        let (ready, left) = replication_ready(&pvesh, &inputs.replication);
                        plan_upserts(&pvesh, true, &ready, &mut plan);
                        plan.actions.extend(left);
                    } else {
                        let all: Vec<Upsert> =
                            inputs.replication.iter().map(|(_, u)| u.clone()).collect();
                        plan_upserts(&pvesh, false, &all, &mut plan);
                    }
                }
            }
            Gate::Open | Gate::Deferred => {}
        }
        plan.actions.extend(inputs.not_applied.iter().cloned());
        plan.details = json!({
            "backup_jobs": inputs.backup.iter().map(|u| u.object.clone()).collect::<Vec<_>>(),
            "replication_jobs": inputs.replication.iter().map(|(s, _)| s.id.clone()).collect::<Vec<_>>(),
            "not_applied": inputs.not_applied,
            "bad_input": inputs.bad,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let inputs = read_inputs(ctx.stage);
        let mut tally = Tally::default();
        tally.notes.extend(inputs.bad.iter().cloned());
        tally.left.extend(inputs.not_applied.iter().cloned());
        if inputs.backup.is_empty() && inputs.replication.is_empty() {
            let mut out = Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: "the backup has no backup or replication job to apply".into(),
                },
                "",
            );
            out.detail = tally.outcome(CATEGORY, "").detail;
            return Ok(vec![out]);
        }
        let g = gate(ctx.plan, ctx.host);
        if g != Gate::Open {
            let calls: Vec<String> = inputs
                .backup
                .iter()
                .chain(inputs.replication.iter().map(|(_, u)| u))
                .map(|u| format!("{} (or `set`)", u.create_call()))
                .collect();
            if g == Gate::Deferred {
                for c in &calls {
                    ctx.host.defer_note(c.clone());
                }
            }
            return Ok(vec![gated_outcome(
                CATEGORY,
                &g,
                &calls,
                "jobs.cfg and replication.cfg",
            )]);
        }
        let answer = ctx.prompter.ask(&ask_yes(Q_JOBS, Vec::new()))?;
        if !yes_no(&Q_JOBS, &answer)? {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!("answer `no` to {}", Q_JOBS.id),
                },
                "",
            )]);
        }
        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        let mut missing = apply_upserts(&pvesh, ctx.cancel, &inputs.backup, &mut tally)?;
        if missing.is_none() {
            let (ready, left) = replication_ready(&pvesh, &inputs.replication);
            tally.left.extend(left);
            missing = apply_upserts(&pvesh, ctx.cancel, &ready, &mut tally)?;
            // PVE refuses a job whose guest or target is not in the cluster: listed, not failed.
            let mut still = Vec::new();
            for f in std::mem::take(&mut tally.failed) {
                if f.starts_with("replication job ")
                    && (f.contains("' does not exist.") || f.contains("must not be identical"))
                {
                    tally
                        .left
                        .push(format!("{f} (restore the guest, then add the job again)"));
                } else {
                    still.push(f);
                }
            }
            tally.failed = still;
        }
        if let Some(m) = missing {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!("`pvesh` cannot be run ({m}): the jobs were not applied"),
                },
                "",
            )]);
        }
        for n in tally.notes.iter().chain(tally.failed.iter()) {
            ctx.prompter.say(Level::Warning, &format!("pve_jobs: {n}"));
        }
        Ok(vec![tally.outcome(CATEGORY, "")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sections(text: &str) -> Vec<Section> {
        let (cfg, diags) = proxsave_formats::section::parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        cfg.sections
    }

    #[test]
    fn a_backup_job_is_created_by_id_with_every_option() {
        let s = &sections("vzdump: backup-1\n\tschedule sun 01:00\n\tall\n\tstorage pbs01\n\n")[0];
        let u = backup_job(s);
        assert_eq!(
            u.create_call().to_string(),
            "pvesh create /cluster/backup --id=backup-1 '--schedule=sun 01:00' --all=1 --storage=pbs01"
        );
        let (set, notes) = u.set_call(&json!({"id": "backup-1", "schedule": "daily"}));
        assert!(notes.is_empty());
        assert_eq!(
            set.to_string(),
            "pvesh set /cluster/backup/backup-1 '--schedule=sun 01:00' --all=1 --storage=pbs01"
        );
    }

    #[test]
    fn a_replication_job_never_sends_source_and_keeps_its_target_fixed() {
        let s = &sections(
            "local: 100-0\n\ttarget pve2\n\tschedule */15\n\tsource pve1\n\tcomment a%3Ab\n\n",
        )[0];
        let u = replication_job(s);
        assert_eq!(
            u.create_call().to_string(),
            "pvesh create /cluster/replication --id=100-0 --type=local --target=pve2 --schedule=*/15 --comment=a:b"
        );
        let (set, notes) = u.set_call(&json!({"id": "100-0", "target": "pve3"}));
        assert_eq!(
            set.to_string(),
            "pvesh set /cluster/replication/100-0 --schedule=*/15 --comment=a:b"
        );
        assert!(notes[0].contains("`target`"), "{notes:?}");
    }
}
