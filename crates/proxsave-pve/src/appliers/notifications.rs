//! `pve-notifications`: the `pve_notifications` category — notification endpoints (with
//! their secrets from `priv/notifications.cfg`) and matchers, through the API.
//!
//! Endpoints first (matchers name them): per `sendmail|smtp|gotify|webhook` section, `pvesh get
//! /cluster/notifications/endpoints/<type>/<name>`, then `set` there or `create
//! /cluster/notifications/endpoints/<type> --name=<name> …`; the section of the same type and
//! name in `priv/notifications.cfg` adds its options as secret parameters (`--password`,
//! `--token`, `--secret`: shown as `<redacted>`). Then each `matcher` through
//! `/cluster/notifications/matchers`. PVE's built-in `mail-to-root` and `default-matcher`
//! are left alone (listed). Other section types are named and skipped.
//!
//! Gates, question (`pve.notifications.apply`), failures: as the other API appliers.

use std::collections::BTreeMap;

use proxsave_archive::path::ArchivePath;
use proxsave_formats::section::Section;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Outcome, PlanContext,
    QuestionSpec, Stage, Status,
};
use proxsave_restore::prompt::Level;
use serde_json::json;

use super::api::{
    Gate, Tally, Upsert, ap, apply_upserts, ask_yes, check_preset, gate, gated_outcome,
    plan_upserts, section_params, staged_sections, yes_no,
};
use crate::pvesh::{Param, Pvesh};

/// The category.
pub const CATEGORY: &str = "pve_notifications";
/// Endpoints and matchers.
pub const NOTIFICATIONS_CFG: &str = "etc/pve/notifications.cfg";
/// Their secrets.
pub const PRIV_NOTIFICATIONS_CFG: &str = "etc/pve/priv/notifications.cfg";

/// Endpoint types of the API.
pub const ENDPOINT_TYPES: &[&str] = &["sendmail", "smtp", "gotify", "webhook"];

/// PVE's built-in targets and matchers (left alone).
pub const BUILTIN: &[(&str, &str)] =
    &[("sendmail", "mail-to-root"), ("matcher", "default-matcher")];

/// `pve.notifications.apply`.
pub const Q_NOTIFICATIONS: QuestionSpec = QuestionSpec {
    id: "pve.notifications.apply",
    prompt: "Apply the backup's notification targets and matchers through the PVE API?",
    choices: &["yes", "no"],
};

/// The `pve-notifications` applier; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PveNotifications;

inventory::submit! { ApplierRegistration(&PveNotifications) }

/// The upsert of an endpoint (`priv`: its secret section, if any).
pub(crate) fn endpoint(s: &Section, private: Option<&Section>) -> Upsert {
    let mut params = section_params(s, &["type", "name", "digest"]);
    if let Some(p) = private {
        for mut x in section_params(p, &["type", "name", "digest"]) {
            x.secret = true;
            params.push(x);
        }
    }
    Upsert {
        object: format!("notification target {} ({})", s.id, s.ty),
        get_path: format!("/cluster/notifications/endpoints/{}/{}", s.ty, s.id),
        set_path: format!("/cluster/notifications/endpoints/{}/{}", s.ty, s.id),
        create_path: format!("/cluster/notifications/endpoints/{}", s.ty),
        create_first: vec![Param::new("name", s.id.clone())],
        params,
        fixed: Vec::new(),
    }
}

/// The upsert of a matcher.
pub(crate) fn matcher(s: &Section) -> Upsert {
    Upsert {
        object: format!("notification matcher {}", s.id),
        get_path: format!("/cluster/notifications/matchers/{}", s.id),
        set_path: format!("/cluster/notifications/matchers/{}", s.id),
        create_path: "/cluster/notifications/matchers".into(),
        create_first: vec![Param::new("name", s.id.clone())],
        params: section_params(s, &["type", "name", "digest"]),
        fixed: Vec::new(),
    }
}

struct Inputs {
    endpoints: Vec<Upsert>,
    matchers: Vec<Upsert>,
    left: Vec<String>,
    bad: Vec<String>,
    files: Vec<ArchivePath>,
}

fn read_inputs(stage: &Stage) -> Inputs {
    let mut i = Inputs {
        endpoints: Vec::new(),
        matchers: Vec::new(),
        left: Vec::new(),
        bad: Vec::new(),
        files: Vec::new(),
    };
    let mut private: BTreeMap<(String, String), Section> = BTreeMap::new();
    match staged_sections(stage, PRIV_NOTIFICATIONS_CFG) {
        Ok(Some((cfg, diags))) => {
            i.files.push(ap(PRIV_NOTIFICATIONS_CFG));
            i.bad.extend(diags);
            for s in cfg.sections {
                private.insert((s.ty.clone(), s.id.clone()), s);
            }
        }
        Ok(None) => {}
        Err(e) => i.bad.push(e),
    }
    match staged_sections(stage, NOTIFICATIONS_CFG) {
        Ok(Some((cfg, diags))) => {
            i.files.push(ap(NOTIFICATIONS_CFG));
            i.bad.extend(diags);
            for s in &cfg.sections {
                if BUILTIN.contains(&(s.ty.as_str(), s.id.as_str())) {
                    i.left.push(format!(
                        "{} {}: PVE's built-in, left as this node has it",
                        s.ty, s.id
                    ));
                    private.remove(&(s.ty.clone(), s.id.clone()));
                    continue;
                }
                if ENDPOINT_TYPES.contains(&s.ty.as_str()) {
                    let p = private.remove(&(s.ty.clone(), s.id.clone()));
                    i.endpoints.push(endpoint(s, p.as_ref()));
                } else if s.ty == "matcher" {
                    i.matchers.push(matcher(s));
                } else {
                    i.bad.push(format!(
                        "/{NOTIFICATIONS_CFG} line {}: `{}: {}` is not a notification target type this restore knows (skipped)",
                        s.line, s.ty, s.id
                    ));
                }
            }
        }
        Ok(None) => {}
        Err(e) => i.bad.push(e),
    }
    for (ty, id) in private.keys() {
        i.bad.push(format!(
            "/{PRIV_NOTIFICATIONS_CFG}: secrets of {ty} {id}, which notifications.cfg does not have (skipped)"
        ));
    }
    i
}

impl Applier for PveNotifications {
    fn name(&self) -> &'static str {
        "pve-notifications"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        620
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[Q_NOTIFICATIONS]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let inputs = read_inputs(ctx.stage);
        let yes = check_preset(ctx, &Q_NOTIFICATIONS)?;
        let g = gate(ctx.plan, ctx.host);
        let mut plan = ApplierPlan::default();
        plan.actions.extend(inputs.bad.iter().cloned());
        let any = !inputs.endpoints.is_empty() || !inputs.matchers.is_empty();
        match &g {
            Gate::Recovery => plan.actions.push(format!(
                "leave the notification targets: {}",
                super::api::RECOVERY_REASON
            )),
            Gate::NoPvesh(why) => plan
                .actions
                .push(format!("skip the notification targets: {why}")),
            Gate::Open | Gate::Deferred if any => {
                plan.files = inputs.files.clone();
                if g == Gate::Open {
                    plan.questions.push(ask_yes(Q_NOTIFICATIONS, Vec::new()));
                }
                if yes {
                    let cancel = proxsave_archive::progress::CancelToken::new();
                    let pvesh = Pvesh::new(ctx.host, &cancel);
                    let open = g == Gate::Open;
                    plan_upserts(&pvesh, open, &inputs.endpoints, &mut plan);
                    plan_upserts(&pvesh, open, &inputs.matchers, &mut plan);
                } else {
                    plan.actions.push(format!(
                        "leave the notification targets (answer `no` to {})",
                        Q_NOTIFICATIONS.id
                    ));
                }
            }
            Gate::Open | Gate::Deferred => {}
        }
        plan.actions
            .extend(inputs.left.iter().map(|l| format!("leave {l}")));
        plan.details = json!({
            "endpoints": inputs.endpoints.iter().map(|u| u.object.clone()).collect::<Vec<_>>(),
            "matchers": inputs.matchers.iter().map(|u| u.object.clone()).collect::<Vec<_>>(),
            "left": inputs.left,
            "bad_input": inputs.bad,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let inputs = read_inputs(ctx.stage);
        let mut tally = Tally::default();
        tally.notes.extend(inputs.bad.iter().cloned());
        tally.left.extend(inputs.left.iter().cloned());
        if inputs.endpoints.is_empty() && inputs.matchers.is_empty() {
            let mut out = Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: "the backup has no notification target or matcher to apply".into(),
                },
                "",
            );
            out.detail = tally.outcome(CATEGORY, "").detail;
            return Ok(vec![out]);
        }
        let g = gate(ctx.plan, ctx.host);
        if g != Gate::Open {
            let calls: Vec<String> = inputs
                .endpoints
                .iter()
                .chain(inputs.matchers.iter())
                .map(|u| format!("{} (or `set`)", u.create_call()))
                .collect();
            if g == Gate::Deferred {
                for c in &calls {
                    ctx.host.defer_note(c.clone());
                }
            }
            return Ok(vec![gated_outcome(
                CATEGORY,
                &g,
                &calls,
                "notifications.cfg",
            )]);
        }
        let answer = ctx.prompter.ask(&ask_yes(Q_NOTIFICATIONS, Vec::new()))?;
        if !yes_no(&Q_NOTIFICATIONS, &answer)? {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!("answer `no` to {}", Q_NOTIFICATIONS.id),
                },
                "",
            )]);
        }
        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        let mut missing = apply_upserts(&pvesh, ctx.cancel, &inputs.endpoints, &mut tally)?;
        if missing.is_none() {
            missing = apply_upserts(&pvesh, ctx.cancel, &inputs.matchers, &mut tally)?;
        }
        if let Some(m) = missing {
            return Ok(vec![Outcome::new(
                CATEGORY,
                Status::Skipped {
                    reason: format!(
                        "`pvesh` cannot be run ({m}): the notification targets were not applied"
                    ),
                },
                "",
            )]);
        }
        for n in tally.notes.iter().chain(tally.failed.iter()) {
            ctx.prompter
                .say(Level::Warning, &format!("pve_notifications: {n}"));
        }
        Ok(vec![tally.outcome(CATEGORY, "")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sections(text: &str) -> Vec<Section> {
        let (cfg, diags) = proxsave_formats::section::parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        cfg.sections
    }

    #[test]
    fn an_endpoint_takes_its_private_options_as_secrets() {
        let public = &sections(
            "smtp: relay\n\tserver mail.example.com\n\tmailto-user root@pam\n\tmailto-user ops@pve\n\n",
        )[0];
        let private = &sections("smtp: relay\n\tpassword s3cret\n\n")[0];
        let u = endpoint(public, Some(private));
        let c = u.create_call();
        assert_eq!(
            c.to_string(),
            "pvesh create /cluster/notifications/endpoints/smtp --name=relay --server=mail.example.com --mailto-user=root@pam --mailto-user=ops@pve --password=<redacted>"
        );
        assert!(c.params.iter().any(|p| p.value == "s3cret" && p.secret));
        // With a secret, it is always sent (PVE never returns it to compare).
        let here = json!({"name": "relay", "server": "mail.example.com", "mailto-user": ["ops@pve", "root@pam"]});
        assert!(matches!(
            u.decide_with(&here),
            super::super::api::Decision::Call(..)
        ));
    }

    #[test]
    fn a_matcher_as_on_the_host_gets_no_call() {
        let s = &sections(
            "matcher: critical\n\tmatch-severity error\n\ttarget relay\n\ttarget mail\n\n",
        )[0];
        let u = matcher(s);
        let here =
            json!({"name": "critical", "match-severity": ["error"], "target": ["mail", "relay"]});
        assert!(matches!(
            u.decide_with(&here),
            super::super::api::Decision::Nothing(_)
        ));
        let other =
            json!({"name": "critical", "match-severity": ["warning"], "target": ["mail", "relay"]});
        assert!(matches!(
            u.decide_with(&other),
            super::super::api::Decision::Call(..)
        ));
    }
}
