//! The `pbs_remotes` applier: `remote.cfg` through `proxmox-backup-manager remote`.
//!
//! `remote.cfg` keeps each password base64-encoded (PBS's `REMOTE_PASSWORD_BASE64_SCHEMA`),
//! while `remote create|update --password` takes the plain password and encodes it itself:
//! the password is decoded from the backup's file first (passing the stored value would give
//! a double-encoded password, the upstream defect). It is passed as a secret option, shown
//! `--password=<redacted>` everywhere; plans show the file with `password <redacted>`.
//!
//! Merge: create or update the backup's remotes. Clean: also remove the host's other remotes
//! (after the jobs applier removed the jobs that use them); a failed create/update writes the
//! backup's `remote.cfg` instead, never after a failed removal. Without the API: clean writes
//! the file (`root:backup 0640`, passwords as stored), merge skips and says so.

use base64::Engine as _;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
};
use proxsave_restore::plan::PbsBehavior;
use proxsave_restore::prompt::Level;
use serde_json::json;

use super::common::{
    self, ApiFile, ApiKind, Desired, Run, Staged, apply_api_file, behavior, mode_word, plan_calls,
    plan_file, read_staged,
};
use crate::pbm::{Arg, Pbm};
use proxsave_formats::section::{Section, SectionConfig};

/// The category.
pub const CATEGORY: &str = "pbs_remotes";
/// The file.
pub const REMOTE_CFG: &str = "etc/proxmox-backup/remote.cfg";

/// `proxmox-backup-manager remote`.
pub static REMOTE: ApiKind = ApiKind {
    label: "remote",
    words: &["remote"],
    id_keys: &["name", "id"],
    remove_verb: "remove",
    secret_keys: &["password"],
    deletable: &["comment", "fingerprint", "port"],
};

static FILE: ApiFile = ApiFile {
    rel: REMOTE_CFG,
    kind: &REMOTE,
    secret_file: false,
};

/// The applier.
pub struct PbsRemotes;

inventory::submit! { ApplierRegistration(&PbsRemotes) }

/// The CLI options of a remote section: the password decoded from base64. `Err` names what is
/// wrong (never the value).
pub fn remote_args(s: &Section) -> Result<Desired, String> {
    let mut args = Vec::new();
    for p in &s.props {
        let v = p.effective();
        if p.key == "password" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|_| {
                    "its password in remote.cfg is not base64 (PBS stores it base64-encoded)"
                        .to_string()
                })?;
            let plain = String::from_utf8(bytes)
                .map_err(|_| "its decoded password is not UTF-8 text".to_string())?;
            args.push(Arg::secret("password", plain));
        } else {
            args.push(Arg::new(&p.key, v));
        }
    }
    Ok(Desired {
        id: s.id.clone(),
        args,
    })
}

fn desired(cfg: &SectionConfig, run: &mut Run) -> Vec<Desired> {
    let mut out = Vec::new();
    for s in &cfg.sections {
        if s.ty != "remote" {
            run.notes.push(format!(
                "remote.cfg: section `{}: {}` is not a remote: ignored",
                s.ty, s.id
            ));
            continue;
        }
        match remote_args(s) {
            Ok(d) => out.push(d),
            Err(e) => run
                .failed
                .push(format!("remote {}: {e}: not applied", s.id)),
        }
    }
    out
}

fn no_keep(_: &serde_json::Value) -> bool {
    false
}

impl Applier for PbsRemotes {
    fn name(&self) -> &'static str {
        "pbs-remotes"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        730
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        let mode = behavior(ctx.plan);
        let cfg = match read_staged(ctx.stage, REMOTE_CFG)? {
            Staged::Absent => return Ok(plan),
            Staged::Unusable(why) => {
                plan.actions.push(why);
                return Ok(plan);
            }
            Staged::Cfg(c) => c,
        };
        let mut scratch = Run::default();
        let want = desired(&cfg, &mut scratch);
        plan.actions.extend(scratch.failed);
        plan.actions.extend(scratch.notes);
        let cancel = proxsave_archive::progress::CancelToken::new();
        let pbm = Pbm::new(ctx.host, &cancel);
        match common::list(&pbm, &REMOTE) {
            Ok(current) => {
                plan.actions.push(format!(
                    "{} mode: remotes through the PBS API (passwords decoded from remote.cfg's base64){}",
                    mode_word(mode),
                    if mode == PbsBehavior::Clean {
                        "; the host's other remotes are removed"
                    } else {
                        ""
                    }
                ));
                let ids: Vec<String> = cfg.sections.iter().map(|s| s.id.clone()).collect();
                plan.changes
                    .extend(plan_calls(&REMOTE, &current, &want, &ids, mode, &no_keep));
            }
            Err(e) => match mode {
                PbsBehavior::Merge => plan.actions.push(format!(
                    "merge mode: the PBS API is not available now ({e}): unless it answers when this applier runs, no remote is applied"
                )),
                PbsBehavior::Clean => {
                    plan.actions.push(format!(
                        "clean mode: the PBS API is not available now ({e}): unless it answers when this applier runs, /{REMOTE_CFG} is written as the backup has it"
                    ));
                    plan.changes
                        .push(plan_file(ctx.root, REMOTE_CFG, &cfg.sections, &["password"]));
                }
            },
        }
        plan.files.push(common::ap(REMOTE_CFG));
        plan.details = json!({
            "behavior": mode_word(mode),
            "remotes": cfg.sections.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mode = behavior(ctx.plan);
        let mut run = Run::default();
        let cfg = match read_staged(ctx.stage, REMOTE_CFG)? {
            Staged::Absent => return Ok(Vec::new()),
            Staged::Unusable(why) => {
                run.skipped.push(why);
                return Ok(vec![run.outcome(CATEGORY)]);
            }
            Staged::Cfg(c) => c,
        };
        let want = desired(&cfg, &mut run);
        let pbm = Pbm::new(ctx.host, ctx.cancel);
        apply_api_file(ctx.root, &pbm, &FILE, &cfg, &want, mode, &no_keep, &mut run);
        for n in run.notes.iter().chain(run.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("{CATEGORY}: {n}"));
        }
        Ok(vec![run.outcome(CATEGORY)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_decoded_from_base64_before_the_cli() {
        let cfg = super::super::common::parse_pbs(
            "remote: pbs-b\n\tauth-id sync@pbs\n\thost 10.0.0.20\n\tpassword c2VjcmV0\n",
        )
        .expect("ok");
        let d = remote_args(&cfg.sections[0]).expect("decodes");
        let pw = d
            .args
            .iter()
            .find(|a| a.key == "password")
            .expect("password");
        assert_eq!(pw.value, "secret");
        assert!(pw.secret);
        let bad =
            super::super::common::parse_pbs("remote: x\n\tpassword not*base64\n").expect("ok");
        let e = remote_args(&bad.sections[0]).expect_err("not base64");
        assert!(!e.contains("not*base64"), "{e}");
    }
}
