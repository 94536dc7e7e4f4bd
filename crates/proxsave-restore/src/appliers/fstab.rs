//! `fstab-merge`: the smart `/etc/fstab` merge as an applier (`filesystem` category).
//!
//! The merge rules are [`crate::system::fstab`]'s; this applier reads, asks, checks and writes.
//!
//! # Plan
//! It reads the staged `etc/fstab` (a missing, empty, non-UTF-8 or symlinked one skips the
//! category with that reason), this host's `etc/fstab` through the root handle (missing: an
//! empty file; a link, a non-file or non-UTF-8: skipped, left as it is), the backup's disk
//! inventory from the stage ([`INVENTORY_FILES`] under [`INVENTORY_DIR`], staged with the
//! category), and tells whether a stable reference exists with [`stable_ref_present`] on the
//! root's directory handle. It merges with [`Choice::None`] to learn the proposals and the
//! default, and checks an answer given up front (`--answer fstab.merge=…`, the answers file):
//! one that names a mountpoint that is not a safe proposal stops the run before anything is
//! written ([`ApplyError::BadAnswer`], exit 2). The plan lists the proposals as
//! `device → mountpoint (type)` and the entries left out with their reason, never options
//! (CIFS `password=` lives there); `etc/fstab` is among its files (so the safety backup and
//! `--rollback` cover it) when something may be added; it asks `fstab.merge` only when there
//! is something to choose.
//!
//! # Apply
//! 1. Asks `fstab.merge` (`all`, `none`, or a comma list of mountpoints; the default is `all`
//!    only when the backup's root device is this host's) and merges with the answer. Nothing
//!    added: the file is not touched (so a second identical restore, whose mounts are
//!    *already restored*, rewrites nothing and leaves no new `.bak-…`).
//! 2. Writes this host's file and the merged one into a private scratch folder (0700, files
//!    0600: the merged text holds the options) inside the stage folder and runs
//!    `env LC_ALL=C findmnt --verify --tab-file FILE` on both through the host's runner. The
//!    merged file is refused only for findings the old one does not have, other than
//!    unreachable sources and targets ([`blocking_findings`]); the category is then `failed`
//!    and the file untouched. When findmnt cannot run (host actions deferred, the tool
//!    missing, a timeout) the merge is still written and the outcome carries a warning
//!    naming `findmnt`: the merged file is this host's file plus lines that all carry
//!    `nofail`, so it cannot stop the boot; the missing check is said, never passed silently.
//! 3. Replaces `etc/fstab` atomically, owner and mode kept, the old file kept as
//!    `etc/fstab.bak-YYYYMMDD-HHMMSS` (the host clock's local time).
//! 4. Runs `systemctl daemon-reload` (recorded as a to-do when host actions are deferred; a
//!    failure makes the category `partly applied`).

use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use proxsave_archive::path::ArchivePath;
use serde_json::{Value, json};

use crate::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, FileSpec, Outcome,
    PlanContext, QuestionSpec, RootHandle, Stage, Status,
};
use crate::host::{HostActions, HostCommand, Ran};
use crate::plan::Plan;
use crate::prompt::{Level, PromptError};
use crate::system::fstab::{
    Choice, Finding, Fstab, INVENTORY_DIR, INVENTORY_FILES, Inventory, MergeResult, ProposalKind,
    RootMatch, SkipReason, StableRef, VerifyReport, blocking_findings, merge, stable_ref_present,
};

/// The category this applier handles.
pub const CATEGORY: &str = "filesystem";

/// The file it merges (root-relative).
pub const FSTAB: &str = "etc/fstab";

/// The `fstab.merge` question.
pub const QUESTION: QuestionSpec = QuestionSpec {
    id: "fstab.merge",
    prompt: "Which of the backup's mounts that are safe on this host should be added to /etc/fstab?",
    choices: &["all", "none", "<mountpoint>,…"],
};

/// The `fstab.merge` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct FstabMerge;

inventory::submit! { ApplierRegistration(&FstabMerge) }

/// What the plan and apply phases both read.
struct Inputs {
    current: Fstab,
    backup: Fstab,
    inventory: Inventory,
    /// Inventory files that could not be read (named, never their content).
    notes: Vec<String>,
    origin: String,
}

enum Prepared {
    /// The category is skipped, with the reason.
    Skip(String),
    Ready(Box<Inputs>),
}

fn fstab_path() -> ArchivePath {
    ArchivePath::from_user(FSTAB).expect("a constant relative path")
}

/// Reads the stage and the root; see the module docs.
fn prepare(stage: &Stage, root: &RootHandle, plan: &Plan) -> Prepared {
    let path = fstab_path();
    let staged = match stage.read(&path) {
        Ok(Some(b)) => b,
        Ok(None) => return Prepared::Skip("the backup has no /etc/fstab".into()),
        Err(e) => {
            return Prepared::Skip(format!("the backup's /etc/fstab cannot be used: {e}"));
        }
    };
    let Ok(backup_text) = String::from_utf8(staged) else {
        return Prepared::Skip("the backup's /etc/fstab is not valid UTF-8".into());
    };
    if backup_text.trim().is_empty() {
        return Prepared::Skip("the backup's /etc/fstab is empty".into());
    }
    let current_text = match root.stat(&path) {
        Ok(None) => String::new(),
        Ok(Some(m)) if m.kind != rustix::fs::FileType::RegularFile => {
            return Prepared::Skip(
                "this host's /etc/fstab is not a regular file (a link?); it is left as it is"
                    .into(),
            );
        }
        Ok(Some(_)) => match root.read(&path) {
            Ok(Some(b)) => match String::from_utf8(b) {
                Ok(t) => t,
                Err(_) => {
                    return Prepared::Skip(
                        "this host's /etc/fstab is not valid UTF-8; it is left as it is".into(),
                    );
                }
            },
            Ok(None) => String::new(),
            Err(e) => {
                return Prepared::Skip(format!(
                    "this host's /etc/fstab cannot be read ({e}); it is left as it is"
                ));
            }
        },
        Err(e) => {
            return Prepared::Skip(format!(
                "this host's /etc/fstab cannot be read ({e}); it is left as it is"
            ));
        }
    };
    let mut notes = Vec::new();
    let mut files: Vec<(&str, String)> = Vec::new();
    for name in INVENTORY_FILES {
        let Ok(p) = ArchivePath::from_user(&format!("{INVENTORY_DIR}/{name}")) else {
            continue;
        };
        match stage.read(&p) {
            Ok(Some(b)) => match String::from_utf8(b) {
                Ok(t) => files.push((name, t)),
                Err(_) => notes.push(format!(
                    "the backup's disk inventory {name}: not valid UTF-8; not read"
                )),
            },
            Ok(None) => {}
            Err(e) => notes.push(format!("the backup's disk inventory {name}: not read: {e}")),
        }
    }
    let (inventory, warnings) = Inventory::from_files(files.iter().map(|(n, t)| (*n, t.as_str())));
    notes.extend(
        warnings
            .iter()
            .map(|w| format!("the backup's disk inventory {w}")),
    );
    let origin = plan
        .backup_hostname
        .as_deref()
        .map(|h| format!("of {h}"))
        .unwrap_or_default();
    Prepared::Ready(Box::new(Inputs {
        current: Fstab::parse(&current_text),
        backup: Fstab::parse(&backup_text),
        inventory,
        notes,
        origin,
    }))
}

impl Inputs {
    fn merge(&self, root: &RootHandle, choice: Choice) -> Result<MergeResult, ApplyError> {
        let present = |r: &StableRef| stable_ref_present(root.dir().as_fd(), r);
        merge(
            &self.current,
            &self.backup,
            &self.inventory,
            &present,
            &self.origin,
            choice,
        )
        .map_err(|e| ApplyError::BadAnswer {
            id: QUESTION.id,
            reason: e.to_string(),
        })
    }
}

fn parse_choice(value: &str) -> Result<Choice, ApplyError> {
    value
        .parse::<Choice>()
        .map_err(|reason| ApplyError::BadAnswer {
            id: QUESTION.id,
            reason,
        })
}

/// Why the default is what it is, in words.
fn default_reason(r: &MergeResult) -> String {
    match &r.root {
        RootMatch::Same { device } => {
            format!("the backup's root device is this host's ({device}): the same machine")
        }
        RootMatch::Different { current, backup } => format!(
            "the backup's root device ({backup}) is not this host's ({current}): another machine or a new install"
        ),
        RootMatch::NotComparable(_) => {
            "the root devices cannot be compared (one file has no `/` entry)".into()
        }
    }
}

/// Lines shown before the question: the proposals, the entries left out, the default.
fn ask_details(r: &MergeResult) -> Vec<String> {
    let mut d = vec!["Mounts of the backup that are safe to add here:".to_string()];
    d.extend(r.proposals.iter().map(|p| format!("  {p}")));
    if !r.skipped.is_empty() {
        d.push("Not proposed:".into());
        d.extend(r.skipped.iter().map(|s| format!("  {s}")));
    }
    d.push(format!(
        "Default: {} ({})",
        r.default_choice,
        default_reason(r)
    ));
    d
}

fn ask_of(r: &MergeResult) -> Ask {
    Ask {
        spec: QUESTION,
        default: Some(r.default_choice.to_string()),
        details: ask_details(r),
        timeout: None,
    }
}

fn details(r: &MergeResult, notes: &[String], answer: Option<&str>, adds: &[String]) -> Value {
    let kind = |k: ProposalKind| match k {
        ProposalKind::Network => "network",
        ProposalKind::Device => "device",
    };
    let root = match &r.root {
        RootMatch::Same { device } => json!({"match": "same", "current": device, "backup": device}),
        RootMatch::Different { current, backup } => {
            json!({"match": "different", "current": current, "backup": backup})
        }
        RootMatch::NotComparable(_) => json!({"match": "not_comparable"}),
    };
    json!({
        "file": format!("/{FSTAB}"),
        "proposals": r.proposals.iter().map(|p| json!({
            "mountpoint": p.mountpoint,
            "device": p.device,
            "fstype": p.fstype,
            "kind": kind(p.kind),
            "remapped_from": p.remapped_from,
            "backup_line": p.backup_line,
        })).collect::<Vec<_>>(),
        "skipped": r.skipped.iter().map(|s| json!({
            "mountpoint": s.mountpoint,
            "device": s.device,
            "fstype": s.fstype,
            "backup_line": s.backup_line,
            "reason": s.reason.to_string(),
        })).collect::<Vec<_>>(),
        "root": root,
        "default": r.default_choice.to_string(),
        "answer": answer,
        "would_add": adds,
        "warnings": r.warnings.iter().map(ToString::to_string).chain(notes.iter().cloned()).collect::<Vec<_>>(),
    })
}

/// The outcome of the findmnt check.
enum Verified {
    /// No new blocking finding.
    Passed,
    /// It could not run; the warning says why.
    NotRun(String),
    /// New blocking findings.
    Refused(Vec<Finding>),
}

fn io_at(path: &Path, source: std::io::Error) -> ApplyError {
    ApplyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to a new 0600 file.
fn write_private(path: &Path, text: &str) -> Result<(), ApplyError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_at(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_at(path, e))
}

/// Runs `findmnt --verify --tab-file file`: `Ok(Err(why))` when it could not run.
fn findmnt(
    ctx: &ApplyContext<'_>,
    file: &Path,
) -> Result<Result<VerifyReport, String>, ApplyError> {
    let Some(file) = file.to_str() else {
        return Ok(Err(
            "`findmnt --verify` was not run: the stage folder's path is not UTF-8".into(),
        ));
    };
    // The runner has no environment of its own: `env` sets the C locale, as the messages
    // are compared as text.
    let cmd = HostCommand::new(
        "env",
        ["LC_ALL=C", "findmnt", "--verify", "--tab-file", file],
    );
    match ctx.host.run(&cmd, ctx.cancel) {
        Err(e) => Ok(Err(format!(
            "`findmnt --verify` could not be started ({e})"
        ))),
        Ok(Ran::Deferred) => Ok(Err(
            "`findmnt --verify` was not run (host actions are deferred)".into(),
        )),
        Ok(Ran::Done(out)) => {
            if ctx.cancel.is_cancelled() {
                return Err(ApplyError::Prompt(PromptError::Aborted));
            }
            if out.timed_out {
                return Ok(Err("`findmnt --verify` timed out".into()));
            }
            match out.code {
                Some(126 | 127) => Ok(Err(format!(
                    "`findmnt` is not available on this host ({}); install util-linux",
                    out.failure()
                ))),
                None => Ok(Err(format!("`findmnt --verify` {}", out.failure()))),
                Some(_) => Ok(Ok(VerifyReport::parse(
                    &String::from_utf8_lossy(&out.stdout),
                    &String::from_utf8_lossy(&out.stderr),
                ))),
            }
        }
    }
}

/// `findmnt --verify` on this host's file and the merged one; see the module docs.
fn verify(ctx: &ApplyContext<'_>, old: &str, new: &str) -> Result<Verified, ApplyError> {
    if ctx.host.actions == HostActions::Defer {
        return Ok(Verified::NotRun(
            "`findmnt --verify` was not run (host actions are deferred)".into(),
        ));
    }
    let stage = ctx.stage.path();
    let scratch = tempfile::Builder::new()
        .prefix(".fstab-verify-")
        .tempdir_in(stage)
        .map_err(|e| io_at(stage, e))?;
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io_at(scratch.path(), e))?;
    let old_file = scratch.path().join("fstab.current");
    let new_file = scratch.path().join("fstab.merged");
    write_private(&old_file, old)?;
    write_private(&new_file, new)?;
    let old_report = match findmnt(ctx, &old_file)? {
        Ok(r) => r,
        Err(why) => return Ok(Verified::NotRun(why)),
    };
    let new_report = match findmnt(ctx, &new_file)? {
        Ok(r) => r,
        Err(why) => return Ok(Verified::NotRun(why)),
    };
    let blocking = blocking_findings(&old_report, &new_report);
    Ok(if blocking.is_empty() {
        Verified::Passed
    } else {
        Verified::Refused(blocking)
    })
}

/// Why a merge without proposals adds nothing.
fn nothing_to_add(r: &MergeResult) -> String {
    if r.skipped
        .iter()
        .any(|s| s.reason == SkipReason::AlreadyRestored)
    {
        "the backup's safe mounts are already in /etc/fstab".into()
    } else {
        format!(
            "none of the backup's {} mount(s) is safe to add here",
            r.skipped.len()
        )
    }
}

fn skipped(reason: impl Into<String>) -> Vec<Outcome> {
    vec![Outcome::new(
        CATEGORY,
        Status::Skipped {
            reason: reason.into(),
        },
        "",
    )]
}

impl Applier for FstabMerge {
    fn name(&self) -> &'static str {
        "fstab-merge"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        10
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[QUESTION]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let inputs = match prepare(ctx.stage, ctx.root, ctx.plan) {
            Prepared::Skip(reason) => {
                return Ok(ApplierPlan {
                    actions: vec![format!("skip /{FSTAB}: {reason}")],
                    details: json!({"file": format!("/{FSTAB}"), "skipped_reason": reason}),
                    ..ApplierPlan::default()
                });
            }
            Prepared::Ready(i) => i,
        };
        let r = inputs.merge(ctx.root, Choice::None)?;
        let preset = (ctx.preset)(QUESTION.id);
        // The answer known now (given up front, else the default), checked before anything
        // is written.
        let chosen = match &preset {
            Some(a) => inputs.merge(ctx.root, parse_choice(&a.value)?)?,
            None => inputs.merge(ctx.root, r.default_choice.clone())?,
        };
        let adds: Vec<String> = chosen.added.clone();
        let mut plan = ApplierPlan::default();
        if !adds.is_empty() {
            // `r` is this host's text as it is (nothing chosen); options are masked.
            plan.changes.push(crate::applier::PlannedChange::file(
                &format!("/{FSTAB}"),
                Some(crate::diff::mask(&r.text).as_bytes()),
                Some(crate::diff::mask(&chosen.text).as_bytes()),
            ));
        }
        if r.proposals.is_empty() {
            plan.actions
                .push(format!("keep /{FSTAB} as it is: {}", nothing_to_add(&r)));
        } else {
            let how = match &preset {
                Some(a) => format!("answer `{}` given", a.value),
                None => format!("default `{}`: {}", r.default_choice, default_reason(&r)),
            };
            plan.actions.push(format!(
                "merge the backup's /{FSTAB} into this host's: {} safe mount(s) proposed (question `{}`, {how})",
                r.proposals.len(),
                QUESTION.id
            ));
            for p in &r.proposals {
                if adds.contains(&p.mountpoint) {
                    plan.actions.push(format!("add {p}"));
                } else {
                    plan.actions
                        .push(format!("propose {p} (not added unless chosen)"));
                }
            }
            let fixed_none = preset.is_some() && adds.is_empty();
            if !fixed_none {
                plan.files.push(fstab_path());
            }
            plan.questions.push(ask_of(&r));
        }
        for s in &r.skipped {
            plan.actions.push(format!("leave out {s}"));
        }
        plan.details = details(
            &r,
            &inputs.notes,
            preset.as_ref().map(|a| a.value.as_str()),
            &adds,
        );
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let inputs = match prepare(ctx.stage, ctx.root, ctx.plan) {
            Prepared::Skip(reason) => return Ok(skipped(reason)),
            Prepared::Ready(i) => i,
        };
        let mut warnings: Vec<String> = Vec::new();
        let first = inputs.merge(ctx.root, Choice::None)?;
        warnings.extend(first.warnings.iter().map(ToString::to_string));
        warnings.extend(inputs.notes.iter().cloned());
        for w in &warnings {
            ctx.prompter.say(Level::Warning, &format!("fstab: {w}"));
        }
        if first.proposals.is_empty() {
            return Ok(skipped(format!(
                "nothing to add: {}",
                nothing_to_add(&first)
            )));
        }
        let answer = ctx.prompter.ask(&ask_of(&first))?;
        let merged = inputs.merge(ctx.root, parse_choice(&answer.value)?)?;
        if !merged.changed() {
            let why = if answer.source == crate::applier::AnswerSource::Default {
                format!(
                    "nothing added: answer `{}` (the default: {})",
                    answer.value,
                    default_reason(&first)
                )
            } else {
                format!("nothing added: answer `{}`", answer.value)
            };
            return Ok(skipped(why));
        }

        let old_text = inputs.current.to_string();
        match verify(ctx, &old_text, &merged.text)? {
            Verified::Passed => {}
            Verified::NotRun(why) => {
                let w = format!("{why}: the merged /etc/fstab was written unchecked");
                ctx.prompter.say(Level::Warning, &format!("fstab: {w}"));
                warnings.push(w);
            }
            Verified::Refused(findings) => {
                let list: Vec<String> = findings.iter().map(ToString::to_string).collect();
                return Ok(vec![Outcome::new(
                    CATEGORY,
                    Status::Failed {
                        error: format!(
                            "findmnt --verify finds problems in the merged /etc/fstab that this host's does not have ({}); /etc/fstab is left as it is",
                            list.join("; ")
                        ),
                    },
                    "",
                )]);
            }
        }
        if ctx.cancel.is_cancelled() {
            return Err(ApplyError::Prompt(PromptError::Aborted));
        }

        let stamp = ctx.host.clock.now().format("%Y%m%d-%H%M%S").to_string();
        let path = fstab_path();
        let replaced = ctx
            .root
            .replace(
                &path,
                merged.text.as_bytes(),
                &FileSpec {
                    backup_stamp: Some(stamp),
                    ..FileSpec::default()
                },
            )
            .map_err(|e| io_at(&ctx.root.path().join(FSTAB), e))?;

        let added: Vec<String> = merged
            .proposals
            .iter()
            .filter(|p| merged.added.contains(&p.mountpoint))
            .map(ToString::to_string)
            .collect();
        let mut detail = format!(
            "added {} mount{} to /etc/fstab: {}",
            added.len(),
            if added.len() == 1 { "" } else { "s" },
            added.join(", ")
        );
        if let Some(b) = &replaced.backup {
            detail.push_str(&format!("; the previous file is /{b}"));
        }
        let mut status = Status::Applied;
        let reload = HostCommand::new("systemctl", ["daemon-reload"]);
        match ctx.host.run(&reload, ctx.cancel) {
            Ok(Ran::Done(out)) if out.success() => {}
            Ok(Ran::Done(out)) => {
                status = Status::PartlyApplied;
                warnings.push(format!(
                    "`systemctl daemon-reload` failed ({}): run it so systemd sees the new mounts",
                    out.failure()
                ));
            }
            Ok(Ran::Deferred) => detail.push_str(
                "; `systemctl daemon-reload` deferred (host actions are deferred): run it on the host",
            ),
            Err(e) => {
                status = Status::PartlyApplied;
                warnings.push(format!(
                    "`systemctl daemon-reload` could not be started ({e}): run it so systemd sees the new mounts"
                ));
            }
        }
        for w in &warnings {
            detail.push_str(&format!("; warning: {w}"));
        }
        Ok(vec![Outcome::new(CATEGORY, status, detail)])
    }
}

#[cfg(test)]
mod tests;
