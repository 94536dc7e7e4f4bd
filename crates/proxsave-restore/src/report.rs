//! The outcome of a restore: per-file results, services, deferred actions, and the restore
//! log in the guide's format.

use std::fmt::Write as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use proxsave_archive::spill::{self, Record, SpillVec, get_bytes, get_u64, put_bytes, put_u64};
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

impl FileStatus {
    const ALL: [FileStatus; 7] = [
        FileStatus::Restored,
        FileStatus::WouldRestore,
        FileStatus::Exported,
        FileStatus::Staged,
        FileStatus::Skipped,
        FileStatus::Refused,
        FileStatus::Failed,
    ];

    fn index(self) -> usize {
        match self {
            FileStatus::Restored => 0,
            FileStatus::WouldRestore => 1,
            FileStatus::Exported => 2,
            FileStatus::Staged => 3,
            FileStatus::Skipped => 4,
            FileStatus::Refused => 5,
            FileStatus::Failed => 6,
        }
    }
}

/// One entry's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad {what} in a spilled outcome"),
    )
}

fn change_index(c: Option<Change>) -> usize {
    match c {
        None => 0,
        Some(Change::New) => 1,
        Some(Change::Changed) => 2,
        Some(Change::Metadata) => 3,
        Some(Change::Unchanged) => 4,
    }
}

const CHANGES: [Option<Change>; 5] = [
    None,
    Some(Change::New),
    Some(Change::Changed),
    Some(Change::Metadata),
    Some(Change::Unchanged),
];

/// Encodes an optional change (shared with the engine's merge records).
pub(crate) fn put_change(out: &mut Vec<u8>, c: Option<Change>) {
    out.push(change_index(c) as u8);
}

/// Decodes [`put_change`].
pub(crate) fn get_change(input: &mut dyn Read) -> io::Result<Option<Change>> {
    let mut b = [0u8; 1];
    input.read_exact(&mut b)?;
    CHANGES
        .get(usize::from(b[0]))
        .copied()
        .ok_or_else(|| bad("change"))
}

impl Record for FileOutcome {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.path.as_bytes());
        out.push(match self.tier {
            None => 0,
            Some(Tier::Normal) => 1,
            Some(Tier::Staged) => 2,
            Some(Tier::Export) => 3,
        });
        out.push(self.status.index() as u8);
        put_change(out, self.change);
        put_u64(out, self.uid);
        put_u64(out, self.gid);
        put_u64(out, u64::from(self.mode));
        match &self.reason {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_bytes(out, r.as_bytes());
            }
        }
    }

    fn decode(input: &mut dyn Read) -> io::Result<Self> {
        let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| bad("text"));
        let path = text(get_bytes(input)?)?;
        let mut b = [0u8; 2];
        input.read_exact(&mut b)?;
        let tier = match b[0] {
            0 => None,
            1 => Some(Tier::Normal),
            2 => Some(Tier::Staged),
            3 => Some(Tier::Export),
            _ => return Err(bad("tier")),
        };
        let status = *FileStatus::ALL
            .get(usize::from(b[1]))
            .ok_or_else(|| bad("status"))?;
        let change = get_change(input)?;
        let uid = get_u64(input)?;
        let gid = get_u64(input)?;
        let mode = u32::try_from(get_u64(input)?).map_err(|_| bad("mode"))?;
        let mut flag = [0u8; 1];
        input.read_exact(&mut flag)?;
        let reason = match flag[0] {
            0 => None,
            1 => Some(text(get_bytes(input)?)?),
            _ => return Err(bad("reason")),
        };
        Ok(FileOutcome {
            path,
            tier,
            status,
            change,
            uid,
            gid,
            mode,
            reason,
        })
    }
}

/// The per-entry outcomes of a run: a bounded list ([`SpillVec`]) that keeps up to
/// [`spill::LIST_BUDGET`] bytes in memory and the rest in an unnamed file (mode 0600) in the
/// run's private work directory, plus counts by status and change kept in memory.
///
/// Iterating reads the list back in the order it was pushed; serializing it (JSON) streams
/// it as an array, element by element.
pub struct FileList {
    list: SpillVec<FileOutcome>,
    tally: [[u64; 5]; 7],
}

impl Default for FileList {
    fn default() -> Self {
        FileList::new()
    }
}

impl std::fmt::Debug for FileList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FileList {
    /// An empty list that spills into the system's temporary directory (the engine moves it
    /// to its private work directory, [`FileList::spill_into`]).
    pub fn new() -> FileList {
        FileList::in_dir(&std::env::temp_dir(), spill::LIST_BUDGET)
    }

    /// An empty list keeping `budget` bytes in memory, then spilling into `dir`.
    pub fn in_dir(dir: &Path, budget: usize) -> FileList {
        FileList {
            list: SpillVec::new(dir, budget),
            tally: [[0; 5]; 7],
        }
    }

    /// Spills into `dir` from now on (the records so far move along while the list is still
    /// in memory; once spilled, it stays where it is).
    ///
    /// # Errors
    /// Reading the list back or writing it anew.
    pub fn spill_into(&mut self, dir: &Path, budget: usize) -> io::Result<()> {
        if self.list.is_spilled() {
            return Ok(());
        }
        let mut moved = SpillVec::new(dir, budget);
        for f in self.list.iter() {
            moved.push(&f?)?;
        }
        self.list = moved;
        Ok(())
    }

    /// Appends one outcome.
    ///
    /// # Errors
    /// Creating or writing the spill file.
    pub fn push(&mut self, f: FileOutcome) -> io::Result<()> {
        self.list.push(&f)?;
        self.tally[f.status.index()][change_index(f.change)] += 1;
        Ok(())
    }

    /// Number of outcomes.
    pub fn len(&self) -> u64 {
        self.list.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// True once part of the list lives in the spill file.
    pub fn is_spilled(&self) -> bool {
        self.list.is_spilled()
    }

    /// Outcomes with `status`.
    pub fn count(&self, status: FileStatus) -> u64 {
        self.tally[status.index()].iter().sum()
    }

    /// Outcomes with `status` and `change`.
    pub fn count_change(&self, status: FileStatus, change: Option<Change>) -> u64 {
        self.tally[status.index()][change_index(change)]
    }

    /// The restore log's file sections (`EXTRACTED FILES:` …, each followed by a blank
    /// line): one pass over the list per section that has entries.
    ///
    /// # Errors
    /// Writing, or reading the spill file back.
    pub fn write_log_sections(&self, w: &mut dyn io::Write) -> io::Result<()> {
        for status in [
            FileStatus::Restored,
            FileStatus::Exported,
            FileStatus::Staged,
            FileStatus::Skipped,
            FileStatus::Refused,
            FileStatus::Failed,
        ] {
            writeln!(w, "{}:", status.log_section())?;
            if self.count(status) > 0 {
                for f in self.try_iter() {
                    let f = f?;
                    if f.status == status {
                        writeln!(w, "{}", f.log_line())?;
                    }
                }
            }
            writeln!(w)?;
        }
        Ok(())
    }

    /// Every outcome in order, with the errors of reading the spill file back.
    pub fn try_iter(&self) -> impl Iterator<Item = io::Result<FileOutcome>> + '_ {
        self.list.iter()
    }

    /// Every outcome in order. A read error of the spill file ends the iteration early (see
    /// [`FileList::try_iter`] to see it).
    pub fn iter(&self) -> impl Iterator<Item = FileOutcome> + '_ {
        self.list.iter().map_while(Result::ok)
    }
}

impl<'a> IntoIterator for &'a FileList {
    type Item = FileOutcome;
    type IntoIter = Box<dyn Iterator<Item = FileOutcome> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Serialize for FileList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let len = usize::try_from(self.len()).ok();
        let mut seq = s.serialize_seq(len)?;
        for f in self.try_iter() {
            seq.serialize_element(&f.map_err(S::Error::custom)?)?;
        }
        seq.end()
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
#[derive(Debug, Serialize)]
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
    /// Per-entry outcomes (bounded in memory: see [`FileList`]).
    pub files: FileList,
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
        let f = &self.files;
        self.counts = Counts {
            total,
            restored: f.count(FileStatus::Restored) + f.count(FileStatus::WouldRestore),
            new: f.count_change(FileStatus::Restored, Some(Change::New))
                + f.count_change(FileStatus::WouldRestore, Some(Change::New)),
            changed: f.count_change(FileStatus::Restored, Some(Change::Changed))
                + f.count_change(FileStatus::WouldRestore, Some(Change::Changed)),
            metadata: f.count_change(FileStatus::Restored, Some(Change::Metadata))
                + f.count_change(FileStatus::WouldRestore, Some(Change::Metadata)),
            unchanged: f.count_change(FileStatus::Restored, Some(Change::Unchanged))
                + f.count_change(FileStatus::WouldRestore, Some(Change::Unchanged)),
            exported: f.count(FileStatus::Exported),
            staged: f.count(FileStatus::Staged),
            skipped: f.count(FileStatus::Skipped),
            refused: f.count(FileStatus::Refused),
            failed: f.count(FileStatus::Failed),
        };
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
    /// [`Report::log_end`]. Holds the whole text: [`Report::write_log`] streams it instead.
    pub fn log_text(&self) -> String {
        let mut v = Vec::new();
        let _ = self.write_log_text(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// Writes [`Report::log_text`] to `w`, the entries read one by one from the list.
    ///
    /// # Errors
    /// Writing, or reading the spilled outcomes back.
    pub fn write_log_text(&self, w: &mut dyn io::Write) -> io::Result<()> {
        w.write_all(self.log_header().as_bytes())?;
        self.write_log_files(w)?;
        w.write_all(self.log_end().as_bytes())
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
        let mut v = Vec::new();
        let _ = self.write_log_files(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// Writes [`Report::log_files`] to `w`: one pass over the outcomes per section.
    ///
    /// # Errors
    /// Writing, or reading the spilled outcomes back.
    pub fn write_log_files(&self, w: &mut dyn io::Write) -> io::Result<()> {
        self.files.write_log_sections(w)
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
        {
            let mut w = io::BufWriter::new(f.file());
            self.write_log_text(&mut w)?;
            io::Write::flush(&mut w)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(n: u64) -> Vec<FileOutcome> {
        (0..n)
            .map(|i| {
                let status = FileStatus::ALL[(i % 7) as usize];
                FileOutcome {
                    path: format!("/home/user{}/f{:05}-ü", i % 13, (i * 7919) % n),
                    tier: [
                        None,
                        Some(Tier::Normal),
                        Some(Tier::Staged),
                        Some(Tier::Export),
                    ][(i % 4) as usize],
                    status,
                    change: CHANGES[(i % 5) as usize],
                    uid: i % 3,
                    gid: 1000 + i % 2,
                    mode: 0o644 | ((i % 2) as u32) << 6,
                    reason: (!status.log_with_meta()).then(|| format!("reason {i}")),
                }
            })
            .collect()
    }

    /// The log sections as the report wrote them from a `Vec` before the list was bounded.
    fn log_of_vec(files: &[FileOutcome]) -> String {
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
            for f in files.iter().filter(|f| f.status == status) {
                let _ = writeln!(s, "{}", f.log_line());
            }
            let _ = writeln!(s);
        }
        s
    }

    #[test]
    fn a_spilled_list_serializes_logs_and_counts_as_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let want = outcomes(3000);
        let mut mem = FileList::in_dir(dir.path(), 1 << 30);
        let mut disk = FileList::in_dir(dir.path(), 64);
        for f in &want {
            mem.push(f.clone()).expect("push");
            disk.push(f.clone()).expect("push");
        }
        assert!(!mem.is_spilled());
        assert!(disk.is_spilled(), "a 64-byte budget spills");
        // The spill file has no name in the work dir.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
        assert_eq!(disk.len(), 3000);
        assert_eq!(disk.iter().collect::<Vec<_>>(), want);
        // JSON: element by element, the same text as the Vec's.
        let json = serde_json::to_string_pretty(&want).expect("json");
        assert_eq!(serde_json::to_string_pretty(&mem).expect("json"), json);
        assert_eq!(serde_json::to_string_pretty(&disk).expect("json"), json);
        assert_eq!(
            serde_json::to_value(&disk).expect("value"),
            serde_json::to_value(&want).expect("value")
        );
        // Log sections: one pass per status over the spilled list.
        let mut log = Vec::new();
        disk.write_log_sections(&mut log).expect("log");
        assert_eq!(String::from_utf8(log).expect("utf8"), log_of_vec(&want));
        // Counts kept in memory.
        for status in FileStatus::ALL {
            assert_eq!(
                disk.count(status),
                want.iter().filter(|f| f.status == status).count() as u64
            );
            for change in CHANGES {
                assert_eq!(
                    disk.count_change(status, change),
                    want.iter()
                        .filter(|f| f.status == status && f.change == change)
                        .count() as u64
                );
            }
        }
        // Moving an unspilled list to another directory keeps it; a spilled one stays.
        let other = tempfile::tempdir().expect("tempdir");
        mem.spill_into(other.path(), 64).expect("move");
        mem.push(want[0].clone()).expect("push");
        assert!(mem.is_spilled());
        assert_eq!(mem.len(), 3001);
        assert_eq!(mem.iter().take(3000).collect::<Vec<_>>(), want);
    }
}
