//! `proxsave restore` (and `--restore`): the guide's interactive flow, or a non-interactive
//! run from flags and an answers file.
//!
//! This module is the flow (and `--rollback`); [`settings`] merges the flags with the answers
//! file, [`decisions`] holds the menus and the questions answered by id (`--answer`,
//! `[answers]`, the console), [`render`] what is shown: the plan, the summary, the dry run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::{Mode, categories_for_mode};
use proxsave_restore::applier::has_applier;
use proxsave_restore::engine::{self, ExecuteOptions, Scan, Target};
use proxsave_restore::host::{Host, HostActions};
use proxsave_restore::plan::{self, Compatibility, Decision, Plan, PlanError, Request};
use proxsave_restore::prompt::{PromptError, Prompter, Question};
use proxsave_restore::report::{Outcome, Report};
use proxsave_restore::runstate::{self, RunState};
use proxsave_restore::safety::{self, BindError, SafetyRecord};
use proxsave_restore::workspace::Workspace;

use crate::answers::HostActionsArg;
use crate::cli::RestoreArgs;
use crate::commands::{open_backup, scan_backup};
use crate::config::Config;
use crate::console::Console;
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json_streamed;
use crate::{CmdResult, Exit, keys, progress, term};

pub(crate) mod decisions;
mod render;
mod settings;
mod window;

use decisions::{
    ask_decision, choose_backup, choose_categories, choose_mode, confirm_restore, prompt_exit,
};
use render::{
    print_rollback, print_rollback_plan, show_decisions_ahead, show_plan, show_rollback_preview,
    summary,
};
use settings::settings;

/// Access control (TFA/WebAuthn origins, certificates) is tied to the host name: warn when the
/// backup's differs from the target's (`etc/hostname` of the root, read through the root's
/// descriptor: a link pointing outside the root is resolved inside it, never followed out).
fn hostname_warning(plan: &Plan, scan: &Scan, root: &Path) -> Option<String> {
    // Only when access control is really restored (an export-only copy changes nothing).
    let restored = |id: &str| {
        plan.categories
            .iter()
            .any(|p| p.category.id == id && p.tier != plan::Tier::Export)
    };
    if !(restored("pve_access_control") || restored("pbs_access_control")) {
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
                print_rollback_plan(&preview)?;
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
        print_rollback(&preview, &report)?;
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
    if let Some(dir) = &args.commit_fire {
        return window::fire(&args, dir, cancel);
    }
    if args.rollback_status {
        return window::status(&args, &console);
    }
    let mut s = settings(&args)?;
    // Before any reading, checksum or decryption: an unknown id is a usage error.
    decisions::check_category_ids(&s.categories)?;
    let config = Config::load(args.config.as_deref())?;
    console.answers = std::mem::take(&mut s.answers);

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
    // The entry list spills into the private work directory (a dry run may not have one).
    let spill_dir = (!args.dry_run).then_some(workspace.dir.as_path());
    let (scan, key) = scan_backup(&backup, &s.key, cancel, "analysing", spill_dir)?;
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
                    flag: Some("--continue-incompatible"),
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
        request.mode = Some(choose_mode(&console, host_role, &scan)?);
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
            Err(e @ PlanError::NotInBackup(_)) => {
                return Err(Exit::Failure(anyhow::anyhow!("{e} (nothing was changed)")));
            }
            Err(e) => return Err(Exit::Usage(e.to_string())),
        }
    };
    // A path of `--categories` that matches nothing in the backup is an error, as for `ls`.
    for p in &plan.paths {
        let sel = proxsave_archive::pathmatch::Selector::new(std::slice::from_ref(p))
            .map_err(|e| Exit::Usage(e.to_string()))?;
        let mut found = false;
        for e in scan.entries() {
            if sel.matches(&e.map_err(|e| Exit::Failure(e.into()))?.path) {
                found = true;
                break;
            }
        }
        if !found {
            // The words of `proxsave ls` for the same selection.
            eprintln!("proxsave: no entry matches {}", sel.describe().join(", "));
            return Err(Exit::Code(1));
        }
    }
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
        show_plan(&console, &plan, &scan, &root, &export_dir, args.dry_run)?;
        show_decisions_ahead(&console, &plan, &console.answers);
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
    let mut host = Host::new(
        root.clone(),
        actions,
        runner,
        crate::effects::clock(),
        Arc::new(ProcMounts),
    );
    // Also for a dry run: the appliers' plans say the window they would arm (nothing is
    // armed without an apply phase).
    let exe = std::env::current_exe().context("locating the proxsave program")?;
    host = host.with_commit(proxsave_restore::commit::CommitSettings {
        // Absolute: a systemd timer runs the fire command from `/`.
        dir: std::path::absolute(window::commit_dir(&workspace.dir)).context("the work folder")?,
        window: s.commit_window,
        fire: vec![
            exe.to_string_lossy().into_owned(),
            "restore".into(),
            "--commit-fire".into(),
        ],
    });
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
    let (mut report, err) = engine::execute(&target, &scan, &plan, &mut console, &opts);
    // The engine's own questions (asked, or answered up front) lead the list.
    let engine_questions = decisions::engine_records(&console);
    report.questions.splice(0..0, engine_questions);
    drop(bar);
    drop(opts);
    if let Some(st) = run_state.and_then(|s| Arc::try_unwrap(s).ok()) {
        st.finish();
    }
    if args.json {
        // The per-file list is written element by element (it may be long, and on disk).
        let files = std::mem::take(&mut report.files);
        let len = usize::try_from(files.len()).unwrap_or(usize::MAX);
        let shown = print_json_streamed(
            if args.dry_run { "plan" } else { "restore" },
            &report,
            "files",
            files.try_iter(),
            len,
        );
        report.files = files;
        shown?;
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
        Some(proxsave_restore::RestoreError::Prompt(PromptError::Missing { id, .. })) => {
            Err(Exit::Usage(decisions::missing_answer(id)))
        }
        Some(e) if e.is_missing_decision() => Err(Exit::Usage(e.to_string())),
        Some(_) => Err(Exit::Code(1)),
        None if report.outcome.is_error() => Err(Exit::Code(1)),
        None => Ok(()),
    }
}
