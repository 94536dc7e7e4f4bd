//! The `pbs_host` applier: `node.cfg`, `traffic-control.cfg`, ACME accounts and plugins,
//! `proxy.cfg` and `metricserver.cfg`.
//!
//! * `node.cfg` is not section config: it is PBS's flat `key: value` file, the leading `#`
//!   lines being the description ([`parse_node_cfg`]). Through the API it is `node update
//!   --key=value …` (clean mode adds `--delete` for the keys the host has and the backup
//!   lacks, from `node show`); a failure or no API in clean mode writes the file.
//! * `traffic-control.cfg` (`rule` sections): `traffic-control create|update|remove`, with
//!   the same merge/clean and fallback rules as the other API objects.
//! * ACME accounts (the JSON files under `acme/accounts/`, `root:root 0600`: they hold the
//!   account key), `acme/plugins.cfg`, `proxy.cfg`, `metricserver.cfg`: written as files
//!   (the CLI takes ACME plugin data only from a file, accounts only by registering anew).
//!   Merge: the backup's accounts and sections are added or replace the host's of the same
//!   name, the host's others are kept; clean: exactly the backup's (other account files
//!   removed).

use std::collections::BTreeMap;

use proxsave_formats::section::SectionConfig;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, ChangeKind, Outcome,
    PlanContext, PlannedChange,
};
use proxsave_restore::plan::PbsBehavior;
use proxsave_restore::prompt::Level;
use proxsave_restore::roothandle::RootHandle;
use serde_json::json;

use super::common::{
    self, ApiFile, ApiKind, Desired, Run, Staged, ap, apply_api_file, behavior, cfg_spec,
    merge_sections, mode_word, plan_calls, plan_file, read_live, read_staged, render_pbs,
    secret_spec, write_file,
};
use crate::pbm::{Arg, Call, Pbm, PbmError};

/// The category.
pub const CATEGORY: &str = "pbs_host";
/// `node.cfg`.
pub const NODE_CFG: &str = "etc/proxmox-backup/node.cfg";
/// `traffic-control.cfg`.
pub const TRAFFIC_CFG: &str = "etc/proxmox-backup/traffic-control.cfg";
/// The ACME accounts folder.
pub const ACME_ACCOUNTS: &str = "etc/proxmox-backup/acme/accounts";
/// Section-config files written as files, with the keys whose values are secrets.
pub const FILE_CFGS: [(&str, &[&str]); 3] = [
    ("etc/proxmox-backup/acme/plugins.cfg", &["data"]),
    ("etc/proxmox-backup/metricserver.cfg", &["token"]),
    ("etc/proxmox-backup/proxy.cfg", &[]),
];

/// The keys of `node.cfg` (PBS's `NodeConfig`).
pub const NODE_KEYS: &[&str] = &[
    "acme",
    "acmedomain0",
    "acmedomain1",
    "acmedomain2",
    "acmedomain3",
    "acmedomain4",
    "http-proxy",
    "email-from",
    "ciphers-tls-1.3",
    "ciphers-tls-1.2",
    "default-lang",
    "description",
    "task-log-max-days",
];

/// `proxmox-backup-manager traffic-control`.
pub static TRAFFIC: ApiKind = ApiKind {
    label: "traffic control rule",
    words: &["traffic-control"],
    id_keys: &["name"],
    remove_verb: "remove",
    secret_keys: &[],
    deletable: &[
        "rate-in",
        "burst-in",
        "rate-out",
        "burst-out",
        "comment",
        "timeframe",
    ],
};

static TRAFFIC_FILE: ApiFile = ApiFile {
    rel: TRAFFIC_CFG,
    kind: &TRAFFIC,
    secret_file: false,
};

/// Parses `node.cfg` as PBS does: the leading `#` lines are the description (`#` removed,
/// one line each), then `key: value` lines (empty and `#` lines skipped). `Err` names the
/// line.
pub fn parse_node_cfg(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut description = String::new();
    while let Some((_, line)) = lines.next_if(|(_, l)| l.starts_with('#')) {
        description.push_str(&line[1..]);
        description.push('\n');
    }
    if !description.is_empty() {
        out.insert("description".to_string(), description);
    }
    for (n, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!(
                "line {}: missing colon to separate key from value",
                n + 1
            ));
        };
        if !NODE_KEYS.contains(&k) {
            return Err(format!("line {}: unknown key '{k}'", n + 1));
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Writes `node.cfg` as PBS does: the description as `#` lines, then `key: value`.
pub fn render_node_cfg(map: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(d) = map.get("description") {
        for l in d.lines() {
            out.push_str(&format!("#{l}\n"));
        }
    }
    for (k, v) in map {
        if k != "description" {
            out.push_str(&format!("{k}: {v}\n"));
        }
    }
    out
}

/// The applier.
pub struct PbsHost;

inventory::submit! { ApplierRegistration(&PbsHost) }

enum Node {
    Absent,
    Unusable(String),
    Cfg(BTreeMap<String, String>),
}

fn read_node(stage: &proxsave_restore::applier::Stage) -> Result<Node, ApplyError> {
    let Some(bytes) = stage.read(&ap(NODE_CFG))? else {
        return Ok(Node::Absent);
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Node::Unusable(
            "the backup's node.cfg is not text: not applied".into(),
        ));
    };
    if text.trim().is_empty() {
        return Ok(Node::Unusable(
            "the backup's node.cfg is empty: not applied (the host's is kept)".into(),
        ));
    }
    Ok(match parse_node_cfg(&text) {
        Ok(m) => Node::Cfg(m),
        Err(e) => Node::Unusable(format!(
            "the backup's node.cfg is not PBS's `key: value` format ({e}): not applied"
        )),
    })
}

/// The `node update` call for `want`; in clean mode `--delete` the keys of `host` the backup
/// lacks. A multi-line description cannot be passed as an option: `Err` then.
fn node_call(
    want: &BTreeMap<String, String>,
    host: Option<&serde_json::Value>,
    mode: PbsBehavior,
) -> Result<Call, String> {
    let mut call = Call::new(["node", "update"], [""; 0]);
    for (k, v) in want {
        let v = if k == "description" {
            v.strip_suffix('\n').unwrap_or(v)
        } else {
            v.as_str()
        };
        if v.contains('\n') {
            return Err(format!(
                "its {k} has several lines, which `node update` cannot take"
            ));
        }
        call.args.push(Arg::new(k, v));
    }
    if mode == PbsBehavior::Clean {
        if let Some(obj) = host.and_then(|h| h.as_object()) {
            for k in obj.keys() {
                if NODE_KEYS.contains(&k.as_str()) && !want.contains_key(k) {
                    call.args.push(Arg::new("delete", k));
                }
            }
        }
    }
    Ok(call)
}

fn node_show(pbm: &Pbm<'_>) -> Result<serde_json::Value, PbmError> {
    pbm.version()?;
    let c = pbm.call(&Call::new(["node", "show"], [""; 0]).arg("output-format", "json"))?;
    if c.stdout.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&c.stdout).map_err(|e| PbmError::Other {
        call: c.call.clone(),
        status: Some(0),
        message: format!("the output is not JSON: {e}"),
    })
}

fn apply_node(
    ctx: &ApplyContext<'_>,
    pbm: &Pbm<'_>,
    want: &BTreeMap<String, String>,
    mode: PbsBehavior,
    run: &mut Run,
) {
    let fallback = |run: &mut Run| {
        write_file(
            ctx.root,
            NODE_CFG,
            &render_node_cfg(want),
            &cfg_spec(ctx.root),
            run,
        );
    };
    let host = match node_show(pbm) {
        Ok(h) => h,
        Err(e) => {
            match mode {
                PbsBehavior::Merge if e.is_unavailable() || pbm.version().is_err() => {
                    run.skipped.push(format!(
                        "node.cfg: the PBS API is not available ({e}): not applied (merge mode never rewrites it)"
                    ));
                }
                PbsBehavior::Merge => run.failed.push(format!("node.cfg: {e}")),
                PbsBehavior::Clean => {
                    run.notes.push(format!(
                        "node.cfg: the PBS API is not usable ({e}): /{NODE_CFG} is written as a file (clean mode)"
                    ));
                    fallback(run);
                }
            }
            return;
        }
    };
    let call = match node_call(want, Some(&host), mode) {
        Ok(c) => c,
        Err(why) => {
            match mode {
                PbsBehavior::Merge => run
                    .skipped
                    .push(format!("node.cfg: {why}: not applied (merge mode)")),
                PbsBehavior::Clean => {
                    run.notes.push(format!(
                        "node.cfg: {why}: /{NODE_CFG} is written as a file (clean mode)"
                    ));
                    fallback(run);
                }
            }
            return;
        }
    };
    match pbm.call(&call) {
        Ok(_) => run.done.push(format!(
            "node settings applied ({})",
            want.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        Err(e) => match mode {
            PbsBehavior::Merge => run.failed.push(format!("node.cfg: {e}")),
            PbsBehavior::Clean => {
                run.notes.push(format!(
                    "node.cfg: {e}: /{NODE_CFG} is written as a file instead (clean mode)"
                ));
                fallback(run);
            }
        },
    }
}

/// The staged ACME accounts: `(name, bytes)`, or why one is not usable.
fn staged_accounts(
    stage: &proxsave_restore::applier::Stage,
    run: &mut Run,
) -> Result<Vec<(String, Vec<u8>)>, ApplyError> {
    let mut out = Vec::new();
    for name in stage.list(&ap(ACME_ACCOUNTS))? {
        let Ok(name) = String::from_utf8(name) else {
            run.skipped
                .push("an ACME account file name is not UTF-8: not restored".into());
            continue;
        };
        if name.starts_with('.') || name.contains('/') {
            continue;
        }
        let path = ap(&format!("{ACME_ACCOUNTS}/{name}"));
        let Some(bytes) = stage.read(&path)? else {
            continue;
        };
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            run.skipped.push(format!(
                "ACME account {name}: the backup's file is not JSON: not restored"
            ));
            continue;
        }
        out.push((name, bytes));
    }
    Ok(out)
}

fn live_accounts(root: &RootHandle) -> Vec<String> {
    let Ok(rd) = root.dir().read_dir(ACME_ACCOUNTS) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn apply_accounts(
    root: &RootHandle,
    accounts: &[(String, Vec<u8>)],
    mode: PbsBehavior,
    run: &mut Run,
) {
    if let Err(e) = root.create_dir_all(&ap(ACME_ACCOUNTS), 0o700) {
        run.failed.push(format!("/{ACME_ACCOUNTS}: {e}"));
        return;
    }
    for (name, bytes) in accounts {
        match root.replace(
            &ap(&format!("{ACME_ACCOUNTS}/{name}")),
            bytes,
            &secret_spec(),
        ) {
            Ok(_) => run.done.push(format!("ACME account {name} restored")),
            Err(e) => run.failed.push(format!("ACME account {name}: {e}")),
        }
    }
    if mode == PbsBehavior::Clean {
        for name in live_accounts(root) {
            if accounts.iter().any(|(n, _)| *n == name) {
                continue;
            }
            match root.dir().remove_file(format!("{ACME_ACCOUNTS}/{name}")) {
                Ok(()) => run
                    .done
                    .push(format!("ACME account {name} removed (clean mode)")),
                Err(e) => run
                    .failed
                    .push(format!("ACME account {name}: removal failed: {e}")),
            }
        }
    }
}

/// The sections a file-written config gets: merge keeps the host's others.
fn file_sections(
    root: &RootHandle,
    rel: &str,
    backup: &SectionConfig,
    mode: PbsBehavior,
) -> Result<Vec<proxsave_formats::section::Section>, String> {
    match mode {
        PbsBehavior::Clean => Ok(backup.sections.clone()),
        PbsBehavior::Merge => {
            let exists = root.exists(&ap(rel));
            match read_live(root, rel) {
                Some(live) => Ok(merge_sections(&live, backup)),
                None if !exists => Ok(backup.sections.clone()),
                None => Err(format!(
                    "the host's /{rel} does not load as section config: not merged (clean mode replaces it)"
                )),
            }
        }
    }
}

fn no_keep(_: &serde_json::Value) -> bool {
    false
}

fn traffic_desired(cfg: &SectionConfig, run: &mut Run) -> Vec<Desired> {
    let mut out = Vec::new();
    for s in &cfg.sections {
        if s.ty == "rule" {
            out.push(Desired::from_section(s, &[]));
        } else {
            run.notes.push(format!(
                "traffic-control.cfg: section `{}: {}` is not a rule: ignored",
                s.ty, s.id
            ));
        }
    }
    out
}

impl Applier for PbsHost {
    fn name(&self) -> &'static str {
        "pbs-host"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        710
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        let mode = behavior(ctx.plan);
        let cancel = proxsave_archive::progress::CancelToken::new();
        let pbm = Pbm::new(ctx.host, &cancel);
        let api = pbm.version();
        match read_node(ctx.stage)? {
            Node::Absent => {}
            Node::Unusable(why) => plan.actions.push(why),
            Node::Cfg(want) => {
                plan.files.push(ap(NODE_CFG));
                match &api {
                    Ok(_) => {
                        let host = node_show(&pbm).ok();
                        match node_call(&want, host.as_ref(), mode) {
                            Ok(c) => plan.changes.push(PlannedChange::call(
                                "pbs:node",
                                ChangeKind::Set,
                                c.to_string(),
                                None,
                                Some(render_node_cfg(&want)),
                            )),
                            Err(why) => plan.actions.push(format!("node.cfg: {why}")),
                        }
                    }
                    Err(e) => {
                        plan.actions.push(format!(
                            "node.cfg: the PBS API is not available now ({e}): {}",
                            if mode == PbsBehavior::Clean {
                                "written as a file (clean mode) unless it answers when this applier runs"
                            } else {
                                "not applied (merge mode) unless it answers when this applier runs"
                            }
                        ));
                        if mode == PbsBehavior::Clean {
                            let before = ctx.root.read(&ap(NODE_CFG)).ok().flatten();
                            plan.changes.push(PlannedChange::file(
                                &format!("/{NODE_CFG}"),
                                before.as_deref(),
                                Some(render_node_cfg(&want).as_bytes()),
                            ));
                        }
                    }
                }
            }
        }
        match read_staged(ctx.stage, TRAFFIC_CFG)? {
            Staged::Absent => {}
            Staged::Unusable(why) => plan.actions.push(why),
            Staged::Cfg(cfg) => {
                plan.files.push(ap(TRAFFIC_CFG));
                let mut scratch = Run::default();
                let want = traffic_desired(&cfg, &mut scratch);
                plan.actions.extend(scratch.notes);
                match common::list(&pbm, &TRAFFIC) {
                    Ok(current) => {
                        let ids: Vec<String> = cfg.sections.iter().map(|s| s.id.clone()).collect();
                        plan.changes.extend(plan_calls(&TRAFFIC, &current, &want, &ids, mode, &no_keep));
                    }
                    Err(_) if mode == PbsBehavior::Clean => {
                        plan.changes.push(plan_file(ctx.root, TRAFFIC_CFG, &cfg.sections, &[]));
                    }
                    Err(e) => plan.actions.push(format!(
                        "traffic control: the PBS API is not available now ({e}): not applied (merge mode) unless it answers when this applier runs"
                    )),
                }
            }
        }
        let mut scratch = Run::default();
        let accounts = staged_accounts(ctx.stage, &mut scratch)?;
        plan.actions.extend(scratch.skipped);
        for (name, _) in &accounts {
            plan.files.push(ap(&format!("{ACME_ACCOUNTS}/{name}")));
            plan.changes.push(PlannedChange::call(
                &format!("/{ACME_ACCOUNTS}/{name}"),
                ChangeKind::Write,
                format!("write /{ACME_ACCOUNTS}/{name} (root:root 0600; contents not shown: it holds the account key)"),
                None,
                None,
            ));
        }
        if mode == PbsBehavior::Clean && !accounts.is_empty() {
            for name in live_accounts(ctx.root) {
                if !accounts.iter().any(|(n, _)| *n == name) {
                    plan.files.push(ap(&format!("{ACME_ACCOUNTS}/{name}")));
                    plan.changes.push(PlannedChange::call(
                        &format!("/{ACME_ACCOUNTS}/{name}"),
                        ChangeKind::Remove,
                        format!("remove /{ACME_ACCOUNTS}/{name} (clean mode)"),
                        None,
                        None,
                    ));
                }
            }
        }
        for (rel, secrets) in FILE_CFGS {
            match read_staged(ctx.stage, rel)? {
                Staged::Absent => {}
                Staged::Unusable(why) => plan.actions.push(why),
                Staged::Cfg(cfg) => match file_sections(ctx.root, rel, &cfg, mode) {
                    Ok(after) => {
                        plan.files.push(ap(rel));
                        plan.changes.push(plan_file(ctx.root, rel, &after, secrets));
                    }
                    Err(why) => plan.actions.push(why),
                },
            }
        }
        if !plan.files.is_empty() {
            plan.actions.insert(
                0,
                format!(
                    "{} mode: node settings and traffic control through the PBS API; ACME accounts and plugins, proxy.cfg and metricserver.cfg as files{}",
                    mode_word(mode),
                    if mode == PbsBehavior::Clean { " (exactly the backup's)" } else { " (merged: the host's others kept)" }
                ),
            );
        }
        plan.details = json!({ "behavior": mode_word(mode), "api": api.is_ok() });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mode = behavior(ctx.plan);
        let mut run = Run::default();
        let pbm = Pbm::new(ctx.host, ctx.cancel);
        let mut any = false;
        // ACME first: node.cfg names the account and the plugins.
        let accounts = staged_accounts(ctx.stage, &mut run)?;
        if !accounts.is_empty() {
            any = true;
            apply_accounts(ctx.root, &accounts, mode, &mut run);
        }
        for (rel, _) in FILE_CFGS {
            match read_staged(ctx.stage, rel)? {
                Staged::Absent => {}
                Staged::Unusable(why) => {
                    any = true;
                    run.skipped.push(why);
                }
                Staged::Cfg(cfg) => {
                    any = true;
                    match file_sections(ctx.root, rel, &cfg, mode) {
                        Ok(after) => {
                            if let Some(parent) = std::path::Path::new(rel).parent() {
                                if let Err(e) = ctx
                                    .root
                                    .create_dir_all(&ap(&parent.to_string_lossy()), 0o700)
                                {
                                    run.failed.push(format!("/{rel}: {e}"));
                                    continue;
                                }
                            }
                            write_file(
                                ctx.root,
                                rel,
                                &render_pbs(after.iter()),
                                &cfg_spec(ctx.root),
                                &mut run,
                            );
                        }
                        Err(why) => run.skipped.push(why),
                    }
                }
            }
        }
        match read_staged(ctx.stage, TRAFFIC_CFG)? {
            Staged::Absent => {}
            Staged::Unusable(why) => {
                any = true;
                run.skipped.push(why);
            }
            Staged::Cfg(cfg) => {
                any = true;
                let want = traffic_desired(&cfg, &mut run);
                apply_api_file(
                    ctx.root,
                    &pbm,
                    &TRAFFIC_FILE,
                    &cfg,
                    &want,
                    mode,
                    &no_keep,
                    &mut run,
                );
            }
        }
        match read_node(ctx.stage)? {
            Node::Absent => {}
            Node::Unusable(why) => {
                any = true;
                run.skipped.push(why);
            }
            Node::Cfg(want) => {
                any = true;
                apply_node(ctx, &pbm, &want, mode, &mut run);
            }
        }
        let _ = plan;
        if !any {
            return Ok(Vec::new());
        }
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
    fn node_cfg_is_flat_key_value_with_a_leading_description() {
        let m = parse_node_cfg("#Main PBS\n#second line\nacme: account=default\nacmedomain0: pbs.example.com,plugin=cf\nemail-from: pbs@example.com\n")
            .expect("parses");
        assert_eq!(m["description"], "Main PBS\nsecond line\n");
        assert_eq!(m["acmedomain0"], "pbs.example.com,plugin=cf");
        assert_eq!(
            render_node_cfg(&m),
            "#Main PBS\n#second line\nacme: account=default\nacmedomain0: pbs.example.com,plugin=cf\nemail-from: pbs@example.com\n"
        );
        assert!(parse_node_cfg("node: x\n\tacme y\n").is_err());
        let one = parse_node_cfg("acme: account=default\n").expect("ok");
        let call = node_call(
            &one,
            Some(&json!({"email-from": "a@b"})),
            PbsBehavior::Clean,
        )
        .expect("call");
        assert_eq!(
            call.to_string(),
            "proxmox-backup-manager node update --acme=account=default --delete=email-from"
        );
        assert!(node_call(&m, None, PbsBehavior::Merge).is_err());
    }
}
