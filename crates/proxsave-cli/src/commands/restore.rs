//! `proxsave restore` (and `--restore`): the guide's interactive flow, or a non-interactive
//! run from flags and an answers file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use proxsave_archive::backup::Backup;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::{HostRole, Kind, Mode, categories_for_mode};
use proxsave_restore::applier::has_applier;
use proxsave_restore::compare::Change;
use proxsave_restore::engine::{self, ExecuteOptions, Scan, Target};
use proxsave_restore::host::{Host, HostActions, SystemClock};
use proxsave_restore::plan::{
    self, ClusterMode, Compatibility, Decision, PbsBehavior, Plan, PlanError, Request, Tier,
};
use proxsave_restore::prompt::{PromptError, Prompter, Question};
use proxsave_restore::report::{FileStatus, Outcome, Report};
use proxsave_restore::runstate::{self, RunState};
use proxsave_restore::safety::{self, BindError, RollbackPreview, SafetyRecord};
use proxsave_restore::workspace::Workspace;

use crate::answers::{Answers, HostActionsArg};
use crate::cli::{KeyArgs, RestoreArgs};
use crate::commands::{list, open_backup, scan_backup};
use crate::config::Config;
use crate::console::Console;
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit, keys, progress, term};

const RULE: &str = "═══════════════════════════════════════════════════════════════";

fn prompt_exit(e: PromptError) -> Exit {
    match e {
        PromptError::Aborted => Exit::Aborted,
        other => Exit::Usage(other.to_string()),
    }
}

/// Everything decided so far, merged from flags (which win) and the answers file.
struct Settings {
    backup: Option<PathBuf>,
    root: PathBuf,
    mode: Option<Mode>,
    categories: Vec<String>,
    cluster_mode: Option<ClusterMode>,
    pbs_behavior: Option<PbsBehavior>,
    host_actions: HostActionsArg,
    work_dir: PathBuf,
    export_dir: Option<PathBuf>,
    keep_stage: bool,
    key: KeyArgs,
    continue_incompatible: Option<bool>,
    continue_without_safety_backup: Option<bool>,
    continue_with_pbs_services_running: Option<bool>,
}

fn settings(args: &RestoreArgs) -> Result<Settings, Exit> {
    let answers = match &args.answers {
        Some(p) => Answers::load(p).map_err(Exit::Usage)?,
        None => Answers::default(),
    };
    let mut key = args.key.clone();
    if key.passphrase_file.is_none() {
        key.passphrase_file = answers.passphrase_file.clone();
    }
    if key.identity.is_empty() {
        key.identity = answers.identity.clone().unwrap_or_default();
    }
    Ok(Settings {
        backup: args.backup.clone().or(answers.backup),
        root: args
            .root
            .clone()
            .or(answers.root)
            .unwrap_or_else(|| PathBuf::from("/")),
        mode: args.mode.or(answers.mode),
        categories: if args.categories.is_empty() {
            answers.categories.unwrap_or_default()
        } else {
            args.categories.clone()
        },
        cluster_mode: args.cluster_mode.or(answers.cluster_mode),
        pbs_behavior: args.pbs_behavior.or(answers.pbs_behavior),
        host_actions: args
            .host_actions
            .or(answers.host_actions)
            .unwrap_or(HostActionsArg::Auto),
        work_dir: args
            .work_dir
            .clone()
            .or(answers.work_dir)
            .unwrap_or_else(|| PathBuf::from("/tmp/proxsave")),
        export_dir: args.export_dir.clone().or(answers.export_dir),
        keep_stage: args.keep_stage || answers.keep_stage.unwrap_or(false),
        key,
        continue_incompatible: if args.continue_incompatible {
            Some(true)
        } else {
            answers.continue_incompatible
        },
        continue_without_safety_backup: answers.continue_without_safety_backup,
        continue_with_pbs_services_running: answers.continue_with_pbs_services_running,
    })
}

fn choose_backup(console: &Console, config: &Config) -> Result<Backup, Exit> {
    let found = list::scan_sources(config)?;
    let usable: Vec<_> = found.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    if usable.is_empty() {
        return Err(Exit::Failure(anyhow::anyhow!(
            "no backups found in the configured sources ({}); give --backup PATH",
            config
                .sources
                .iter()
                .map(|s| s.location.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let labels: Vec<String> = usable
        .iter()
        .map(|(s, _)| format!("{}: {}", s.label, s.location))
        .collect();
    let source = console
        .menu("Select backup source:", &labels, "Cancel")
        .map_err(prompt_exit)?;
    let backups = &usable[source].1;
    loop {
        console.line("");
        console.line("Available backups:");
        for (i, b) in backups.iter().enumerate() {
            let m = &b.manifest;
            console.line(&format!("  [{}] {}", i + 1, b.display_name()));
            console.line(&format!("      Created: {}", m.created_at.display()));
            console.line(&format!(
                "      Encrypted: {}",
                if b.declared_encrypted() {
                    "Yes (AGE)"
                } else {
                    "No"
                }
            ));
            console.line(&format!(
                "      Tool Version: {}",
                m.display_tool().trim_start_matches("Tool ")
            ));
            console.line(&format!("      System: {}", m.display_target()));
            console.line("");
        }
        console.line("  [0] Cancel");
        console.prompt("Choice: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        match a.parse::<usize>() {
            Ok(0) => return Err(Exit::Aborted),
            Ok(n) if n <= backups.len() => return Ok(backups[n - 1].clone()),
            _ => console.line(&format!("Invalid choice {a:?}.")),
        }
    }
}

fn choose_mode(console: &Console, host: HostRole) -> Result<Mode, Exit> {
    let modes = [Mode::Full, Mode::Storage, Mode::Base, Mode::Custom];
    let labels: Vec<String> = modes
        .iter()
        .map(|m| m.menu_label(host).to_string())
        .collect();
    let i = console
        .menu("Select restore mode:", &labels, "Cancel")
        .map_err(prompt_exit)?;
    Ok(modes[i])
}

fn choose_categories(console: &Console, scan: &Scan, host: HostRole) -> Result<Vec<String>, Exit> {
    let mut cats: Vec<_> = scan
        .analysis
        .available
        .iter()
        .copied()
        .filter(|c| c.fits(host))
        .collect();
    cats.sort_by_key(|c| (c.kind == Kind::Common, c.name));
    let mut on = vec![false; cats.len()];
    loop {
        console.line("");
        console.line("Available categories:");
        for (i, c) in cats.iter().enumerate() {
            console.line(&format!(
                "  [{}] [{}] {}",
                i + 1,
                if on[i] { "X" } else { " " },
                c.name
            ));
            console.line(&format!("      {}", c.description));
        }
        console.line("");
        console.line("Commands:");
        console.line("  - Type number to toggle category");
        console.line("  - Type 'a' to select all");
        console.line("  - Type 'n' to deselect all");
        console.line("  - Type 'c' to continue");
        console.line("  - Type '0' to cancel");
        console.prompt("Your selection: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        match a.as_str() {
            "0" => return Err(Exit::Aborted),
            "a" | "A" => on.iter_mut().for_each(|x| *x = true),
            "n" | "N" => on.iter_mut().for_each(|x| *x = false),
            "c" | "C" => {
                if on.iter().any(|x| *x) {
                    return Ok(cats
                        .iter()
                        .zip(&on)
                        .filter(|(_, o)| **o)
                        .map(|(c, _)| c.id.to_string())
                        .collect());
                }
                console.line("Select at least one category (or 0 to cancel).");
            }
            other => match other.parse::<usize>() {
                Ok(n) if n >= 1 && n <= cats.len() => on[n - 1] = !on[n - 1],
                _ => console.line(&format!(
                    "Invalid input {other:?}: type a number from 1 to {}, a, n, c or 0.",
                    cats.len()
                )),
            },
        }
    }
}

fn ask_decision(console: &Console, d: Decision, req: &mut Request) -> Result<(), Exit> {
    match d {
        Decision::ClusterMode => {
            let i = console
                .menu(
                    "Cluster backup detected. Choose how to restore the cluster database:",
                    &[
                        "SAFE: Do NOT write /var/lib/pve-cluster/config.db. Export cluster files only (manual/apply via API).".into(),
                        "RECOVERY: Restore full cluster database (/var/lib/pve-cluster). Use only when cluster is offline/isolated.".into(),
                    ],
                    "Exit",
                )
                .map_err(prompt_exit)?;
            req.cluster_mode = Some(if i == 0 {
                ClusterMode::Safe
            } else {
                ClusterMode::Recovery
            });
            if i == 1 {
                console.line("WARNING: Selected RECOVERY cluster restore");
                console.line("Ensure other nodes are ISOLATED before proceeding!");
            }
        }
        Decision::PbsBehavior => {
            let i = console
                .menu(
                    "PBS restore behaviour:",
                    &[
                        "Merge (existing PBS)".into(),
                        "Clean 1:1 (fresh PBS install)".into(),
                    ],
                    "Exit",
                )
                .map_err(prompt_exit)?;
            req.pbs_behavior = Some(if i == 0 {
                PbsBehavior::Merge
            } else {
                PbsBehavior::Clean
            });
        }
        Decision::Mode | Decision::Categories => unreachable!("asked before building the plan"),
    }
    Ok(())
}

fn show_plan(
    console: &Console,
    plan: &Plan,
    scan: &Scan,
    target_root: &Path,
    export_dir: &Path,
    dry_run: bool,
) {
    console.line("");
    console.line(RULE);
    console.line(if dry_run {
        "RESTORE PLAN (DRY RUN)"
    } else {
        "RESTORE PLAN"
    });
    console.line(RULE);
    console.line("");
    let n = plan.categories.len();
    let mode = match plan.mode {
        Mode::Custom if !plan.paths.is_empty() => {
            format!("CUSTOM selection ({} paths)", plan.paths.len())
        }
        m => format!("{} ({n} categories)", m.menu_label(plan.host_role)),
    };
    console.line(&format!("Restore mode: {mode}"));
    console.line(&format!("System type:  {}", plan.host_role.long_name()));
    console.line(&format!("Target root:  {}", target_root.display()));
    if let Some(c) = plan.cluster_mode {
        console.line(&format!(
            "Cluster mode: {}",
            match c {
                ClusterMode::Safe => "SAFE (config.db is not written; cluster files exported)",
                ClusterMode::Recovery => "RECOVERY (config.db restored)",
            }
        ));
    }
    if let Some(b) = plan.pbs_behavior {
        console.line(&format!(
            "PBS behaviour: {}",
            match b {
                PbsBehavior::Merge => "merge",
                PbsBehavior::Clean => "clean 1:1",
            }
        ));
    }
    console.line("");
    if plan.paths.is_empty() {
        console.line("Categories to restore:");
        for (i, p) in plan.categories.iter().enumerate() {
            let where_ = match p.tier {
                Tier::Normal => String::new(),
                Tier::Staged => "  [staged]".into(),
                Tier::Export => format!("  [export only: {}]", export_dir.display()),
            };
            console.line(&format!("  {}. {}{where_}", i + 1, p.category.name));
            console.line(&format!("     {}", p.category.description));
            if let Some(note) = &p.note {
                console.line(&format!("     ({note})"));
            }
        }
        console.line("");
    }
    console.line("Files/directories that will be restored:");
    let present: Vec<String> = if plan.paths.is_empty() {
        let mut v: Vec<String> = plan
            .categories
            .iter()
            .flat_map(|p| p.category.patterns.iter())
            .filter(|pat| scan.entries.iter().any(|e| pat.matches(&e.path)))
            .map(|pat| pat.display())
            .collect();
        v.sort();
        v.dedup();
        v
    } else {
        plan.display_paths()
    };
    for p in present {
        console.line(&format!("  • {p}"));
    }
    console.line("");
    console.line("⚠ WARNING:");
    console.line("  • Existing files at these locations will be OVERWRITTEN");
    console.line("  • A safety backup will be created before restoration");
    console.line("  • Services may need to be restarted after restoration");
    if plan.needs_cluster_restore {
        console.line("  • PVE cluster services will be stopped during restore");
    }
    if plan.needs_pbs_services {
        console.line("  • PBS services will be stopped during restore");
    }
    for w in &plan.warnings {
        console.line(&format!("  • {w}"));
    }
    console.line("");
}

/// Access control (TFA/WebAuthn origins, certificates) is tied to the host name: warn when the
/// backup's differs from the target's (`etc/hostname` of the root, read through the root's
/// descriptor: a link pointing outside the root is resolved inside it, never followed out).
fn hostname_warning(plan: &Plan, scan: &Scan, root: &Path) -> Option<String> {
    if !(plan.has("pve_access_control") || plan.has("pbs_access_control")) {
        return None;
    }
    let short = |s: &str| {
        s.trim()
            .split('.')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let backup = short(scan.analysis.hostname.as_deref()?);
    let here = short(&plan::host_name(root)?);
    (!backup.is_empty() && !here.is_empty() && backup != here).then(|| {
        format!(
            "the backup comes from host {backup} but this host is {here}: TFA/WebAuthn and certificates tied to the host name may not work after restoring access control"
        )
    })
}

fn confirm_restore(console: &Console) -> Result<(), Exit> {
    loop {
        console.prompt("Type \"RESTORE\" (exact case) to proceed, or \"cancel\"/\"0\" to abort: ");
        let a = console
            .read_line(None)
            .map_err(prompt_exit)?
            .unwrap_or_default();
        if a == "RESTORE" {
            return Ok(());
        }
        if a == "0" || a.eq_ignore_ascii_case("cancel") {
            console.line("Restore operation cancelled by user");
            return Err(Exit::Aborted);
        }
        console.line("Please type RESTORE to proceed, or cancel to abort.");
    }
}

/// Refused/failed entries listed one by one in the summary (all of them are in the log).
const LISTED_PROBLEMS: usize = 50;

fn summary(console: &Console, report: &Report) {
    console.line("");
    console.line(RULE);
    console.line(match report.outcome {
        Outcome::DryRun => "DRY RUN COMPLETED (nothing was written)",
        Outcome::Aborted => "RESTORE ABORTED",
        Outcome::Failed => "RESTORE FAILED",
        Outcome::CompletedWithErrors => "RESTORE COMPLETED WITH ERRORS",
        Outcome::Success | Outcome::Warnings => "RESTORE COMPLETED",
    });
    console.line(RULE);
    console.line("");
    let wrote = report
        .files
        .iter()
        .any(|f| f.status == FileStatus::Restored && f.change != Some(Change::Unchanged));
    match report.outcome {
        Outcome::Success => console.line("Restore completed successfully."),
        Outcome::Warnings => console.line("Restore completed with warnings."),
        Outcome::CompletedWithErrors => {
            console.line("Restore completed with errors; not everything asked for happened:")
        }
        Outcome::DryRun => {}
        Outcome::Aborted if wrote => console.line(
            "Restore aborted by the user AFTER files were written into the root; what was done is listed below.",
        ),
        Outcome::Aborted => console.line(
            "Restore aborted by the user before anything was written into the root; what was done is listed below.",
        ),
        Outcome::Failed => console.line(&format!(
            "Restore failed: {}",
            report.error.as_deref().unwrap_or("unknown error")
        )),
    }
    if report.outcome != Outcome::DryRun {
        for e in &report.errors {
            console.line(&format!("  - {e}"));
        }
    }
    if let Some(i) = &report.interrupted {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        console.line(&format!("Interrupted by {} during {}.", i.signal, i.during));
        console.line(&format!("Services restarted: {}", list(&i.restarted)));
        if !i.not_restarted.is_empty() {
            console.line(&format!(
                "Services NOT restarted: {}; start them, or run: {}",
                list(&i.not_restarted),
                super::recover::command(
                    &report.root,
                    report
                        .log
                        .as_deref()
                        .and_then(Path::parent)
                        .unwrap_or(Path::new(super::recover::DEFAULT_WORK_DIR))
                )
            ));
        }
    }
    let c = &report.counts;
    if report.outcome == Outcome::DryRun {
        for f in &report.files {
            let what = match f.status {
                FileStatus::WouldRestore => f.change.map_or("restore", |c| c.word()),
                FileStatus::Exported => "export",
                FileStatus::Staged => "stage",
                _ => continue,
            };
            console.line(&format!("  {what:<10} {}", f.path));
        }
        console.line("");
        console.line(&format!(
            "Would restore {} entries ({} new, {} changed, {} metadata only, {} unchanged), export {}, stage {}; {} skipped.",
            c.restored, c.new, c.changed, c.metadata, c.unchanged, c.exported, c.staged, c.skipped
        ));
        return;
    }
    console.line(&format!(
        "Restored {} entries ({} new, {} changed, {} metadata only, {} unchanged); exported {}, staged {}, skipped {}, refused {}, failed {}.",
        c.restored, c.new, c.changed, c.metadata, c.unchanged, c.exported, c.staged, c.skipped, c.refused, c.failed
    ));
    // Failed entries first: they are the ones a person must look at.
    let problems: Vec<_> = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Failed)
        .chain(
            report
                .files
                .iter()
                .filter(|f| f.status == FileStatus::Refused),
        )
        .collect();
    for f in problems.iter().take(LISTED_PROBLEMS) {
        console.line(&format!(
            "  {} {}: {}",
            if f.status == FileStatus::Refused {
                "refused"
            } else {
                "FAILED"
            },
            f.path,
            f.reason.as_deref().unwrap_or("")
        ));
    }
    if problems.len() > LISTED_PROBLEMS {
        console.line(&format!(
            "  … and {} more refused or failed entries (all listed in the restore log)",
            problems.len() - LISTED_PROBLEMS
        ));
    }
    if let Some(log) = &report.log {
        console.line(&format!("Detailed restore log: {}", log.display()));
    }
    if let Some(d) = &report.export_dir {
        console.line(&format!("Export directory: {}", d.display()));
    }
    if let Some(d) = &report.stage_dir {
        console.line(&format!("Staging directory: {}", d.display()));
    }
    if !report.staged_not_applied.is_empty() {
        console.line(&format!(
            "Staged, not applied (files kept in the staging directory for review): {}",
            report.staged_not_applied.join(", ")
        ));
    }
    if let Some(sb) = &report.safety_backup {
        console.line(&format!(
            "Safety backup preserved at: {}",
            sb.path.display()
        ));
        if let Some(cmd) = &report.rollback_command {
            console.line(&format!("Roll back with: {cmd}"));
            console.line(
                "  (it shows what it will restore and remove, then asks; --yes skips the question)",
            );
        }
        if report.outcome != Outcome::Aborted && report.outcome != Outcome::Failed {
            console.line(&format!(
                "Remove it manually if restore was successful: rm {} {}",
                sb.path.display(),
                sb.sidecar.display()
            ));
        }
    }
    for s in &report.services {
        if !s.is_fine() {
            console.line(&format!("Service {} {}: {}", s.action, s.target, s.result));
        }
    }
    if !report.deferred.is_empty() {
        console.line("");
        console.line("Host actions NOT run (--host-actions defer); do them on the host:");
        for d in &report.deferred {
            console.line(&format!("  {d}"));
        }
    }
    for w in &report.warnings {
        console.line(&format!("WARNING: {w}"));
    }
    if matches!(
        report.outcome,
        Outcome::Success | Outcome::Warnings | Outcome::CompletedWithErrors
    ) {
        console.line("");
        console.line("IMPORTANT: You may need to restart services for changes to take effect.");
        if report.plan.needs_cluster_restore {
            console.line("  PVE services were stopped/restarted during restore; verify status with: pvecm status");
        } else if report.plan.host_role.supports_pve() {
            console.line("  PVE services: systemctl restart pve-cluster pvedaemon pveproxy");
        }
        if report.plan.needs_pbs_services {
            console.line("  PBS services were stopped/restarted during restore; verify status with: systemctl status proxmox-backup proxmox-backup-proxy");
        } else if report.plan.host_role.supports_pbs() {
            console.line("  PBS services: systemctl restart proxmox-backup proxmox-backup-proxy");
        }
        if report.plan.has("network") || report.plan.has("pve_cluster") {
            console.line("REBOOT RECOMMENDED: Reboot the node (or at least restart networking and core services) so hostname/IP and service changes from the restore are fully applied.");
        }
    }
}

/// How many paths of each kind a human preview lists (`--json` lists all).
const PREVIEW_CAP: usize = 20;

fn list_capped(console: &Console, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    console.line(title);
    for i in items.iter().take(PREVIEW_CAP) {
        console.line(&format!("  {i}"));
    }
    if items.len() > PREVIEW_CAP {
        console.line(&format!(
            "  … and {} more (--json lists all)",
            items.len() - PREVIEW_CAP
        ));
    }
}

fn show_rollback_preview(console: &Console, bound: &safety::BoundRoot, p: &RollbackPreview) {
    console.line(&format!(
        "Rollback of {} to the safety backup {}",
        p.root.display(),
        p.backup.display()
    ));
    match &bound.forced {
        Some(m) => console.line(&format!(
            "WARNING: --force-root: {m}; rolling back {} anyway",
            bound.path.display()
        )),
        None if !p.sidecar_missing => console.line(&format!(
            "Root checked: {} is the folder the backup was taken of (device {}, inode {}).",
            bound.path.display(),
            bound.dev,
            bound.ino
        )),
        None => {}
    }
    for n in &bound.notes {
        console.line(&format!("NOTE: {n}"));
    }
    console.line("");
    list_capped(
        console,
        &format!(
            "Will restore {} saved entries (content, mode, owner, times):",
            p.restore.len()
        ),
        &p.restore,
    );
    let mut remove: Vec<String> = p
        .remove_trees
        .iter()
        .map(|t| format!("{t}  (export folder, with everything in it)"))
        .collect();
    remove.extend(p.remove.iter().cloned());
    list_capped(
        console,
        &format!("Will remove {} paths the restore created:", remove.len()),
        &remove,
    );
    let refused: Vec<String> = p
        .refused
        .iter()
        .map(|r| format!("{}: {}", r.path, r.reason))
        .collect();
    list_capped(
        console,
        &format!("Will refuse {} paths (left as they are):", refused.len()),
        &refused,
    );
    if p.restore.is_empty() && remove.is_empty() && refused.is_empty() {
        console.line("Nothing to restore or remove.");
    }
    console.line("");
}

#[derive(serde::Serialize)]
struct RollbackDoc<'a> {
    preview: &'a RollbackPreview,
    #[serde(flatten)]
    report: &'a safety::RollbackReport,
    complete: bool,
}

fn rollback(
    args: &RestoreArgs,
    file: &Path,
    console: &mut Console,
    cancel: &CancelToken,
) -> CmdResult {
    let record = SafetyRecord::load(file).map_err(|e| Exit::Failure(e.into()))?;
    let bound = match record.bind_root(args.root.as_deref(), args.force_root) {
        Ok(b) => b,
        Err(BindError::NoRecordedRoot { sidecar }) => {
            return Err(Exit::Usage(format!(
                "{} is missing, so the root the safety backup {} was taken of is unknown: name it with --root DIR (nothing was changed)",
                sidecar.display(),
                file.display()
            )));
        }
        Err(BindError::Mismatch(m)) => {
            let hint = if !m.path_differs {
                format!(
                    "if the folder now at {} really is the one to roll back, add {}--force-root",
                    m.given.display(),
                    if args.root.is_some() {
                        String::new()
                    } else {
                        format!("--root {} ", safety::shell_quote(m.given.as_os_str()))
                    }
                )
            } else if args.root.is_some() {
                format!(
                    "omit --root to roll back {}, or add --force-root to roll back {} anyway",
                    m.recorded.display(),
                    m.given.display()
                )
            } else {
                // Without --root the recorded path is used, so only the identity can differ.
                format!(
                    "add --root {} --force-root to roll it back anyway",
                    safety::shell_quote(m.given.as_os_str())
                )
            };
            return Err(Exit::Usage(format!(
                "refusing to roll back: {m}. Nothing was changed; {hint}."
            )));
        }
        Err(BindError::Io(e)) => return Err(Exit::Failure(e.into())),
    };
    // The safety backup's folder is the work dir of the run it undoes: take that run's
    // locks (one restore or rollback at a time) and clean what a dead run left, so the
    // rollback is exact.
    let work_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let lock = runstate::lock(&work_dir, Some(&bound.path)).map_err(|e| {
        if e.is_busy() {
            Exit::Usage(e.to_string())
        } else {
            Exit::Failure(e.into())
        }
    })?;
    let now = chrono::Local::now();
    let stamp = now.format("%Y%m%d_%H%M%S").to_string();
    let recovery = runstate::recover(&lock, Some(&bound.path), &stamp, false)
        .map_err(|e| Exit::Failure(e.into()))?;
    for l in recovery.lines() {
        console.line(&l);
    }
    let preview = record
        .preview(&bound)
        .map_err(|e| Exit::Failure(e.into()))?;
    show_rollback_preview(console, &bound, &preview);
    if !args.yes {
        if !console.interactive {
            if args.json {
                print_json("rollback-plan", &preview)?;
            }
            return Err(Exit::Usage(
                "rolling back needs confirmation: add --yes (nothing was changed)".into(),
            ));
        }
        let ok = console
            .confirm(&Question {
                id: "rollback",
                flag: Some("--yes"),
                text: format!("Roll back {} now?", bound.path.display()),
                default: false,
                strict_yes: true,
                timeout: None,
            })
            .map_err(prompt_exit)?;
        if !ok {
            console.line("Rollback cancelled; nothing was changed.");
            return Err(Exit::Aborted);
        }
    }
    let ws = Workspace {
        dir: work_dir.clone(),
        stamp,
    };
    let _state = RunState::begin(&lock, &ws, &bound.path, "rollback", now.to_rfc3339())
        .and_then(|st| st.phase(runstate::Phase::RollingBack).map(|()| st))
        .map_err(|e| Exit::Failure(e.into()))?;
    let report = match record.rollback(&bound, cancel) {
        Ok(r) => r,
        Err(e) if e.is_abort() || cancel.is_cancelled() => return Err(Exit::Aborted),
        Err(e) => return Err(Exit::Failure(e.into())),
    };
    if args.json {
        print_json(
            "rollback",
            &RollbackDoc {
                preview: &preview,
                report: &report,
                complete: report.complete(),
            },
        )?;
    }
    console.line(&format!(
        "Rolled back {}: {} entries restored, {} created paths removed{}.",
        report.root.display(),
        report.restored.written,
        report.removed.len(),
        if report.kept.is_empty() {
            String::new()
        } else {
            format!(", {} kept", report.kept.len())
        }
    ));
    for r in &report.refused {
        console.line(&format!("  refused {}: {}", r.path, r.reason));
    }
    for e in report
        .restored
        .refused_entries()
        .chain(report.restored.failed_entries())
    {
        console.line(&format!(
            "  {} {}: {}",
            if e.status == proxsave_archive::extract::Status::Refused {
                "refused"
            } else {
                "FAILED"
            },
            e.path
                .as_deref()
                .map_or_else(|| e.name.clone(), |p| format!("/{p}")),
            e.reason.as_deref().unwrap_or("")
        ));
    }
    for k in &report.kept {
        console.line(&format!("  kept {}: {}", k.path, k.reason));
    }
    if report.sidecar_missing {
        console.line("WARNING: no .created list beside the backup: files added by the restore were not removed.");
    }
    if !report.complete() {
        console.line("Rollback incomplete: the paths listed as refused or FAILED were left as they are; everything else was rolled back.");
        return Err(Exit::Code(1));
    }
    Ok(())
}

/// The default export folder's parent: `BASE_DIR`, inside the root when the root is not `/`.
fn default_export_base(root: &Path, base_dir: &Path) -> PathBuf {
    if root == Path::new("/") {
        return base_dir.to_path_buf();
    }
    let rel: PathBuf = base_dir
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    root.join(rel)
}

pub fn run(args: RestoreArgs, cancel: &CancelToken) -> CmdResult {
    let interactive = !args.yes && term::stdin_is_tty();
    let mut console = Console::new(interactive, args.json, cancel.clone());
    if let Some(file) = &args.rollback {
        return rollback(&args, file, &mut console, cancel);
    }
    if args.recover {
        return super::recover::run(&args, &console, cancel);
    }
    let s = settings(&args)?;
    let config = Config::load(args.config.as_deref())?;
    for (id, v) in [
        ("continue_incompatible", s.continue_incompatible),
        (
            "continue_without_safety_backup",
            s.continue_without_safety_backup,
        ),
        (
            "continue_with_pbs_services_running",
            s.continue_with_pbs_services_running,
        ),
    ] {
        if let Some(v) = v {
            console.answers.insert(id, v);
        }
    }

    // Phase 1: the backup.
    let backup = match &s.backup {
        Some(p) => open_backup(p)?,
        None if interactive => choose_backup(&console, &config)?,
        None => {
            return Err(Exit::Usage(
                "--backup is required (or `backup` in the answers file)".into(),
            ));
        }
    };
    if args.create_root && !s.root.exists() {
        std::fs::create_dir_all(&s.root)
            .with_context(|| format!("creating {}", s.root.display()))?;
    }
    let meta =
        std::fs::metadata(&s.root).with_context(|| format!("target root {}", s.root.display()))?;
    if !meta.is_dir() {
        return Err(Exit::Failure(anyhow::anyhow!(
            "target root {} is not a folder",
            s.root.display()
        )));
    }
    let root = std::fs::canonicalize(&s.root)
        .with_context(|| format!("target root {}", s.root.display()))?;
    let live = root == Path::new("/");
    let actions = match s.host_actions {
        HostActionsArg::Run => HostActions::Run,
        HostActionsArg::Defer => HostActions::Defer,
        HostActionsArg::Auto if live => HostActions::Run,
        HostActionsArg::Auto => HostActions::Defer,
    };
    if live && !args.dry_run && !rustix::process::geteuid().is_root() {
        return Err(Exit::Failure(anyhow::anyhow!(
            "restoring to / requires root privileges"
        )));
    }
    let now = chrono::Local::now();
    let stamp = now.format("%Y%m%d_%H%M%S").to_string();
    let export_dir = s.export_dir.clone().unwrap_or_else(|| {
        default_export_base(&root, &config.base_dir).join(format!(
            "proxmox-config-export-{}",
            now.format("%Y%m%d-%H%M%S")
        ))
    });
    let workspace = if args.dry_run {
        Workspace {
            dir: s.work_dir.clone(),
            stamp,
        }
    } else {
        Workspace::ensure(&s.work_dir, stamp).map_err(|e| Exit::Failure(e.into()))?
    };
    // One restore at a time per root and per work dir; then what a dead run left behind.
    let (_lock, run_state) = if args.dry_run {
        (None, None)
    } else {
        let lock = runstate::lock(&workspace.dir, Some(&root)).map_err(|e| {
            if e.is_busy() {
                Exit::Usage(e.to_string())
            } else {
                Exit::Failure(e.into())
            }
        })?;
        let recovery = runstate::recover(&lock, Some(&root), &workspace.stamp, false)
            .map_err(|e| Exit::Failure(e.into()))?;
        for l in recovery.lines() {
            console.line(&l);
        }
        let state = RunState::begin(&lock, &workspace, &root, "restore", now.to_rfc3339())
            .map_err(|e| Exit::Failure(e.into()))?;
        (Some(lock), Some(Arc::new(state)))
    };
    // Services an earlier, killed run of this root left stopped are started first.
    super::recover::before_restore(&console, &root, &s.work_dir, args.dry_run, cancel);

    // Phase 2–4: key, verification and analysis in one read.
    let label = backup.display_name().to_string();
    let (scan, key) = scan_backup(&backup, &s.key, cancel, "analysing")?;
    console.line(&format!("Backup: {} ({})", label, backup.path.display()));
    console.line(&format!("Checksum verified: {}", scan.stream.sha256));
    for w in scan.stream.warnings.iter().chain(&scan.analysis.warnings) {
        console.line(&format!("WARNING: {w}"));
    }

    // Phase 3: compatibility.
    let host_role = plan::detect_role(&root);
    console.line(&format!("Current system type: {}", host_role.long_name()));
    console.line(&format!(
        "Backup system type: {}",
        scan.analysis.backup_type.role().long_name()
    ));
    match plan::compatibility(host_role, scan.analysis.backup_type) {
        Compatibility::Compatible => console.line("✓ Systems are compatible"),
        other => {
            console.line("");
            console.line("⚠ WARNING: Potential incompatibility detected!");
            console.line(other.warning().unwrap_or_default());
            let go = console
                .confirm(&Question {
                    id: "continue_incompatible",
                    flag: None,
                    text: "Type \"yes\" to continue anyway or \"no\" to abort".into(),
                    default: false,
                    strict_yes: true,
                    timeout: None,
                })
                .map_err(prompt_exit)?;
            if !go {
                return Err(Exit::Aborted);
            }
        }
    }

    // Phase 5–6: mode, categories, cluster and PBS decisions.
    let mut request = Request {
        mode: s.mode,
        categories: s.categories.clone(),
        cluster_mode: s.cluster_mode,
        pbs_behavior: s.pbs_behavior,
    };
    if !request.categories.is_empty() && request.mode.is_none() {
        request.mode = Some(Mode::Custom);
    }
    if request.mode.is_none() {
        if !interactive {
            return Err(Exit::Usage(PlanError::Missing(Decision::Mode).to_string()));
        }
        console.line("");
        request.mode = Some(choose_mode(&console, host_role)?);
    }
    if request.mode == Some(Mode::Custom) && request.categories.is_empty() {
        if !interactive {
            return Err(Exit::Usage(
                PlanError::Missing(Decision::Categories).to_string(),
            ));
        }
        request.categories = choose_categories(&console, &scan, host_role)?;
    }
    let mut plan = loop {
        match plan::build(&scan.analysis, host_role, &request, &has_applier) {
            Ok(p) => break p,
            Err(PlanError::Missing(d)) if interactive => {
                console.line("");
                ask_decision(&console, d, &mut request)?;
            }
            Err(e @ PlanError::Missing(_)) => return Err(Exit::Usage(e.to_string())),
            Err(e) => return Err(Exit::Usage(e.to_string())),
        }
    };
    if let Some(w) = hostname_warning(&plan, &scan, &root) {
        plan.warnings.push(w);
    }
    if matches!(request.mode, Some(Mode::Storage | Mode::Base))
        && categories_for_mode(plan.mode, host_role, &scan.analysis.available).is_empty()
    {
        return Err(Exit::Failure(anyhow::anyhow!(
            "the {} mode has nothing to restore from this backup",
            plan.mode
        )));
    }

    // Phase 7: plan and confirmation.
    if !(args.json && args.dry_run) {
        show_plan(&console, &plan, &scan, &root, &export_dir, args.dry_run);
    }
    if !args.dry_run {
        if interactive {
            confirm_restore(&console)?;
        } else if !args.yes {
            return Err(Exit::Usage(
                "confirmation needed: run interactively or add --yes".into(),
            ));
        }
    }

    // Phase 8–14.
    let runner = Arc::new(ProcessRunner { path: None });
    let host = Host::new(
        root.clone(),
        actions,
        runner,
        Arc::new(SystemClock),
        Arc::new(ProcMounts),
    );
    let bar = progress::bar("restoring");
    let stream_opts = StreamOptions {
        key: Some(&key),
        unlock: Some(&keys::TtyUnlock),
        progress: bar.clone(),
        threaded: true,
    };
    let target = Target {
        backup: &backup,
        stream: &stream_opts,
        host: &host,
        workspace: &workspace,
    };
    let opts = ExecuteOptions {
        export_dir,
        keep_stage: s.keep_stage,
        dry_run: args.dry_run,
        cancel: cancel.clone(),
        state: run_state.clone(),
        appliers: proxsave_restore::applier::AppliersSet::registered(),
    };
    let (report, err) = engine::execute(&target, &scan, &plan, &mut console, &opts);
    drop(bar);
    drop(opts);
    if let Some(st) = run_state.and_then(|s| Arc::try_unwrap(s).ok()) {
        st.finish();
    }
    if args.json {
        print_json(if args.dry_run { "plan" } else { "restore" }, &report)?;
    }
    summary(&console, &report);
    restore_exit(&report, err.as_ref(), cancel.is_cancelled())
}

/// The exit code of a restore that reached the engine: 130 when the user interrupted it at
/// any point (even after the files were written), 2 for a missing decision, 1 for a failure
/// or a run that completed with errors, 0 only when everything asked for happened (warnings
/// and dry runs included).
fn restore_exit(
    report: &Report,
    err: Option<&proxsave_restore::RestoreError>,
    cancelled: bool,
) -> CmdResult {
    if cancelled || report.outcome == Outcome::Aborted || err.is_some_and(|e| e.is_abort()) {
        return Err(Exit::Aborted);
    }
    match err {
        Some(e) if e.is_missing_decision() => Err(Exit::Usage(e.to_string())),
        Some(_) => Err(Exit::Code(1)),
        None if report.outcome.is_error() => Err(Exit::Code(1)),
        None => Ok(()),
    }
}
