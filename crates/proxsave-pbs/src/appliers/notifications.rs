//! The `pbs_notifications` applier: `notifications.cfg` (endpoints and matchers) and
//! `notifications-priv.cfg` (the endpoints' secrets), through `proxmox-backup-manager
//! notification endpoint smtp|sendmail|gotify|webhook` and `notification matcher`.
//!
//! Asked first: `pbs.notifications.apply` (`yes`/`no`, default `no`, a countdown prompt).
//! Endpoints take only their name as positional argument (PBS 3.x); their secrets (smtp
//! `password`, gotify `token`, webhook `secret`) are joined from the priv file and passed as
//! secret options (`--token=<redacted>` everywhere).
//!
//! Merge: create or update the backup's endpoints and matchers. Clean: also remove the host's
//! others — matchers first, then the backup's endpoints and matchers are put in place, then
//! the endpoints no matcher uses any more; built-in objects (`origin: builtin`) are never
//! removed. A failed create/update in clean mode writes both files instead
//! (`notifications.cfg` `root:backup 0640`, `notifications-priv.cfg` `root:root 0600`),
//! never after a failed removal. Without the API: clean writes the files, merge skips.

use std::time::Duration;

use proxsave_formats::section::{Section, SectionConfig};
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, Outcome, PlanContext,
    QuestionSpec,
};
use proxsave_restore::plan::PbsBehavior;
use proxsave_restore::prompt::Level;
use serde_json::{Value, json};

use super::common::{
    self, ApiKind, Desired, Run, Staged, ap, behavior, cfg_spec, mode_word, plan_calls, plan_file,
    read_staged, render_pbs, secret_spec, yes_no,
};
use crate::pbm::{Arg, Pbm};

/// The category.
pub const CATEGORY: &str = "pbs_notifications";
/// Endpoints and matchers.
pub const NOTIFICATIONS_CFG: &str = "etc/proxmox-backup/notifications.cfg";
/// The endpoints' secrets.
pub const PRIV_CFG: &str = "etc/proxmox-backup/notifications-priv.cfg";

/// `pbs.notifications.apply`.
pub const QUESTION: QuestionSpec = QuestionSpec {
    id: "pbs.notifications.apply",
    prompt: "Apply the backup's PBS notification endpoints and matchers (their secrets included)?",
    choices: &["yes", "no"],
};

/// How long the question waits before taking its default (`no`).
pub const COUNTDOWN: Duration = Duration::from_secs(90);

/// Every key whose value is a secret.
pub const SECRET_KEYS: [&str; 3] = ["password", "token", "secret"];

/// The endpoint kinds, by section type.
pub static ENDPOINTS: [(&str, ApiKind); 4] = [
    (
        "smtp",
        ApiKind {
            label: "smtp endpoint",
            words: &["notification", "endpoint", "smtp"],
            id_keys: &["name"],
            remove_verb: "delete",
            secret_keys: &["password"],
            deletable: &[
                "port",
                "username",
                "password",
                "mailto",
                "mailto-user",
                "author",
                "comment",
                "mode",
                "disable",
            ],
        },
    ),
    (
        "sendmail",
        ApiKind {
            label: "sendmail endpoint",
            words: &["notification", "endpoint", "sendmail"],
            id_keys: &["name"],
            remove_verb: "delete",
            secret_keys: &[],
            deletable: &[
                "mailto",
                "mailto-user",
                "from-address",
                "author",
                "comment",
                "disable",
            ],
        },
    ),
    (
        "gotify",
        ApiKind {
            label: "gotify endpoint",
            words: &["notification", "endpoint", "gotify"],
            id_keys: &["name"],
            remove_verb: "delete",
            secret_keys: &["token"],
            deletable: &["comment", "disable"],
        },
    ),
    (
        "webhook",
        ApiKind {
            label: "webhook endpoint",
            words: &["notification", "endpoint", "webhook"],
            id_keys: &["name"],
            remove_verb: "delete",
            secret_keys: &["secret"],
            deletable: &["comment", "disable", "header", "body", "secret"],
        },
    ),
];

/// `proxmox-backup-manager notification matcher`.
pub static MATCHER: ApiKind = ApiKind {
    label: "matcher",
    words: &["notification", "matcher"],
    id_keys: &["name"],
    remove_verb: "delete",
    secret_keys: &[],
    deletable: &[
        "match-field",
        "match-severity",
        "match-calendar",
        "target",
        "mode",
        "invert-match",
        "comment",
        "disable",
    ],
};

/// The applier.
pub struct PbsNotifications;

inventory::submit! { ApplierRegistration(&PbsNotifications) }

fn builtin(row: &Value) -> bool {
    row.get("origin").and_then(Value::as_str) == Some("builtin")
}

/// The backup's objects: `(section type, desired)`; sections of other types noted.
fn desired(cfg: &SectionConfig, priv_cfg: &SectionConfig, run: &mut Run) -> Vec<(String, Desired)> {
    let mut out = Vec::new();
    for s in &cfg.sections {
        let known = s.ty == "matcher" || ENDPOINTS.iter().any(|(t, _)| *t == s.ty);
        if !known {
            run.notes.push(format!(
                "notifications.cfg: section `{}: {}` is of an unknown type: ignored",
                s.ty, s.id
            ));
            continue;
        }
        let mut section = Section::new(&s.ty, &s.id);
        section.props = s
            .props
            .iter()
            .filter(|p| p.key != "origin")
            .cloned()
            .collect();
        let mut d = Desired::from_section(&section, &SECRET_KEYS);
        if let Some(p) = priv_cfg.find(&s.ty, &s.id) {
            for prop in &p.props {
                d.args.push(Arg::secret(&prop.key, prop.effective()));
            }
        }
        out.push((s.ty.clone(), d));
    }
    out
}

struct Inputs {
    cfg: SectionConfig,
    priv_cfg: SectionConfig,
}

fn read_inputs(
    stage: &proxsave_restore::applier::Stage,
    notes: &mut Vec<String>,
) -> Result<Option<Inputs>, ApplyError> {
    let cfg = match read_staged(stage, NOTIFICATIONS_CFG)? {
        Staged::Absent => return Ok(None),
        Staged::Unusable(why) => {
            notes.push(why);
            return Ok(None);
        }
        Staged::Cfg(c) => c,
    };
    let priv_cfg = match read_staged(stage, PRIV_CFG)? {
        Staged::Cfg(c) => c,
        Staged::Absent => SectionConfig::new(),
        Staged::Unusable(why) => {
            notes.push(format!(
                "{why} (endpoints are applied without their secrets)"
            ));
            SectionConfig::new()
        }
    };
    Ok(Some(Inputs { cfg, priv_cfg }))
}

fn write_files(ctx: &ApplyContext<'_>, inputs: &Inputs, run: &mut Run) {
    let files = [
        (
            ap(NOTIFICATIONS_CFG),
            render_pbs(inputs.cfg.sections.iter()).into_bytes(),
            cfg_spec(ctx.root),
        ),
        (
            ap(PRIV_CFG),
            render_pbs(inputs.priv_cfg.sections.iter()).into_bytes(),
            secret_spec(),
        ),
    ];
    match ctx.root.replace_all(&files) {
        Ok(_) => run
            .done
            .push(format!("/{NOTIFICATIONS_CFG} and /{PRIV_CFG} written")),
        Err(e) => run
            .failed
            .push(format!("/{NOTIFICATIONS_CFG}, /{PRIV_CFG}: {e}")),
    }
}

fn api(ctx: &ApplyContext<'_>, pbm: &Pbm<'_>, inputs: &Inputs, mode: PbsBehavior, run: &mut Run) {
    let want = desired(&inputs.cfg, &inputs.priv_cfg, run);
    let ids: Vec<String> = inputs.cfg.sections.iter().map(|s| s.id.clone()).collect();
    let of = |ty: &str| -> Vec<Desired> {
        want.iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, d)| d.clone())
            .collect()
    };
    // Every list first: without them nothing is changed.
    let mut current = Vec::new();
    for (ty, kind) in ENDPOINTS
        .iter()
        .map(|(t, k)| (*t, k))
        .chain([("matcher", &MATCHER)])
    {
        match common::list(pbm, kind) {
            Ok(c) => current.push((ty, kind, c)),
            Err(e) => {
                match mode {
                    PbsBehavior::Merge if pbm.version().is_err() => run.skipped.push(format!(
                        "notifications: the PBS API is not available ({e}): not applied (merge mode never rewrites the files)"
                    )),
                    PbsBehavior::Merge => run.failed.push(format!("notifications: {e}")),
                    PbsBehavior::Clean => {
                        run.notes.push(format!(
                            "notifications: the PBS API is not usable ({e}): the files are written (clean mode)"
                        ));
                        write_files(ctx, inputs, run);
                    }
                }
                return;
            }
        }
    }
    let matchers = current
        .iter()
        .find(|(t, _, _)| *t == "matcher")
        .map(|(_, _, c)| c.clone())
        .unwrap_or_default();
    let mut remove_failed = false;
    let mut failed = false;
    let failed_before = run.failed.len();
    if mode == PbsBehavior::Clean {
        remove_failed |=
            common::remove_extra(pbm, &MATCHER, &matchers, &ids, &builtin, run).remove_failed;
    }
    for (ty, kind, c) in &current {
        if *ty != "matcher" {
            failed |= common::upsert(pbm, kind, c, &of(ty), mode, run).failed;
        }
    }
    failed |= common::upsert(pbm, &MATCHER, &matchers, &of("matcher"), mode, run).failed;
    if mode == PbsBehavior::Clean {
        for (ty, kind, c) in &current {
            if *ty != "matcher" {
                remove_failed |=
                    common::remove_extra(pbm, kind, c, &ids, &builtin, run).remove_failed;
            }
        }
    }
    if mode == PbsBehavior::Clean && failed {
        if remove_failed {
            run.notes.push(
                "clean 1:1 incomplete: an object could not be removed, so the notification files are not rewritten after the failed calls"
                    .into(),
            );
        } else {
            let moved: Vec<String> = run.failed.drain(failed_before..).collect();
            run.notes.push(format!(
                "clean mode: an API call failed ({}): the notification files are written instead",
                moved.join("; ")
            ));
            write_files(ctx, inputs, run);
        }
    }
}

fn ask(spec_default: &str) -> Ask {
    Ask::new(QUESTION, Some(spec_default)).countdown(COUNTDOWN)
}

impl Applier for PbsNotifications {
    fn name(&self) -> &'static str {
        "pbs-notifications"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        740
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[QUESTION]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        if let Some(a) = (ctx.preset)(QUESTION.id) {
            yes_no(&QUESTION, &a)?;
        }
        let mode = behavior(ctx.plan);
        let Some(inputs) = read_inputs(ctx.stage, &mut plan.actions)? else {
            return Ok(plan);
        };
        plan.questions.push(ask("no"));
        let mut scratch = Run::default();
        let want = desired(&inputs.cfg, &inputs.priv_cfg, &mut scratch);
        plan.actions.extend(scratch.notes);
        let ids: Vec<String> = inputs.cfg.sections.iter().map(|s| s.id.clone()).collect();
        let cancel = proxsave_archive::progress::CancelToken::new();
        let pbm = Pbm::new(ctx.host, &cancel);
        let mut api_ok = pbm.version().is_ok();
        if api_ok {
            for (ty, kind) in ENDPOINTS
                .iter()
                .map(|(t, k)| (*t, k))
                .chain([("matcher", &MATCHER)])
            {
                match common::list(&pbm, kind) {
                    Ok(current) => {
                        let of: Vec<Desired> = want
                            .iter()
                            .filter(|(t, _)| t == ty)
                            .map(|(_, d)| d.clone())
                            .collect();
                        plan.changes
                            .extend(plan_calls(kind, &current, &of, &ids, mode, &builtin));
                    }
                    Err(_) => api_ok = false,
                }
            }
        }
        plan.actions.push(format!(
            "only if {} is `yes` (default `no`): {} mode, {}",
            QUESTION.id,
            mode_word(mode),
            match (api_ok, mode) {
                (true, PbsBehavior::Clean) => "endpoints and matchers through the PBS API; the host's others removed (built-in ones kept)",
                (true, PbsBehavior::Merge) => "endpoints and matchers through the PBS API",
                (false, PbsBehavior::Clean) => "the PBS API is not available now: the files are written unless it answers when this applier runs",
                (false, PbsBehavior::Merge) => "the PBS API is not available now: nothing is applied unless it answers when this applier runs",
            }
        ));
        if !api_ok && mode == PbsBehavior::Clean {
            plan.changes.push(plan_file(
                ctx.root,
                NOTIFICATIONS_CFG,
                &inputs.cfg.sections,
                &SECRET_KEYS,
            ));
            plan.changes.push(plan_file(
                ctx.root,
                PRIV_CFG,
                &inputs.priv_cfg.sections,
                &SECRET_KEYS,
            ));
        }
        plan.files.push(ap(NOTIFICATIONS_CFG));
        plan.files.push(ap(PRIV_CFG));
        plan.details = json!({
            "behavior": mode_word(mode),
            "objects": inputs.cfg.sections.iter().map(|s| format!("{}: {}", s.ty, s.id)).collect::<Vec<_>>(),
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mut run = Run::default();
        let Some(inputs) = read_inputs(ctx.stage, &mut run.skipped)? else {
            if run.skipped.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![run.outcome(CATEGORY)]);
        };
        let q = plan
            .questions
            .iter()
            .find(|q| q.spec.id == QUESTION.id)
            .cloned()
            .unwrap_or_else(|| ask("no"));
        let a = ctx.prompter.ask(&q)?;
        if !yes_no(&QUESTION, &a)? {
            run.skipped.push(format!(
                "{} = no: the notification endpoints and matchers stay as they are",
                QUESTION.id
            ));
            return Ok(vec![run.outcome(CATEGORY)]);
        }
        let mode = behavior(ctx.plan);
        let pbm = Pbm::new(ctx.host, ctx.cancel);
        api(ctx, &pbm, &inputs, mode, &mut run);
        for n in run.notes.iter().chain(run.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("{CATEGORY}: {n}"));
        }
        Ok(vec![run.outcome(CATEGORY)])
    }
}
