//! The `pbs_access_control` applier ([`PbsAccessControl`]).
//!
//! # Plan
//! Reads the staged `etc/proxmox-backup/{user.cfg,acl.cfg,domains.cfg,token.shadow,
//! shadow.json,tfa.json}` and this host's copies, runs the pure [`merge`] (merge or clean as
//! `--pbs-behavior` says; merge by default) and lists, per file, what changes: users, tokens,
//! ACL lines, realms added, kept or removed, `root@pam` of this host kept — ids only, never a
//! hash, a token secret or a second factor. The files that change are declared in
//! `plan.files` (the safety backup and `--rollback` cover them) and in `plan.changes`
//! (`--dry-run`, `diff`; `token.shadow`, `shadow.json` and `tfa.json` are shown as ids with
//! `<redacted>` values).
//!
//! Nothing is planned (the apply phase skips with the reason) when `/etc/proxmox-backup` is
//! not a folder of the root (PBS is not installed), when the root's `passwd`/`group` have no
//! `backup` user or group (the owners PBS needs cannot be set), or when the merge is refused
//! (no enabled administrator would remain).
//!
//! # Question
//! `pbs.access-control.apply` (`yes` / `no`, default `no`, a 90 s countdown at the console);
//! an answer given up front that is neither is refused while planning (exit 2).
//!
//! # Apply
//! The merge is computed again from the files as they are now; a file that changed since the
//! plan (and so is not in the safety backup) stops the applier before anything is written.
//! The files are then replaced all-or-nothing ([`RootHandle::replace_all`]: each written to
//! a temporary file in `/etc/proxmox-backup` with its final owner and mode, synced, renamed
//! over the old one; a failed rename puts back the ones already renamed), with PBS's owners
//! and modes: `user.cfg`, `acl.cfg`, `domains.cfg` `root:backup` 0640, `token.shadow`
//! `backup:backup` 0640, `shadow.json` and `tfa.json` `root:root` 0600 — `backup`'s uid and
//! gid looked up in the root's `etc/passwd` and `etc/group`, never assumed.
//!
//! # Why files, not the API
//! `proxmox-backup-manager` cannot restore what access control is made of: `user create`
//! takes a clear-text password (the backup has only its hash), `user generate-token` makes a
//! new secret (the backup's token secrets are hashes in `token.shadow`), and second factors
//! have no import. So this applier writes the files, while the PBS services are stopped: it
//! runs (order 650) before the PBS appliers that call the API (from `datastore_pbs`, order
//! 700, on), before which the engine starts the services again
//! ([`crate::domain::API_CATEGORIES`]). The daemons read the new files when they start.

use std::time::Duration;

use proxsave_archive::path::ArchivePath;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, FileSpec, Outcome,
    PlanContext, PlannedChange, QuestionSpec, RootHandle, Stage, Status,
};
use proxsave_restore::plan::{PbsBehavior, Plan};
use proxsave_restore::system::accounts::{GroupFile, PasswdFile, gid_of, uid_of};
use serde_json::json;

use super::formats::{parse_secret_map, parse_tfa};
use super::merge::{AcFile, AcTexts, Merged, Mode, Owner, merge};

/// The category this applier applies.
pub const CATEGORY: &str = "pbs_access_control";

/// Whether to apply the backup's access control (`yes` / `no`, default `no`).
pub const QUESTION: QuestionSpec = QuestionSpec {
    id: "pbs.access-control.apply",
    prompt: "Apply the backup's PBS users, tokens, ACLs, realms, password hashes and TFA (this host's root@pam, its tokens, password and TFA are kept)?",
    choices: &["yes", "no"],
};

/// The countdown of [`QUESTION`] at the console.
pub const COUNTDOWN: Duration = Duration::from_secs(90);

const CONFIG_DIR: &str = "etc/proxmox-backup";

/// The `pbs_access_control` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PbsAccessControl;

inventory::submit! { ApplierRegistration(&PbsAccessControl) }

/// `backup`'s uid and gid in the root's `etc/passwd` and `etc/group`.
///
/// # Errors
/// A text naming the file that lacks the entry (or cannot be read).
pub fn backup_ids(root: &RootHandle) -> Result<(u32, u32), String> {
    let read = |p: &str| -> Result<String, String> {
        let path = ArchivePath::from_user(p).map_err(|e| format!("{p}: {e}"))?;
        match root.read(&path) {
            Ok(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Ok(None) => Err(format!("{} is missing", root.path().join(p).display())),
            Err(e) => Err(e.to_string()),
        }
    };
    let passwd = PasswdFile::parse(&read("etc/passwd")?);
    let group = GroupFile::parse(&read("etc/group")?);
    let uid = uid_of(&passwd, "backup").ok_or_else(|| {
        format!(
            "{} has no `backup` user",
            root.path().join("etc/passwd").display()
        )
    })?;
    let gid = gid_of(&group, "backup").ok_or_else(|| {
        format!(
            "{} has no `backup` group",
            root.path().join("etc/group").display()
        )
    })?;
    Ok((uid, gid))
}

/// Why nothing is applied, or the merge and `backup`'s ids.
enum State {
    Skip(String),
    Ready(Box<Merged>, (u32, u32)),
}

fn mode_of(plan: &Plan) -> Mode {
    match plan.pbs_behavior {
        Some(PbsBehavior::Clean) => Mode::Clean,
        _ => Mode::Merge,
    }
}

impl Applier for PbsAccessControl {
    fn name(&self) -> &'static str {
        "pbs-access-control"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        650
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[QUESTION]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let preset = (ctx.preset)(QUESTION.id)
            .map(|a| yes_no(&a.value))
            .transpose()?;
        let mut plan = ApplierPlan::default();
        let (merged, ids) = match gather(ctx.plan, ctx.stage, ctx.root)? {
            State::Skip(reason) => {
                plan.actions.push(format!("{CATEGORY}: {reason}"));
                plan.details = json!({ "status": "skipped", "reason": reason });
                return Ok(plan);
            }
            State::Ready(m, ids) => (m, ids),
        };
        plan.actions.push(format!(
            "{CATEGORY}: {} mode; files written as PBS writes them (backup = uid {}, gid {} in this root's passwd/group)",
            match merged.mode {
                Mode::Merge => "merge (this host's other users, tokens, ACLs and realms are kept)",
                Mode::Clean => "clean 1:1 (what the backup lacks is removed, this host's root@pam kept)",
            },
            ids.0,
            ids.1
        ));
        for d in &merged.diags {
            plan.actions.push(format!("{CATEGORY}: {d}"));
        }
        let mut details = Vec::new();
        let changing: Vec<_> = merged.files.iter().filter(|f| f.changes()).collect();
        for f in &merged.files {
            let head = if f.changes() {
                format!(
                    "/{}: write ({:04o} {})",
                    f.file.path(),
                    f.file.mode(),
                    f.file.owner().text()
                )
            } else if f.after.is_none() {
                format!("/{}: left as it is", f.file.path())
            } else {
                format!("/{}: unchanged", f.file.path())
            };
            let line = format!("{head}: {}", f.notes.join("; "));
            plan.actions.push(line.clone());
            details.push(line);
        }
        if !changing.is_empty() {
            if preset == Some(false) {
                plan.actions.push(format!(
                    "{} = no: the access-control files stay as they are",
                    QUESTION.id
                ));
            }
            for f in &changing {
                plan.files.push(ap(f.file.path())?);
                let (before, after) = shown(f.file, f.before.as_deref(), f.after.as_deref());
                plan.changes.push(PlannedChange::file(
                    &format!("/{}", f.file.path()),
                    before.as_deref().map(str::as_bytes),
                    after.as_deref().map(str::as_bytes),
                ));
            }
            plan.questions.push(
                Ask::new(QUESTION, Some("no"))
                    .countdown(COUNTDOWN)
                    .with_details(details),
            );
        }
        plan.details = json!({
            "status": if changing.is_empty() { "unchanged" } else { "changes" },
            "merge": *merged,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let (merged, (uid, gid)) = match gather(ctx.plan, ctx.stage, ctx.root)? {
            State::Skip(reason) => {
                return Ok(vec![Outcome::new(CATEGORY, Status::Skipped { reason }, "")]);
            }
            State::Ready(m, ids) => (m, ids),
        };
        let mut info: Vec<String> = merged.diags.iter().map(ToString::to_string).collect();
        let changing: Vec<_> = merged.files.iter().filter(|f| f.changes()).collect();
        if changing.is_empty() {
            info.insert(
                0,
                "nothing to change: this host already has the backup's access control".into(),
            );
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Applied,
                info.join("\n"),
            )]);
        }
        let q = plan
            .questions
            .iter()
            .find(|q| q.spec.id == QUESTION.id)
            .cloned()
            .unwrap_or_else(|| Ask::new(QUESTION, Some("no")).countdown(COUNTDOWN));
        let answer = ctx.prompter.ask(&q)?;
        if !yes_no(&answer.value)? {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!(
                        "{} = no: the access-control files stay as they are",
                        QUESTION.id
                    ),
                },
                info.join("\n"),
            )]);
        }
        let mut writes = Vec::new();
        for f in &changing {
            let path = ap(f.file.path())?;
            if !plan.files.contains(&path) {
                return Ok(vec![Outcome::new(
                    CATEGORY,
                    Status::Failed {
                        error: format!(
                            "/{} changed since the plan (not covered by the safety backup); nothing written",
                            f.file.path()
                        ),
                    },
                    info.join("\n"),
                )]);
            }
            let Some(after) = &f.after else { continue };
            let (u, g) = match f.file.owner() {
                Owner::RootBackup => (0, gid),
                Owner::BackupBackup => (uid, gid),
                Owner::RootRoot => (0, 0),
            };
            writes.push((
                path,
                after.as_bytes().to_vec(),
                FileSpec {
                    mode: Some(f.file.mode()),
                    uid: Some(u),
                    gid: Some(g),
                    backup_stamp: None,
                },
            ));
        }
        if let Err(e) = ctx.root.replace_all(&writes) {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Failed {
                    error: format!("access-control files not written (none changed): {e}"),
                },
                info.join("\n"),
            )]);
        }
        let names: Vec<String> = writes.iter().map(|(p, _, _)| format!("/{p}")).collect();
        let mut lines = vec![format!("written: {}", names.join(", "))];
        for f in &merged.files {
            lines.push(format!("/{}: {}", f.file.path(), f.notes.join("; ")));
        }
        lines.extend(info);
        Ok(vec![Outcome::new(
            CATEGORY,
            Status::Applied,
            lines.join("\n"),
        )])
    }
}

fn yes_no(value: &str) -> Result<bool, ApplyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        _ => Err(ApplyError::BadAnswer {
            id: QUESTION.id,
            reason: format!("`{}` is not one of: yes, no", value.trim()),
        }),
    }
}

fn ap(path: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(path).map_err(|e| ApplyError::Other(format!("{path}: {e}")))
}

fn read_text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn gather(plan: &Plan, stage: &Stage, root: &RootHandle) -> Result<State, ApplyError> {
    let mut backup = AcTexts::default();
    let mut any = false;
    for file in AcFile::ALL {
        let staged = read_text(stage.read(&ap(file.path())?)?);
        any |= staged.is_some();
        backup.set(file, staged);
    }
    if !any {
        return Ok(State::Skip(
            "skipped: the backup has no PBS access-control file".into(),
        ));
    }
    let dir = ap(CONFIG_DIR)?;
    match root.stat(&dir)? {
        Some(m) if m.kind == rustix::fs::FileType::Directory => {}
        _ => {
            return Ok(State::Skip(format!(
                "skipped: {} is not a folder on this root (Proxmox Backup Server is not installed); the backup's files stay in the stage folder",
                root.path().join(CONFIG_DIR).display()
            )));
        }
    }
    let ids = match backup_ids(root) {
        Ok(ids) => ids,
        Err(e) => {
            return Ok(State::Skip(format!(
                "skipped: {e}, so the owners PBS needs cannot be set; nothing written"
            )));
        }
    };
    let mut live = AcTexts::default();
    for file in AcFile::ALL {
        live.set(file, read_text(root.read(&ap(file.path())?)?));
    }
    match merge(&backup, &live, mode_of(plan)) {
        Ok(m) => Ok(State::Ready(Box::new(m), ids)),
        Err(e) => Ok(State::Skip(e.to_string())),
    }
}

/// What `--dry-run` and `diff` may show of a file: the section-config files and `acl.cfg` as
/// they are (no secret in them), `token.shadow`/`shadow.json` as ids with `<redacted>`
/// values, `tfa.json` as user ids.
pub fn shown(
    file: AcFile,
    before: Option<&str>,
    after: Option<&str>,
) -> (Option<String>, Option<String>) {
    let f = |t: &str| -> String {
        match file {
            AcFile::UserCfg | AcFile::Acl | AcFile::Domains => t.to_owned(),
            AcFile::TokenShadow | AcFile::Shadow => match parse_secret_map(t) {
                Ok(m) => m.keys().map(|k| format!("{k}: <redacted>\n")).collect(),
                Err(_) => "(not readable)\n".into(),
            },
            AcFile::Tfa => match parse_tfa(t) {
                Ok(c) => {
                    let mut s: String = c
                        .users
                        .keys()
                        .map(|u| format!("{u}: <second factors redacted>\n"))
                        .collect();
                    for k in c.settings.keys() {
                        s.push_str(&format!("({k} settings)\n"));
                    }
                    s
                }
                Err(_) => "(not readable)\n".into(),
            },
        }
    };
    (before.map(f), after.map(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_never_contains_secrets() {
        let (b, a) = shown(
            AcFile::TokenShadow,
            Some(r#"{"root@pam!mon":"$5$x$y"}"#),
            Some(r#"{"a@pbs!ci":"$5$a$b","root@pam!mon":"$5$x$y"}"#),
        );
        assert_eq!(b.as_deref(), Some("root@pam!mon: <redacted>\n"));
        assert_eq!(
            a.as_deref(),
            Some("a@pbs!ci: <redacted>\nroot@pam!mon: <redacted>\n")
        );
        let (_, a) = shown(
            AcFile::Tfa,
            None,
            Some(r#"{"users":{"a@pbs":{"totp":[{"secret":"JBSWY3DP"}]}},"webauthn":{"rp":"x"}}"#),
        );
        assert_eq!(
            a.as_deref(),
            Some("a@pbs: <second factors redacted>\n(webauthn settings)\n")
        );
    }

    #[test]
    fn answers_are_yes_or_no() {
        assert!(yes_no(" YES ").expect("yes"));
        assert!(!yes_no("n").expect("no"));
        assert!(matches!(
            yes_no("maybe"),
            Err(ApplyError::BadAnswer {
                id: "pbs.access-control.apply",
                ..
            })
        ));
    }
}
