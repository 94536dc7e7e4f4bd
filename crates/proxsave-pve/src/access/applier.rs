//! The `pve_access_control` applier ([`PveAccessControl`]).
//!
//! # Plan
//! Reads the staged `etc/pve/{user.cfg,domains.cfg,priv/shadow.cfg,priv/token.cfg,
//! priv/tfa.cfg}` and this host's copies, runs the pure [`merge`](super::merge::merge) and
//! lists, per file, what changes (users added and kept, `root@pam` kept, tokens, realms; never
//! a hash, a secret or a TFA key). The files that change are declared in `plan.files` (so the
//! safety backup and `--rollback` cover them) and in `plan.changes` (`--dry-run`, `diff`;
//! the `priv/` files are shown as ids with their secrets replaced by `<redacted>`).
//!
//! Nothing is planned (and the apply phase skips with the reason) when:
//! * the run restores the cluster database (RECOVERY): `/etc/pve` is not touched;
//! * `<root>/etc/pve` is not a mount point (the cluster filesystem is not mounted): refused;
//! * the merge is refused (no enabled administrator would remain, naming the file).
//!
//! # Question
//! `pve.access-control.apply` (`yes` / `no`, default `no`, a 90 s countdown at the console);
//! an answer given up front that is neither is refused while planning (exit 2).
//!
//! # Apply
//! The mount is checked again (preflight veto), the merge computed again from the files as
//! they are now, a file that changed since the plan is not written. A COMMIT window
//! ([`proxsave_restore::commit::Window`], area `access-control`) is armed over exactly the files
//! to write; then each is written the way pmxcfs accepts it (a temporary file in the same
//! folder with its final mode — `user.cfg`, `domains.cfg` 0640, `priv/*` 0600 — owner root,
//! group www-data (33), renamed over the old one; no hard link); a failed write rolls the
//! window back at once (every file as it was). Then `pve.commit` is
//! asked ([`proxsave_restore::commit::settle`]): at a console, type `COMMIT` within the window
//! or the previous files come back; with `--yes`, `commit` unless an answer says `rollback`.
//! The window's timer rolls back on time even if `proxsave` is killed. With host actions
//! deferred there is no window (nothing live to protect) and the outcome says so.

use std::time::Duration;

use proxsave_archive::path::ArchivePath;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, Outcome, PlanContext,
    PlannedChange, QuestionSpec, RootHandle, Stage, Status, Veto,
};
use proxsave_restore::commit::{self, State as WindowState, Window};
use proxsave_restore::plan::{ClusterMode, Plan};
use serde_json::json;

use super::merge::{AcFile, AcTexts, MergeOptions, Merged, merge_with};
use crate::appliers::COMMIT;

/// The category this applier applies.
pub const CATEGORY: &str = "pve_access_control";

/// Whether to apply the backup's access control (`yes` / `no`, default `no`).
pub const QUESTION: QuestionSpec = QuestionSpec {
    id: "pve.access-control.apply",
    prompt: "Apply the backup's PVE users, groups, roles, ACLs, pools, realms, tokens, password hashes and TFA (this host's root@pam is kept)?",
    choices: &["yes", "no"],
};

/// The countdown of [`QUESTION`] at the console.
pub const COUNTDOWN: Duration = Duration::from_secs(90);

/// The group pmxcfs reports for every file (`www-data`).
pub const WWW_DATA_GID: u32 = 33;

const ETC_PVE: &str = "etc/pve";

/// The area name of the COMMIT window (`proxsave-access-control-rollback-…`).
const AREA: &str = "access-control";

/// The `pve_access_control` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PveAccessControl;

inventory::submit! { ApplierRegistration(&PveAccessControl) }

/// Why nothing is applied (or what is).
enum State {
    /// Skipped with a reason (RECOVERY, nothing staged, not mounted, refused merge).
    Skip(String),
    /// The merge.
    Ready(Box<Merged>),
}

impl Applier for PveAccessControl {
    fn name(&self) -> &'static str {
        "pve-access-control"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        700
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[QUESTION, COMMIT]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let preset = (ctx.preset)(QUESTION.id)
            .map(|a| yes_no(&a.value))
            .transpose()?;
        let mut plan = ApplierPlan::default();
        let state = gather(ctx.plan, ctx.stage, ctx.root, refusal(ctx.host))?;
        let merged = match state {
            State::Skip(reason) => {
                plan.actions.push(format!("{CATEGORY}: {reason}"));
                plan.details = json!({ "status": "skipped", "reason": reason });
                return Ok(plan);
            }
            State::Ready(m) => m,
        };
        let mut details = Vec::new();
        for d in &merged.diags {
            plan.actions.push(format!("{CATEGORY}: {d}"));
        }
        let changing: Vec<_> = merged.files.iter().filter(|f| f.changes()).collect();
        for f in &merged.files {
            let head = if f.changes() {
                format!(
                    "/{}: write ({:04o} root:www-data)",
                    f.file.path(),
                    f.file.mode()
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
                let path = ap(f.file.path())?;
                plan.files.push(path);
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
            plan.actions
                .push(match ctx.host.commit.as_ref().map(|c| c.window.as_secs()) {
                    Some(s) => format!(
                        "under a COMMIT window of {s}s: rolled back unless COMMIT is typed ({})",
                        COMMIT.id
                    ),
                    None => "no COMMIT window (host actions deferred or a dry run)".into(),
                });
            plan.questions.push(Ask::new(COMMIT, Some("commit")));
        }
        plan.details = json!({
            "status": if changing.is_empty() { "unchanged" } else { "changes" },
            "merge": *merged,
        });
        Ok(plan)
    }

    fn preflight(&self, ctx: &mut ApplyContext<'_>, plan: &ApplierPlan) -> Result<(), Veto> {
        if !plan.files.is_empty() && !mounted(ctx.host) {
            return Err(Veto {
                reason: not_mounted(ctx.host),
                abort_run: false,
            });
        }
        Ok(())
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let state = gather(ctx.plan, ctx.stage, ctx.root, refusal(ctx.host))?;
        let merged = match state {
            State::Skip(reason) => {
                return Ok(vec![Outcome::new(CATEGORY, Status::Skipped { reason }, "")]);
            }
            State::Ready(m) => m,
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
            writes.push((path, after.as_bytes().to_vec(), f.file.mode()));
        }
        let paths: Vec<ArchivePath> = writes.iter().map(|(p, _, _)| p.clone()).collect();
        // The COMMIT window is armed before anything is written.
        let window = match Window::arm(ctx.host, ctx.root, AREA, &paths, Vec::new()) {
            Ok(w) => w,
            Err(e) => {
                return Ok(vec![Outcome::new(
                    CATEGORY,
                    Status::Failed {
                        error: format!("the COMMIT window cannot be armed: {e}; nothing written"),
                    },
                    info.join("\n"),
                )]);
            }
        };
        if window.is_none() {
            info.push("no COMMIT window (host actions deferred)".into());
        }
        let mut done: Vec<String> = Vec::new();
        let mut failed = None;
        for (path, bytes, mode) in &writes {
            match write_pmxcfs(ctx.root, path, bytes, *mode) {
                Ok(()) => done.push(format!("/{path}")),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            let mut error = format!("access-control files not written: {e}");
            match &window {
                Some(w) => {
                    let s = w.rollback(ctx.host, ctx.cancel, "write failed")?;
                    error.push_str("; the previous files were put back");
                    for p in s.problems {
                        error.push_str(&format!("; rollback: {p}"));
                    }
                }
                None if !done.is_empty() => {
                    error.push_str(&format!("; already written: {}", done.join(", ")));
                }
                None => {}
            }
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Failed { error },
                info.join("\n"),
            )]);
        }
        let names = done;
        let mut lines = vec![format!("written: {}", names.join(", "))];
        for f in &merged.files {
            lines.push(format!("/{}: {}", f.file.path(), f.notes.join("; ")));
        }
        if let Some(w) = &window {
            let mut d = vec![format!(
                "The access-control files are in place ({}); root@pam of this host is kept.",
                names.join(", ")
            )];
            d.push("Check that you can still log in (web UI / API) before you keep them.".into());
            let s = commit::settle(ctx, w, COMMIT, d)?;
            if s.state == WindowState::RolledBack {
                let mut reason = format!("rolled back ({}): the previous files are in place", s.by);
                for p in &s.problems {
                    reason.push_str(&format!("; {p}"));
                }
                lines.extend(info);
                return Ok(vec![Outcome::new(
                    CATEGORY,
                    Status::Skipped { reason },
                    lines.join("\n"),
                )]);
            }
            lines.push(format!("committed ({})", s.by));
        }
        lines.extend(info);
        Ok(vec![Outcome::new(
            CATEGORY,
            Status::Applied,
            lines.join("\n"),
        )])
    }
}

/// Writes `bytes` to `path` the way pmxcfs accepts it: a temporary file in the same folder,
/// created with its final mode, owned root:www-data (the only owner pmxcfs accepts), synced,
/// then renamed over the old name (no hard link, no other rename). A missing `priv/` folder is
/// created (0700). Links are never followed.
fn write_pmxcfs(
    root: &RootHandle,
    path: &ArchivePath,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;

    use rustix::fs::{AtFlags, Mode, OFlags};

    let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("/{path}: {e}"));
    if let Some(parent) = path.parent() {
        if parent.as_bytes() == b"etc/pve/priv" && !root.exists(&parent) {
            root.create_dir_all(&parent, 0o700).map_err(named)?;
        }
    }
    let parent = proxsave_archive::dirfd::open_parent(root.dir().as_fd(), path)
        .map_err(|e| named(e.into()))?;
    let name = std::ffi::OsStr::from_bytes(path.file_name());
    let tmp = format!(
        "{}{}-pmxcfs-{}",
        proxsave_restore::runstate::COMMIT_TMP_PREFIX,
        std::process::id(),
        String::from_utf8_lossy(path.file_name())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect::<String>()
    );
    let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    let written = (|| -> std::io::Result<()> {
        let fd = rustix::fs::openat(
            &parent,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let mut f = std::fs::File::from(fd);
        rustix::fs::fchown(
            &f,
            Some(rustix::fs::Uid::ROOT),
            Some(rustix::fs::Gid::from_raw(WWW_DATA_GID)),
        )?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        rustix::fs::renameat(&parent, tmp.as_str(), &parent, name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    }
    written.map_err(named)
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

fn refusal(host: &proxsave_restore::host::Host) -> Option<String> {
    (!mounted(host)).then(|| not_mounted(host))
}

fn mounted(host: &proxsave_restore::host::Host) -> bool {
    host.mounts.is_mount_point(&host.root.join(ETC_PVE))
}

fn not_mounted(host: &proxsave_restore::host::Host) -> String {
    format!(
        "refused: {} is not a mount point (the cluster filesystem is not mounted), so access control is not written; the backup's files stay in the stage folder",
        host.root.join(ETC_PVE).display()
    )
}

fn recovery(plan: &Plan) -> bool {
    plan.cluster_mode == Some(ClusterMode::Recovery) || plan.needs_cluster_restore
}

fn read_text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn gather(
    plan: &Plan,
    stage: &Stage,
    root: &RootHandle,
    refusal: Option<String>,
) -> Result<State, ApplyError> {
    if recovery(plan) {
        return Ok(State::Skip(
            "skipped: the cluster database is restored (RECOVERY), /etc/pve is not touched".into(),
        ));
    }
    let mut backup = AcTexts::default();
    let mut live = AcTexts::default();
    let mut any = false;
    for file in AcFile::ALL {
        let path = ap(file.path())?;
        let staged = read_text(stage.read(&path)?);
        any |= staged.is_some();
        backup.set(file, staged);
    }
    if !any {
        return Ok(State::Skip(
            "skipped: the backup has no access-control file".into(),
        ));
    }
    if let Some(reason) = refusal {
        return Ok(State::Skip(reason));
    }
    for file in AcFile::ALL {
        let path = ap(file.path())?;
        live.set(file, read_text(root.read(&path)?));
    }
    let opts = MergeOptions {
        keep_host_pools: crate::appliers::safe_guests::is_safe_run(plan),
    };
    match merge_with(&backup, &live, opts) {
        Ok(m) => Ok(State::Ready(Box::new(m))),
        Err(e) => Ok(State::Skip(e.to_string())),
    }
}

/// What `--dry-run` and `diff` may show of a file: `user.cfg` with the legacy `keys` field
/// masked, `domains.cfg` as it is, the `priv/` files as ids with `<redacted>` secrets.
fn shown(
    file: AcFile,
    before: Option<&str>,
    after: Option<&str>,
) -> (Option<String>, Option<String>) {
    let f = |t: &str| -> String {
        match file {
            AcFile::Domains => t.to_owned(),
            AcFile::UserCfg => t
                .lines()
                .map(|l| {
                    let fields: Vec<&str> = l.split(':').collect();
                    if fields.first().map(|s| s.trim()) == Some("user")
                        && fields.get(8).is_some_and(|k| !k.trim().is_empty())
                    {
                        let mut f: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
                        f[8] = "<redacted>".into();
                        format!("{}\n", f.join(":"))
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect(),
            AcFile::Shadow => t
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{}:<redacted>:\n", l.trim().split(':').next().unwrap_or("")))
                .collect(),
            AcFile::Token => t
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{} <redacted>\n", l.split(' ').next().unwrap_or("")))
                .collect(),
            AcFile::Tfa => match crate::formats::tfa::parse(t) {
                Ok((c, _)) => c
                    .users()
                    .iter()
                    .map(|u| format!("{u}: <second factors redacted>\n"))
                    .collect(),
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
            AcFile::Shadow,
            Some("root@pam:$5$x$y:\n"),
            Some("alice@pve:$5$a$b:\nroot@pam:$5$x$y:\n"),
        );
        assert_eq!(b.as_deref(), Some("root@pam:<redacted>:\n"));
        assert_eq!(
            a.as_deref(),
            Some("alice@pve:<redacted>:\nroot@pam:<redacted>:\n")
        );
        let (_, a) = shown(AcFile::Token, None, Some("alice@pve!ci 1111-2222\n"));
        assert_eq!(a.as_deref(), Some("alice@pve!ci <redacted>\n"));
        let (_, a) = shown(
            AcFile::Tfa,
            None,
            Some(r#"{"users":{"alice@pve":{"totp":[{"secret":"JBSWY3DP"}]}}}"#),
        );
        assert_eq!(a.as_deref(), Some("alice@pve: <second factors redacted>\n"));
        let (_, a) = shown(
            AcFile::UserCfg,
            None,
            Some("user:bob@pve:1:0:::::x!oathsecret:\n"),
        );
        assert_eq!(a.as_deref(), Some("user:bob@pve:1:0:::::<redacted>:\n"));
    }

    #[test]
    fn answers_are_yes_or_no() {
        assert!(yes_no(" YES ").expect("yes"));
        assert!(!yes_no("n").expect("no"));
        assert!(matches!(
            yes_no("maybe"),
            Err(ApplyError::BadAnswer {
                id: "pve.access-control.apply",
                ..
            })
        ));
    }
}
