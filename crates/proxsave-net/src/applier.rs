//! The `network` applier: staged install with NIC repair, preflight, resolv.conf repair.
//!
//! 1. **Plan** (also `--dry-run` and `diff`): reads the staged `/etc/network/interfaces` and the
//!    files it includes (inside the stage), the backup's NIC inventory (staged with the
//!    category, [`crate::inventory::INVENTORY_CANDIDATES`]), this host's inventory (sysfs, udev
//!    database and `ethtool -P` inside the root; `ethtool` only when host actions run) and the
//!    naming rules of the root, and runs [`crate::repair::repair`]. The plan's changes are every
//!    file the install writes, with its text before and after (the renames show as diffs), and
//!    the `/etc/resolv.conf` repair.
//! 2. **Apply**: asks `network.nic-repair` (`safe` default, `all`, `no`), writes the staged
//!    files into the root all-or-nothing (the repaired interfaces files, `/etc/hosts`,
//!    `/etc/hostname`, the other staged network folders; never `/etc/resolv.conf`), repairs
//!    `/etc/resolv.conf` ([`crate::resolv`]), and runs the preflight ([`crate::preflight`]) on
//!    the installed file. This is the same with `--host-actions defer` (the preflight is then
//!    recorded as a to-do): only a live apply is a host action.
//! 3. **Live apply**: [`NetworkApplier::live_apply`] is the hook; it is given the preflight
//!    outcome and never runs after a failed preflight. Until the COMMIT window is built on it,
//!    the configuration is installed on disk and not applied live (the outcome says so).

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, ChangeKind, FileSpec,
    Outcome, PlanContext, PlannedChange, QuestionSpec, Stage, Status,
};
use proxsave_restore::host::{Host, HostActions, HostCommand, Ran};
use proxsave_restore::roothandle::RootHandle;

use crate::ifaces::{ConfigSet, Document, Flavor, LintOptions, lint};
use crate::inventory::{
    INVENTORY_CANDIDATES, Inventory, InventoryError, MAX_INVENTORY_BYTES, collect_sysfs,
    parse_ethtool_permanent,
};
use crate::preflight::{self, PreflightOutcome};
use crate::repair::{FileRepair, NicRepairMode, Repair, RepairRequest, repair};
use crate::resolv;

/// The `network.nic-repair` question.
pub const Q_NIC_REPAIR: QuestionSpec = QuestionSpec {
    id: "network.nic-repair",
    prompt: "Rename NICs in the restored network configuration to this host's names?",
    choices: &["safe", "all", "no"],
};

/// The `network.preflight-override` question: apply live although no usable validator
/// checked the configuration (a failed preflight is never overridden).
pub const Q_PREFLIGHT_OVERRIDE: QuestionSpec = QuestionSpec {
    id: "network.preflight-override",
    prompt: "No usable validator checked the network configuration. Apply it live anyway?",
    choices: &["yes", "no"],
};

/// The main interfaces file.
pub const INTERFACES: &str = "/etc/network/interfaces";

/// Staged folders installed as an overlay (files added or replaced, never removed).
pub const STAGED_DIRS: [&str; 4] = [
    "etc/network",
    "etc/netplan",
    "etc/systemd/network",
    "etc/NetworkManager/system-connections",
];

/// Staged single files installed.
pub const STAGED_FILES: [&str; 4] = [
    "etc/hosts",
    "etc/hostname",
    "etc/cloud/cloud.cfg.d/99-disable-network-config.cfg",
    "etc/dnsmasq.d/lxc-vmbr1.conf",
];

/// The `network` applier (registered with `inventory`).
pub struct NetworkApplier;

::inventory::submit! { ApplierRegistration(&NetworkApplier) }

/// One file the staged install writes.
#[derive(Debug, Clone)]
pub struct InstallFile {
    /// Path in the root (`etc/network/interfaces`).
    pub path: ArchivePath,
    /// Bytes to write.
    pub bytes: Vec<u8>,
    /// Staged mode, owner and group.
    pub mode: u32,
    /// Staged owner.
    pub uid: u32,
    /// Staged group.
    pub gid: u32,
}

/// Everything the staged install decides, from the stage and the root (no write).
#[derive(Debug, Clone)]
pub struct StagedInstall {
    /// The NIC repair of the interfaces files (`None`: the backup has no interfaces file).
    pub repair: Option<Repair>,
    /// Why the interfaces file could not be read, when it could not.
    pub load_error: Option<String>,
    /// Files to write, in order.
    pub files: Vec<InstallFile>,
    /// Staged entries not installed (symlinks, special files), with why.
    pub not_installed: Vec<String>,
    /// The `/etc/resolv.conf` repair.
    pub resolv: resolv::Action,
    /// Notes (inventory, naming rules).
    pub notes: Vec<String>,
}

/// What the staged install did: the input of the live apply.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The decisions.
    pub install: StagedInstall,
    /// Root paths written.
    pub written: Vec<String>,
    /// The preflight of the installed configuration.
    pub preflight: PreflightOutcome,
    /// The installed main file on this machine (`<root>/etc/network/interfaces`).
    pub main_file: PathBuf,
    /// The written paths as they were before the install (taken when host actions run and
    /// COMMIT windows can be armed): what a rollback of the live apply puts back.
    pub before: Option<proxsave_restore::commit::Snapshot>,
}

fn ap(text: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(text).map_err(|e| ApplyError::Other(format!("{text}: {e}")))
}

/// The backup's inventory from the stage, or why there is none.
pub fn backup_inventory(stage: &Stage) -> Result<Inventory, InventoryError> {
    for cand in INVENTORY_CANDIDATES {
        let name = cand.trim_start_matches("./");
        let Ok(p) = ArchivePath::from_user(name) else {
            continue;
        };
        if !stage.exists(&p) {
            continue;
        }
        let host = stage.path().join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if !m.file_type().is_file() => {
                return Err(InventoryError::NotRegular { path: cand.into() });
            }
            Ok(m) if m.len() > MAX_INVENTORY_BYTES => {
                return Err(InventoryError::Oversize {
                    path: cand.into(),
                    size: m.len(),
                });
            }
            _ => {}
        }
        return match stage.read(&p) {
            Ok(Some(bytes)) => Inventory::parse(cand, &bytes),
            Ok(None) => Err(InventoryError::Missing),
            Err(_) => Err(InventoryError::NotRegular { path: cand.into() }),
        };
    }
    Err(InventoryError::Missing)
}

/// This host's inventory, read inside the root; `ethtool -P` runs through the host's runner
/// only when host actions run (deferred: no permanent MACs; MAC and PCI path still match).
pub fn current_inventory(host: &Host, cancel: &CancelToken) -> Result<Inventory, String> {
    let ethtool = |name: &str| -> Option<String> {
        if host.actions == HostActions::Defer {
            return None;
        }
        let cmd = HostCommand::new("ethtool", ["-P", name]).timeout(Duration::from_secs(5));
        match host.run(&cmd, cancel) {
            Ok(Ran::Done(out)) if out.success() => parse_ethtool_permanent(&out.stdout_text()),
            _ => None,
        }
    };
    collect_sysfs(&host.root, &ethtool).map_err(|e| e.to_string())
}

fn walk(stage_root: &Path, rel: &str, out: &mut Vec<String>, odd: &mut Vec<String>) {
    let host = stage_root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&host) else {
        return;
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        let Ok(rd) = std::fs::read_dir(&host) else {
            odd.push(format!("/{rel}: folder cannot be read"));
            return;
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        for n in names {
            walk(stage_root, &format!("{rel}/{n}"), out, odd);
        }
    } else if ft.is_file() {
        out.push(rel.to_string());
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&host)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        odd.push(format!(
            "/{rel}: a symbolic link (to {target}) in the backup, not installed"
        ));
    } else {
        odd.push(format!("/{rel}: not a regular file, not installed"));
    }
}

fn first_gateway(files: &[FileRepair]) -> Option<String> {
    files.iter().find_map(|f| {
        Document::parse(&f.after).stanzas().iter().find_map(|s| {
            s.option("gateway")
                .and_then(|t| t.first())
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
    })
}

/// Decides the staged install (reads the stage and the root; writes nothing).
///
/// # Errors
/// A staged file cannot be read.
pub fn plan_install(
    stage: &Stage,
    host: &Host,
    cancel: &CancelToken,
    mode: NicRepairMode,
) -> Result<StagedInstall, ApplyError> {
    let mut notes = Vec::new();
    let main = Path::new(INTERFACES);
    let (repair_result, load_error) = if stage.exists(&ap("etc/network/interfaces")?) {
        match ConfigSet::load(stage.path(), main, Flavor::default()) {
            Ok(set) => {
                let backup = backup_inventory(stage);
                let current = current_inventory(host, cancel);
                let rules = crate::overrides::scan(&host.root);
                let r = match (&current, &rules) {
                    (Ok(cur), Ok(rules)) => repair(
                        &set,
                        &RepairRequest {
                            backup: backup.as_ref(),
                            current: cur,
                            rules,
                            mode,
                        },
                    ),
                    _ => {
                        let why = match (&current, &rules) {
                            (Err(e), _) => format!("this host's NICs cannot be listed: {e}"),
                            (_, Err(e)) => format!("naming rules cannot be read: {e}"),
                            _ => String::new(),
                        };
                        let files = set
                            .files
                            .iter()
                            .map(|f| FileRepair {
                                path: f.path.clone(),
                                before: f.document.to_bytes(),
                                after: f.document.to_bytes(),
                                edits: Vec::new(),
                                mentions: Vec::new(),
                            })
                            .collect();
                        Repair {
                            plan: None,
                            applied: Vec::new(),
                            skipped: Vec::new(),
                            not_repaired: Some(why),
                            files,
                            findings: lint(&set, &LintOptions::default()),
                        }
                    }
                };
                if let Ok(rules) = &rules
                    && !rules.is_empty()
                {
                    notes.push(crate::overrides::summary(rules));
                }
                (Some(r), None)
            }
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };

    let mut rels = Vec::new();
    let mut not_installed = Vec::new();
    for d in STAGED_DIRS.iter().chain(STAGED_FILES.iter()) {
        walk(stage.path(), d, &mut rels, &mut not_installed);
    }
    let repaired: Vec<(String, &FileRepair)> = repair_result
        .iter()
        .flat_map(|r| r.files.iter())
        .map(|f| {
            (
                f.path.to_string_lossy().trim_start_matches('/').to_string(),
                f,
            )
        })
        .collect();
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for rel in rels {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let p = ap(&rel)?;
        let meta = std::fs::symlink_metadata(stage.path().join(&rel))?;
        let bytes = match repaired.iter().find(|(r, _)| *r == rel) {
            Some((_, f)) => f.after.clone(),
            None => stage.read(&p)?.unwrap_or_default(),
        };
        files.push(InstallFile {
            path: p,
            bytes,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }

    let resolved_present = [
        crate::rootfs::is_file(&host.root, Path::new(resolv::RESOLVED[0])),
        crate::rootfs::is_file(&host.root, Path::new(resolv::RESOLVED[1])),
    ];
    let mut recorded = None;
    for r in resolv::RECORDED {
        if let Ok(p) = ArchivePath::from_user(r)
            && let Ok(Some(b)) = stage.read(&p)
        {
            recorded = Some(b);
            break;
        }
    }
    let gateway = repair_result.as_ref().and_then(|r| first_gateway(&r.files));
    let resolv_action = resolv::decide(
        &resolv::inspect(&host.root),
        resolved_present,
        recorded.as_deref(),
        gateway.as_deref(),
    );
    Ok(StagedInstall {
        repair: repair_result,
        load_error,
        files,
        not_installed,
        resolv: resolv_action,
        notes,
    })
}

impl StagedInstall {
    /// Human lines for the plan and the summary.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(e) = &self.load_error {
            lines.push(format!("the backup's interfaces file: {e}"));
        }
        if let Some(r) = &self.repair {
            lines.extend(r.describe().lines().map(str::to_string));
        }
        let names: Vec<String> = self.files.iter().map(|f| format!("/{}", f.path)).collect();
        if !names.is_empty() {
            lines.push(format!("install {}", names.join(", ")));
        }
        lines.extend(self.not_installed.iter().cloned());
        lines.push(format!(
            "/etc/resolv.conf: {}",
            match &self.resolv {
                resolv::Action::Keep { reason } => format!("kept ({reason})"),
                resolv::Action::Link { target, reason } => format!("link to {target} ({reason})"),
                resolv::Action::Write { reason, .. } => format!("written ({reason})"),
            }
        ));
        lines.extend(self.notes.iter().cloned());
        lines
    }

    /// The planned changes (file diffs against the root, the resolv.conf repair).
    pub fn changes(&self, root: &RootHandle) -> Vec<PlannedChange> {
        let mut out = Vec::new();
        for f in &self.files {
            let before = root.read(&f.path).ok().flatten();
            let c = PlannedChange::file(&format!("/{}", f.path), before.as_deref(), Some(&f.bytes));
            if !c.is_noop() {
                out.push(c);
            }
        }
        let current = std::fs::read_link(root.path().join("etc/resolv.conf"))
            .map(|t| format!("symlink to {}\n", t.display()))
            .ok()
            .or_else(|| {
                std::fs::read(root.path().join("etc/resolv.conf"))
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            });
        match &self.resolv {
            resolv::Action::Keep { .. } => {}
            resolv::Action::Link { target, .. } => out.push(PlannedChange::call(
                "/etc/resolv.conf",
                ChangeKind::Write,
                format!("ln -sfn {target} /etc/resolv.conf"),
                current,
                Some(format!("symlink to {target}\n")),
            )),
            resolv::Action::Write { contents, .. } => out.push(PlannedChange {
                before: current,
                ..PlannedChange::file("/etc/resolv.conf", None, Some(contents.as_bytes()))
            }),
        }
        out
    }
}

fn mode_answer(value: &str) -> Result<NicRepairMode, ApplyError> {
    NicRepairMode::parse(value.trim()).ok_or_else(|| ApplyError::BadAnswer {
        id: Q_NIC_REPAIR.id,
        reason: format!("`{value}` is not `safe`, `all` or `no`"),
    })
}

fn override_answer(value: &str) -> Result<bool, ApplyError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id: Q_PREFLIGHT_OVERRIDE.id,
            reason: format!("`{other}` is not `yes` or `no`"),
        }),
    }
}

/// True when the rename plan has something to choose (a rename or a conflict).
fn has_choice(install: &StagedInstall) -> bool {
    install
        .repair
        .as_ref()
        .and_then(|r| r.plan.as_ref())
        .is_some_and(|p| !p.is_empty())
}

fn repair_ask(install: &StagedInstall) -> Ask {
    let details = install
        .repair
        .as_ref()
        .and_then(|r| r.plan.as_ref())
        .map(|p| p.describe().lines().map(str::to_string).collect())
        .unwrap_or_default();
    Ask::new(Q_NIC_REPAIR, Some("safe")).with_details(details)
}

/// Writes the staged install into the root (all files at once, then `/etc/resolv.conf`);
/// files already as the backup has them are not rewritten. Returns the paths written.
///
/// # Errors
/// A write failed (the files of the all-or-nothing write are then as they were).
pub fn write_install(
    root: &RootHandle,
    install: &StagedInstall,
) -> Result<Vec<String>, ApplyError> {
    let mut batch = Vec::new();
    for f in &install.files {
        // A file already as the backup has it (bytes, mode, owner) is left alone.
        if let (Ok(Some(meta)), Ok(Some(bytes))) = (root.stat(&f.path), root.read(&f.path))
            && meta.kind == rustix::fs::FileType::RegularFile
            && bytes == f.bytes
            && (meta.mode, meta.uid, meta.gid) == (f.mode, f.uid, f.gid)
        {
            continue;
        }
        if let Some(parent) = f.path.parent() {
            root.create_dir_all(&parent, 0o755)?;
        }
        batch.push((
            f.path.clone(),
            f.bytes.clone(),
            FileSpec {
                mode: Some(f.mode),
                uid: Some(f.uid),
                gid: Some(f.gid),
                backup_stamp: None,
            },
        ));
    }
    let mut written: Vec<String> = root
        .replace_all(&batch)?
        .into_iter()
        .map(|r| format!("/{}", r.path))
        .collect();
    match &install.resolv {
        resolv::Action::Keep { .. } => {}
        resolv::Action::Link { target, .. } => {
            root.create_dir_all(&ap("etc")?, 0o755)?;
            match root.dir().remove_file("etc/resolv.conf") {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            root.dir().symlink(target, "etc/resolv.conf")?;
            written.push("/etc/resolv.conf".into());
        }
        resolv::Action::Write { contents, .. } => {
            let p = ap("etc/resolv.conf")?;
            if let Ok(Some(meta)) = root.stat(&p)
                && meta.kind == rustix::fs::FileType::Symlink
            {
                root.dir().remove_file("etc/resolv.conf")?;
            }
            root.replace(
                &p,
                contents.as_bytes(),
                &FileSpec {
                    mode: Some(0o644),
                    uid: Some(0),
                    gid: Some(0),
                    backup_stamp: None,
                },
            )?;
            written.push("/etc/resolv.conf".into());
        }
    }
    Ok(written)
}

impl NetworkApplier {
    /// The live apply: after a preflight that allows it ([`live_apply_allowed`]), asks
    /// `network.apply-live` and applies inside a COMMIT window ([`crate::live`]).
    /// `Err(reason)` when nothing was applied live.
    ///
    /// # Errors
    /// A bad answer, an aborted prompt, a window record that cannot be written.
    pub fn live_apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        installed: &Installed,
    ) -> Result<Result<crate::live::Live, String>, ApplyError> {
        if ctx.host.actions == HostActions::Defer {
            return Ok(Err(
                "host actions deferred (--host-actions): not applied live".into(),
            ));
        }
        if !live_apply_allowed(ctx, &installed.preflight)? {
            return Ok(Err("not applied live: the preflight did not pass".into()));
        }
        let text = ctx
            .root
            .read(&ap("etc/network/interfaces")?)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        crate::live::apply_live(ctx, installed.before.as_ref(), &text)
    }
}

/// Whether the live apply may follow the preflight: asks `network.preflight-override`
/// (default `no`) when the validator was unusable or absent; a failed preflight never.
///
/// # Errors
/// A bad answer.
pub fn live_apply_allowed(
    ctx: &mut ApplyContext<'_>,
    preflight: &PreflightOutcome,
) -> Result<bool, ApplyError> {
    match preflight {
        PreflightOutcome::Passed { .. } => Ok(true),
        PreflightOutcome::Failed { .. } => Ok(false),
        other => {
            let a = ctx.prompter.ask(
                &Ask::new(Q_PREFLIGHT_OVERRIDE, Some("no")).with_details(vec![other.describe()]),
            )?;
            Ok(other.allows_live_apply(override_answer(&a.value)?))
        }
    }
}

impl Applier for NetworkApplier {
    fn name(&self) -> &'static str {
        "network"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[crate::CATEGORY_ID]
    }

    fn order(&self) -> u16 {
        200
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[
            Q_NIC_REPAIR,
            Q_PREFLIGHT_OVERRIDE,
            crate::live::Q_APPLY_LIVE,
            crate::live::Q_COMMIT,
        ]
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mode = match (ctx.preset)(Q_NIC_REPAIR.id) {
            Some(a) => mode_answer(&a.value)?,
            None => NicRepairMode::Safe,
        };
        if let Some(a) = (ctx.preset)(Q_PREFLIGHT_OVERRIDE.id) {
            override_answer(&a.value)?;
        }
        let install = plan_install(ctx.stage, ctx.host, &CancelToken::new(), mode)?;
        let mut plan = ApplierPlan {
            actions: install
                .describe()
                .into_iter()
                .map(|l| format!("network: {l}"))
                .collect(),
            ..ApplierPlan::default()
        };
        plan.files = install.files.iter().map(|f| f.path.clone()).collect();
        plan.files.push(ap("etc/resolv.conf")?);
        plan.changes = install.changes(ctx.root);
        if has_choice(&install) {
            plan.questions.push(repair_ask(&install));
        }
        if let Some(a) = (ctx.preset)(crate::live::Q_APPLY_LIVE.id) {
            crate::live::apply_live_answer(&a.value)?;
        }
        if let Some(a) = (ctx.preset)(crate::live::Q_COMMIT.id) {
            crate::live::commit_answer(&a.value)?;
        }
        // The live apply's questions, listed like every applier's: asked only when host
        // actions run, after a preflight that allows it (a failed one never asks).
        let has_main = install
            .files
            .iter()
            .any(|f| f.path.as_bytes() == b"etc/network/interfaces");
        let parses = install.load_error.is_none()
            && !install
                .repair
                .as_ref()
                .and_then(|r| r.not_repaired.as_deref())
                .is_some_and(|w| w.starts_with("the configuration does not parse"));
        if ctx.host.actions == HostActions::Run && has_main && parses {
            let window = ctx.host.commit.as_ref().map(|c| c.window.as_secs());
            plan.actions.push(match window {
                Some(s) => format!(
                    "network: live apply only if asked ({}, default no) and the preflight passes; then a COMMIT window of {s}s rolls it back unless COMMIT is typed ({})",
                    crate::live::Q_APPLY_LIVE.id,
                    crate::live::Q_COMMIT.id
                ),
                None => format!(
                    "network: no COMMIT window can be armed here, so {} is not asked",
                    crate::live::Q_APPLY_LIVE.id
                ),
            });
            if window.is_some() {
                plan.questions.push(crate::live::apply_live_ask());
                plan.questions.push(crate::live::commit_plan_ask(window));
            }
        }
        plan.details = serde_json::json!({
            "nic_repair": mode.as_str(),
            "renames": install.repair.as_ref().map(|r| r.applied.iter().map(|m| serde_json::json!({
                "old": m.old, "new": m.new, "method": m.method.as_str(),
            })).collect::<Vec<_>>()),
            "not_repaired": install.repair.as_ref().and_then(|r| r.not_repaired.clone()),
            "findings": install.repair.as_ref().map(|r| r.findings.clone()),
            "resolv_conf": install.resolv,
        });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let first = plan_install(ctx.stage, ctx.host, ctx.cancel, NicRepairMode::Safe)?;
        // Asked only when there is a rename to choose; otherwise an answer given up front
        // still counts (`no` keeps the files as the backup has them).
        let mode = if has_choice(&first) {
            mode_answer(&ctx.prompter.ask(&repair_ask(&first))?.value)?
        } else {
            match ctx.prompter.preset(Q_NIC_REPAIR.id) {
                Some(a) => mode_answer(&a.value)?,
                None => NicRepairMode::Safe,
            }
        };
        let install = if mode == NicRepairMode::Safe {
            first
        } else {
            plan_install(ctx.stage, ctx.host, ctx.cancel, mode)?
        };
        if install.files.is_empty() {
            return Ok(vec![Outcome::new(
                crate::CATEGORY_ID,
                Status::Skipped {
                    reason: "the backup holds no network configuration to install".into(),
                },
                String::new(),
            )]);
        }
        // What the live apply's COMMIT window would put back: the paths as they are now.
        let before = if ctx.host.actions == HostActions::Run && ctx.host.commit.is_some() {
            let mut paths: Vec<ArchivePath> =
                install.files.iter().map(|f| f.path.clone()).collect();
            paths.push(ap("etc/resolv.conf")?);
            Some(proxsave_restore::commit::Snapshot::take(ctx.root, &paths)?)
        } else {
            None
        };
        let written = write_install(ctx.root, &install)?;
        let main_file = ctx.root.path().join("etc/network/interfaces");
        let preflight = match (&install.repair, &install.load_error) {
            (Some(r), _) => {
                let does_not_parse = r
                    .not_repaired
                    .as_deref()
                    .filter(|w| w.starts_with("the configuration does not parse"));
                match does_not_parse {
                    Some(why) => PreflightOutcome::Failed {
                        command: None,
                        reasons: vec![why.to_string()],
                    },
                    None => preflight::run(ctx.host, ctx.cancel, &main_file, &r.findings),
                }
            }
            (None, Some(e)) => PreflightOutcome::Failed {
                command: None,
                reasons: vec![e.clone()],
            },
            (None, None) => PreflightOutcome::NotRun {
                reason: "the backup has no /etc/network/interfaces".into(),
            },
        };
        let installed = Installed {
            install,
            written,
            preflight,
            main_file,
            before,
        };
        let live = self.live_apply(ctx, &installed)?;
        let mut detail: Vec<String> = installed.install.describe();
        detail.push(installed.preflight.describe());
        let status = match (live, &installed.preflight) {
            (Ok(l), _) => {
                detail.extend(l.lines.iter().cloned());
                l.status
            }
            (Err(why), PreflightOutcome::Failed { .. }) => Status::Deferred {
                todo: format!(
                    "the restored network configuration is installed but was NOT applied live ({why}): {}. Fix {} and check it with `ifup -a -s -i {}` before `ifreload -a`",
                    installed.preflight.describe().replace('\n', " "),
                    INTERFACES,
                    INTERFACES
                ),
            },
            (Err(why), _) => Status::Deferred {
                todo: format!(
                    "the restored network configuration is installed on disk and {why} ({}); apply it at the console with `ifreload -a` or reboot",
                    installed.preflight.describe().replace('\n', " ")
                ),
            },
        };
        Ok(vec![Outcome::new(
            crate::CATEGORY_ID,
            status,
            detail.join("\n  "),
        )])
    }
}
