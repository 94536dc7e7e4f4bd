//! SAFE apply of guests: the VMs and CTs of the exported `/etc/pve` re-created on this node
//! through the API, after the export (`--cluster-mode safe`).
//!
//! The applier reads the exported copy (`pve_config_export`, staged privately for it:
//! [`Applier::reads_exported`]), never the live `/etc/pve` files, and goes through `pvesh`:
//!
//! 1. `pve.safe.guests` (yes/no, default no, countdown) — nothing happens without a yes.
//! 2. The source node: this node's name when the backup has guests under it; else the only
//!    node that has guests (with a warning); else `pve.safe.source-node` (a node name of the
//!    backup, its number in the list, `0` or `skip`; default skip).
//! 3. One read of the cluster's guests (`GET /cluster/resources --type vm`) decides what exists
//!    (never an error's wording); one read of each existing guest's config decides what
//!    differs (only that is sent); one read per storage the guests' disks name
//!    (`GET /nodes/{node}/storage/{id}/content`) decides which volumes are there.
//! 4. Per guest: existing here → `set` with the keys the API takes; missing VM →
//!    `create --vmid` then `set`; missing CT → its config file written into this node's
//!    `lxc/` on the mounted `/etc/pve` (the API cannot create a CT without a template); on
//!    another node → not touched. Keys PVE writes itself (`meta`, `parent`, `snaptime`,
//!    `vmstate`, `running*`, `digest`, `lock`) are never sent; a CT's `unprivileged` and raw
//!    `lxc.*` keys cannot be set and are reported; a disk or mount point whose volume is not
//!    on this node's storages is left out of the `set` (PVE would refuse the whole call) and
//!    listed. Snapshot and pending sections are never applied as current values.
//!
//! See docs/pve-safe-recovery.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proxsave_archive::path::{ArchivePath, escape_bytes};
use proxsave_archive::progress::CancelToken;
use proxsave_restore::applier::{
    Answer, Applier, ApplierPlan, ApplierRegistration, ApplyContext, ApplyError, Ask, ChangeKind,
    Outcome, PlanContext, PlannedChange, QuestionSpec, Stage, Status,
};
use proxsave_restore::host::{Host, HostActions};
use proxsave_restore::plan::{ClusterMode, Plan};
use proxsave_restore::prompt::Level;
use serde_json::json;

use super::api::json_text;
use crate::clusterfs::{self, ETC_PVE};
use crate::formats::guest::{self, Denied, GuestConfig, Kind};
use crate::pvesh::{Call, Method, Param, Pvesh, PveshError};

/// The category whose exported files the applier reads.
pub const CATEGORY: &str = "pve_config_export";

/// How long the SAFE questions wait at a console before taking their default.
pub const COUNTDOWN: Duration = Duration::from_secs(90);

/// `pve.safe.guests`.
pub const SAFE_GUESTS: QuestionSpec = QuestionSpec {
    id: "pve.safe.guests",
    prompt: "Re-create the backup's VMs and CTs on this node through the API (SAFE apply)?",
    choices: &["yes", "no"],
};

/// `pve.safe.source-node`.
pub const SAFE_SOURCE_NODE: QuestionSpec = QuestionSpec {
    id: "pve.safe.source-node",
    prompt: "The backup's guests are stored under other node names: which node's VMs and CTs are applied to this node? (0 skips)",
    choices: &["<node>", "skip"],
};

/// Guest keys whose value is never shown (the cloud-init password hash).
const SECRET_KEYS: &[&str] = &["cipassword"];

/// The SAFE guests applier.
pub struct SafeGuests;

inventory::submit! { ApplierRegistration(&SafeGuests) }

/// A node folder of the exported `/etc/pve/nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceNode {
    /// The folder name as stored.
    pub raw: Vec<u8>,
    /// The name for messages (control characters escaped).
    pub shown: String,
    /// `qemu-server/*.conf` file names.
    pub qemu: Vec<Vec<u8>>,
    /// `lxc/*.conf` file names.
    pub lxc: Vec<Vec<u8>>,
}

impl SourceNode {
    fn line(&self, i: usize) -> String {
        format!(
            "[{i}] {} (qemu={}, lxc={})",
            self.shown,
            self.qemu.len(),
            self.lxc.len()
        )
    }
}

/// How the source node is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The backup has no guest configs.
    Nothing,
    /// This node's own folder.
    Local(SourceNode),
    /// The only node with guests (not this one): the warning to show.
    Only(SourceNode, String),
    /// Several other nodes: asked.
    Ask(Vec<SourceNode>),
}

fn child(base: &ArchivePath, name: &[u8]) -> Option<ArchivePath> {
    if name.is_empty() || name.contains(&b'/') {
        return None;
    }
    let mut p = base.as_bytes().to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    ArchivePath::parse(&p).ok().flatten()
}

fn ap(s: &str) -> Result<ArchivePath, ApplyError> {
    clusterfs::ap(s)
}

/// The node folders of the export that hold guest configs, sorted.
pub fn source_nodes(stage: &Stage) -> Result<Vec<SourceNode>, ApplyError> {
    let nodes = ap("etc/pve/nodes")?;
    let mut out = Vec::new();
    for raw in stage.list(&nodes)? {
        let Some(dir) = child(&nodes, &raw) else {
            continue;
        };
        let mut n = SourceNode {
            shown: escape_bytes(&raw),
            raw,
            qemu: Vec::new(),
            lxc: Vec::new(),
        };
        for kind in [Kind::Qemu, Kind::Lxc] {
            let Some(d) = child(&dir, kind.folder().as_bytes()) else {
                continue;
            };
            // Regular files only, read later from the same open folder (a host with
            // thousands of guests: no path walk per file).
            let files: Vec<Vec<u8>> = match stage.dir(&d)? {
                Some(folder) => folder
                    .files()?
                    .into_iter()
                    .filter(|f| f.ends_with(b".conf") && child(&d, f).is_some())
                    .collect(),
                None => Vec::new(),
            };
            match kind {
                Kind::Qemu => n.qemu = files,
                Kind::Lxc => n.lxc = files,
            }
        }
        if !n.qemu.is_empty() || !n.lxc.is_empty() {
            out.push(n);
        }
    }
    Ok(out)
}

/// The source decision for this node `local`.
pub fn choose_source(nodes: Vec<SourceNode>, local: &str) -> Source {
    if let Some(n) = nodes.iter().find(|n| n.raw == local.as_bytes()) {
        return Source::Local(n.clone());
    }
    match nodes.len() {
        0 => Source::Nothing,
        1 => {
            let n = nodes.into_iter().next().expect("one");
            let w = format!(
                "the backup has no VM/CT configs for this node {}; using those of node {} (qemu={}, lxc={}), applied to {}",
                escape_bytes(local.as_bytes()),
                n.shown,
                n.qemu.len(),
                n.lxc.len(),
                escape_bytes(local.as_bytes())
            );
            Source::Only(n, w)
        }
        _ => Source::Ask(nodes),
    }
}

/// Reads a `pve.safe.source-node` answer against the listed `nodes`: `Some(index)` or `None`
/// for skip.
pub fn pick_source(nodes: &[SourceNode], answer: &str) -> Result<Option<usize>, ApplyError> {
    let a = answer.trim();
    if a.is_empty() || a == "0" || a.eq_ignore_ascii_case("skip") {
        return Ok(None);
    }
    if let Ok(i) = a.parse::<usize>() {
        if (1..=nodes.len()).contains(&i) {
            return Ok(Some(i - 1));
        }
        return Err(ApplyError::BadAnswer {
            id: SAFE_SOURCE_NODE.id,
            reason: format!(
                "{i} is not in the list (1 to {}, or 0 to skip)",
                nodes.len()
            ),
        });
    }
    match nodes
        .iter()
        .position(|n| n.raw == a.as_bytes() || n.shown == a)
    {
        Some(i) => Ok(Some(i)),
        None => Err(ApplyError::BadAnswer {
            id: SAFE_SOURCE_NODE.id,
            reason: format!(
                "`{}` is not a node of the backup ({}), nor `skip`",
                escape_bytes(a.as_bytes()),
                nodes
                    .iter()
                    .map(|n| n.shown.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// A SAFE yes/no answer (`yes`/`y`, `no`/`n`; empty is no).
///
/// # Errors
/// Anything else ([`ApplyError::BadAnswer`] naming `id`).
pub fn yes_no(id: &'static str, a: &Answer) -> Result<bool, ApplyError> {
    match a.value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" => Ok(true),
        "no" | "n" | "" => Ok(false),
        other => Err(ApplyError::BadAnswer {
            id,
            reason: format!("`{other}` is not `yes` or `no`"),
        }),
    }
}

/// A SAFE question: `default` taken after [`COUNTDOWN`] at a console.
pub fn countdown(spec: QuestionSpec, default: &str, details: Vec<String>) -> Ask {
    Ask {
        spec,
        default: Some(default.into()),
        details,
        timeout: Some(COUNTDOWN),
    }
}

/// This node's name: the root's `/etc/hostname`, short, lower case.
pub fn local_node(host: &Host) -> Option<String> {
    proxsave_restore::plan::host_name(&host.root)
        .map(|h| h.split('.').next().unwrap_or_default().to_ascii_lowercase())
}

/// True when this run is a SAFE cluster restore (`--cluster-mode safe`): the SAFE appliers
/// run only then.
pub fn is_safe_run(plan: &Plan) -> bool {
    plan.cluster_mode == Some(ClusterMode::Safe) && !plan.needs_cluster_restore
}

fn not_safe(plan: &Plan) -> bool {
    !is_safe_run(plan)
}

/// A guest of the backup, read and checked.
#[derive(Clone, Debug)]
pub struct BackupGuest {
    /// VM or CT.
    pub kind: Kind,
    /// The VMID.
    pub vmid: u32,
    /// The exported file (for messages).
    pub file: String,
    /// Its parsed config.
    pub config: GuestConfig,
}

/// Reads the source node's guest configs: the good ones, and one line per refused file
/// (`file:line: why`, or an id that is not a number).
pub fn read_guests(
    stage: &Stage,
    node: &SourceNode,
) -> Result<(Vec<BackupGuest>, Vec<String>), ApplyError> {
    let nodes = ap("etc/pve/nodes")?;
    let Some(dir) = child(&nodes, &node.raw) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (kind, files) in [(Kind::Qemu, &node.qemu), (Kind::Lxc, &node.lxc)] {
        let Some(d) = child(&dir, kind.folder().as_bytes()) else {
            continue;
        };
        if files.is_empty() {
            continue;
        }
        let Some(folder) = stage.dir(&d)? else {
            continue;
        };
        for f in files {
            let Some(p) = child(&d, f) else { continue };
            let shown = format!("/{}", escape_bytes(p.as_bytes()));
            let id = &f[..f.len() - ".conf".len()];
            let vmid = std::str::from_utf8(id)
                .ok()
                .filter(|s| {
                    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
                })
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|n| (100..=999_999_999).contains(n));
            let Some(vmid) = vmid else {
                bad.push(format!(
                    "{shown}: guest id `{}` is not a number from 100 to 999999999: skipped",
                    escape_bytes(id)
                ));
                continue;
            };
            let Some(bytes) = folder.read(f)? else {
                continue;
            };
            let Ok(text) = String::from_utf8(bytes) else {
                bad.push(format!("{shown}: not UTF-8 text: skipped"));
                continue;
            };
            match GuestConfig::parse(kind, &text) {
                Ok(config) => good.push(BackupGuest {
                    kind,
                    vmid,
                    file: shown,
                    config,
                }),
                Err(e) => bad.push(format!("{shown}:{}: {}: skipped", e.line, e.reason)),
            }
        }
    }
    good.sort_by_key(|g| (g.kind, g.vmid));
    Ok((good, bad))
}

/// What the cluster holds, read once.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// VMID → (kind, node).
    pub guests: BTreeMap<u32, (String, String)>,
    /// Storage → its volumes (`Err`: the storage is not on this node, or reading failed: the
    /// message).
    pub volumes: BTreeMap<String, Result<BTreeSet<String>, String>>,
    /// The current config of each backup guest that exists on this node (`Err`: reading it
    /// failed).
    pub configs: BTreeMap<u32, Result<serde_json::Value, String>>,
}

impl Live {
    /// Reads the cluster's guests and the volumes of every storage `guests` name.
    ///
    /// # Errors
    /// Reading the guests failed.
    pub fn read(pvesh: &Pvesh<'_>, node: &str, guests: &[BackupGuest]) -> Result<Live, PveshError> {
        let mut live = Live::default();
        let res = pvesh.get_with("/cluster/resources", &[Param::new("type", "vm")])?;
        for r in res.as_array().into_iter().flatten() {
            let vmid = r["vmid"]
                .as_u64()
                .or_else(|| r["vmid"].as_str().and_then(|s| s.parse().ok()));
            let (Some(vmid), Some(kind), Some(n)) = (vmid, r["type"].as_str(), r["node"].as_str())
            else {
                continue;
            };
            if let Ok(vmid) = u32::try_from(vmid) {
                live.guests.insert(vmid, (kind.to_string(), n.to_string()));
            }
        }
        let storages: BTreeSet<String> = guests
            .iter()
            .flat_map(|g| volumes_of(g).into_iter().map(|(_, v)| v))
            .filter_map(|v| v.split_once(':').map(|(s, _)| s.to_string()))
            .collect();
        for g in guests {
            let here = live
                .guests
                .get(&g.vmid)
                .is_some_and(|(k, n)| k == g.kind.api() && n == node);
            if here {
                let path = format!("/nodes/{node}/{}/{}/config", g.kind.api(), g.vmid);
                let r = pvesh.get(&path).map_err(|e| e.to_string());
                live.configs.insert(g.vmid, r);
            }
        }
        for s in storages {
            let r = match pvesh.get(&format!("/nodes/{node}/storage/{s}/content")) {
                Ok(v) => Ok(v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["volid"].as_str().map(str::to_string))
                    .collect()),
                Err(e) if e.is_not_found() => {
                    Err(format!("storage {s} does not exist on this node"))
                }
                Err(e) => Err(format!("reading storage {s} failed: {}", e.message())),
            };
            live.volumes.insert(s, r);
        }
        Ok(live)
    }

    /// `None` when `volid` is on this node's storages, else why not.
    fn missing(&self, volid: &str) -> Option<String> {
        let storage = volid.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match self.volumes.get(storage) {
            Some(Ok(set)) if set.contains(volid) => None,
            Some(Ok(_)) => Some(format!("volume {volid} not found on storage {storage}")),
            Some(Err(why)) => Some(format!("volume {volid}: {why}")),
            None => Some(format!("volume {volid}: storage {storage} not read")),
        }
    }
}

/// The volume keys of a guest's current configuration: (key, volume).
fn volumes_of(g: &BackupGuest) -> Vec<(String, String)> {
    g.config
        .current()
        .props()
        .filter(|(k, _)| guest::is_volume_key(g.kind, k))
        .filter_map(|(k, v)| guest::volume_of(g.kind, v).map(|vol| (k.to_string(), vol)))
        .collect()
}

/// What is done with one guest.
#[derive(Clone, Debug)]
pub enum Action {
    /// `set` on the existing guest.
    Set(Call),
    /// `create --vmid`, then `set` (when it has parameters).
    Create(Call, Option<Call>),
    /// Write the CT's config file (path, bytes).
    WriteCt(ArchivePath, Vec<u8>),
    /// Nothing (why).
    Nothing(String),
    /// Cannot be planned (why).
    Failed(String),
}

/// The plan for one guest.
#[derive(Clone, Debug)]
pub struct GuestPlan {
    /// `VM 100 (web01)`.
    pub label: String,
    /// What is done.
    pub action: Action,
    /// Manual work for the administrator.
    pub manual: Vec<String>,
    /// Information (snapshots not applied, …).
    pub notes: Vec<String>,
}

/// Plans one guest against the cluster's state, for this node `node`.
pub fn plan_guest(g: &BackupGuest, live: &Live, node: &str) -> GuestPlan {
    let kind = g.kind;
    let label = match g.config.display_name() {
        Some(n) => format!("{} {} ({})", kind.word(), g.vmid, n),
        None => format!("{} {}", kind.word(), g.vmid),
    };
    let mut manual = Vec::new();
    let mut notes = Vec::new();
    let snaps: Vec<String> = g
        .config
        .snapshots()
        .filter_map(|s| match &s.kind {
            guest::SectionKind::Snapshot(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    if !snaps.is_empty() {
        notes.push(format!(
            "{label}: snapshot sections not applied ({})",
            snaps.join(", ")
        ));
    }
    if g.config.pending().is_some() {
        notes.push(format!("{label}: pending changes not applied"));
    }
    let here = live.guests.get(&g.vmid);
    if let Some((k, n)) = here
        && (k != kind.api() || n != node)
    {
        manual.push(format!(
            "{label}: VMID {} is used by a {} on node {}: not touched",
            g.vmid,
            if k == "lxc" { "CT" } else { "VM" },
            escape_bytes(n.as_bytes())
        ));
        return GuestPlan {
            label,
            action: Action::Nothing("VMID used elsewhere".into()),
            manual,
            notes,
        };
    }
    let exists = here.is_some();
    let cur = g.config.current();
    let conf_path = format!("/etc/pve/nodes/{node}/{}/{}.conf", kind.folder(), g.vmid);
    if kind == Kind::Lxc && !exists {
        // The API cannot create a CT without a template: the file itself is written.
        let text = g
            .config
            .current_text_without(&["parent", "lock", "digest", "snaptime"]);
        for (k, vol) in volumes_of(g) {
            if let Some(why) = live.missing(&vol) {
                manual.push(format!(
                    "{label}: {k}: {why}: restore the volume (e.g. pct restore) before starting the CT"
                ));
            }
        }
        let path = ap(&format!("{ETC_PVE}/nodes/{node}/lxc/{}.conf", g.vmid));
        return match path {
            Ok(p) => GuestPlan {
                label,
                action: Action::WriteCt(p, text.into_bytes()),
                manual,
                notes,
            },
            Err(e) => GuestPlan {
                label,
                action: Action::Nothing(e.to_string()),
                manual,
                notes,
            },
        };
    }
    let current = match live.configs.get(&g.vmid) {
        Some(Ok(v)) => Some(v.clone()),
        Some(Err(e)) => {
            return GuestPlan {
                label: label.clone(),
                action: Action::Failed(format!("reading its current config failed: {e}")),
                manual,
                notes,
            };
        }
        None => None,
    };
    let now = |k: &str| current.as_ref().and_then(|c| c.get(k)).map(json_text);
    let mut params = Vec::new();
    let description = cur.description();
    let mut internal = Vec::new();
    for (k, v) in cur.props() {
        match guest::denied(kind, k) {
            Some(Denied::Internal) => {
                internal.push(k.to_string());
                continue;
            }
            Some(Denied::ReadOnly) => {
                let here = now(k).unwrap_or_else(|| "0".into());
                if exists && here != v {
                    manual.push(format!(
                        "{label}: {k} is {v} in the backup, {here} here: fixed at creation, not changed (re-create the CT from a backup to change it)"
                    ));
                }
                continue;
            }
            Some(Denied::RawLxc) => continue,
            None => {}
        }
        if k == "description" {
            continue;
        }
        if guest::is_volume_key(kind, k)
            && let Some(vol) = guest::volume_of(kind, v)
            && let Some(why) = live.missing(&vol)
        {
            manual.push(format!(
                "{label}: {k} left out ({why}): restore the volume, then `{} set {} --{k} {v}`",
                if kind == Kind::Qemu { "qm" } else { "pct" },
                g.vmid
            ));
            continue;
        }
        params.push(if SECRET_KEYS.contains(&k) {
            Param::secret(k, v)
        } else {
            Param::new(k, v)
        });
    }
    let desc_value = if description.is_empty() {
        cur.get("description").map(str::to_string)
    } else {
        Some(description)
    };
    if let Some(d) = desc_value {
        params.push(Param::text("description", d));
    }
    let raw_here: Vec<(String, String)> = current
        .as_ref()
        .and_then(|c| c.get("lxc"))
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p.get(0)?.as_str()?.to_string(),
                p.get(1)?.as_str()?.to_string(),
            ))
        })
        .collect();
    for (k, v) in cur.raw_keys() {
        if raw_here.iter().any(|(a, b)| a == k && b == v) {
            continue;
        }
        manual.push(format!(
            "{label}: raw key `{k}: {v}` not applied (the API takes no lxc.* keys): add it to {conf_path} by hand"
        ));
    }
    if !internal.is_empty() {
        notes.push(format!(
            "{label}: {} left out (written by PVE itself)",
            internal.join(", ")
        ));
    }
    if let Some(c) = &current {
        // What the guest already has is not sent again (a second run makes no call).
        params.retain(|p| {
            let here = c.get(&p.key).map(json_text);
            let here = if p.key == "description" {
                here.map(|d| d.trim_end_matches('\n').to_string())
            } else {
                here
            };
            here.as_deref() != Some(p.value.as_str())
        });
    }
    let set_path = format!("/nodes/{node}/{}/{}/config", kind.api(), g.vmid);
    let set = (!params.is_empty()).then(|| Call::new(Method::Set, set_path, params));
    let action = if exists {
        match set {
            Some(c) => Action::Set(c),
            None => Action::Nothing("already as in the backup".into()),
        }
    } else {
        Action::Create(
            Call::new(
                Method::Create,
                format!("/nodes/{node}/qemu"),
                vec![Param::new("vmid", g.vmid.to_string())],
            ),
            set,
        )
    };
    GuestPlan {
        label,
        action,
        manual,
        notes,
    }
}

impl GuestPlan {
    /// Lines for the plan and the dry run.
    pub fn lines(&self) -> Vec<String> {
        match &self.action {
            Action::Set(c) => vec![format!("{}: {c}", self.label)],
            Action::Create(c, s) => {
                let mut v = vec![format!("{}: missing here: {c}", self.label)];
                if let Some(s) = s {
                    v.push(format!("{}: {s}", self.label));
                }
                v
            }
            Action::WriteCt(p, _) => vec![format!(
                "{}: missing here: write {} (the API cannot create a CT without a template)",
                self.label,
                clusterfs::shown(p)
            )],
            Action::Nothing(why) => vec![format!("{}: nothing to do ({why})", self.label)],
            Action::Failed(why) => vec![format!("{}: {why}", self.label)],
        }
    }
}

/// The source, its guests and the refused files, from the stage.
struct Read {
    local: String,
    source: Source,
}

fn read_source(ctx_stage: &Stage, host: &Host) -> Result<Result<Read, String>, ApplyError> {
    let Some(local) = local_node(host) else {
        return Ok(Err(
            "this node's name is unknown (no /etc/hostname in the root)".into(),
        ));
    };
    let nodes = source_nodes(ctx_stage)?;
    Ok(Ok(Read {
        source: choose_source(nodes, &local),
        local,
    }))
}

/// The to-do of a run whose host actions are deferred (an alternate root).
const DEFERRED_TODO: &str = "host actions are deferred: the backup's guests can only be compared with and re-created on the running node; run the restore there with --cluster-mode safe (pve.safe.guests)";

/// Why the API part does not run here, if it does not.
fn api_gate(host: &Host) -> Option<String> {
    if host.actions == HostActions::Defer {
        return Some("host actions are deferred: no API call is made".into());
    }
    let cancel = CancelToken::new();
    if !Pvesh::new(host, &cancel).available() {
        return Some("`pvesh` is not available on this host (not on PATH)".into());
    }
    None
}

impl Applier for SafeGuests {
    fn name(&self) -> &'static str {
        "pve-safe-guests"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[CATEGORY]
    }

    fn order(&self) -> u16 {
        640
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[SAFE_GUESTS, SAFE_SOURCE_NODE]
    }

    fn reads_exported(&self) -> bool {
        true
    }

    fn also_reads(&self) -> &'static [&'static str] {
        crate::safe_source::ALSO_READS
    }

    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let mut plan = ApplierPlan::default();
        if not_safe(ctx.plan) {
            return Ok(plan);
        }
        let refused = match (ctx.preset)(SAFE_GUESTS.id) {
            Some(a) => !yes_no(SAFE_GUESTS.id, &a)?,
            None => false,
        };
        let source = crate::safe_source::open(ctx.stage)?;
        plan.actions.extend(source.note());
        let read = match read_source(source.stage(), ctx.host)? {
            Ok(r) => r,
            Err(why) => {
                plan.actions.push(format!("skipped: {why}"));
                return Ok(plan);
            }
        };
        let node = match &read.source {
            Source::Nothing => {
                plan.actions
                    .push("the backup's /etc/pve holds no VM or CT configs".into());
                return Ok(plan);
            }
            Source::Local(n) => Some(n.clone()),
            Source::Only(n, w) => {
                plan.actions.push(format!("warning: {w}"));
                Some(n.clone())
            }
            Source::Ask(nodes) => {
                let preset = (ctx.preset)(SAFE_SOURCE_NODE.id);
                let chosen = match &preset {
                    Some(a) => pick_source(nodes, &a.value)?,
                    None => None,
                };
                plan.actions.push(format!(
                    "the backup's guests are under {} other nodes; asked which one is applied to {} (pve.safe.source-node)",
                    nodes.len(),
                    escape_bytes(read.local.as_bytes())
                ));
                plan.questions.push(Ask {
                    details: nodes
                        .iter()
                        .enumerate()
                        .map(|(i, n)| n.line(i + 1))
                        .collect(),
                    ..countdown(SAFE_SOURCE_NODE, "skip", Vec::new())
                });
                chosen.map(|i| nodes[i].clone())
            }
        };
        if ctx.host.actions == HostActions::Defer {
            // Nothing can be checked or applied without the node's API: no question.
            plan.questions.clear();
            plan.actions.push(DEFERRED_TODO.into());
            return Ok(plan);
        }
        plan.questions
            .insert(0, countdown(SAFE_GUESTS, "no", Vec::new()));
        let Some(node) = node else {
            return Ok(plan);
        };
        let (guests, bad) = read_guests(source.stage(), &node)?;
        for b in &bad {
            plan.actions.push(format!("warning: {b}"));
        }
        plan.actions.push(format!(
            "{} guest configs of node {} applied to this node {} only if pve.safe.guests = yes",
            guests.len(),
            node.shown,
            escape_bytes(read.local.as_bytes())
        ));
        if refused {
            plan.actions
                .push(format!("not applied ({} = no)", SAFE_GUESTS.id));
            return Ok(plan);
        }
        if let Some(why) = api_gate(ctx.host) {
            plan.actions.push(format!("skipped: {why}"));
            return Ok(plan);
        }
        let cancel = CancelToken::new();
        let pvesh = Pvesh::new(ctx.host, &cancel);
        let live = match Live::read(&pvesh, &read.local, &guests) {
            Ok(l) => l,
            Err(e) => {
                plan.actions
                    .push(format!("reading the cluster's guests failed: {e}"));
                return Ok(plan);
            }
        };
        let mut lines = Vec::new();
        for g in &guests {
            let gp = plan_guest(g, &live, &read.local);
            for l in gp.lines() {
                plan.actions.push(l.clone());
                lines.push(l);
            }
            for m in &gp.manual {
                plan.actions.push(format!("manual: {m}"));
            }
            match &gp.action {
                Action::Set(c) => plan.changes.push(PlannedChange::call(
                    &c.path,
                    ChangeKind::Set,
                    c.to_string(),
                    None,
                    None,
                )),
                Action::Create(c, s) => {
                    plan.changes.push(PlannedChange::call(
                        &format!("{}/{}", c.path, g.vmid),
                        ChangeKind::Create,
                        c.to_string(),
                        None,
                        None,
                    ));
                    if let Some(s) = s {
                        plan.changes.push(PlannedChange::call(
                            &s.path,
                            ChangeKind::Set,
                            s.to_string(),
                            None,
                            None,
                        ));
                    }
                }
                Action::WriteCt(p, bytes) => {
                    plan.files.push(p.clone());
                    plan.changes
                        .push(PlannedChange::file(&clusterfs::shown(p), None, Some(bytes)));
                }
                Action::Nothing(_) | Action::Failed(_) => {}
            }
        }
        plan.details = json!({ "source_node": node.shown, "node": read.local, "guests": lines, "refused": bad });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        if not_safe(ctx.plan) {
            return Ok(Vec::new());
        }
        let source = crate::safe_source::open(ctx.stage)?;
        // Reported for the category the guests were read from.
        let category = source.category();
        let skipped =
            |reason: String| Ok(vec![Outcome::new(category, Status::Skipped { reason }, "")]);
        let read = match read_source(source.stage(), ctx.host)? {
            Ok(r) => r,
            Err(why) => return skipped(why),
        };
        let local = read.local.clone();
        let details: Vec<String> = match &read.source {
            Source::Nothing => return Ok(Vec::new()),
            Source::Local(n) | Source::Only(n, _) => vec![n.line(1)],
            Source::Ask(nodes) => nodes
                .iter()
                .enumerate()
                .map(|(i, n)| n.line(i + 1))
                .collect(),
        };
        if ctx.host.actions == HostActions::Defer {
            return Ok(vec![Outcome::new(
                category,
                Status::Deferred {
                    todo: DEFERRED_TODO.into(),
                },
                "",
            )]);
        }
        let a = ctx.prompter.ask(&countdown(SAFE_GUESTS, "no", details))?;
        if !yes_no(SAFE_GUESTS.id, &a)? {
            return skipped(format!("not applied ({} = no)", SAFE_GUESTS.id));
        }
        let mut notes = Vec::new();
        let node = match read.source {
            Source::Nothing => return Ok(Vec::new()),
            Source::Local(n) => n,
            Source::Only(n, w) => {
                ctx.prompter.say(Level::Warning, &w);
                notes.push(w);
                n
            }
            Source::Ask(nodes) => {
                ctx.prompter.say(
                    Level::Warning,
                    &format!(
                        "VM/CT configs in this backup are stored under other node names; this node is {}",
                        escape_bytes(local.as_bytes())
                    ),
                );
                let a = ctx.prompter.ask(&countdown(
                    SAFE_SOURCE_NODE,
                    "skip",
                    nodes
                        .iter()
                        .enumerate()
                        .map(|(i, n)| n.line(i + 1))
                        .collect(),
                ))?;
                match pick_source(&nodes, &a.value)? {
                    Some(i) => nodes[i].clone(),
                    None => {
                        return skipped(format!(
                            "no source node chosen (pve.safe.source-node = {}): the backup's guests are under {}; none applied",
                            a.value.trim(),
                            nodes
                                .iter()
                                .map(|n| n.shown.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        };
        if let Some(why) = api_gate(ctx.host) {
            return skipped(why);
        }
        let (guests, bad) = read_guests(source.stage(), &node)?;
        for b in &bad {
            ctx.prompter.say(Level::Warning, b);
        }
        let pvesh = Pvesh::new(ctx.host, ctx.cancel);
        let live = match Live::read(&pvesh, &local, &guests) {
            Ok(l) => l,
            Err(e) => {
                return Ok(vec![Outcome::new(
                    category,
                    Status::Failed {
                        error: format!("reading the cluster's guests failed: {e}"),
                    },
                    "",
                )]);
            }
        };
        let mounted = ctx.host.mounts.is_mount_point(&ctx.host.root.join(ETC_PVE));
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut manual: Vec<String> = Vec::new();
        for g in &guests {
            if ctx.cancel.is_cancelled() {
                failed.push("cancelled: the remaining guests were not applied".to_string());
                break;
            }
            let gp = plan_guest(g, &live, &local);
            manual.extend(gp.manual.iter().cloned());
            notes.extend(gp.notes.iter().cloned());
            match &gp.action {
                Action::Nothing(_) => {}
                Action::Failed(why) => failed.push(format!("{}: {why}", gp.label)),
                Action::Set(c) => match pvesh.call(c) {
                    Ok(_) => done.push(format!("{}: set", gp.label)),
                    Err(e) => failed.push(format!("{}: {e}", gp.label)),
                },
                Action::Create(c, s) => match pvesh.call(c) {
                    Err(e) => failed.push(format!("{}: {e}", gp.label)),
                    Ok(_) => match s.as_ref().map(|s| pvesh.call(s)) {
                        None | Some(Ok(_)) => done.push(format!("{}: created", gp.label)),
                        Some(Err(e)) => failed.push(format!(
                            "{}: created, but its config was not set: {e}",
                            gp.label
                        )),
                    },
                },
                Action::WriteCt(p, bytes) => {
                    if !mounted {
                        manual.push(format!(
                            "{}: not written: {} is not a mount point (pmxcfs is not running)",
                            gp.label,
                            ctx.host.root.join(ETC_PVE).display()
                        ));
                        continue;
                    }
                    let mut changes = Vec::new();
                    let r =
                        clusterfs::write_changes(ctx.root, p, bytes.clone(), None, &mut changes)
                            .and_then(|()| {
                                for c in &changes {
                                    clusterfs::apply_change(ctx.root, c)?;
                                }
                                Ok(())
                            });
                    match r {
                        Ok(()) => done.push(format!(
                            "{}: config file written to {} (no API call: a CT is created from a template)",
                            gp.label,
                            clusterfs::shown(p)
                        )),
                        Err(e) => failed.push(format!("{}: {e}", gp.label)),
                    }
                }
            }
        }
        for m in &manual {
            ctx.prompter
                .say(Level::Warning, &format!("manual work: {m}"));
        }
        let mut detail = format!(
            "source node {} applied to {}: {} done, {} failed",
            node.shown,
            escape_bytes(local.as_bytes()),
            done.len(),
            failed.len() + bad.len()
        );
        for (title, list) in [
            ("done", &done),
            ("failed", &failed),
            ("refused", &bad),
            ("manual work", &manual),
            ("notes", &notes),
        ] {
            if !list.is_empty() {
                detail.push_str(&format!("; {title}: {}", list.join("; ")));
            }
        }
        let status = if failed.is_empty() && bad.is_empty() {
            Status::Applied
        } else if done.is_empty() {
            Status::Failed {
                error: failed
                    .iter()
                    .chain(&bad)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        } else {
            Status::PartlyApplied
        };
        Ok(vec![Outcome::new(category, status, detail)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &[u8], q: usize, l: usize) -> SourceNode {
        SourceNode {
            raw: name.to_vec(),
            shown: escape_bytes(name),
            qemu: vec![b"100.conf".to_vec(); q],
            lxc: vec![b"200.conf".to_vec(); l],
        }
    }

    #[test]
    fn the_source_is_this_node_the_only_one_or_asked() {
        let a = node(b"a", 2, 1);
        let b = node(b"b", 0, 3);
        let me = node(b"pve1", 1, 0);
        assert_eq!(
            choose_source(vec![a.clone(), me.clone()], "pve1"),
            Source::Local(me)
        );
        assert!(
            matches!(choose_source(vec![a.clone()], "pve1"), Source::Only(n, w) if n == a && w.contains("node a"))
        );
        assert_eq!(choose_source(Vec::new(), "pve1"), Source::Nothing);
        let ask = choose_source(vec![a.clone(), b.clone()], "pve1");
        assert_eq!(ask, Source::Ask(vec![a.clone(), b.clone()]));
        assert_eq!(a.line(1), "[1] a (qemu=2, lxc=1)");
        assert_eq!(b.line(2), "[2] b (qemu=0, lxc=3)");
    }

    #[test]
    fn source_answers() {
        let nodes = [node(b"a", 1, 0), node(b"b\x1b", 1, 0)];
        assert_eq!(pick_source(&nodes, "0").unwrap(), None);
        assert_eq!(pick_source(&nodes, "skip").unwrap(), None);
        assert_eq!(pick_source(&nodes, "").unwrap(), None);
        assert_eq!(pick_source(&nodes, "2").unwrap(), Some(1));
        assert_eq!(pick_source(&nodes, "a").unwrap(), Some(0));
        assert_eq!(pick_source(&nodes, "b\\x1b").unwrap(), Some(1));
        let e = pick_source(&nodes, "3").unwrap_err().to_string();
        assert!(
            e.contains("3 is not in the list (1 to 2, or 0 to skip)"),
            "{e}"
        );
        let e = pick_source(&nodes, "c\x07").unwrap_err().to_string();
        assert!(
            e.contains("`c\\x07` is not a node of the backup (a, b\\x1b)"),
            "{e}"
        );
    }
}
