//! Running a restore: the analysis read ([`scan`]), then, once the plan is confirmed,
//! [`execute`], in phases:
//!
//! 1. [`space`]: room for everything, measured per filesystem before any write.
//! 2. [`tiers`]: ONE read of the archive feeding the root, the stage folder and the export
//!    folder; everything is staged, nothing is in place until the checksum matched. Then the
//!    stage is committed and, still before the root's commit:
//!    - the appliers plan from it ([`appliers`]): the paths they will write, their services,
//!      their questions;
//!    - [`prepare`]: the safety backup of every root path the restore and the appliers
//!      write, then the services stopped (restarted on every exit path);
//!
//!    then the root and the export folder are committed and dedup links repaired.
//! 3. The appliers' preflight and apply; the services restarted; their post-restart phase.
//! 4. The report and the restore log.

mod appliers;
mod prepare;
mod scan;
mod space;
mod tiers;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use proxsave_archive::backup::Backup;
use proxsave_archive::entry::EntryKind;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

pub(crate) use appliers::exported_read;
pub use appliers::{PlannedApplier, QuestionRecord, plan_appliers};
pub use scan::{DEDUP_MANIFEST, DEDUP_MANIFEST_LIMIT, Scan, Seen, scan, scan_in};
pub use space::space_needs;

use crate::applier::{AppliersSet, RootHandle, Stage};
use crate::error::RestoreError;
use crate::host::Host;
use crate::journal::Journal;
use crate::pathlist::{PathList, PathSorter, SORT_BUDGET};
use crate::plan::{Plan, Tier};
use crate::prompt::Prompter;
use crate::report::{Interruption, Outcome, Report};
use crate::runstate::{Phase, RunState};
use crate::services::ServiceGuard;
use crate::workspace::Workspace;

/// Settings of [`execute`].
pub struct ExecuteOptions {
    /// The export folder (created when something is exported).
    pub export_dir: PathBuf,
    /// Keep the stage folder even when every staged category was applied.
    pub keep_stage: bool,
    /// Write nothing; report what would change.
    pub dry_run: bool,
    /// Set on Ctrl+C.
    pub cancel: CancelToken,
    /// The run's state file (crash recovery); `None` writes none (dry runs, embedders that
    /// do their own bookkeeping).
    pub state: Option<std::sync::Arc<RunState>>,
    /// The appliers this run uses (default: every registered one).
    pub appliers: AppliersSet,
}

/// Enters `phase` (event `proxsave::phase`; the run's state file, if any); a failure to
/// record it is a warning once files are in place.
fn mark(opts: &ExecuteOptions, report: &mut Report, phase: Phase) {
    if let Err(e) = enter(opts, phase) {
        report.warn(format!("cannot record the run's phase: {e}"));
    }
}

/// Enters `phase` (event `proxsave::phase`; the run's state file, if any).
fn enter(opts: &ExecuteOptions, phase: Phase) -> Result<(), RestoreError> {
    match &opts.state {
        Some(st) => st.phase(phase),
        None => {
            crate::events::phase(phase);
            Ok(())
        }
    }
}

/// Why the target root refuses an entry of the root tier, whatever the root's path: the
/// registered domains' guards (e.g. a cluster filesystem that is never written from a
/// tarball, files only ever applied through an API).
pub fn system_guard(path: &ArchivePath) -> Option<&'static str> {
    crate::domain::guard(path)
}

/// The root-tier paths a plan writes (after guards), sorted, each once; spilled into the
/// scan's private directory past [`crate::pathlist::SORT_BUDGET`].
///
/// # Errors
/// Reading the scan's entry list or writing the sorted runs.
pub fn root_targets(plan: &Plan, scan: &Scan) -> Result<PathList, RestoreError> {
    Ok(routes(plan, scan, SORT_BUDGET)?.targets)
}

/// What one pass over the scan's entries finds for a plan: the root-tier targets and the
/// few facts the run needs about the others (kept small, whatever the entry count).
pub struct Routes {
    /// The root-tier paths the plan writes (after guards): see [`root_targets`].
    pub targets: PathList,
    /// Some entry goes to the export folder.
    pub exports: bool,
    /// Some entry goes to the stage folder.
    pub stages: bool,
    /// The plan's staged categories that hold at least one entry.
    pub staged_with_entries: Vec<&'static str>,
}

/// [`Routes`] of `plan` over `scan`, sorting the targets with `budget` bytes of memory.
///
/// # Errors
/// Reading the scan's entry list or writing the sorted runs.
pub fn routes(plan: &Plan, scan: &Scan, budget: usize) -> Result<Routes, RestoreError> {
    let mut sorter = PathSorter::new(scan.spill_dir(), budget);
    let mut exports = false;
    let mut stages = false;
    let mut staged: Vec<(
        &'static str,
        Option<&'static proxsave_categories::Category>,
        bool,
    )> = plan
        .in_tier(Tier::Staged)
        .map(|c| (c.id, proxsave_categories::by_id(c.id), false))
        .collect();
    for e in scan.entries() {
        let e = e?;
        for s in staged.iter_mut().filter(|s| !s.2) {
            s.2 = s.1.is_some_and(|cat| cat.matches(&e.path));
        }
        let route = plan.route(&e.path);
        exports |= route.contains(&Tier::Export);
        stages |= route.contains(&Tier::Staged);
        if matches!(
            e.kind,
            EntryKind::File | EntryKind::Directory | EntryKind::Symlink | EntryKind::Hardlink
        ) && route.contains(&Tier::Normal)
            && system_guard(&e.path).is_none()
        {
            sorter.push(e.path)?;
        }
    }
    Ok(Routes {
        targets: sorter.finish()?,
        exports,
        stages,
        staged_with_entries: staged.into_iter().filter(|s| s.2).map(|s| s.0).collect(),
    })
}

/// What a restore works on: the backup and how to read it, the host and the work directory.
pub struct Target<'a> {
    /// The backup.
    pub backup: &'a Backup,
    /// Key, progress and threading for every read of it.
    pub stream: &'a StreamOptions<'a>,
    /// The host restored into.
    pub host: &'a Host,
    /// The private work directory.
    pub workspace: &'a Workspace,
}

/// Runs the confirmed plan (or, with `dry_run`, only compares). See the module docs.
///
/// On any failure the returned report says what was done (safety backup, services
/// restarted) and carries the error.
pub fn execute(
    target: &Target<'_>,
    scan: &Scan,
    plan: &Plan,
    prompter: &mut dyn Prompter,
    opts: &ExecuteOptions,
) -> (Report, Option<RestoreError>) {
    let Target {
        backup,
        stream: stream_opts,
        host,
        workspace: ws,
    } = *target;
    let started = Instant::now();
    // Everything below happens inside this span: the restore log layer writes `log`.
    let log = (!opts.dry_run).then(|| ws.file_path("restore_", ".log"));
    let span = tracing::info_span!(
        target: crate::events::RESTORE,
        "restore",
        root = %host.root.display(),
        dry_run = opts.dry_run,
        log = log.as_ref().map(|p| tracing::field::display(p.display())),
    );
    let _entered = span.enter();
    let mut report = Report {
        outcome: Outcome::Success,
        started: host.clock.now().to_rfc3339(),
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
        sha256: Some(scan.stream.sha256.clone()),
        interrupted: None,
    };
    // Exported categories read by an applier are staged too (privately) during the read.
    let read = appliers::exported_read(&opts.appliers, plan);
    let staged_plan;
    let plan = if read.is_empty() {
        plan
    } else {
        staged_plan = plan.clone().stage_exported(&read);
        &staged_plan
    };
    crate::events::summary_header(&report);
    for w in &plan.warnings {
        report.warn(w.clone());
    }
    let result = run(
        backup,
        stream_opts,
        scan,
        plan,
        host,
        ws,
        prompter,
        opts,
        &mut report,
    );
    // A cancellation noticed by nothing (e.g. during the commit or the restarts) still ends
    // the run as interrupted.
    let result = match result {
        Ok(()) if opts.cancel.is_cancelled() => Err(RestoreError::Interrupted),
        r => r,
    };
    if opts.cancel.is_cancelled() {
        report.interrupted = Some(Interruption::from_token(&opts.cancel, &report.services));
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    report.deferred = host.deferred();
    report.recount(scan.len());
    // --- Outcome. A cancellation observed at any point, even during the commit or after the
    // last step, makes the run aborted (130): the report then lists the state it left.
    let cancelled = opts.cancel.is_cancelled();
    let result = match result {
        Ok(()) if cancelled => Err(RestoreError::Interrupted),
        other => other,
    };
    if !opts.dry_run {
        report.errors = report.problems();
    }
    let err = match result {
        Ok(()) => {
            report.outcome = if opts.dry_run {
                Outcome::DryRun
            } else {
                report.completed_outcome()
            };
            None
        }
        Err(e) => {
            report.outcome = if e.is_abort() || cancelled {
                Outcome::Aborted
            } else {
                Outcome::Failed
            };
            report.error = Some(match &report.interrupted {
                Some(i) => i.to_string(),
                None => e.to_string(),
            });
            Some(e)
        }
    };
    // --- End of outcome.
    crate::events::summary_end(&report);
    if let Some(log) = log {
        // Written as the run went by a `RestoreLog` layer, if the caller installed one;
        // else from the report now.
        if log.exists() {
            report.log = Some(log);
        } else if let Err(e) = report.write_log(&log) {
            report.warn(format!(
                "cannot write the restore log {}: {e}",
                log.display()
            ));
        }
    }
    (report, err)
}

#[allow(clippy::too_many_arguments)]
fn run(
    backup: &Backup,
    stream_opts: &StreamOptions<'_>,
    scan: &Scan,
    plan: &Plan,
    host: &Host,
    ws: &Workspace,
    prompter: &mut dyn Prompter,
    opts: &ExecuteOptions,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let cancel = &opts.cancel;
    // One pass over the entry list: the root targets (sorted, bounded in memory) and
    // which tiers have entries.
    let Routes {
        targets,
        exports,
        stages,
        staged_with_entries,
    } = routes(plan, scan, SORT_BUDGET)?;
    let exports = plan.in_tier(Tier::Export).next().is_some() || exports;
    // An applier that runs for a category restored into the root needs the appliers'
    // phases, hence a (possibly empty) stage.
    let stages = stages || appliers::runs_without_stage(&opts.appliers, plan);

    // 1. Room for everything, measured before anything is written.
    if !opts.dry_run {
        crate::runstate::check_space(&space_needs(
            plan,
            scan,
            &host.root,
            &targets,
            &ws.dir,
            &opts.export_dir,
        )?)?;
        if let Some(st) = &opts.state {
            st.record_targets(&targets)?;
        }
    }
    let root = RootHandle::open(&host.root).map_err(|e| RestoreError::io(&host.root, e))?;
    // The root folder and the export folder's place as they are now: the read stages inside
    // the root before the safety backup is taken.
    let before = (!opts.dry_run).then(|| {
        crate::safety::Before::capture(&host.root, exports.then_some(opts.export_dir.as_path()))
    });
    let mut guard = ServiceGuard::new(host, cancel).with_journal(Journal::new(
        &ws.dir,
        &host.root,
        report.started.clone(),
    ));
    let mut planned: Vec<appliers::Planned> = Vec::new();

    // 2. One read feeding every tier; between the verification and the root's commit: the
    // appliers' plans, the safety backup, the services stopped.
    let result = tiers::extract_tiers(
        backup,
        stream_opts,
        scan,
        plan,
        host,
        ws,
        opts,
        exports,
        stages,
        report,
        prompter,
        &mut |report, prompter, stage| {
            if let Some(stage) = stage {
                planned =
                    appliers::plan_all(&opts.appliers, plan, stage, &root, host, prompter, report)?;
            }
            if opts.dry_run {
                return Ok(());
            }
            let extra: Vec<ArchivePath> = planned
                .iter()
                .flat_map(|p| p.plan.files.iter().cloned())
                .collect();
            let merged;
            let all = if extra.is_empty() {
                &targets
            } else {
                merged = targets.union(extra)?;
                &merged
            };
            if let Some(st) = &opts.state
                && all.len() != targets.len()
            {
                st.record_targets(all)?;
            }
            enter(opts, Phase::SafetyBackup)?;
            cancel.set_activity("creating the safety backup");
            if !all.is_empty() {
                prepare::safety_backup(
                    host,
                    ws,
                    scan,
                    plan,
                    all,
                    exports,
                    before.as_ref(),
                    opts,
                    prompter,
                    report,
                )?;
            }
            cancel.set_activity("stopping services");
            mark(opts, report, Phase::StoppingServices);
            let mut units: Vec<String> = plan
                .services_to_stop
                .iter()
                .map(|u| u.to_string())
                .collect();
            for p in &planned {
                for u in &p.plan.services {
                    if !units.contains(u) {
                        units.push(u.clone());
                    }
                }
            }
            prepare::stop_services(&mut guard, &units, plan, host, prompter, report, cancel)
        },
    );
    if let Err(e) = result {
        report.services = guard.restore();
        return Err(e);
    }
    if opts.dry_run {
        return Ok(());
    }

    // 3. The appliers; the services back; the appliers' post-restart phase.
    cancel.set_activity("applying staged categories");
    mark(opts, report, Phase::Applying);
    let stage = match &report.stage_dir {
        Some(d) => Some(Stage::open(d).map_err(|e| RestoreError::io(d, e))?),
        None => None,
    };
    if let Some(stage) = &stage {
        let applied = appliers::apply_all(
            &planned, plan, stage, &root, host, prompter, cancel, report, &mut guard,
        );
        if let Err(e) = applied {
            report.services = guard.restore();
            return Err(e);
        }
    }
    mark(opts, report, Phase::Restarting);
    report.services = guard.restore();
    if let Some(stage) = &stage {
        appliers::post_restart_all(&planned, plan, stage, &root, host, prompter, cancel, report);
    }
    let handled: HashSet<&str> = report.applied.iter().map(|o| o.category.as_str()).collect();
    report.staged_not_applied = plan
        .in_tier(Tier::Staged)
        .map(|c| c.id)
        .filter(|c| !handled.contains(*c))
        .filter(|c| staged_with_entries.contains(c))
        .map(|c| c.to_string())
        .collect();
    drop(stage);
    let keep = opts.keep_stage || !report.staged_not_applied.is_empty();
    if !keep && let Some(d) = report.stage_dir.take() {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}
