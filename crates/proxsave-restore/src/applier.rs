//! The applier contract: how a staged category becomes a correct change on the host.
//!
//! Staged categories (fstab, accounts, storage, network, …) are extracted into a private
//! stage folder, never straight into the root. An [`Applier`] owns one or more of them and
//! turns the staged files into changes, in phases, each optional:
//!
//! 1. [`Applier::plan`] — after the backup was read and verified, before anything is put in
//!    place: from the plan, a read-only view of the stage ([`Stage`]) and of the root
//!    ([`RootHandle`]) it says what it will do ([`ApplierPlan`]): the root paths it may write
//!    or remove (they go into the safety backup, so `--rollback` covers them), the services it
//!    needs stopped, the questions it will ask ([`Ask`]) and a description that `--dry-run`,
//!    `--dry-run --json` and `diff` show.
//! 2. [`Applier::preflight`] — after the confirmation, before it writes: checks such as
//!    `visudo -c` or `findmnt --verify`. A veto skips the applier (or aborts the run, as the
//!    [`Veto`] says) with its reason.
//! 3. [`Applier::apply`] — writes, through the [`RootHandle`]'s safe file operations and the
//!    host's command runner; returns a typed [`Status`] per category.
//! 4. [`Applier::post_restart`] — after the services are back (health checks, COMMIT windows).
//!
//! Every question has a stable id declared up front in [`Applier::questions`], so an answers
//! file is validated against what the appliers declare. The engine runs appliers from an
//! explicit set ([`AppliersSet`]; the `inventory` registry is the default), isolates a panic in
//! any of them (it becomes [`Status::Failed`]; services still restart; the report and the log
//! are still written).
//!
//! # A minimal applier
//!
//! ```
//! use proxsave_archive::path::ArchivePath;
//! use proxsave_restore::applier::{
//!     Applier, ApplierPlan, ApplyContext, ApplyError, Outcome, PlanContext, Status,
//! };
//!
//! /// Installs the backup's `/etc/motd` as it is.
//! struct Motd;
//!
//! impl Applier for Motd {
//!     fn name(&self) -> &'static str { "example-motd" }
//!     fn categories(&self) -> &'static [&'static str] { &["motd"] }
//!     fn order(&self) -> u16 { 100 }
//!
//!     fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
//!         let motd = ArchivePath::from_user("etc/motd").expect("valid path");
//!         let mut plan = ApplierPlan::default();
//!         if ctx.stage.read(&motd)?.is_some() {
//!             plan.actions.push("install /etc/motd from the backup".into());
//!             plan.files.push(motd);
//!         }
//!         Ok(plan)
//!     }
//!
//!     fn apply(&self, ctx: &mut ApplyContext<'_>, plan: &ApplierPlan) -> Result<Vec<Outcome>, ApplyError> {
//!         for path in &plan.files {
//!             if let Some(bytes) = ctx.stage.read(path)? {
//!                 ctx.root.replace(path, &bytes, &Default::default())?;
//!             }
//!         }
//!         Ok(vec![Outcome::new("motd", Status::Applied, "installed /etc/motd")])
//!     }
//! }
//! # let _ = Motd;
//! ```
//! Register it for the `proxsave` binary with
//! `inventory::submit! { proxsave_restore::applier::ApplierRegistration(&Motd) }`, or hand an
//! [`AppliersSet`] of your own to [`crate::engine::ExecuteOptions`].

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use serde::Serialize;

use crate::host::Host;
use crate::plan::Plan;
use crate::prompt::Prompter;
pub use crate::roothandle::{FileSpec, Replaced, RootHandle};

/// A question an applier may ask, declared once with a stable id.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct QuestionSpec {
    /// Stable dotted id (`fstab.merge`); the key in `--answer ID=VALUE` and in the answers
    /// file's `[answers]` table.
    pub id: &'static str,
    /// What is asked.
    pub prompt: &'static str,
    /// The accepted answers as shown (`yes`, `no`, `all`, `none`, `<mountpoint>,…`).
    pub choices: &'static [&'static str],
}

/// A question as asked in one run: its spec, this run's default and what to show first.
#[derive(Clone, Debug, Serialize)]
pub struct Ask {
    /// The declared question.
    pub spec: QuestionSpec,
    /// The answer taken on Enter, on a countdown's end and under `--yes`; `None`: `--yes`
    /// needs an explicit answer (exit 2 naming the id).
    pub default: Option<String>,
    /// Lines shown before the question (e.g. the proposals to choose from).
    pub details: Vec<String>,
    /// A countdown: at the console, no answer within this long takes the default (which
    /// must then be the safe choice). `None`: the question waits.
    #[serde(serialize_with = "secs")]
    pub timeout: Option<std::time::Duration>,
}

fn secs<S: serde::Serializer>(t: &Option<std::time::Duration>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

impl Ask {
    /// A question with this run's default, no details and no countdown.
    pub fn new(spec: QuestionSpec, default: Option<&str>) -> Ask {
        Ask {
            spec,
            default: default.map(str::to_string),
            details: Vec::new(),
            timeout: None,
        }
    }

    /// The same question with a countdown.
    pub fn countdown(mut self, timeout: std::time::Duration) -> Ask {
        self.timeout = Some(timeout);
        self
    }

    /// The same question with lines shown before it.
    pub fn with_details(mut self, details: Vec<String>) -> Ask {
        self.details = details;
        self
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerSource {
    /// `--answer ID=VALUE`.
    Flag,
    /// The answers file's `[answers]` table.
    AnswersFile,
    /// Typed at the console.
    Console,
    /// The question's default (`--yes`, Enter, a countdown's end, or a dry run).
    Default,
}

/// An answer and its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The value.
    pub value: String,
    /// Where it came from.
    pub source: AnswerSource,
}

/// What an applier will do, from its plan phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplierPlan {
    /// Human lines (`add 2 mounts to /etc/fstab: …`); never secrets.
    pub actions: Vec<String>,
    /// Root paths it may write or remove: saved in the safety backup, covered by rollback.
    pub files: Vec<ArchivePath>,
    /// Units to stop before it applies (restarted afterwards), in stop order.
    pub services: Vec<String>,
    /// The questions it will ask, with this run's defaults.
    pub questions: Vec<Ask>,
    /// Machine-readable details for `--json` (never secrets).
    pub details: serde_json::Value,
    /// Each planned change with its text before and after (files written or removed, API
    /// objects created or set): `--dry-run` lists them, `diff` shows them as unified diffs.
    /// Secret values are masked by the applier before they get here.
    pub changes: Vec<PlannedChange>,
}

/// What kind of change a [`PlannedChange`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A file in the root is written (created or replaced).
    Write,
    /// A file in the root is removed.
    Remove,
    /// An object is created through an API (`pvesh create …`).
    Create,
    /// An existing object is changed through an API (`pvesh set …`).
    Set,
    /// An object is deleted through an API.
    Delete,
    /// A command is run.
    Run,
}

impl ChangeKind {
    /// `write`, `remove`, `create`, `set`, `delete`, `run`.
    pub fn word(self) -> &'static str {
        match self {
            ChangeKind::Write => "write",
            ChangeKind::Remove => "remove",
            ChangeKind::Create => "create",
            ChangeKind::Set => "set",
            ChangeKind::Delete => "delete",
            ChangeKind::Run => "run",
        }
    }
}

/// One change an applier plans, with the text before and after it, for `--dry-run` and
/// `diff`. For a file the texts are its contents; for an API object a stable rendering of
/// its properties (one `key value` per line) or the call itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// What changes: a root path (`/etc/vzdump.conf`) or an object (`/storage/nas`).
    pub target: String,
    /// The kind of change.
    pub kind: ChangeKind,
    /// The exact call or operation, secrets masked (`pvesh set /storage/nas --content=backup`).
    pub call: Option<String>,
    /// The text now (`None`: absent, or not known without running a command).
    pub before: Option<String>,
    /// The text after (`None`: removed).
    pub after: Option<String>,
}

impl PlannedChange {
    /// A file write or removal: `after == None` removes. Contents that are not UTF-8 text
    /// are shown as a one-line note.
    pub fn file(target: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> PlannedChange {
        fn text(b: &[u8]) -> String {
            match std::str::from_utf8(b) {
                Ok(t) if !b.contains(&0) => t.to_string(),
                _ => format!("(binary, {} bytes)\n", b.len()),
            }
        }
        PlannedChange {
            target: target.to_string(),
            kind: if after.is_some() {
                ChangeKind::Write
            } else {
                ChangeKind::Remove
            },
            call: None,
            before: before.map(text),
            after: after.map(text),
        }
    }

    /// An API or command change.
    pub fn call(
        target: &str,
        kind: ChangeKind,
        call: impl Into<String>,
        before: Option<String>,
        after: Option<String>,
    ) -> PlannedChange {
        PlannedChange {
            target: target.to_string(),
            kind,
            call: Some(call.into()),
            before,
            after,
        }
    }

    /// True when the before and after texts are the same (nothing would change).
    pub fn is_noop(&self) -> bool {
        self.before.is_some() && self.before == self.after
    }

    /// The change as a unified diff (`--- TARGET (current)` / `+++ TARGET (backup)`);
    /// `None` when the texts are equal.
    pub fn unified_diff(&self) -> Option<String> {
        if self.is_noop() {
            return None;
        }
        let old = self.before.clone().unwrap_or_default();
        let new = self.after.clone().unwrap_or_default();
        let old_name = if self.before.is_some() {
            format!("{} (current)", self.target)
        } else {
            "/dev/null".to_string()
        };
        let new_name = if self.after.is_some() {
            format!("{} (backup)", self.target)
        } else {
            "/dev/null".to_string()
        };
        Some(
            similar::TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header(&old_name, &new_name)
                .to_string(),
        )
    }
}

/// Why a preflight stops an applier.
#[derive(Clone, Debug, Serialize)]
pub struct Veto {
    /// Shown to the user and in the report.
    pub reason: String,
    /// True: the whole run stops before writing; false: only this applier is skipped.
    pub abort_run: bool,
}

/// How one category ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Done.
    Applied,
    /// Some of it was done (the detail says what not).
    PartlyApplied,
    /// Deliberately not done.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Left to the administrator.
    Deferred {
        /// What to do.
        todo: String,
    },
    /// It failed.
    Failed {
        /// The error.
        error: String,
    },
}

impl Status {
    /// `applied`, `partly applied`, `skipped`, `deferred`, `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::PartlyApplied => "partly applied",
            Status::Skipped { .. } => "skipped",
            Status::Deferred { .. } => "deferred",
            Status::Failed { .. } => "failed",
        }
    }

    /// `applied`, `partly_applied`, `skipped`, `deferred`, `failed` (as in JSON).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::PartlyApplied => "partly_applied",
            Status::Skipped { .. } => "skipped",
            Status::Deferred { .. } => "deferred",
            Status::Failed { .. } => "failed",
        }
    }

    /// True for [`Status::Failed`] and [`Status::PartlyApplied`].
    pub fn is_error(&self) -> bool {
        matches!(self, Status::Failed { .. } | Status::PartlyApplied)
    }
}

/// What an applier did for one category.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The category id.
    pub category: String,
    /// The applier's name.
    pub applier: String,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Details shown to the user.
    pub detail: String,
}

impl Outcome {
    /// An outcome for `category` (the engine fills in the applier's name).
    pub fn new(category: &str, status: Status, detail: impl Into<String>) -> Outcome {
        Outcome {
            category: category.to_string(),
            applier: String::new(),
            status,
            detail: detail.into(),
        }
    }
}

/// Errors of the plan and apply phases.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An I/O error on a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A given answer is not acceptable (exit 2 naming the question).
    #[error("answer to `{id}`: {reason}")]
    BadAnswer {
        /// The question id.
        id: &'static str,
        /// Why.
        reason: String,
    },
    /// A question got no usable answer.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
    /// From the plan phase: the run must not go on (e.g. a file it would put in place is
    /// corrupt). The run ends before any service is stopped or anything is written (exit 1),
    /// naming the applier and this reason.
    #[error("{0}")]
    Refused(String),
}

impl From<std::io::Error> for ApplyError {
    fn from(e: std::io::Error) -> Self {
        ApplyError::Io {
            path: PathBuf::new(),
            source: e,
        }
    }
}

/// A read-only view of the stage folder: files laid out as in the archive.
#[derive(Debug)]
pub struct Stage {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

/// Largest staged file an applier reads at once (config files are small).
pub const STAGE_READ_LIMIT: u64 = 64 << 20;

impl Stage {
    /// Opens the stage folder.
    ///
    /// # Errors
    /// It cannot be opened.
    pub fn open(path: &Path) -> std::io::Result<Stage> {
        Ok(Stage {
            fd: dirfd::open_root(path)?,
            path: path.to_path_buf(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is staged at `path`: `None` when absent.
    ///
    /// # Errors
    /// A symlink, a non-file, a file over [`STAGE_READ_LIMIT`], an unreadable file: the
    /// error names the staged path.
    pub fn read(&self, path: &ArchivePath) -> std::io::Result<Option<Vec<u8>>> {
        let shown = self.path.join(path.as_os_str());
        let parent = match dirfd::open_parent(self.fd.as_fd(), path) {
            Ok(p) => p,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(named(&shown, e.into())),
        };
        read_staged(parent.as_fd(), path.file_name(), &shown)
    }

    /// The staged folder `dir`, open for reading many of its files without walking the
    /// path again for each: `None` when absent.
    ///
    /// # Errors
    /// The folder is a symlink, not a folder, or cannot be opened.
    pub fn dir(&self, dir: &ArchivePath) -> std::io::Result<Option<StageDir>> {
        let path = self.path.join(dir.as_os_str());
        match dirfd::walk(self.fd.as_fd(), dir) {
            Ok(fd) => Ok(Some(StageDir { fd, path })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(named(&path, e.into())),
        }
    }

    /// The names in the staged folder `dir` (sorted; empty when absent).
    ///
    /// # Errors
    /// The folder is a symlink or cannot be read.
    pub fn list(&self, dir: &ArchivePath) -> std::io::Result<Vec<Vec<u8>>> {
        let d = match dirfd::walk(self.fd.as_fd(), dir) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut names = Vec::new();
        let mut rd = rustix::fs::Dir::read_from(&d)?;
        while let Some(entry) = rd.read() {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        Ok(names)
    }

    /// True when something is staged at `path` (no link followed).
    pub fn exists(&self, path: &ArchivePath) -> bool {
        dirfd::open_parent(self.fd.as_fd(), path).is_ok_and(|p| {
            rustix::fs::statat(
                &p,
                OsStr::from_bytes(path.file_name()),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .is_ok()
        })
    }
}

/// One staged folder, open (from [`Stage::dir`]).
#[derive(Debug)]
pub struct StageDir {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

impl StageDir {
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the regular files in it that [`read`](Self::read) would return
    /// (sorted): no symlinks, folders or other kinds, nothing over [`STAGE_READ_LIMIT`].
    ///
    /// # Errors
    /// The folder cannot be read.
    pub fn files(&self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        let mut rd =
            rustix::fs::Dir::read_from(&self.fd).map_err(|e| named(&self.path, e.into()))?;
        while let Some(entry) = rd.read() {
            let entry = entry.map_err(|e| named(&self.path, e.into()))?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(
                &self.fd,
                OsStr::from_bytes(n),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
                && st.st_size as u64 <= STAGE_READ_LIMIT
            {
                names.push(n.to_vec());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The file `name` in it, as [`Stage::read`]: `None` when absent.
    ///
    /// # Errors
    /// As [`Stage::read`].
    pub fn read(&self, name: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        read_staged(
            self.fd.as_fd(),
            name,
            &self.path.join(OsStr::from_bytes(name)),
        )
    }
}

fn named(shown: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", shown.display()))
}

/// The regular file `name` of the folder `dir` (`shown` in messages), at most
/// [`STAGE_READ_LIMIT`] bytes; `None` when absent.
fn read_staged(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &[u8],
    shown: &Path,
) -> std::io::Result<Option<Vec<u8>>> {
    let fd = match dirfd::open_file(dir, name) {
        Ok(f) => f,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => {
            return Err(named(
                shown,
                std::io::Error::other("a symbolic link, not a file"),
            ));
        }
        Err(e) => return Err(named(shown, e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| named(shown, e.into()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(named(shown, std::io::Error::other("not a regular file")));
    }
    if st.st_size as u64 > STAGE_READ_LIMIT {
        return Err(named(shown, std::io::Error::other("larger than 64 MiB")));
    }
    let mut out = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .read_to_end(&mut out)
        .map_err(|e| named(shown, e))?;
    Ok(Some(out))
}

/// What the plan phase may look at.
pub struct PlanContext<'a> {
    /// The restore plan.
    pub plan: &'a Plan,
    /// The stage folder.
    pub stage: &'a Stage,
    /// The target root (read it only in this phase).
    pub root: &'a RootHandle,
    /// The host (its root path, whether host actions run).
    pub host: &'a Host,
    /// Answers given up front (`--answer`, the answers file) by question id: an applier
    /// checks them here, so a bad one stops the run (exit 2) before anything is written.
    pub preset: &'a dyn Fn(&str) -> Option<Answer>,
}

/// Everything the preflight, apply and post-restart phases may use.
pub struct ApplyContext<'a> {
    /// The restore plan.
    pub plan: &'a Plan,
    /// The stage folder.
    pub stage: &'a Stage,
    /// The target root with safe file operations.
    pub root: &'a RootHandle,
    /// The host (command runner, clock, run-or-defer).
    pub host: &'a Host,
    /// For questions and messages.
    pub prompter: &'a mut dyn Prompter,
    /// Set on Ctrl+C.
    pub cancel: &'a CancelToken,
}

/// A staged category's applier; see the module docs.
pub trait Applier: Send + Sync {
    /// A short stable name (`fstab-merge`).
    fn name(&self) -> &'static str;
    /// The categories it applies.
    fn categories(&self) -> &'static [&'static str];
    /// Run order among appliers (lower first).
    fn order(&self) -> u16;
    /// Every question it may ask.
    fn questions(&self) -> &'static [QuestionSpec] {
        &[]
    }
    /// What it will do.
    ///
    /// # Errors
    /// The staged files cannot be read, or an answer given up front is not acceptable.
    fn plan(&self, _ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        Ok(ApplierPlan::default())
    }
    /// Checks after the confirmation, before any write of this applier.
    ///
    /// # Errors
    /// A [`Veto`] with its reason.
    fn preflight(&self, _ctx: &mut ApplyContext<'_>, _plan: &ApplierPlan) -> Result<(), Veto> {
        Ok(())
    }
    /// Applies; one [`Outcome`] per category it handled.
    ///
    /// # Errors
    /// The whole applier failed (every category it owns is reported failed).
    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError>;
    /// After the services are back. Runs when the applier's apply phase reported something
    /// other than failed or skipped, or reported nothing at all.
    fn post_restart(&self, _ctx: &mut ApplyContext<'_>, _plan: &ApplierPlan) -> Vec<Outcome> {
        Vec::new()
    }
    /// Whether the applier also runs for its categories when they are restored straight into
    /// the root (the normal tier) instead of being staged. Default: false (staged only).
    ///
    /// Such an applier finds these categories' files in the root, not in the stage: they are
    /// not there yet when [`Applier::plan`] runs, and in place from [`Applier::apply`] on.
    /// It writes none of them itself; it is for what follows a plain file restore: a check, a
    /// report of what the administrator should do next (typically in
    /// [`Applier::post_restart`], with [`Applier::apply`] returning no outcome).
    fn runs_for_normal_tier(&self) -> bool {
        false
    }
    /// Whether the applier also runs for its categories when the plan only exports them
    /// (export-only categories, or ones the cluster choice turned into exports). Default:
    /// false.
    ///
    /// For such an applier the engine also puts these categories' files into the private
    /// stage during the same single read, so [`PlanContext::stage`] and
    /// [`ApplyContext::stage`] hold them as for a staged category; the export folder gets
    /// its copy as before, and nothing of them is written to the root. The applier decides
    /// in [`Applier::plan`] whether it has anything to do (an empty plan otherwise).
    fn reads_exported(&self) -> bool {
        false
    }
    /// Other export-tier categories whose files the applier reads without applying them
    /// (it reports no outcome for them): with [`Applier::reads_exported`], the engine
    /// stages their files too when the plan exports them. Default: none.
    ///
    /// The SAFE cluster appliers read the exported cluster database this way, to rebuild
    /// the exported configuration from it when the backup holds no copy of it as files.
    fn also_reads(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Registration of an applier with `inventory` (what the `proxsave` binary runs).
pub struct ApplierRegistration(pub &'static dyn Applier);

inventory::collect!(ApplierRegistration);

/// The appliers a restore runs, in order.
#[derive(Clone)]
pub struct AppliersSet(Vec<&'static dyn Applier>);

impl AppliersSet {
    /// Every applier registered with `inventory`.
    pub fn registered() -> AppliersSet {
        AppliersSet::new(
            inventory::iter::<ApplierRegistration>()
                .map(|r| r.0)
                .collect(),
        )
    }

    /// Exactly these appliers (sorted by order, then name).
    pub fn new(mut all: Vec<&'static dyn Applier>) -> AppliersSet {
        all.sort_by_key(|a| (a.order(), a.name()));
        AppliersSet(all)
    }

    /// No applier.
    pub fn none() -> AppliersSet {
        AppliersSet(Vec::new())
    }

    /// The appliers, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn Applier> + '_ {
        self.0.iter().copied()
    }

    /// True if one of them handles `category`.
    pub fn handles(&self, category: &str) -> bool {
        self.0.iter().any(|a| a.categories().contains(&category))
    }

    /// Every question they declare.
    pub fn questions(&self) -> Vec<QuestionSpec> {
        self.0
            .iter()
            .flat_map(|a| a.questions().iter().copied())
            .collect()
    }
}

impl Default for AppliersSet {
    fn default() -> Self {
        AppliersSet::registered()
    }
}

/// All registered appliers, in order.
pub fn appliers() -> Vec<&'static dyn Applier> {
    AppliersSet::registered().0
}

/// True if a registered applier handles `category`.
pub fn has_applier(category: &str) -> bool {
    AppliersSet::registered().handles(category)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn ap(s: &str) -> ArchivePath {
        ArchivePath::from_user(s).expect("path")
    }

    #[test]
    fn a_staged_folder_lists_and_reads_its_regular_files_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("etc/app/conf.d");
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("b.conf"), b"b\n").expect("write");
        std::fs::write(d.join("a.conf"), b"a\n").expect("write");
        std::fs::write(dir.path().join("outside"), b"secret\n").expect("write");
        symlink("../../../outside", d.join("link.conf")).expect("symlink");
        symlink("sub", dir.path().join("etc/app/linked.d")).expect("symlink");
        let stage = Stage::open(dir.path()).expect("stage");

        let folder = stage
            .dir(&ap("etc/app/conf.d"))
            .expect("open")
            .expect("present");
        assert_eq!(folder.path(), d);
        assert_eq!(
            folder.files().expect("files"),
            [b"a.conf".to_vec(), b"b.conf".to_vec()]
        );
        assert_eq!(folder.read(b"a.conf").expect("read"), Some(b"a\n".to_vec()));
        assert_eq!(folder.read(b"none.conf").expect("read"), None);
        // The same answers as Stage::read, from the open folder.
        let err = folder.read(b"link.conf").expect_err("a symlink is refused");
        assert!(err.to_string().contains("link.conf"), "{err}");
        assert!(stage.read(&ap("etc/app/conf.d/link.conf")).is_err());
        assert!(folder.read(b"sub").is_err());

        // Absent: None. A symlinked folder is never followed.
        assert!(stage.dir(&ap("etc/app/none.d")).expect("absent").is_none());
        let err = stage.dir(&ap("etc/app/linked.d")).expect_err("symlink");
        assert!(err.to_string().contains("linked.d"), "{err}");
    }
}
