//! Preparing the host once the backup was read and verified, before anything is put in
//! place: the safety backup of every root path the restore and its appliers write, then the
//! services stopped (each recorded in the services journal first).

use proxsave_archive::progress::CancelToken;

use super::{ExecuteOptions, Scan};
use crate::error::RestoreError;
use crate::host::Host;
use crate::pathlist::{PathList, PathSorter, SORT_BUDGET};
use crate::plan::{Plan, Tier};
use crate::prompt::{Level, Prompter, Question};
use crate::report::Report;
use crate::safety;
use crate::services::ServiceGuard;
use crate::workspace::Workspace;

/// Saves every path of `targets` that exists (and the export folder's place, when it lies
/// in the root). A failure asks whether to go on without it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn safety_backup(
    host: &Host,
    ws: &Workspace,
    scan: &Scan,
    plan: &Plan,
    targets: &PathList,
    exports: bool,
    before: Option<&safety::Before>,
    opts: &ExecuteOptions,
    prompter: &mut dyn Prompter,
    report: &mut Report,
) -> Result<(), RestoreError> {
    prompter.say(
        Level::Info,
        "Creating safety backup of the current configuration...",
    );
    // The export tier's paths, sorted and bounded in memory like the root targets.
    let mut export_entries = PathSorter::new(scan.spill_dir(), SORT_BUDGET);
    if exports {
        for e in scan.entries() {
            let e = e?;
            if plan.route(&e.path).contains(&Tier::Export) {
                export_entries.push(e.path)?;
            }
        }
    }
    let export_entries = export_entries.finish()?;
    let export = exports.then(|| safety::ExportTargets {
        dir: &opts.export_dir,
        entries: &export_entries,
    });
    match safety::create(&host.root, targets, export.as_ref(), before, ws) {
        Ok(sb) => {
            let cmd = safety::rollback_command(&sb.path);
            prompter.say(
                Level::Info,
                &format!(
                    "Safety backup created: {} ({} entries, {:.2} MB)",
                    sb.path.display(),
                    sb.entries,
                    sb.bytes as f64 / 1_048_576.0
                ),
            );
            prompter.say(
                    Level::Info,
                    &format!(
                        "You can restore from this backup if needed using:\n  {cmd}\n  (or: tar -xzf {} -C {}, which does not remove files the restore adds)",
                        sb.path.display(),
                        host.root.display()
                    ),
                );
            report.rollback_command = Some(cmd);
            if let Some(st) = &opts.state {
                let sb_path = crate::runstate::utf8(&sb.path)?;
                st.update(|d| d.safety_backup = Some(sb_path))?;
            }
            report.safety_backup = Some(sb);
        }
        Err(e) => {
            prompter.say(
                Level::Warning,
                &format!("Failed to create safety backup: {e}"),
            );
            let go = prompter.confirm(&Question {
                id: "continue_without_safety_backup",
                flag: None,
                text: "Continue without safety backup?".into(),
                default: false,
                strict_yes: true,
                timeout: None,
            })?;
            if !go {
                return Err(RestoreError::SafetyBackup(e));
            }
            report.warn(format!("no safety backup: {e}"));
        }
    }
    Ok(())
}

/// Stops `units` (then the plan's unmounts). A unit that does not stop aborts the run
/// before anything is put in place; the guard restarts what was stopped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stop_services(
    guard: &mut ServiceGuard<'_>,
    units: &[String],
    plan: &Plan,
    host: &Host,
    prompter: &mut dyn Prompter,
    report: &mut Report,
    cancel: &CancelToken,
) -> Result<(), RestoreError> {
    if units.is_empty() && plan.unmounts.is_empty() {
        return Ok(());
    }
    for step in crate::domain::service_steps(plan) {
        if let Some(note) = step.note {
            prompter.say(Level::Info, note);
        }
    }
    for unit in units {
        if cancel.is_cancelled() {
            return Err(RestoreError::Interrupted);
        }
        prompter.say(Level::Info, &format!("Stopping {unit}..."));
        if let Err(why) = guard.stop(unit, cancel) {
            if cancel.is_cancelled() {
                return Err(RestoreError::Interrupted);
            }
            if let Some(f) = crate::domain::stop_failure(unit) {
                prompter.say(Level::Warning, &format!("{}: {why}", f.warning));
                let go = prompter.confirm(&Question {
                    id: f.id,
                    flag: None,
                    text: f.question.clone(),
                    default: false,
                    strict_yes: false,
                    timeout: None,
                });
                match go {
                    Ok(true) => {
                        report
                            .warnings
                            .push(format!("{unit} could not be stopped: {why}"));
                        continue;
                    }
                    Ok(false) => {
                        return Err(RestoreError::ServiceStop {
                            unit: unit.to_string(),
                            detail: why,
                        });
                    }
                    Err(e) => {
                        return Err(e.into());
                    }
                }
            }
            return Err(RestoreError::ServiceStop {
                unit: unit.to_string(),
                detail: why,
            });
        }
    }
    for m in &plan.unmounts {
        let path = host.root.join(m.trim_start_matches('/'));
        if let Err(why) = guard.unmount(path, cancel) {
            if cancel.is_cancelled() {
                return Err(RestoreError::Interrupted);
            }
            return Err(RestoreError::ServiceStop {
                unit: format!("umount {m}"),
                detail: why,
            });
        }
    }
    Ok(())
}
