//! Running the appliers' phases: plan (from the committed stage, before anything is put in
//! place), preflight and apply (after the root's commit), post-restart (after the services
//! are back). A panic in any phase of any applier is caught: that applier's categories are
//! reported failed, and the run goes on to restart services and write its report.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proxsave_archive::progress::CancelToken;
use serde::Serialize;

use crate::applier::{
    Answer, AnswerSource, Applier, ApplierPlan, AppliersSet, ApplyContext, ApplyError, Outcome,
    PlanContext, RootHandle, Stage, Status,
};
use crate::error::RestoreError;
use crate::host::Host;
use crate::plan::{Plan, Tier};
use crate::prompt::{Level, Prompter};
use crate::report::Report;

/// One applier's plan in the report (`--dry-run --json` lists them).
#[derive(Clone, Debug, Serialize)]
pub struct PlannedApplier {
    /// The applier's name.
    pub name: String,
    /// Its categories in this plan.
    pub categories: Vec<String>,
    /// What it will do.
    #[serde(flatten)]
    pub plan: ApplierPlan,
}

/// A question of this run, for the report: what was (or would be) asked and answered.
#[derive(Clone, Debug, Serialize)]
pub struct QuestionRecord {
    /// Stable id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// Accepted answers.
    pub choices: Vec<String>,
    /// This run's default.
    pub default: Option<String>,
    /// The answer, when known (given up front, or asked).
    pub answer: Option<String>,
    /// Where the answer came from (`flag`, `answers-file`, `console`, `default`).
    pub source: Option<AnswerSource>,
}

/// Passes everything to the real prompter and remembers the answers to applier questions.
struct Recording<'p> {
    inner: &'p mut dyn Prompter,
    answers: Vec<(String, Answer)>,
}

impl Prompter for Recording<'_> {
    fn confirm(&mut self, q: &crate::prompt::Question) -> Result<bool, crate::prompt::PromptError> {
        self.inner.confirm(q)
    }
    fn say(&mut self, level: Level, message: &str) {
        self.inner.say(level, message);
    }
    fn ask(&mut self, q: &crate::applier::Ask) -> Result<Answer, crate::prompt::PromptError> {
        let a = self.inner.ask(q)?;
        self.answers.push((q.spec.id.to_string(), a.clone()));
        Ok(a)
    }
    fn preset(&self, id: &str) -> Option<Answer> {
        self.inner.preset(id)
    }
    fn interactive(&self) -> bool {
        self.inner.interactive()
    }
}

pub(crate) struct Planned {
    pub applier: &'static dyn Applier,
    pub plan: ApplierPlan,
    pub categories: Vec<&'static str>,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn failed_all(
    phase: &'static str,
    a: &dyn Applier,
    categories: &[&str],
    error: String,
) -> Vec<Outcome> {
    let out: Vec<Outcome> = categories
        .iter()
        .map(|c| Outcome {
            category: c.to_string(),
            applier: a.name().to_string(),
            status: Status::Failed {
                error: error.clone(),
            },
            detail: String::new(),
        })
        .collect();
    emit(phase, &out);
    out
}

/// One `proxsave::applier` event per outcome.
fn emit(phase: &'static str, outcomes: &[Outcome]) {
    for o in outcomes {
        crate::events::applier_outcome(phase, o);
    }
}

/// The categories of the plan `a` runs for: those staged, those restored into the root
/// when the applier asks for them ([`Applier::runs_for_normal_tier`]), and those exported
/// when it reads exported categories ([`Applier::reads_exported`]). When none of its own
/// categories is in the plan, the exported ones it also reads ([`Applier::also_reads`]):
/// it then works from those alone.
pub(crate) fn categories_of(a: &dyn Applier, plan: &Plan) -> Vec<&'static str> {
    let normal = a.runs_for_normal_tier();
    let exported = a.reads_exported();
    let own: Vec<&'static str> = a
        .categories()
        .iter()
        .copied()
        .filter(|c| {
            plan.categories.iter().any(|p| {
                p.category.id == *c
                    && (p.tier == Tier::Staged
                        || (normal && p.tier == Tier::Normal)
                        || (exported && p.tier == Tier::Export))
            })
        })
        .collect();
    if !own.is_empty() || !exported {
        return own;
    }
    a.also_reads()
        .iter()
        .copied()
        .filter(|c| plan.in_tier(Tier::Export).any(|x| x.id == *c))
        .collect()
}

/// True when an applier of `set` runs for a category the plan restores into the root or
/// exports for it: the appliers' phases then run (with a possibly empty stage) even if
/// nothing is staged.
pub(crate) fn runs_without_stage(set: &AppliersSet, plan: &Plan) -> bool {
    set.iter().any(|a| {
        (a.runs_for_normal_tier()
            && plan
                .in_tier(Tier::Normal)
                .any(|c| a.categories().contains(&c.id)))
            || (a.reads_exported()
                && plan
                    .in_tier(Tier::Export)
                    .any(|c| a.categories().contains(&c.id) || a.also_reads().contains(&c.id)))
    })
}

/// The export-tier categories of `plan` read by an applier of `set`
/// ([`Applier::reads_exported`]): the engine stages their files too
/// ([`Plan::stage_exported`]).
pub(crate) fn exported_read(set: &AppliersSet, plan: &Plan) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = set
        .iter()
        .filter(|a| a.reads_exported())
        .flat_map(|a| a.categories().iter().chain(a.also_reads()).copied())
        .filter(|c| plan.in_tier(Tier::Export).any(|x| x.id == *c))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Plans every applier of `set` that owns a category the plan stages (or, for appliers that
/// ask for it, restores into the root).
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_all(
    set: &AppliersSet,
    plan: &Plan,
    stage: &Stage,
    root: &RootHandle,
    host: &Host,
    prompter: &mut dyn Prompter,
    report: &mut Report,
) -> Result<Vec<Planned>, RestoreError> {
    let mut out = Vec::new();
    for a in set.iter() {
        let categories = categories_of(a, plan);
        if categories.is_empty() {
            continue;
        }
        let preset_of = |id: &str| prompter.preset(id);
        let ctx = PlanContext {
            plan,
            stage,
            root,
            host,
            preset: &preset_of,
        };
        match catch_unwind(AssertUnwindSafe(|| a.plan(&ctx))) {
            Ok(Ok(mut p)) => {
                let needed: Vec<&str> = crate::domain::needs_running(&categories)
                    .into_iter()
                    .filter(|u| plan.services_to_stop.contains(u))
                    .collect();
                if !needed.is_empty() {
                    p.actions.push(format!(
                        "{}: needs {} running (it calls their API): they are stopped for the restore and started again just before this applier; the appliers before it run while they are stopped",
                        a.name(),
                        needed.join(", ")
                    ));
                }
                // A question that will have no answer stops the run now, before any write.
                if let Some(q) = p
                    .questions
                    .iter()
                    .find(|q| q.default.is_none() && prompter.preset(q.spec.id).is_none())
                    && !prompter.interactive()
                {
                    return Err(RestoreError::Prompt(crate::prompt::PromptError::Missing {
                        id: q.spec.id,
                        flag: Some("--answer"),
                    }));
                }
                crate::events::applier_planned(a.name(), &categories, &p);
                for q in &p.questions {
                    let preset = prompter.preset(q.spec.id);
                    report.questions.push(QuestionRecord {
                        id: q.spec.id.to_string(),
                        prompt: q.spec.prompt.to_string(),
                        choices: q.spec.choices.iter().map(|c| c.to_string()).collect(),
                        default: q.default.clone(),
                        answer: preset.as_ref().map(|x| x.value.clone()),
                        source: preset.map(|x| x.source),
                    });
                }
                report.appliers.push(PlannedApplier {
                    name: a.name().to_string(),
                    categories: categories.iter().map(|c| c.to_string()).collect(),
                    plan: p.clone(),
                });
                out.push(Planned {
                    applier: a,
                    plan: p,
                    categories,
                });
            }
            Ok(Err(ApplyError::BadAnswer { id, reason })) => {
                return Err(RestoreError::BadAnswer { id, reason });
            }
            Ok(Err(ApplyError::Prompt(e))) => return Err(e.into()),
            Ok(Err(ApplyError::Refused(reason))) => {
                return Err(RestoreError::Preflight {
                    applier: a.name().to_string(),
                    reason,
                });
            }
            Ok(Err(e)) => {
                report.applied.extend(failed_all(
                    "plan",
                    a,
                    &categories,
                    format!("planning failed: {e}"),
                ));
            }
            Err(p) => {
                report.applied.extend(failed_all(
                    "plan",
                    a,
                    &categories,
                    format!("the applier panicked while planning: {}", panic_text(p)),
                ));
            }
        }
    }
    Ok(out)
}

/// Makes every question look answerable: `diff` only plans, it never asks.
struct PlanOnly<'p>(&'p mut dyn Prompter);

impl Prompter for PlanOnly<'_> {
    fn confirm(&mut self, q: &crate::prompt::Question) -> Result<bool, crate::prompt::PromptError> {
        self.0.confirm(q)
    }
    fn say(&mut self, level: Level, message: &str) {
        self.0.say(level, message);
    }
    fn preset(&self, id: &str) -> Option<Answer> {
        self.0.preset(id)
    }
    fn interactive(&self) -> bool {
        true
    }
}

/// Only the plan phase of every applier of `set` (for `diff`): what each would do, with its
/// planned changes; questions are not asked and a missing answer is not an error.
///
/// # Errors
/// An answer given up front that an applier refuses.
pub fn plan_appliers(
    set: &AppliersSet,
    plan: &Plan,
    stage: &Stage,
    root: &RootHandle,
    host: &Host,
    prompter: &mut dyn Prompter,
) -> Result<Vec<PlannedApplier>, RestoreError> {
    let mut report = Report {
        outcome: crate::report::Outcome::DryRun,
        started: String::new(),
        duration_secs: 0.0,
        root: host.root.clone(),
        plan: plan.clone(),
        safety_backup: None,
        rollback_command: None,
        export_dir: None,
        stage_dir: None,
        staged_not_applied: Vec::new(),
        applied: Vec::new(),
        appliers: Vec::new(),
        questions: Vec::new(),
        services: Vec::new(),
        deferred: Vec::new(),
        files: crate::report::FileList::new(),
        counts: Default::default(),
        warnings: Vec::new(),
        errors: Vec::new(),
        log: None,
        error: None,
        sha256: None,
        interrupted: None,
    };
    let mut quiet = PlanOnly(prompter);
    plan_all(set, plan, stage, root, host, &mut quiet, &mut report)?;
    Ok(report.appliers)
}

/// Preflight and apply, in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_all(
    planned: &[Planned],
    plan: &Plan,
    stage: &Stage,
    root: &RootHandle,
    host: &Host,
    prompter: &mut dyn Prompter,
    cancel: &CancelToken,
    report: &mut Report,
    guard: &mut crate::services::ServiceGuard<'_>,
) -> Result<(), RestoreError> {
    for p in planned {
        if cancel.is_cancelled() {
            return Err(RestoreError::Interrupted);
        }
        let a = p.applier;
        // An applier that calls an API: the units serving it run again first.
        let needed = crate::domain::needs_running(&p.categories);
        if !needed.is_empty() {
            let started = guard.start_now(&needed);
            if !started.is_empty() {
                prompter.say(
                    Level::Info,
                    &format!(
                        "Starting {} again: {} needs them running (it calls their API)",
                        started.join(", "),
                        a.name()
                    ),
                );
            }
        }
        cancel.set_activity("applying staged categories");
        let mut recording = Recording {
            inner: &mut *prompter,
            answers: Vec::new(),
        };
        let mut ctx = ApplyContext {
            plan,
            stage,
            root,
            host,
            prompter: &mut recording,
            cancel,
        };
        match catch_unwind(AssertUnwindSafe(|| a.preflight(&mut ctx, &p.plan))) {
            Ok(Ok(())) => {}
            Ok(Err(veto)) if veto.abort_run => {
                tracing::warn!(
                    target: crate::events::APPLIER,
                    applier = a.name(),
                    phase = "preflight",
                    status = "vetoed",
                    abort_run = true,
                    reason = veto.reason.as_str(),
                );
                return Err(RestoreError::Preflight {
                    applier: a.name().to_string(),
                    reason: veto.reason,
                });
            }
            Ok(Err(veto)) => {
                ctx.prompter.say(
                    Level::Warning,
                    &format!("{}: skipped: {}", a.name(), veto.reason),
                );
                let skipped: Vec<Outcome> = p
                    .categories
                    .iter()
                    .map(|c| Outcome {
                        category: c.to_string(),
                        applier: a.name().to_string(),
                        status: Status::Skipped {
                            reason: veto.reason.clone(),
                        },
                        detail: String::new(),
                    })
                    .collect();
                emit("preflight", &skipped);
                report.applied.extend(skipped);
                continue;
            }
            Err(panic) => {
                report.applied.extend(failed_all(
                    "preflight",
                    a,
                    &p.categories,
                    format!(
                        "the applier panicked in its preflight: {}",
                        panic_text(panic)
                    ),
                ));
                continue;
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| a.apply(&mut ctx, &p.plan)));
        let outcomes = match result {
            Ok(Ok(mut v)) => {
                for o in &mut v {
                    o.applier = a.name().to_string();
                }
                emit("apply", &v);
                v
            }
            Ok(Err(ApplyError::Prompt(crate::prompt::PromptError::Aborted))) => {
                return Err(RestoreError::Interrupted);
            }
            Ok(Err(ApplyError::Prompt(e))) => return Err(RestoreError::Prompt(e)),
            Ok(Err(ApplyError::BadAnswer { id, reason })) => {
                return Err(RestoreError::BadAnswer { id, reason });
            }
            Ok(Err(e)) => failed_all("apply", a, &p.categories, e.to_string()),
            Err(panic) => failed_all(
                "apply",
                a,
                &p.categories,
                format!("the applier panicked: {}", panic_text(panic)),
            ),
        };
        for o in &outcomes {
            let level = if o.status.is_error() {
                Level::Warning
            } else {
                Level::Info
            };
            ctx.prompter.say(
                level,
                format!(
                    "{} ({}): {} {}",
                    o.category,
                    a.name(),
                    o.status.word(),
                    o.detail
                )
                .trim_end(),
            );
        }
        report.applied.extend(outcomes);
        for (id, answer) in std::mem::take(&mut recording.answers) {
            if let Some(q) = report.questions.iter_mut().find(|q| q.id == id) {
                q.answer = Some(answer.value);
                q.source = Some(answer.source);
            }
        }
    }
    Ok(())
}

/// The post-restart phase of every applier that applied.
#[allow(clippy::too_many_arguments)]
pub(crate) fn post_restart_all(
    planned: &[Planned],
    plan: &Plan,
    stage: &Stage,
    root: &RootHandle,
    host: &Host,
    prompter: &mut dyn Prompter,
    cancel: &CancelToken,
    report: &mut Report,
) {
    for p in planned {
        let a = p.applier;
        let mut outcomes = report.applied.iter().filter(|o| o.applier == a.name());
        let applied = match outcomes.next() {
            // The apply phase said nothing: it had nothing to do, nothing failed.
            None => true,
            Some(first) => std::iter::once(first)
                .chain(outcomes)
                .any(|o| !matches!(o.status, Status::Failed { .. } | Status::Skipped { .. })),
        };
        if !applied {
            continue;
        }
        let mut ctx = ApplyContext {
            plan,
            stage,
            root,
            host,
            prompter: &mut *prompter,
            cancel,
        };
        match catch_unwind(AssertUnwindSafe(|| a.post_restart(&mut ctx, &p.plan))) {
            Ok(mut v) => {
                for o in &mut v {
                    o.applier = a.name().to_string();
                }
                emit("post-restart", &v);
                report.applied.extend(v);
            }
            Err(panic) => report.applied.extend(failed_all(
                "post-restart",
                a,
                &p.categories,
                format!(
                    "the applier panicked after the restart: {}",
                    panic_text(panic)
                ),
            )),
        }
    }
}
