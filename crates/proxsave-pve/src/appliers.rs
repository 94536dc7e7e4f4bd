//! The file-based appliers of the cluster filesystem: `pve_firewall`, `pve_ha`, `pve_sdn`.
//!
//! Each makes its part of the mounted `/etc/pve` exactly like the backup's (files the backup
//! lacks removed; files 0640; folders created with a plain `mkdir`; see [`crate::clusterfs`]),
//! only when the administrator agrees (`pve.firewall.apply`, `pve.ha.apply`,
//! `pve.sdn.apply`: yes/no, default no, a countdown at the console). They are skipped with
//! the reason when the plan restores the cluster database (RECOVERY) and when `/etc/pve` is
//! not a mount point (writing there would write to the root filesystem under pmxcfs).
//!
//! - Firewall: `etc/pve/firewall/` mirrored; the backup's `nodes/<node>/host.fw` written as
//!   this node's (`/etc/hostname` of the root): the node of the same name, else the only
//!   one (with a warning), else the one `pve.host-fw.node` names (`skip` leaves it); then
//!   `pve-firewall` reloaded (`systemctl try-restart pve-firewall`, else `systemctl restart
//!   pve-firewall`, else `pve-firewall restart`). Under a COMMIT window (`pve.commit`) whose
//!   rollback reloads the firewall again.
//! - HA: `etc/pve/ha/{resources,groups,rules}.cfg` written when in the backup, removed when
//!   not. Under a COMMIT window; nothing reloaded (the CRM reads the files).
//! - SDN: `etc/pve/sdn/` mirrored, `etc/pve/sdn.cfg` written when in the backup; then
//!   applied with `pvesh set /cluster/sdn` only when `pve.sdn.reload` is yes (default no).

use std::path::Path;
use std::time::Duration;

use proxsave_restore::applier::{
    Answer, Applier, ApplierPlan, ApplyContext, ApplyError, Ask, Outcome, PlanContext,
    QuestionSpec, Stage, Status, Veto,
};
use proxsave_restore::commit::{self, AfterCommand, State, Window};
use proxsave_restore::host::{Host, HostActions, HostCommand, Ran};
use proxsave_restore::plan::{ClusterMode, Plan};
use proxsave_restore::prompt::Level;
use serde_json::json;

use crate::clusterfs::{self, Change, ETC_PVE, ap};

/// How long the apply questions wait at a console before taking their default (no).
pub const APPLY_COUNTDOWN: Duration = Duration::from_secs(90);

/// `pve.firewall.apply`.
pub const FIREWALL_APPLY: QuestionSpec = QuestionSpec {
    id: "pve.firewall.apply",
    prompt: "Apply the backup's firewall rules to /etc/pve (under a COMMIT window)?",
    choices: &["yes", "no"],
};
/// `pve.ha.apply`.
pub const HA_APPLY: QuestionSpec = QuestionSpec {
    id: "pve.ha.apply",
    prompt: "Apply the backup's HA resources, groups and rules to /etc/pve (under a COMMIT window)?",
    choices: &["yes", "no"],
};
/// `pve.sdn.apply`.
pub const SDN_APPLY: QuestionSpec = QuestionSpec {
    id: "pve.sdn.apply",
    prompt: "Write the backup's SDN configuration to /etc/pve/sdn?",
    choices: &["yes", "no"],
};
/// `pve.sdn.reload`.
pub const SDN_RELOAD: QuestionSpec = QuestionSpec {
    id: "pve.sdn.reload",
    prompt: "Apply the written SDN configuration now (pvesh set /cluster/sdn)?",
    choices: &["yes", "no"],
};
/// `pve.host-fw.node`.
pub const HOST_FW_NODE: QuestionSpec = QuestionSpec {
    id: "pve.host-fw.node",
    prompt: "Which node's host.fw of the backup becomes this node's?",
    choices: &["<node>", "skip"],
};
/// `pve.commit`: keep the changes made under a COMMIT window, or roll them back.
pub const COMMIT: QuestionSpec = QuestionSpec {
    id: "pve.commit",
    prompt: "Keep the changes? Type COMMIT to keep them",
    choices: &["commit", "rollback"],
};

/// Which part of `/etc/pve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Firewall,
    Ha,
    Sdn,
}

/// One of the three appliers.
pub struct ClusterFiles {
    area: Area,
}

/// The firewall applier.
pub static PVE_FIREWALL: ClusterFiles = ClusterFiles {
    area: Area::Firewall,
};
/// The HA applier.
pub static PVE_HA: ClusterFiles = ClusterFiles { area: Area::Ha };
/// The SDN applier.
pub static PVE_SDN: ClusterFiles = ClusterFiles { area: Area::Sdn };

inventory::submit! { proxsave_restore::applier::ApplierRegistration(&PVE_FIREWALL) }
inventory::submit! { proxsave_restore::applier::ApplierRegistration(&PVE_HA) }
inventory::submit! { proxsave_restore::applier::ApplierRegistration(&PVE_SDN) }

const HA_FILES: [&str; 3] = [
    "etc/pve/ha/resources.cfg",
    "etc/pve/ha/groups.cfg",
    "etc/pve/ha/rules.cfg",
];

/// Why nothing under `/etc/pve` is touched, if so.
fn gate(plan: &Plan, host: &Host) -> Option<String> {
    if plan.needs_cluster_restore || plan.cluster_mode == Some(ClusterMode::Recovery) {
        return Some(
            "RECOVERY restores the cluster database; /etc/pve is not written file by file".into(),
        );
    }
    let mp = host.root.join(ETC_PVE);
    if !host.mounts.is_mount_point(&mp) {
        return Some(format!(
            "{} is not a mount point (the cluster filesystem pmxcfs is not running): writing there would write to the root filesystem",
            mp.display()
        ));
    }
    None
}

/// The node name of this host: the root's `/etc/hostname`, short, lower case.
fn local_node(root: &Path) -> Option<String> {
    proxsave_restore::plan::host_name(root)
        .map(|h| h.split('.').next().unwrap_or_default().to_ascii_lowercase())
}

/// The backup's nodes that have a `host.fw`.
fn host_fw_nodes(stage: &Stage) -> Result<Vec<String>, ApplyError> {
    let mut out = Vec::new();
    for n in stage.list(&ap("etc/pve/nodes")?)? {
        let name = String::from_utf8_lossy(&n).into_owned();
        if name.is_empty() || name.contains('/') {
            continue;
        }
        if stage.exists(&ap(&format!("etc/pve/nodes/{name}/host.fw"))?) {
            out.push(name);
        }
    }
    Ok(out)
}

/// How the backup's `host.fw` maps onto this node.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostFw {
    /// Nothing to do (the backup has none).
    None,
    /// Write node `from`'s file as `to`'s; `warning` when the names differ.
    Map {
        from: String,
        to: String,
        warning: Option<String>,
    },
    /// Several candidates: ask.
    Ask { nodes: Vec<String>, to: String },
    /// Not applied (why).
    Skip(String),
}

fn host_fw_choice(
    stage: &Stage,
    root: &Path,
    preset: Option<Answer>,
) -> Result<HostFw, ApplyError> {
    let nodes = host_fw_nodes(stage)?;
    if nodes.is_empty() {
        return Ok(HostFw::None);
    }
    let Some(to) = local_node(root) else {
        return Ok(HostFw::Skip(
            "this host's name is unknown (no /etc/hostname in the root): host.fw not applied"
                .into(),
        ));
    };
    if let Some(a) = preset {
        return pick(&nodes, &to, &a.value);
    }
    if let Some(same) = nodes.iter().find(|n| n.eq_ignore_ascii_case(&to)) {
        return Ok(HostFw::Map {
            from: same.clone(),
            to,
            warning: None,
        });
    }
    if let [only] = nodes.as_slice() {
        return Ok(HostFw::Map {
            from: only.clone(),
            warning: Some(format!(
                "host.fw of node {only} of the backup is applied to this node {to}"
            )),
            to,
        });
    }
    Ok(HostFw::Ask { nodes, to })
}

fn pick(nodes: &[String], to: &str, value: &str) -> Result<HostFw, ApplyError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("skip") {
        return Ok(HostFw::Skip(
            "host.fw not applied (pve.host-fw.node = skip)".into(),
        ));
    }
    match nodes.iter().find(|n| n.eq_ignore_ascii_case(v)) {
        Some(n) => Ok(HostFw::Map {
            from: n.clone(),
            to: to.to_string(),
            warning: (!n.eq_ignore_ascii_case(to))
                .then(|| format!("host.fw of node {n} of the backup is applied to this node {to}")),
        }),
        None => Err(ApplyError::BadAnswer {
            id: HOST_FW_NODE.id,
            reason: format!(
                "{v:?} is not a node of the backup with a host.fw ({}) nor skip",
                nodes.join(", ")
            ),
        }),
    }
}

impl ClusterFiles {
    fn category(&self) -> &'static str {
        match self.area {
            Area::Firewall => "pve_firewall",
            Area::Ha => "pve_ha",
            Area::Sdn => "pve_sdn",
        }
    }

    fn area_word(&self) -> &'static str {
        match self.area {
            Area::Firewall => "firewall",
            Area::Ha => "ha",
            Area::Sdn => "sdn",
        }
    }

    fn apply_question(&self) -> QuestionSpec {
        match self.area {
            Area::Firewall => FIREWALL_APPLY,
            Area::Ha => HA_APPLY,
            Area::Sdn => SDN_APPLY,
        }
    }

    fn windowed(&self) -> bool {
        matches!(self.area, Area::Firewall | Area::Ha)
    }

    /// The changes, warnings and the host.fw mapping, as the root is now.
    fn changes(
        &self,
        stage: &Stage,
        root: &proxsave_restore::applier::RootHandle,
        host_fw: &HostFw,
    ) -> Result<(Vec<Change>, Vec<String>), ApplyError> {
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        match self.area {
            Area::Firewall => {
                warnings.extend(clusterfs::mirror_changes(
                    stage,
                    root,
                    &ap("etc/pve/firewall")?,
                    &mut out,
                )?);
                if let HostFw::Map { from, to, .. } = host_fw {
                    let src = ap(&format!("etc/pve/nodes/{from}/host.fw"))?;
                    let dest = ap(&format!("etc/pve/nodes/{to}/host.fw"))?;
                    if let Some(bytes) = stage.read(&src)? {
                        let note = (from != to).then(|| format!("from node {from} of the backup"));
                        clusterfs::write_changes(root, &dest, bytes, note, &mut out)?;
                    }
                }
            }
            Area::Ha => {
                for f in HA_FILES {
                    let p = ap(f)?;
                    match stage.read(&p)? {
                        Some(bytes) => clusterfs::write_changes(root, &p, bytes, None, &mut out)?,
                        None if root.exists(&p) => out.push(Change::Remove {
                            path: p,
                            dir: false,
                        }),
                        None => {}
                    }
                }
            }
            Area::Sdn => {
                warnings.extend(clusterfs::mirror_changes(
                    stage,
                    root,
                    &ap("etc/pve/sdn")?,
                    &mut out,
                )?);
                let legacy = ap("etc/pve/sdn.cfg")?;
                if let Some(bytes) = stage.read(&legacy)? {
                    clusterfs::write_changes(root, &legacy, bytes, None, &mut out)?;
                }
            }
        }
        Ok((out, warnings))
    }

    fn reload_firewall(&self, ctx: &mut ApplyContext<'_>) -> Result<Option<String>, String> {
        let tries = [
            HostCommand::new("systemctl", ["try-restart", "pve-firewall"]),
            HostCommand::new("systemctl", ["restart", "pve-firewall"]),
            HostCommand::new("pve-firewall", ["restart"]),
        ];
        let mut failures = Vec::new();
        for cmd in tries {
            let cmd = cmd.timeout(Duration::from_secs(30));
            match ctx.host.run(&cmd, ctx.cancel) {
                Ok(Ran::Done(out)) if out.success() => return Ok(Some(cmd.display())),
                Ok(Ran::Done(out)) => {
                    failures.push(format!("{}: {}", cmd.display(), out.failure()))
                }
                Ok(Ran::Deferred) => return Ok(None),
                Err(e) => failures.push(format!("{}: {e}", cmd.display())),
            }
        }
        Err(failures.join("; "))
    }
}

fn yes(id: &'static str, a: &Answer) -> Result<bool, ApplyError> {
    match a.value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Ok(true),
        "no" | "n" | "false" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id,
            reason: format!("takes yes or no, not {other:?}"),
        }),
    }
}

fn countdown(spec: QuestionSpec, details: Vec<String>) -> Ask {
    Ask {
        spec,
        default: Some("no".into()),
        details,
        timeout: Some(APPLY_COUNTDOWN),
    }
}

impl Applier for ClusterFiles {
    fn name(&self) -> &'static str {
        self.category()
    }

    fn categories(&self) -> &'static [&'static str] {
        match self.area {
            Area::Firewall => &["pve_firewall"],
            Area::Ha => &["pve_ha"],
            Area::Sdn => &["pve_sdn"],
        }
    }

    fn order(&self) -> u16 {
        match self.area {
            Area::Firewall => 500,
            Area::Ha => 510,
            Area::Sdn => 520,
        }
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        match self.area {
            Area::Firewall => &[FIREWALL_APPLY, HOST_FW_NODE, COMMIT],
            Area::Ha => &[HA_APPLY, COMMIT],
            Area::Sdn => &[SDN_APPLY, SDN_RELOAD],
        }
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        let apply_q = self.apply_question();
        if let Some(a) = (ctx.preset)(apply_q.id) {
            yes(apply_q.id, &a)?;
        }
        if self.area == Area::Sdn
            && let Some(a) = (ctx.preset)(SDN_RELOAD.id)
        {
            yes(SDN_RELOAD.id, &a)?;
        }
        if let Some(a) = (ctx.preset)(COMMIT.id)
            && !matches!(
                a.value.trim().to_ascii_lowercase().as_str(),
                "commit" | "rollback"
            )
        {
            return Err(ApplyError::BadAnswer {
                id: COMMIT.id,
                reason: format!("takes commit or rollback, not {:?}", a.value),
            });
        }
        if let Some(why) = gate(ctx.plan, ctx.host) {
            plan.actions.push(format!("skipped: {why}"));
            plan.details = json!({ "skipped": why });
            return Ok(plan);
        }
        let host_fw = if self.area == Area::Firewall {
            host_fw_choice(ctx.stage, &ctx.host.root, (ctx.preset)(HOST_FW_NODE.id))?
        } else {
            HostFw::None
        };
        let (changes, warnings) = self.changes(ctx.stage, ctx.root, &host_fw)?;
        for c in &changes {
            plan.actions.push(c.line());
            plan.files.push(c.path().clone());
        }
        if changes.is_empty() {
            plan.actions.push(format!(
                "/etc/pve ({}) already equals the backup",
                self.area_word()
            ));
        }
        for w in &warnings {
            plan.actions.push(format!("warning: {w}"));
        }
        match &host_fw {
            HostFw::Map {
                warning: Some(w), ..
            } => plan.actions.push(format!("warning: {w}")),
            HostFw::Skip(why) => plan.actions.push(why.clone()),
            HostFw::Ask { nodes, to } => {
                plan.actions.push(format!(
                    "host.fw: the backup has {} ({}); asked which becomes this node {to}'s",
                    nodes.len(),
                    nodes.join(", ")
                ));
                // Whichever is chosen lands here (and its folder, if missing).
                for p in [
                    format!("etc/pve/nodes/{to}"),
                    format!("etc/pve/nodes/{to}/host.fw"),
                ] {
                    let p = ap(&p)?;
                    if !plan.files.contains(&p) {
                        plan.files.push(p);
                    }
                }
                plan.questions.push(Ask {
                    spec: HOST_FW_NODE,
                    default: Some("skip".into()),
                    details: nodes.iter().map(|n| format!("node {n}")).collect(),
                    timeout: None,
                });
            }
            _ => {}
        }
        let window = ctx
            .host
            .commit
            .as_ref()
            .filter(|_| ctx.host.actions == HostActions::Run)
            .map(|c| c.window.as_secs());
        if self.area == Area::Firewall && !changes.is_empty() {
            plan.actions
                .push("reload pve-firewall (systemctl try-restart pve-firewall)".into());
        }
        if self.area == Area::Sdn {
            plan.actions.push(
                "apply SDN with `pvesh set /cluster/sdn` only if pve.sdn.reload = yes".into(),
            );
        }
        plan.questions.insert(0, countdown(apply_q, Vec::new()));
        if self.windowed() && !changes.is_empty() {
            plan.actions.push(match window {
                Some(s) => format!(
                    "under a COMMIT window of {s}s: rolled back unless COMMIT is typed (pve.commit)"
                ),
                None => "no COMMIT window (host actions deferred: nothing here is live)".into(),
            });
            plan.questions.push(Ask {
                spec: COMMIT,
                default: Some("commit".into()),
                details: Vec::new(),
                timeout: None,
            });
        }
        if self.area == Area::Sdn {
            plan.questions.push(Ask {
                spec: SDN_RELOAD,
                default: Some("no".into()),
                details: Vec::new(),
                timeout: None,
            });
        }
        plan.details = json!({
            "changes": changes.iter().map(Change::line).collect::<Vec<_>>(),
            "warnings": warnings,
            "window_seconds": window,
        });
        Ok(plan)
    }

    fn preflight(&self, ctx: &mut ApplyContext<'_>, _plan: &ApplierPlan) -> Result<(), Veto> {
        match gate(ctx.plan, ctx.host) {
            Some(reason) => Err(Veto {
                reason,
                abort_run: false,
            }),
            None => Ok(()),
        }
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let cat = self.category();
        let skipped = |reason: String| Ok(vec![Outcome::new(cat, Status::Skipped { reason }, "")]);
        if let Some(why) = gate(ctx.plan, ctx.host) {
            return skipped(why);
        }
        let apply_q = self.apply_question();
        let details: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| {
                a.starts_with("write ") || a.starts_with("remove ") || a.starts_with("create ")
            })
            .cloned()
            .collect();
        let a = ctx.prompter.ask(&countdown(apply_q, details))?;
        if !yes(apply_q.id, &a)? {
            return skipped(format!("not applied ({} = no)", apply_q.id));
        }
        let mut host_fw = if self.area == Area::Firewall {
            host_fw_choice(
                ctx.stage,
                &ctx.host.root,
                ctx.prompter.preset(HOST_FW_NODE.id),
            )?
        } else {
            HostFw::None
        };
        if let HostFw::Ask { nodes, to } = &host_fw {
            let a = ctx.prompter.ask(&Ask {
                spec: HOST_FW_NODE,
                default: Some("skip".into()),
                details: nodes.iter().map(|n| format!("node {n}")).collect(),
                timeout: None,
            })?;
            host_fw = pick(nodes, to, &a.value)?;
        }
        let mut notes = Vec::new();
        match &host_fw {
            HostFw::Map {
                warning: Some(w), ..
            } => {
                ctx.prompter.say(Level::Warning, w);
                notes.push(w.clone());
            }
            HostFw::Skip(why) => notes.push(why.clone()),
            _ => {}
        }
        let (changes, warnings) = self.changes(ctx.stage, ctx.root, &host_fw)?;
        for w in &warnings {
            ctx.prompter.say(Level::Warning, w);
        }
        if changes.is_empty() {
            let mut detail = "already equal to the backup".to_string();
            for n in &notes {
                detail.push_str("; ");
                detail.push_str(n);
            }
            return Ok(vec![Outcome::new(cat, Status::Applied, detail)]);
        }
        if self.area == Area::Firewall {
            ctx.prompter.say(
                Level::Warning,
                "Firewall rules are being changed: keep a console (IPMI/KVM) at hand in case the new rules lock you out.",
            );
        }
        let window = if self.windowed() {
            let after = if self.area == Area::Firewall {
                vec![AfterCommand::new(
                    "systemctl",
                    ["try-restart", "pve-firewall"],
                )]
            } else {
                Vec::new()
            };
            let paths: Vec<_> = changes.iter().map(|c| c.path().clone()).collect();
            let w = Window::arm(ctx.host, ctx.root, self.area_word(), &paths, after)?;
            if w.is_none() {
                notes.push("no COMMIT window (host actions deferred)".into());
            }
            w
        } else {
            None
        };
        let mut written = 0usize;
        let mut removed = 0usize;
        for c in &changes {
            if let Err(e) = clusterfs::apply_change(ctx.root, c) {
                let mut error = format!("{e}");
                if let Some(w) = &window {
                    let s = w.rollback(ctx.host, ctx.cancel, "write failed")?;
                    error.push_str("; the previous files were put back");
                    for p in s.problems {
                        error.push_str(&format!("; rollback: {p}"));
                    }
                }
                return Ok(vec![Outcome::new(cat, Status::Failed { error }, "")]);
            }
            match c {
                Change::Write { .. } => written += 1,
                Change::Remove { .. } => removed += 1,
                Change::Mkdir(_) => {}
            }
        }
        let mut partly = Vec::new();
        let mut detail = format!("{written} files written, {removed} removed");
        if self.area == Area::Firewall {
            match self.reload_firewall(ctx) {
                Ok(Some(how)) => detail.push_str(&format!("; pve-firewall reloaded ({how})")),
                Ok(None) => detail.push_str("; pve-firewall reload deferred"),
                Err(e) => {
                    ctx.prompter.say(
                        Level::Warning,
                        &format!("pve-firewall was not reloaded: {e}"),
                    );
                    partly.push(format!("pve-firewall not reloaded: {e}"));
                }
            }
        }
        if self.area == Area::Sdn {
            let a = ctx.prompter.ask(&Ask {
                spec: SDN_RELOAD,
                default: Some("no".into()),
                details: Vec::new(),
                timeout: None,
            })?;
            if yes(SDN_RELOAD.id, &a)? {
                let cmd = HostCommand::new("pvesh", ["set", "/cluster/sdn"])
                    .timeout(Duration::from_secs(120));
                match ctx.host.run(&cmd, ctx.cancel) {
                    Ok(Ran::Done(out)) if out.success() => {
                        detail.push_str("; SDN applied (pvesh set /cluster/sdn)");
                    }
                    Ok(Ran::Done(out)) => {
                        partly.push(format!("{}: {}", cmd.display(), out.failure()));
                    }
                    Ok(Ran::Deferred) => detail.push_str("; `pvesh set /cluster/sdn` deferred"),
                    Err(e) => partly.push(format!("{}: {e}", cmd.display())),
                }
            } else {
                detail.push_str(
                    "; SDN written but not applied: run `pvesh set /cluster/sdn` (or Datacenter > SDN > Apply)",
                );
            }
        }
        if let Some(w) = &window {
            let mut d = vec![format!(
                "The {} changes are in place ({}).",
                self.area_word(),
                detail
            )];
            d.extend(partly.iter().cloned());
            let s = commit::settle(ctx, w, COMMIT, d)?;
            if s.state == State::RolledBack {
                let mut reason = format!("rolled back ({})", s.by);
                for p in &s.problems {
                    reason.push_str(&format!("; {p}"));
                }
                return skipped(reason);
            }
            detail.push_str(&format!("; committed ({})", s.by));
        }
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        if !partly.is_empty() {
            detail.push_str("; ");
            detail.push_str(&partly.join("; "));
            return Ok(vec![Outcome::new(cat, Status::PartlyApplied, detail)]);
        }
        Ok(vec![Outcome::new(cat, Status::Applied, detail)])
    }
}
