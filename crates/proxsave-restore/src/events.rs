//! The `tracing` events of a restore: phases, files, host commands, services, warnings,
//! appliers and the summary, each under a stable target with stable fields (listed in
//! `docs/events.md`). An embedding program sees them in its own subscriber; the restore log
//! ([`crate::log::RestoreLog`]) is one such subscriber layer.
//!
//! Everything [`crate::engine::execute`] emits happens inside a span with the target
//! [`RESTORE`] (fields `root`, `dry_run`, and `log`: the restore log's path, absent in dry
//! runs), on the thread that called it.
//!
//! The library emits nothing else with these targets, and never prints: without a
//! subscriber an event costs a disabled `tracing` call.

use crate::applier::{Outcome, Status};
use crate::host::HostCommand;
use crate::report::{FileOutcome, Report};
use crate::runstate::Phase;
use crate::services::ServiceAction;

/// Target of the span around a whole [`crate::engine::execute`] (INFO).
pub const RESTORE: &str = "proxsave::restore";
/// Target of phase changes (INFO).
pub const PHASE: &str = "proxsave::phase";
/// Target of per-entry outcomes (DEBUG).
pub const FILE: &str = "proxsave::file";
/// Target of host commands run or deferred (INFO; WARN when one could not be started).
pub const COMMAND: &str = "proxsave::command";
/// Target of service stops, starts and unmounts (INFO; WARN when not fine).
pub const SERVICE: &str = "proxsave::service";
/// Target of the report's warnings (WARN).
pub const WARNING: &str = "proxsave::warning";
/// Target of the appliers' plan, preflight, apply and post-restart outcomes (INFO; WARN for
/// failures and vetoes).
pub const APPLIER: &str = "proxsave::applier";
/// Target of the restore log's opening and closing sections (INFO).
pub const SUMMARY: &str = "proxsave::summary";

/// Every event target, in the order of `docs/events.md` (the span [`RESTORE`] first).
pub const TARGETS: [&str; 8] = [
    RESTORE, PHASE, FILE, COMMAND, SERVICE, WARNING, APPLIER, SUMMARY,
];

/// The run entered `phase`.
pub(crate) fn phase(phase: Phase) {
    tracing::info!(target: PHASE, phase = phase.name());
}

/// One entry's outcome.
pub(crate) fn file(f: &FileOutcome) {
    tracing::debug!(
        target: FILE,
        path = f.path.as_str(),
        tier = f.tier.map(|t| t.name()),
        status = f.status.name(),
        change = f.change.map(|c| c.word()),
        uid = f.uid,
        gid = f.gid,
        mode = u64::from(f.mode),
        reason = f.reason.as_deref(),
    );
}

/// The redacted arguments of `cmd`, as a list.
fn shown_args(cmd: &HostCommand) -> Vec<String> {
    cmd.shown_args()
}

/// A command that was deferred (recorded as a to-do, not run).
pub(crate) fn command_deferred(cmd: &HostCommand) {
    tracing::info!(
        target: COMMAND,
        status = "deferred",
        program = cmd.program.as_str(),
        args = ?shown_args(cmd),
        command = cmd.display(),
    );
}

/// A to-do that is not a command (`umount /srv/cluster`), deferred.
pub(crate) fn note_deferred(note: &str) {
    tracing::info!(target: COMMAND, status = "deferred", command = note);
}

/// A command that ran: its exit code (none when killed), whether its deadline killed it,
/// how long it took; or the error that kept it from starting.
pub(crate) fn command_ran(
    cmd: &HostCommand,
    result: &std::io::Result<crate::host::CommandOutput>,
    elapsed: std::time::Duration,
) {
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(out) => tracing::info!(
            target: COMMAND,
            status = "ran",
            program = cmd.program.as_str(),
            args = ?shown_args(cmd),
            command = cmd.display(),
            exit_code = out.code.map(i64::from),
            timed_out = out.timed_out,
            duration_ms,
        ),
        Err(e) => tracing::warn!(
            target: COMMAND,
            status = "error",
            program = cmd.program.as_str(),
            args = ?shown_args(cmd),
            command = cmd.display(),
            error = %e,
            duration_ms,
        ),
    }
}

/// A service action and its result.
pub(crate) fn service(a: &ServiceAction) {
    if a.is_fine() {
        tracing::info!(
            target: SERVICE,
            action = a.action,
            unit = a.target.as_str(),
            result = a.result.as_str(),
            ok = true,
        );
    } else {
        tracing::warn!(
            target: SERVICE,
            action = a.action,
            unit = a.target.as_str(),
            result = a.result.as_str(),
            ok = false,
        );
    }
}

/// A warning of the report.
pub(crate) fn warning(message: &str) {
    tracing::warn!(target: WARNING, message);
}

/// An applier's plan: how many actions, files, services and questions it declared.
pub(crate) fn applier_planned(name: &str, categories: &[&str], p: &crate::applier::ApplierPlan) {
    tracing::info!(
        target: APPLIER,
        applier = name,
        phase = "plan",
        category = categories.join(",").as_str(),
        status = "planned",
        actions = p.actions.len() as u64,
        files = p.files.len() as u64,
        services = p.services.len() as u64,
        questions = p.questions.len() as u64,
    );
}

/// An outcome of an applier's `phase` (`plan`, `preflight`, `apply`, `post-restart`).
pub(crate) fn applier_outcome(phase: &'static str, o: &Outcome) {
    let why = match &o.status {
        Status::Skipped { reason } => reason.as_str(),
        Status::Deferred { todo } => todo.as_str(),
        Status::Failed { error } => error.as_str(),
        Status::Applied | Status::PartlyApplied => "",
    };
    let status = o.status.name();
    if o.status.is_error() {
        tracing::warn!(
            target: APPLIER,
            applier = o.applier.as_str(),
            phase,
            category = o.category.as_str(),
            status,
            reason = why,
            detail = o.detail.as_str(),
        );
    } else {
        tracing::info!(
            target: APPLIER,
            applier = o.applier.as_str(),
            phase,
            category = o.category.as_str(),
            status,
            reason = why,
            detail = o.detail.as_str(),
        );
    }
}

/// The restore log's opening lines (mode, root, categories), as `text`.
pub(crate) fn summary_header(report: &Report) {
    tracing::info!(
        target: SUMMARY,
        section = "header",
        text = report.log_header().as_str(),
    );
}

/// The restore log's closing sections (services, interruption, summary) as `text`, and the
/// outcome and counts as fields.
pub(crate) fn summary_end(report: &Report) {
    let c = &report.counts;
    tracing::info!(
        target: SUMMARY,
        section = "end",
        outcome = report.outcome.name(),
        restored = c.restored,
        exported = c.exported,
        staged = c.staged,
        skipped = c.skipped,
        refused = c.refused,
        failed = c.failed,
        total = c.total,
        duration_secs = report.duration_secs,
        error = report.error.as_deref(),
        text = report.log_end().as_str(),
    );
}
