//! The outcome of a restore: per-file results, services, deferred actions, and the restore
//! log in the guide's format.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::applier::Outcome as ApplierOutcome;
use crate::compare::Change;
use crate::engine::{PlannedApplier, QuestionRecord};
use crate::plan::{Plan, Tier};
use crate::safety::SafetyBackup;
use crate::services::ServiceAction;

/// What happened to one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Written into the root (see `change`).
    Restored,
    /// Would be written (dry run).
    WouldRestore,
    /// Copied into the export folder.
    Exported,
    /// Copied into the stage folder.
    Staged,
    /// Not written (reason given).
    Skipped,
    /// Refused by a safety rule.
    Refused,
    /// Writing failed.
    Failed,
}

impl FileStatus {
    /// `restored`, `would_restore`, `exported`, `staged`, `skipped`, `refused`, `failed` (as in
    /// JSON).
    pub fn name(self) -> &'static str {
        match self {
            FileStatus::Restored => "restored",
            FileStatus::WouldRestore => "would_restore",
            FileStatus::Exported => "exported",
            FileStatus::Staged => "staged",
            FileStatus::Skipped => "skipped",
            FileStatus::Refused => "refused",
            FileStatus::Failed => "failed",
        }
    }

    /// The restore log's section for entries of this status (`EXTRACTED FILES`).
    pub fn log_section(self) -> &'static str {
        match self {
            FileStatus::Restored => "EXTRACTED FILES",
            FileStatus::WouldRestore => "FILES THAT WOULD BE EXTRACTED",
            FileStatus::Exported => "EXPORTED FILES",
            FileStatus::Staged => "STAGED FILES",
            FileStatus::Skipped => "SKIPPED FILES",
            FileStatus::Refused => "REFUSED FILES",
            FileStatus::Failed => "FAILED FILES",
        }
    }

    /// True when the log lists owner and mode (else the reason).
    pub fn log_with_meta(self) -> bool {
        matches!(
            self,
            FileStatus::Restored
                | FileStatus::WouldRestore
                | FileStatus::Exported
                | FileStatus::Staged
        )
    }
}

/// One entry's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct FileOutcome {
    /// Path as on the system (`/etc/hosts`).
    pub path: String,
    /// Tier it went to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// What happened.
    pub status: FileStatus,
    /// New, changed, unchanged (root tier only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Owner from the archive.
    pub uid: u64,
    /// Group from the archive.
    pub gid: u64,
    /// Mode from the archive.
    pub mode: u32,
    /// Why, for skipped/refused/failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FileOutcome {
    /// The entry's line in the restore log: `  /etc/hosts (ownership: 0:0, mode: 0644, new)`,
    /// or `  /opt/x (does not match any selected category)`.
    pub fn log_line(&self) -> String {
        file_log_line(
            &self.path,
            self.status,
            self.change.map(Change::word),
            (self.uid, self.gid, self.mode),
            self.reason.as_deref(),
        )
    }
}

/// [`FileOutcome::log_line`] from its parts (the restore log layer has only the event's
/// fields).
pub(crate) fn file_log_line(
    path: &str,
    status: FileStatus,
    change: Option<&str>,
    (uid, gid, mode): (u64, u64, u32),
    reason: Option<&str>,
) -> String {
    if status.log_with_meta() {
        let change = change.map(|c| format!(", {c}")).unwrap_or_default();
        format!("  {path} (ownership: {uid}:{gid}, mode: {mode:04o}{change})")
    } else {
        format!("  {path} ({})", reason.unwrap_or(""))
    }
}

/// Counts of outcomes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Entries in the archive.
    pub total: u64,
    /// Written into the root (or would be, in a dry run).
    pub restored: u64,
    /// … of which new.
    pub new: u64,
    /// … of which with changed content.
    pub changed: u64,
    /// … of which with changed metadata only.
    pub metadata: u64,
    /// … of which identical.
    pub unchanged: u64,
    /// Exported.
    pub exported: u64,
    /// Staged.
    pub staged: u64,
    /// Skipped.
    pub skipped: u64,
    /// Refused.
    pub refused: u64,
    /// Failed.
    pub failed: u64,
}

/// How the run ended. The CLI's exit code follows it: 0 for [`Outcome::Success`],
/// [`Outcome::Warnings`] and [`Outcome::DryRun`]; 1 for [`Outcome::CompletedWithErrors`] and
/// [`Outcome::Failed`]; 130 for [`Outcome::Aborted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything asked for happened.
    Success,
    /// Everything asked for happened, with warnings to read (staged categories not applied, a
    /// host name that differs, no safety backup by the user's choice, …).
    Warnings,
    /// Ran to the end, but some of what was asked for did not happen (see
    /// [`Report::errors`]): entries failed or were refused, an applier failed, or a service
    /// that was stopped did not start again.
    CompletedWithErrors,
    /// A dry run (nothing written).
    DryRun,
    /// Stopped by an error (what was done is listed).
    Failed,
    /// Stopped by the user at any point, even after the files were written (what was done is
    /// listed).
    Aborted,
}

impl Outcome {
    /// `success`, `warnings`, `completed_with_errors`, `dry_run`, `failed`, `aborted` (as in
    /// JSON).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Warnings => "warnings",
            Outcome::CompletedWithErrors => "completed_with_errors",
            Outcome::DryRun => "dry_run",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
        }
    }

    /// The outcome in words (`completed with errors`).
    pub fn words(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Warnings => "completed with warnings",
            Outcome::CompletedWithErrors => "completed with errors",
            Outcome::DryRun => "dry run",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
        }
    }

    /// True when the run did not do everything asked for (exit code not 0).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Outcome::CompletedWithErrors | Outcome::Failed | Outcome::Aborted
        )
    }
}

/// Why and when a run was interrupted, and what became of the services it had stopped.
#[derive(Clone, Debug, Serialize)]
pub struct Interruption {
    /// What interrupted it (`SIGINT`, `SIGTERM`, or `cancellation`).
    pub signal: String,
    /// What the run was doing then (`stopping services`, `extracting`, `committing`, …).
    pub during: String,
    /// Units stopped by the run and started again.
    pub restarted: Vec<String>,
    /// Units stopped by the run and not started again, with why.
    pub not_restarted: Vec<String>,
}

impl Interruption {
    /// From the cancelled token and the service actions of the run.
    pub fn from_token(
        token: &proxsave_archive::progress::CancelToken,
        services: &[ServiceAction],
    ) -> Interruption {
        let (restarted, not_restarted) = crate::services::restart_summary(services);
        Interruption {
            signal: token.cause().unwrap_or("cancellation").to_string(),
            during: token
                .interrupted_during()
                .filter(|d| !d.is_empty())
                .unwrap_or("preparing")
                .to_string(),
            restarted,
            not_restarted,
        }
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {} during {}", self.signal, self.during)
    }
}

/// The report of a restore (also for dry runs and failed runs).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// Start time (local, RFC 3339).
    pub started: String,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// The target root.
    pub root: PathBuf,
    /// The plan that ran.
    pub plan: Plan,
    /// The safety backup, if one was made.
    pub safety_backup: Option<SafetyBackup>,
    /// The command that rolls back to the safety backup.
    pub rollback_command: Option<String>,
    /// The export folder, if anything was exported.
    pub export_dir: Option<PathBuf>,
    /// The stage folder, when it is kept.
    pub stage_dir: Option<PathBuf>,
    /// Staged categories no applier handled (their files are in `stage_dir`).
    pub staged_not_applied: Vec<String>,
    /// What appliers did.
    pub applied: Vec<ApplierOutcome>,
    /// What each applier planned (paths, services, actions).
    pub appliers: Vec<PlannedApplier>,
    /// The questions of this run (asked, answered up front, or defaulted).
    pub questions: Vec<QuestionRecord>,
    /// Services stopped and started.
    pub services: Vec<ServiceAction>,
    /// Host actions deferred (not run) as to-dos.
    pub deferred: Vec<String>,
    /// Per-entry outcomes.
    pub files: Vec<FileOutcome>,
    /// Counts.
    pub counts: Counts,
    /// Warnings.
    pub warnings: Vec<String>,
    /// What was asked for and did not happen, one line each (see [`Report::problems`]).
    pub errors: Vec<String>,
    /// The restore log file.
    pub log: Option<PathBuf>,
    /// The error that stopped the run, if any.
    pub error: Option<String>,
    /// The archive's SHA-256 as verified.
    pub sha256: Option<String>,
    /// Set when a signal (or other cancellation) interrupted the run.
    pub interrupted: Option<Interruption>,
}

impl Report {
    /// Recomputes [`Report::counts`] from [`Report::files`].
    pub fn recount(&mut self, total: u64) {
        let mut c = Counts {
            total,
            ..Counts::default()
        };
        for f in &self.files {
            match f.status {
                FileStatus::Restored | FileStatus::WouldRestore => {
                    c.restored += 1;
                    match f.change {
                        Some(Change::New) => c.new += 1,
                        Some(Change::Changed) => c.changed += 1,
                        Some(Change::Metadata) => c.metadata += 1,
                        Some(Change::Unchanged) => c.unchanged += 1,
                        None => {}
                    }
                }
                FileStatus::Exported => c.exported += 1,
                FileStatus::Staged => c.staged += 1,
                FileStatus::Skipped => c.skipped += 1,
                FileStatus::Refused => c.refused += 1,
                FileStatus::Failed => c.failed += 1,
            }
        }
        self.counts = c;
    }

    /// What was asked for and did not happen: failed and refused entries (counted; the
    /// entries are in [`Report::files`]), failed appliers, and services stopped for the restore
    /// that did not start again. Uses [`Report::counts`] (call [`Report::recount`] first).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let entries = |n: u64| if n == 1 { "entry" } else { "entries" };
        let c = &self.counts;
        if c.failed > 0 {
            out.push(format!(
                "{} {} FAILED to be written",
                c.failed,
                entries(c.failed)
            ));
        }
        if c.refused > 0 {
            out.push(format!(
                "{} {} refused by a safety rule (not written)",
                c.refused,
                entries(c.refused)
            ));
        }
        for a in self.applied.iter().filter(|a| a.status.is_error()) {
            let why = match &a.status {
                crate::applier::Status::Failed { error } => error.clone(),
                // The first line says what did not happen; the rest is in the outcome.
                _ => a.detail.lines().next().unwrap_or_default().to_string(),
            };
            out.push(format!(
                "applying {} ({}) {}: {why}",
                a.category,
                a.applier,
                a.status.word()
            ));
        }
        for s in self.services.iter().filter(|s| service_not_restarted(s)) {
            out.push(format!(
                "service {} was not started again: {}",
                s.target, s.result
            ));
        }
        out
    }

    /// The outcome of a run that went to its end (no error stopped it, nobody interrupted it):
    /// [`Outcome::CompletedWithErrors`] when [`Report::errors`] is not empty,
    /// [`Outcome::Warnings`] when there is anything else to read, else [`Outcome::Success`].
    pub fn completed_outcome(&self) -> Outcome {
        if !self.errors.is_empty() {
            Outcome::CompletedWithErrors
        } else if !self.staged_not_applied.is_empty()
            || !self.warnings.is_empty()
            || self.services.iter().any(|s| !s.is_fine())
        {
            Outcome::Warnings
        } else {
            Outcome::Success
        }
    }

    /// Adds a warning and emits it (target `proxsave::warning`).
    pub fn warn(&mut self, message: impl Into<String>) {
        let message = message.into();
        crate::events::warning(&message);
        self.warnings.push(message);
    }

    /// The restore log text (the guide's format, plus refused/failed sections):
    /// [`Report::log_header`], the entries by status ([`Report::log_files`]), then
    /// [`Report::log_end`].
    pub fn log_text(&self) -> String {
        let mut s = self.log_header();
        s.push_str(&self.log_files());
        s.push_str(&self.log_end());
        s
    }

    /// The log's opening: start time, mode, root, the selected categories, a blank line.
    pub fn log_header(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "=== RESTORE LOG ===");
        let _ = writeln!(s, "Started: {}", self.started_display());
        let _ = writeln!(
            s,
            "Mode: {}",
            self.plan
                .mode
                .plan_label(self.plan.host_role, self.plan.categories.len())
        );
        let _ = writeln!(s, "Root: {}", self.root.display());
        let _ = writeln!(
            s,
            "Selected categories: {} categories",
            self.plan.categories.len()
        );
        for p in &self.plan.categories {
            let _ = writeln!(
                s,
                "  - {} ({}) -> {:?}",
                p.category.name, p.category.id, p.tier
            );
        }
        let _ = writeln!(s);
        s
    }

    /// One section per status (`EXTRACTED FILES:` …), each followed by a blank line.
    pub fn log_files(&self) -> String {
        let mut s = String::new();
        for status in [
            FileStatus::Restored,
            FileStatus::Exported,
            FileStatus::Staged,
            FileStatus::Skipped,
            FileStatus::Refused,
            FileStatus::Failed,
        ] {
            let _ = writeln!(s, "{}:", status.log_section());
            for f in self.files.iter().filter(|f| f.status == status) {
                let _ = writeln!(s, "{}", f.log_line());
            }
            let _ = writeln!(s);
        }
        s
    }

    /// The log's closing sections: `SERVICES:`, `INTERRUPTED:` (when interrupted) and
    /// `SUMMARY:` with the outcome and what did not happen.
    pub fn log_end(&self) -> String {
        let mut s = String::new();
        if !self.services.is_empty() {
            let _ = writeln!(s, "SERVICES:");
            for a in &self.services {
                let _ = writeln!(s, "  {} {}: {}", a.action, a.target, a.result);
            }
            let _ = writeln!(s);
        }
        if let Some(i) = &self.interrupted {
            let _ = writeln!(s, "INTERRUPTED: {i}");
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            let _ = writeln!(s, "  Services restarted: {}", list(&i.restarted));
            let _ = writeln!(s, "  Services NOT restarted: {}", list(&i.not_restarted));
            let _ = writeln!(s);
        }
        let c = &self.counts;
        let _ = writeln!(s, "SUMMARY:");
        let _ = writeln!(s, "  Files extracted: {}", c.restored);
        let _ = writeln!(s, "  Files exported: {}", c.exported);
        let _ = writeln!(s, "  Files staged: {}", c.staged);
        let _ = writeln!(s, "  Files skipped: {}", c.skipped);
        let _ = writeln!(s, "  Files refused: {}", c.refused);
        let _ = writeln!(s, "  Files failed: {}", c.failed);
        let _ = writeln!(s, "  Total in archive: {}", c.total);
        let _ = writeln!(s, "  Duration: {:.1} seconds", self.duration_secs);
        if let Some(e) = &self.error {
            let _ = writeln!(s, "  Error: {e}");
        }
        let _ = writeln!(s, "  Outcome: {}", self.outcome.words());
        for e in &self.errors {
            let _ = writeln!(s, "  - {e}");
        }
        s
    }

    fn started_display(&self) -> String {
        chrono::DateTime::parse_from_rfc3339(&self.started)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| self.started.clone())
    }

    /// Writes the log (0600) to `path` and records it.
    pub fn write_log(&mut self, path: &Path) -> std::io::Result<()> {
        let mut f = proxsave_archive::write::AtomicFile::create(path, 0o600)?;
        std::io::Write::write_all(f.file(), self.log_text().as_bytes())?;
        f.commit()?;
        self.log = Some(path.to_path_buf());
        Ok(())
    }
}

/// True for a service the restore stopped and could not start again (the host is left with it
/// down).
pub fn service_not_restarted(s: &ServiceAction) -> bool {
    s.action == "start" && !s.is_fine()
}

/// `/etc/hosts` for `etc/hosts`.
pub fn system_path(p: &proxsave_archive::path::ArchivePath) -> String {
    format!("/{p}")
}
