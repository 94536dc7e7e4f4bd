//! The `accounts` applier ([`AccountsMerge`]): the anti-lockout accounts merge and the
//! `visudo`-gated sudoers install.
//!
//! # Plan
//! Reads the staged `passwd`, `group`, `shadow`, `gshadow`, `subuid` and `subgid` through the
//! [`Stage`], this host's files and `etc/login.defs` through the [`RootHandle`], and runs the
//! pure [`merge`] (its module docs hold the rules). The plan lists the account files that
//! change (and their `.bak-YYYYMMDD-HHMMSS` copies), the staged `sudoers` and `sudoers.d`
//! drop-ins it would install (and `etc/sudoers.d` when it must be created), so the safety
//! backup and `--rollback` cover all of them. Its actions name the users, groups,
//! memberships, subordinate ids and conflicts (never a password hash); its details hold the
//! [`MergeReport`] and the [`SudoersPlan`].
//!
//! A staged account file that is a symlink, not a regular file, or not valid UTF-8 skips the
//! whole merge with that reason (a merge without, say, the backup's `shadow` would lock every
//! imported user); so does a missing or empty staged `passwd`. A file of this host that cannot
//! be read (or is not UTF-8) stops the merge as a failure: it is never rewritten.
//!
//! # Questions
//! `accounts.merge` (`yes` (default) / `no`) and `sudoers.apply` (`yes` (default) / `no`),
//! asked only when there is something to do; an answer given up front that is neither is
//! refused while planning (exit 2 naming the id).
//!
//! # Apply
//! The merge is computed again from the files as they are now; the changed account files are
//! written all-or-nothing ([`RootHandle::replace_all`]) with Debian's modes and owners
//! ([`crate::system::accounts::DEBIAN_MODES`]; the `shadow` group of `shadow` and `gshadow`
//! is resolved in the *merged* group file) and a `.bak-…` copy of each old file. A file the
//! plan did not list (the root changed in between) is never written.
//!
//! Each sudoers file to install is copied to a scratch file in the stage folder (the exact
//! bytes that will be installed) and checked on its own with `visudo -c -f FILE` through the
//! host's command runner. Only the files that pass are installed (0440 root:root; a missing
//! `etc/sudoers.d` is created 0755); one that fails is not installed and the current one
//! stays. When host actions are deferred `visudo` cannot run, so no sudoers file is installed
//! (the safe default) and the outcome says so.
//!
//! # Outcome
//! One [`Outcome`] for `accounts`: *failed* when something failed and nothing was done,
//! *partly applied* when something failed and something was done, else *applied* when
//! something was written (what was skipped is in the detail), *skipped* when only skipped
//! parts remain, *applied* with "nothing to change" when everything already matches the
//! backup. A second identical restore writes nothing (no new `.bak` copy).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use proxsave_archive::dirfd;
use proxsave_archive::path::{ArchivePath, escape_bytes};
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use serde_json::json;

use crate::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, FileSpec, Outcome,
    PlanContext, QuestionSpec, RootHandle, Stage, Status,
};
use crate::host::{HostActions, Ran};
use crate::system::accounts::{
    AccountFile, AccountFiles, GroupFile, LoginDefs, MergeOutcome, MergeReport, Merged, PasswdFile,
    StagedKind, StagedSudoers, SudoersAction, SudoersPlan, debian_mode, gid_of, merge,
    plan_sudoers, uid_of, visudo_check_command,
};

/// The category this applier applies.
pub const CATEGORY: &str = "accounts";

/// Whether to merge the backup's accounts (`yes`, the default, or `no`).
pub const MERGE_QUESTION: QuestionSpec = QuestionSpec {
    id: "accounts.merge",
    prompt: "Merge the backup's regular users, their groups and subordinate ids into this host's account files?",
    choices: &["yes", "no"],
};

/// Whether to install the backup's sudoers files that pass `visudo -c -f` (`yes`, the
/// default, or `no`).
pub const SUDOERS_QUESTION: QuestionSpec = QuestionSpec {
    id: "sudoers.apply",
    prompt: "Install the backup's sudoers and sudoers.d files that pass visudo -c -f?",
    choices: &["yes", "no"],
};

const QUESTIONS: &[QuestionSpec] = &[MERGE_QUESTION, SUDOERS_QUESTION];

/// `strftime` format of the `.bak-…` stamp.
const STAMP_FORMAT: &str = "%Y%m%d-%H%M%S";

const SUDOERS: &str = "etc/sudoers";
const SUDOERS_D: &str = "etc/sudoers.d";
const LOGIN_DEFS: &str = "etc/login.defs";

/// The `accounts` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccountsMerge;

inventory::submit! { ApplierRegistration(&AccountsMerge) }

impl Applier for AccountsMerge {
    fn name(&self) -> &'static str {
        "accounts-merge"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        500
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        QUESTIONS
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let merge_preset = preset(ctx, &MERGE_QUESTION)?;
        let sudoers_preset = preset(ctx, &SUDOERS_QUESTION)?;
        let gathered = gather(ctx.stage, ctx.root);
        let stamp = ctx.host.clock.now().format(STAMP_FORMAT).to_string();
        let deferred = ctx.host.actions == HostActions::Defer;
        let mut plan = ApplierPlan::default();

        // The account files.
        let merge_json = match &gathered.merge {
            MergeState::Skipped(reason) => {
                plan.actions.push(format!("accounts: not merged: {reason}"));
                json!({ "status": "skipped", "reason": reason })
            }
            MergeState::Unusable(reason) => {
                plan.actions
                    .push(format!("accounts: cannot merge: {reason}"));
                json!({ "status": "failed", "reason": reason })
            }
            MergeState::Ready(ready) => {
                let report = &ready.outcome.report;
                let lines = summary_lines(report);
                plan.actions.extend(lines.iter().cloned());
                if !report.is_noop() {
                    if merge_preset == Some(false) {
                        plan.actions
                            .push("accounts.merge = no: the account files stay as they are".into());
                    } else {
                        for (file, _) in &ready.outcome.files {
                            let path = ap(file.path())?;
                            if ctx.root.exists(&path) {
                                plan.files.push(bak_path(file.path(), &stamp)?);
                            }
                            plan.files.push(path);
                        }
                    }
                    plan.questions.push(Ask {
                        spec: MERGE_QUESTION,
                        default: Some("yes".into()),
                        details: lines,
                        timeout: None,
                    });
                }
                json!({
                    "status": if report.is_noop() { "unchanged" } else { "changes" },
                    "report": report,
                })
            }
        };

        // The sudoers files.
        let sudoers = &gathered.sudoers;
        plan.actions.extend(sudoers_lines(sudoers));
        let install: Vec<&str> = sudoers.plan.to_install().map(|i| i.path.as_str()).collect();
        if !install.is_empty() {
            if deferred {
                plan.actions.push(format!(
                    "sudoers: not installed: {}",
                    deferred_reason(&install)
                ));
            } else {
                if sudoers_preset == Some(false) {
                    plan.actions
                        .push("sudoers.apply = no: the sudoers files stay as they are".into());
                } else {
                    if sudoers.dir_missing && install.iter().any(|p| p.starts_with(SUDOERS_D)) {
                        plan.files.push(ap(SUDOERS_D)?);
                    }
                    for path in &install {
                        if sudoers.existing.contains(*path) {
                            plan.files.push(bak_path(path, &stamp)?);
                        }
                        plan.files.push(ap(path)?);
                    }
                }
                plan.questions.push(Ask {
                    spec: SUDOERS_QUESTION,
                    default: Some("yes".into()),
                    details: install
                        .iter()
                        .map(|p| format!("{p}: install after visudo -c -f passes"))
                        .collect(),
                    timeout: None,
                });
            }
        }
        plan.details = json!({
            "merge": merge_json,
            "sudoers": {
                "items": sudoers.plan.items,
                "notes": sudoers.notes,
                "deferred": deferred && !install.is_empty(),
            },
            "backup_stamp": stamp,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let gathered = gather(ctx.stage, ctx.root);
        let stamp = plan
            .details
            .get("backup_stamp")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| ctx.host.clock.now().format(STAMP_FORMAT).to_string());
        let planned: BTreeSet<&ArchivePath> = plan.files.iter().collect();
        let mut end = End::default();
        apply_merge(ctx, plan, &gathered.merge, &stamp, &planned, &mut end)?;
        apply_sudoers(ctx, plan, &gathered.sudoers, &stamp, &planned, &mut end)?;
        Ok(vec![end.outcome()])
    }
}

// ----------------------------------------------------------------------------------------
// Questions
// ----------------------------------------------------------------------------------------

/// `yes` (`y`, `true`) → true, `no` (`n`, `false`) → false, case and surrounding blanks
/// ignored (as the CLI normalises them); anything else is a bad answer.
fn yes_no(id: &'static str, value: &str) -> Result<bool, ApplyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        _ => Err(ApplyError::BadAnswer {
            id,
            reason: format!("`{}` is not one of: yes, no", value.trim()),
        }),
    }
}

/// The answer given up front to `spec`, checked.
fn preset(ctx: &PlanContext<'_>, spec: &QuestionSpec) -> Result<Option<bool>, ApplyError> {
    (ctx.preset)(spec.id)
        .map(|a| yes_no(spec.id, &a.value))
        .transpose()
}

/// Asks `spec` as the plan declared it (or with the default `yes` when the plan did not).
fn ask(
    ctx: &mut ApplyContext<'_>,
    plan: &ApplierPlan,
    spec: &QuestionSpec,
) -> Result<bool, ApplyError> {
    let q = plan
        .questions
        .iter()
        .find(|q| q.spec.id == spec.id)
        .cloned()
        .unwrap_or_else(|| Ask {
            spec: *spec,
            default: Some("yes".into()),
            details: Vec::new(),
            timeout: None,
        });
    let answer = ctx.prompter.ask(&q)?;
    yes_no(spec.id, &answer.value)
}

// ----------------------------------------------------------------------------------------
// Reading the stage and the root
// ----------------------------------------------------------------------------------------

fn ap(path: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(path).map_err(|e| ApplyError::Other(format!("{path}: {e}")))
}

fn bak_path(path: &str, stamp: &str) -> Result<ArchivePath, ApplyError> {
    ap(&format!("{path}.bak-{stamp}"))
}

struct Gathered {
    merge: MergeState,
    sudoers: SudoersState,
}

enum MergeState {
    /// Not merged, for a reason that is not an error (nothing usable in the backup).
    Skipped(String),
    /// This host's files cannot be merged into (an error; nothing is written).
    Unusable(String),
    /// The merge was computed.
    Ready(Box<Ready>),
}

struct Ready {
    outcome: MergeOutcome,
    /// The merged `passwd` and `group` (owners are resolved in them).
    passwd: PasswdFile,
    group: GroupFile,
}

#[derive(Default)]
struct SudoersState {
    plan: SudoersPlan,
    /// The staged bytes of each file to install, by path.
    content: BTreeMap<String, Vec<u8>>,
    /// Files to install that exist in the root now (they get a `.bak` copy).
    existing: BTreeSet<String>,
    /// Staged entries that could not even be considered, with why.
    notes: Vec<String>,
    /// `etc/sudoers.d` does not exist in the root.
    dir_missing: bool,
}

fn gather(stage: &Stage, root: &RootHandle) -> Gathered {
    Gathered {
        merge: gather_merge(stage, root),
        sudoers: gather_sudoers(stage, root),
    }
}

fn gather_merge(stage: &Stage, root: &RootHandle) -> MergeState {
    let mut backup = AccountFiles::default();
    let mut current = AccountFiles::default();
    for file in AccountFile::ALL {
        let Ok(path) = ArchivePath::from_user(file.path()) else {
            return MergeState::Unusable(format!("{}: not a valid path", file.path()));
        };
        match stage.read(&path) {
            Ok(None) => {}
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => backup.set(file, &text),
                Err(_) => {
                    return MergeState::Skipped(format!(
                        "the backup's {} is not valid UTF-8",
                        file.path()
                    ));
                }
            },
            Err(e) => {
                return MergeState::Skipped(format!(
                    "the backup's {} cannot be used: {e}",
                    file.path()
                ));
            }
        }
        match root.read(&path) {
            Ok(None) => {}
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => current.set(file, &text),
                Err(_) => {
                    return MergeState::Unusable(format!(
                        "this host's {} is not valid UTF-8; it is left as it is",
                        file.path()
                    ));
                }
            },
            Err(e) => {
                return MergeState::Unusable(format!(
                    "cannot read this host's {}: {e}",
                    file.path()
                ));
            }
        }
    }
    let defs = match ArchivePath::from_user(LOGIN_DEFS).map(|p| root.read(&p)) {
        Ok(Ok(None)) | Err(_) => LoginDefs::default(),
        Ok(Ok(Some(bytes))) => LoginDefs::parse(&String::from_utf8_lossy(&bytes)),
        Ok(Err(e)) => {
            return MergeState::Unusable(format!("cannot read this host's {LOGIN_DEFS}: {e}"));
        }
    };
    match merge(&current, &backup, &defs) {
        Merged::Skipped(reason) => MergeState::Skipped(reason),
        Merged::Done(outcome) => {
            let text = |f: AccountFile| {
                outcome
                    .file(f)
                    .map(str::to_owned)
                    .or_else(|| current.text(f))
                    .unwrap_or_default()
            };
            let passwd = PasswdFile::parse(&text(AccountFile::Passwd));
            let group = GroupFile::parse(&text(AccountFile::Group));
            MergeState::Ready(Box::new(Ready {
                outcome: *outcome,
                passwd,
                group,
            }))
        }
    }
}

/// What is staged at `path`, without following a link; `None` when nothing is.
fn staged_kind(stage: &OwnedFd, path: &ArchivePath) -> std::io::Result<Option<StagedKind>> {
    let parent = match dirfd::open_parent(stage.as_fd(), path) {
        Ok(p) => p,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match rustix::fs::statat(
        &parent,
        OsStr::from_bytes(path.file_name()),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => StagedKind::Regular,
            FileType::Symlink => StagedKind::Symlink,
            FileType::Directory => StagedKind::Directory,
            _ => StagedKind::Other,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One staged sudoers file, owned.
struct Found {
    path: String,
    kind: StagedKind,
    content: Vec<u8>,
    current: Option<Vec<u8>>,
    exists: bool,
}

fn gather_sudoers(stage: &Stage, root: &RootHandle) -> SudoersState {
    let mut state = SudoersState::default();
    let stage_fd = match dirfd::open_root(stage.path()) {
        Ok(fd) => fd,
        Err(e) => {
            state.notes.push(format!(
                "the stage folder {} cannot be opened: {e}",
                stage.path().display()
            ));
            return state;
        }
    };
    let mut found: Vec<Found> = Vec::new();
    let mut consider = |path: String, notes: &mut Vec<String>| {
        let ap = match ArchivePath::from_user(&path) {
            Ok(p) => p,
            Err(e) => {
                notes.push(format!("{path}: {e}; skipped"));
                return;
            }
        };
        let kind = match staged_kind(&stage_fd, &ap) {
            Ok(Some(kind)) => kind,
            Ok(None) => return,
            Err(e) => {
                notes.push(format!(
                    "the backup's {path} cannot be examined: {e}; skipped"
                ));
                return;
            }
        };
        let content = if kind == StagedKind::Regular {
            match stage.read(&ap) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return,
                Err(e) => {
                    notes.push(format!("the backup's {path} cannot be read: {e}; skipped"));
                    return;
                }
            }
        } else {
            Vec::new()
        };
        found.push(Found {
            current: root.read(&ap).ok().flatten(),
            exists: root.exists(&ap),
            path,
            kind,
            content,
        });
    };
    consider(SUDOERS.to_owned(), &mut state.notes);
    if let Ok(dir) = ArchivePath::from_user(SUDOERS_D) {
        match stage.list(&dir) {
            Ok(names) => {
                for name in names {
                    match String::from_utf8(name) {
                        Ok(name) => consider(format!("{SUDOERS_D}/{name}"), &mut state.notes),
                        Err(e) => state.notes.push(format!(
                            "{SUDOERS_D}/{}: its name is not valid UTF-8; skipped",
                            escape_bytes(e.as_bytes())
                        )),
                    }
                }
            }
            Err(e) => {
                if stage.exists(&dir) {
                    state.notes.push(format!(
                        "the backup's {SUDOERS_D} is not a folder that can be read ({e}); its drop-ins are skipped"
                    ));
                }
            }
        }
        state.dir_missing = !root.exists(&dir);
    }
    let staged: Vec<StagedSudoers<'_>> = found
        .iter()
        .map(|f| StagedSudoers {
            path: &f.path,
            kind: f.kind,
            content: &f.content,
            current: f.current.as_deref(),
        })
        .collect();
    state.plan = plan_sudoers(&staged);
    for item in state.plan.to_install() {
        if let Some(f) = found.iter().find(|f| f.path == item.path) {
            state.content.insert(f.path.clone(), f.content.clone());
            if f.exists {
                state.existing.insert(f.path.clone());
            }
        }
    }
    state
}

// ----------------------------------------------------------------------------------------
// Descriptions
// ----------------------------------------------------------------------------------------

/// The merge report as lines (never a password hash: the report holds none).
fn summary_lines(report: &MergeReport) -> Vec<String> {
    report.summary().lines().map(str::to_owned).collect()
}

fn sudoers_lines(state: &SudoersState) -> Vec<String> {
    let mut out: Vec<String> = state
        .plan
        .items
        .iter()
        .map(|item| match &item.action {
            SudoersAction::Install => format!(
                "sudoers: {}: install after visudo -c -f passes (0440 root:root)",
                item.path
            ),
            SudoersAction::Unchanged => format!("sudoers: {}: unchanged", item.path),
            SudoersAction::Skip { reason } => {
                format!("sudoers: {}: skipped: {reason}", item.path)
            }
        })
        .collect();
    out.extend(state.notes.iter().map(|n| format!("sudoers: {n}")));
    out
}

fn deferred_reason(paths: &[&str]) -> String {
    format!(
        "host actions are deferred, so visudo cannot check {}; restore the accounts category again with host actions run to install them",
        paths.join(", ")
    )
}

// ----------------------------------------------------------------------------------------
// Apply
// ----------------------------------------------------------------------------------------

/// What the apply phase did, gathered into one outcome.
#[derive(Default)]
struct End {
    applied: Vec<String>,
    skipped: Vec<String>,
    failed: Vec<String>,
    /// Further lines of the detail (the merge summary, sudoers items left alone).
    info: Vec<String>,
}

impl End {
    fn outcome(self) -> Outcome {
        let status = if !self.failed.is_empty() {
            if self.applied.is_empty() {
                Status::Failed {
                    error: self.failed.join("; "),
                }
            } else {
                Status::PartlyApplied
            }
        } else if !self.applied.is_empty() {
            Status::Applied
        } else if !self.skipped.is_empty() {
            Status::Skipped {
                reason: self.skipped.join("; "),
            }
        } else {
            Status::Applied
        };
        let mut lines: Vec<String> = Vec::new();
        lines.extend(self.failed);
        lines.extend(self.applied);
        lines.extend(self.skipped);
        lines.extend(self.info);
        Outcome::new(CATEGORY, status, lines.join("\n"))
    }
}

fn apply_merge(
    ctx: &mut ApplyContext<'_>,
    plan: &ApplierPlan,
    state: &MergeState,
    stamp: &str,
    planned: &BTreeSet<&ArchivePath>,
    end: &mut End,
) -> Result<(), ApplyError> {
    let ready = match state {
        MergeState::Skipped(reason) => {
            end.skipped.push(format!("accounts not merged: {reason}"));
            return Ok(());
        }
        MergeState::Unusable(reason) => {
            end.failed
                .push(format!("accounts not merged (nothing written): {reason}"));
            return Ok(());
        }
        MergeState::Ready(ready) => ready,
    };
    let outcome = &ready.outcome;
    if outcome.report.is_noop() {
        end.info.extend(summary_lines(&outcome.report));
        return Ok(());
    }
    if !ask(ctx, plan, &MERGE_QUESTION)? {
        end.skipped
            .push("account files left as they are (accounts.merge = no)".into());
        return Ok(());
    }
    end.info
        .extend(summary_lines(&outcome.report).into_iter().skip(1));
    let mut writes = Vec::new();
    let mut unplanned = Vec::new();
    for (file, text) in &outcome.files {
        let path = ap(file.path())?;
        if !planned.contains(&path) {
            unplanned.push(file.path());
            continue;
        }
        let mode = file.mode();
        let gid = gid_of(&ready.group, mode.group);
        if gid.is_none() {
            end.info.push(format!(
                "no `{}` group on this host: {} keeps its group",
                mode.group,
                file.path()
            ));
        }
        writes.push((
            path,
            text.as_bytes().to_vec(),
            FileSpec {
                mode: Some(mode.mode),
                uid: uid_of(&ready.passwd, mode.owner),
                gid,
                backup_stamp: Some(stamp.to_owned()),
            },
        ));
    }
    if !unplanned.is_empty() {
        end.failed.push(format!(
            "account files not written: {} changed since the plan (not covered by the safety backup)",
            unplanned.join(", ")
        ));
        return Ok(());
    }
    match ctx.root.replace_all(&writes) {
        Ok(done) => {
            let names: Vec<String> = done.iter().map(|r| r.path.to_string()).collect();
            let copies: Vec<String> = done
                .iter()
                .filter_map(|r| r.backup.as_ref().map(ToString::to_string))
                .collect();
            let mut line = format!("written: {}", names.join(", "));
            if !copies.is_empty() {
                line.push_str(&format!(" (old files kept as {})", copies.join(", ")));
            }
            end.applied.push(line);
        }
        Err(e) => end.failed.push(format!(
            "account files not written (all left as they were): {e}"
        )),
    }
    Ok(())
}

fn apply_sudoers(
    ctx: &mut ApplyContext<'_>,
    plan: &ApplierPlan,
    state: &SudoersState,
    stamp: &str,
    planned: &BTreeSet<&ArchivePath>,
    end: &mut End,
) -> Result<(), ApplyError> {
    for item in &state.plan.items {
        match &item.action {
            SudoersAction::Install => {}
            SudoersAction::Unchanged => {
                end.info.push(format!("{}: unchanged", item.path));
            }
            SudoersAction::Skip { reason } => {
                end.info
                    .push(format!("{}: not installed: {reason}", item.path));
            }
        }
    }
    end.info.extend(state.notes.iter().cloned());
    let install: Vec<&str> = state.plan.to_install().map(|i| i.path.as_str()).collect();
    if install.is_empty() {
        return Ok(());
    }
    if ctx.host.actions == HostActions::Defer {
        end.skipped.push(format!(
            "sudoers not installed: {}",
            deferred_reason(&install)
        ));
        return Ok(());
    }
    if !ask(ctx, plan, &SUDOERS_QUESTION)? {
        end.skipped
            .push("sudoers files left as they are (sudoers.apply = no)".into());
        return Ok(());
    }
    let mut installed = Vec::new();
    for (n, path) in install.iter().enumerate() {
        let target = ap(path)?;
        if !planned.contains(&target) {
            end.failed.push(format!(
                "{path} not installed: it changed since the plan (not covered by the safety backup)"
            ));
            continue;
        }
        let Some(bytes) = state.content.get(*path) else {
            continue;
        };
        if let Err(why) = visudo_check(ctx, path, bytes, n) {
            end.failed.push(format!(
                "{path} not installed (the current one stays): visudo -c -f: {why}"
            ));
            continue;
        }
        if path.starts_with(&format!("{SUDOERS_D}/")) {
            let dir = ap(SUDOERS_D)?;
            if let Err(e) = ensure_sudoers_d(ctx.root, &dir) {
                end.failed.push(format!("{path} not installed: {e}"));
                continue;
            }
        }
        let mode = debian_mode(path).map_or(0o440, |m| m.mode);
        let spec = FileSpec {
            mode: Some(mode),
            uid: Some(0),
            gid: Some(0),
            backup_stamp: Some(stamp.to_owned()),
        };
        match ctx.root.replace(&target, bytes, &spec) {
            Ok(r) => installed.push(match r.backup {
                Some(b) => format!("{path} (old file kept as {b})"),
                None => (*path).to_owned(),
            }),
            Err(e) => end
                .failed
                .push(format!("{path} not installed (the current one stays): {e}")),
        }
    }
    if !installed.is_empty() {
        end.applied.push(format!(
            "installed after visudo -c -f passed (0440 root:root): {}",
            installed.join(", ")
        ));
    }
    Ok(())
}

/// Creates `etc/sudoers.d` when it is missing, 0755 whatever the umask (as Debian has it);
/// an existing folder is left as it is.
fn ensure_sudoers_d(root: &RootHandle, dir: &ArchivePath) -> std::io::Result<()> {
    if root.exists(dir) {
        return Ok(());
    }
    root.create_dir_all(dir, 0o755)?;
    let fd = dirfd::walk(root.dir().as_fd(), dir)?;
    let mode = debian_mode(SUDOERS_D).map_or(0o755, |m| m.mode);
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(mode))?;
    Ok(())
}

/// Checks `bytes` (the staged `path`) with `visudo -c -f` on a scratch copy in the stage
/// folder: the exact bytes that would be installed.
fn visudo_check(ctx: &ApplyContext<'_>, path: &str, bytes: &[u8], n: usize) -> Result<(), String> {
    let tag: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect();
    let scratch = ctx
        .stage
        .path()
        .join(format!(".proxsave-visudo-{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&scratch);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&scratch)
        .and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&scratch);
        return Err(format!(
            "cannot write the scratch copy {}: {e}",
            scratch.display()
        ));
    }
    let shown = scratch.to_string_lossy().into_owned();
    let ran = ctx.host.run(&visudo_check_command(&shown), ctx.cancel);
    let _ = std::fs::remove_file(&scratch);
    match ran {
        Ok(Ran::Done(out)) if out.success() => Ok(()),
        Ok(Ran::Done(out)) => {
            let text = out.failure().replace(&shown, path);
            Err(text.lines().next().unwrap_or_default().to_owned())
        }
        Ok(Ran::Deferred) => Err("host actions are deferred; visudo did not run".into()),
        Err(e) => Err(format!("visudo cannot run: {e}")),
    }
}

#[cfg(test)]
mod tests;
