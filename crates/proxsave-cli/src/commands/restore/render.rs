//! What a restore shows: the plan before the confirmation, the summary (and the dry run's
//! listing), the rollback preview.

use std::path::Path;

use proxsave_categories::Mode;
use proxsave_restore::applier::{AnswerSource, AppliersSet};
use proxsave_restore::compare::Change;
use proxsave_restore::engine::{PlannedApplier, QuestionRecord, Scan};
use proxsave_restore::plan::{ClusterMode, PbsBehavior, Plan, Tier};
use proxsave_restore::report::{FileStatus, Outcome, Report};
use proxsave_restore::safety::{self, RollbackPreview};

use super::decisions::AnswerStore;
use crate::console::Console;

/// Where an answer came from, as shown.
fn source_text(s: AnswerSource) -> &'static str {
    match s {
        AnswerSource::Flag => "flag",
        AnswerSource::AnswersFile => "answers file",
        AnswerSource::Console => "typed",
        AnswerSource::Default => "default",
    }
}

/// Before the confirmation: the appliers that will handle staged categories (they have not
/// planned yet: they plan from the verified backup, and ask their questions then) and the
/// answers given up front. Nothing when there are neither.
pub(super) fn show_decisions_ahead(console: &Console, plan: &Plan, answers: &AnswerStore) {
    let staged: Vec<&str> = plan.in_tier(Tier::Staged).map(|c| c.id).collect();
    let appliers: Vec<String> = AppliersSet::registered()
        .iter()
        .filter_map(|a| {
            let mine: Vec<&str> = a
                .categories()
                .iter()
                .copied()
                .filter(|c| staged.contains(c))
                .collect();
            (!mine.is_empty()).then(|| format!("  • {}: {}", a.name(), mine.join(", ")))
        })
        .collect();
    if !appliers.is_empty() {
        console.line(
            "Appliers (they plan once the backup is verified, and ask their questions then):",
        );
        for a in &appliers {
            console.line(a);
        }
        console.line("");
    }
    if !answers.is_empty() {
        console.line("Answers given up front:");
        for (id, a) in answers.iter() {
            console.line(&format!(
                "  • {id} = {} ({})",
                a.value,
                source_text(a.source)
            ));
        }
        console.line("");
    }
}

/// The appliers' plans (dry run): what each will do, the files it writes, the services it
/// stops.
fn show_appliers(console: &Console, appliers: &[PlannedApplier]) {
    if appliers.is_empty() {
        return;
    }
    console.line("");
    console.line("Appliers:");
    for a in appliers {
        console.line(&format!("  {} ({})", a.name, a.categories.join(", ")));
        for action in &a.plan.actions {
            console.line(&format!("    - {action}"));
        }
        if a.plan.actions.is_empty() && a.plan.changes.is_empty() {
            console.line("    - nothing to do");
        }
        for c in a.plan.changes.iter().filter(|c| !c.is_noop()) {
            match &c.call {
                Some(call) => console.line(&format!("    * {}: {call}", c.kind.word())),
                None => console.line(&format!("    * {} {}", c.kind.word(), c.target)),
            }
        }
        if !a.plan.files.is_empty() {
            let files: Vec<String> = a.plan.files.iter().map(|f| format!("/{f}")).collect();
            console.line(&format!("    files: {}", files.join(", ")));
        }
        if !a.plan.services.is_empty() {
            console.line(&format!("    services: {}", a.plan.services.join(", ")));
        }
    }
}

/// The questions of the run with their defaults and the answers known so far (dry run).
fn show_questions(console: &Console, questions: &[QuestionRecord]) {
    if questions.is_empty() {
        return;
    }
    console.line("");
    console.line("Questions:");
    for q in questions {
        let choices = if q.choices.is_empty() {
            String::new()
        } else {
            format!(" ({})", q.choices.join(" | "))
        };
        console.line(&format!("  {}: {}{choices}", q.id, q.prompt));
        let default = match &q.default {
            Some(d) => format!("default {d}"),
            None => "no default".to_string(),
        };
        let answer = match (&q.answer, q.source) {
            (Some(a), Some(s)) => format!("answer {a} ({})", source_text(s)),
            (Some(a), None) => format!("answer {a}"),
            (None, _) if q.default.is_some() => format!(
                "not answered yet: asked when the restore runs (--yes takes the default; --answer {}=VALUE answers it now)",
                q.id
            ),
            (None, _) => format!(
                "not answered yet: asked when the restore runs (--yes needs --answer {}=VALUE)",
                q.id
            ),
        };
        console.line(&format!("    {default}; {answer}"));
    }
}

pub(super) const RULE: &str = "═══════════════════════════════════════════════════════════════";

pub(super) fn show_plan(
    console: &Console,
    plan: &Plan,
    scan: &Scan,
    target_root: &Path,
    export_dir: &Path,
    dry_run: bool,
) -> Result<(), crate::Exit> {
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
    let lists = path_lists(plan, scan, target_root).map_err(|e| crate::Exit::Failure(e.into()))?;
    if lists.is_empty() {
        console.line("Nothing in this backup matches the selection.");
        console.line("");
    }
    if !lists.root.is_empty() {
        console.line(&format!(
            "Written into the root {} (new / replaced / unchanged, compared with what is there now):",
            target_root.display()
        ));
        for g in &lists.root {
            console.line(&format!("  • {}  ({})", g.path, g.root_state()));
        }
        console.line("");
    }
    if !lists.export.is_empty() {
        console.line(&format!(
            "Exported to {} (copies to read; not written to the system):",
            export_dir.display()
        ));
        for g in &lists.export {
            console.line(&format!(
                "  • {}  ({})",
                g.path,
                count(g.files, "file", "files")
            ));
        }
        console.line("");
    }
    if !lists.staged.is_empty() {
        console.line(
            "Staged for an applier (kept in the private stage folder; the applier writes them):",
        );
        for g in &lists.staged {
            console.line(&format!("  • {}  ({})", g.path, g.applier));
        }
        console.line("");
    }
    let replaced: usize = lists.root.iter().map(|g| g.replaced).sum();
    let writes = lists.root.iter().any(|g| g.new + g.replaced > 0);
    let mut warnings: Vec<String> = Vec::new();
    if replaced > 0 {
        warnings.push(format!(
            "{} in the root will be OVERWRITTEN (listed as replaced above)",
            count(replaced, "existing file", "existing files")
        ));
    }
    if writes {
        warnings.push(
            "A safety backup of what is overwritten is created before anything is written".into(),
        );
    }
    if writes && target_root == Path::new("/") {
        warnings.push("Services may need to be restarted after restoration".into());
    }
    if plan.needs_cluster_restore {
        warnings.push("PVE cluster services will be stopped during restore".into());
    }
    if plan.needs_pbs_services {
        warnings.push("PBS services will be stopped during restore".into());
    }
    warnings.extend(plan.warnings.iter().cloned());
    if !warnings.is_empty() {
        console.line("⚠ WARNING:");
        for w in &warnings {
            console.line(&format!("  • {w}"));
        }
        console.line("");
    }
    Ok(())
}

/// `N thing` / `N things`.
pub(super) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One shown path (a category's pattern, or an entry named by `--categories`) and what the
/// restore does with the backup's entries under it.
#[derive(Default)]
struct Group {
    path: String,
    files: usize,
    new: usize,
    replaced: usize,
    unchanged: usize,
    /// Folders only: how many are not there yet.
    new_folders: usize,
    applier: String,
}

impl Group {
    fn root_state(&self) -> String {
        if self.files == 1 {
            return if self.new == 1 {
                "new"
            } else if self.replaced == 1 {
                "replaced"
            } else {
                "unchanged"
            }
            .into();
        }
        let mut parts = Vec::new();
        for (n, w) in [
            (self.new, "new"),
            (self.replaced, "replaced"),
            (self.unchanged, "unchanged"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {w}"));
            }
        }
        if parts.is_empty() {
            return if self.new_folders > 0 {
                "new folder"
            } else {
                "folder already there"
            }
            .into();
        }
        format!(
            "{}: {}",
            count(self.files, "entry", "entries"),
            parts.join(", ")
        )
    }
}

/// The plan's paths in three lists: written into the root, exported, staged.
#[derive(Default)]
struct PathLists {
    root: Vec<Group>,
    export: Vec<Group>,
    staged: Vec<Group>,
}

impl PathLists {
    fn is_empty(&self) -> bool {
        self.root.is_empty() && self.export.is_empty() && self.staged.is_empty()
    }
}

fn group<'a>(list: &'a mut Vec<Group>, path: &str) -> &'a mut Group {
    if let Some(i) = list.iter().position(|g| g.path == path) {
        return &mut list[i];
    }
    list.push(Group {
        path: path.to_string(),
        ..Group::default()
    });
    let last = list.len() - 1;
    &mut list[last]
}

/// Sorts every backup entry the plan selects into the tiers it goes to, grouped by the
/// category pattern holding it; entries written into the root are compared with the root's
/// current content (a regular file with the same SHA-256 is unchanged).
fn path_lists(
    plan: &Plan,
    scan: &Scan,
    root: &Path,
) -> Result<PathLists, proxsave_restore::RestoreError> {
    use proxsave_archive::entry::EntryKind;
    let reader = proxsave_restore::compare::RootReader::open(root).ok();
    let appliers = AppliersSet::registered();
    let mut out = PathLists::default();
    for e in scan.entries() {
        let e = e?;
        let tiers = plan.route(&e.path);
        if tiers.is_empty() {
            continue;
        }
        let counts = e.kind != EntryKind::Directory;
        for t in tiers {
            // The pattern shown: that of a category of this tier holding the entry.
            let holder = plan
                .categories
                .iter()
                .filter(|p| p.tier == t)
                .map(|p| p.category)
                .chain(proxsave_categories::registry().iter().copied())
                .find_map(|c| {
                    c.patterns
                        .iter()
                        .find(|pat| pat.matches(&e.path))
                        .map(|pat| (c, pat.display()))
                });
            let shown = holder
                .as_ref()
                .map_or_else(|| format!("/{}", e.path), |(_, d)| d.clone());
            match t {
                Tier::Normal => {
                    let g = group(&mut out.root, &shown);
                    let exists = reader.as_ref().is_some_and(|r| r.exists(&e.path));
                    if !counts {
                        g.new_folders += usize::from(!exists);
                        continue;
                    }
                    g.files += 1;
                    let same = exists
                        && e.sha256.is_some()
                        && reader
                            .as_ref()
                            .and_then(|r| r.file_digest(&e.path))
                            .is_some_and(|(hex, _)| e.sha256_hex().is_some_and(|s| s == hex));
                    if !exists {
                        g.new += 1;
                    } else if same {
                        g.unchanged += 1;
                    } else {
                        g.replaced += 1;
                    }
                }
                Tier::Export => {
                    let g = group(&mut out.export, &shown);
                    g.files += usize::from(counts);
                }
                Tier::Staged => {
                    let g = group(&mut out.staged, &shown);
                    g.files += usize::from(counts);
                    if g.applier.is_empty() {
                        let by: Vec<&str> = holder
                            .as_ref()
                            .map(|(c, _)| {
                                appliers
                                    .iter()
                                    .filter(|a| a.categories().contains(&c.id))
                                    .map(|a| a.name())
                                    .collect()
                            })
                            .unwrap_or_default();
                        g.applier = if by.is_empty() {
                            "applier: not available yet".into()
                        } else {
                            format!("applier: {}", by.join(", "))
                        };
                    }
                }
            }
        }
    }
    for l in [&mut out.root, &mut out.export, &mut out.staged] {
        l.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(out)
}

/// Refused/failed entries listed one by one in the summary (all of them are in the log).
const LISTED_PROBLEMS: usize = 50;

pub(super) fn summary(console: &Console, report: &Report) {
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
    let wrote = report.files.count(FileStatus::Restored)
        > report
            .files
            .count_change(FileStatus::Restored, Some(Change::Unchanged));
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
                crate::commands::recover::command(
                    &report.root,
                    report
                        .log
                        .as_deref()
                        .and_then(Path::parent)
                        .unwrap_or(Path::new(crate::commands::recover::DEFAULT_WORK_DIR))
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
        show_appliers(console, &report.appliers);
        show_questions(console, &report.questions);
        return;
    }
    console.line(&format!(
        "Restored {} entries ({} new, {} changed, {} metadata only, {} unchanged); exported {}, staged {}, skipped {}, refused {}, failed {}.",
        c.restored, c.new, c.changed, c.metadata, c.unchanged, c.exported, c.staged, c.skipped, c.refused, c.failed
    ));
    // Failed entries first: they are the ones a person must look at (read from the
    // report's list, which may live on disk: only the first ones are kept).
    let problems = report.files.count(FileStatus::Failed) + report.files.count(FileStatus::Refused);
    let listed: Vec<_> = report
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Failed)
        .take(LISTED_PROBLEMS)
        .chain(
            report
                .files
                .iter()
                .filter(|f| f.status == FileStatus::Refused),
        )
        .take(LISTED_PROBLEMS)
        .collect();
    for f in &listed {
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
    if problems > LISTED_PROBLEMS as u64 {
        console.line(&format!(
            "  … and {} more refused or failed entries (all listed in the restore log)",
            problems - LISTED_PROBLEMS as u64
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
    for a in &report.applied {
        if let proxsave_restore::applier::Status::Deferred { todo } = &a.status {
            console.line(&format!("TO DO ({}, {}): {todo}", a.category, a.applier));
        }
    }
    for w in &report.warnings {
        console.line(&format!("WARNING: {w}"));
    }
    // Restart and reboot advice is for the running system only: a scratch or alternate
    // root is not booted.
    if report.root == Path::new("/")
        && matches!(
            report.outcome,
            Outcome::Success | Outcome::Warnings | Outcome::CompletedWithErrors
        )
    {
        console.line("");
        console.line("IMPORTANT: You may need to restart services for changes to take effect.");
        for h in proxsave_restore::domain::hints(&report.plan) {
            console.line(&format!("  {h}"));
        }
        if proxsave_restore::domain::reboot_recommended(&report.plan) {
            console.line("REBOOT RECOMMENDED: Reboot the node (or at least restart networking and core services) so hostname/IP and service changes from the restore are fully applied.");
        }
    }
}

/// How many paths of each kind a human preview lists (`--json` lists all).
const PREVIEW_CAP: usize = 20;

fn list_capped(console: &Console, title: &str, items: &[String]) {
    list_capped_iter(console, title, items.len() as u64, items.iter().cloned());
}

/// [`list_capped`] for a list read as it is shown (`total` items; only the first
/// [`PREVIEW_CAP`] are taken from `items`).
fn list_capped_iter(
    console: &Console,
    title: &str,
    total: u64,
    items: impl Iterator<Item = String>,
) {
    if total == 0 {
        return;
    }
    console.line(title);
    for i in items.take(PREVIEW_CAP) {
        console.line(&format!("  {i}"));
    }
    if total > PREVIEW_CAP as u64 {
        console.line(&format!(
            "  … and {} more (--json lists all)",
            total - PREVIEW_CAP as u64
        ));
    }
}

/// The items of a rollback list; a list that cannot be read back says so in place.
fn shown_items(list: &safety::ShownPaths) -> impl Iterator<Item = String> + '_ {
    list.iter()
        .map(|r| r.unwrap_or_else(|e| format!("(the list cannot be read back: {e})")))
}

pub(super) fn show_rollback_preview(
    console: &Console,
    bound: &safety::BoundRoot,
    p: &RollbackPreview,
) {
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
    list_capped_iter(
        console,
        &format!(
            "Will restore {} saved entries (content, mode, owner, times):",
            p.restore.len()
        ),
        p.restore.len(),
        shown_items(&p.restore),
    );
    let removals = p.remove_trees.len() + p.remove.len();
    list_capped_iter(
        console,
        &format!("Will remove {removals} paths the restore created:"),
        removals,
        shown_items(&p.remove_trees)
            .map(|t| format!("{t}  (export folder, with everything in it)"))
            .chain(shown_items(&p.remove)),
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
    if p.restore.is_empty() && removals == 0 && refused.is_empty() {
        console.line("Nothing to restore or remove.");
    }
    console.line("");
}

/// A rollback plan or result as JSON, the same text `print_json` makes (keys sorted at every
/// level) without holding the document in memory: the fields are declared in key order,
/// the small parts go through a `Value` (which sorts their keys), and the path lists are
/// written one path at a time (a rollback after a large restore lists a million).
#[derive(serde::Serialize)]
struct PreviewJson<'a> {
    backup: serde_json::Value,
    refused: serde_json::Value,
    remove: &'a safety::ShownPaths,
    remove_trees: &'a safety::ShownPaths,
    restore: &'a safety::ShownPaths,
    root: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    sidecar_missing: bool,
}

impl<'a> PreviewJson<'a> {
    fn of(p: &'a RollbackPreview, schema: Option<String>) -> serde_json::Result<Self> {
        Ok(PreviewJson {
            backup: serde_json::to_value(&p.backup)?,
            refused: serde_json::to_value(&p.refused)?,
            remove: &p.remove,
            remove_trees: &p.remove_trees,
            restore: &p.restore,
            root: serde_json::to_value(&p.root)?,
            schema,
            sidecar_missing: p.sidecar_missing,
        })
    }
}

#[derive(serde::Serialize)]
struct RollbackJson<'a> {
    complete: bool,
    kept: serde_json::Value,
    preview: PreviewJson<'a>,
    refused: serde_json::Value,
    removed: &'a safety::ShownPaths,
    restored: serde_json::Value,
    root: serde_json::Value,
    schema: String,
    sidecar_missing: bool,
}

fn schema(kind: &str) -> String {
    format!("proxsave/{kind}/v{}", crate::output::SCHEMA_VERSION)
}

fn write_json(doc: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer_pretty(&mut out, doc)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Prints the `rollback-plan` document.
pub(super) fn print_rollback_plan(p: &RollbackPreview) -> anyhow::Result<()> {
    write_json(&PreviewJson::of(p, Some(schema("rollback-plan")))?)
}

/// Prints the `rollback` document: the plan it followed and what it did.
pub(super) fn print_rollback(
    p: &RollbackPreview,
    r: &safety::RollbackReport,
) -> anyhow::Result<()> {
    write_json(&RollbackJson {
        complete: r.complete(),
        kept: serde_json::to_value(&r.kept)?,
        preview: PreviewJson::of(p, None)?,
        refused: serde_json::to_value(&r.refused)?,
        removed: &r.removed,
        restored: serde_json::to_value(&r.restored)?,
        root: serde_json::to_value(&r.root)?,
        schema: schema("rollback"),
        sidecar_missing: r.sidecar_missing,
    })
}
