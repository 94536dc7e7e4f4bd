//! The restore plan: which categories go where, which decisions it needs, which services it
//! stops. Building a plan is pure (no I/O); see [`build`].

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use proxsave_archive::dirfd;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::pathmatch::{PatternError, Selector};
use proxsave_categories::{
    Analysis, BackupType, Category, Handling, HostRole, Kind, Mode, by_id, categories_for_mode,
    registry,
};
use serde::{Deserialize, Serialize};

/// SAFE or RECOVERY for the PVE cluster database of a cluster backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// Do not write `config.db`; export the cluster files instead.
    Safe,
    /// Restore the cluster database (the node must be isolated).
    Recovery,
}

impl ClusterMode {
    /// Parses `safe` / `recovery`.
    pub fn parse(s: &str) -> Option<ClusterMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "safe" => Some(ClusterMode::Safe),
            "recovery" => Some(ClusterMode::Recovery),
            _ => None,
        }
    }
}

/// How PBS objects are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PbsBehavior {
    /// Merge into an existing PBS.
    Merge,
    /// Clean 1:1 on a fresh PBS install.
    Clean,
}

impl PbsBehavior {
    /// Parses `merge` / `clean`.
    pub fn parse(s: &str) -> Option<PbsBehavior> {
        match s.trim().to_ascii_lowercase().as_str() {
            "merge" => Some(PbsBehavior::Merge),
            "clean" => Some(PbsBehavior::Clean),
            _ => None,
        }
    }
}

/// Where a category's files go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Into the target root.
    Normal,
    /// Into the private stage folder, for an applier.
    Staged,
    /// Into the export folder only.
    Export,
}

impl Tier {
    /// `normal`, `staged`, `export` (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Normal => "normal",
            Tier::Staged => "staged",
            Tier::Export => "export",
        }
    }
}

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The mode (required).
    pub mode: Option<Mode>,
    /// For CUSTOM: category ids and/or paths/globs (single-file restore).
    pub categories: Vec<String>,
    /// Cluster SAFE/RECOVERY, when the plan needs it.
    pub cluster_mode: Option<ClusterMode>,
    /// PBS merge/clean, when the plan needs it.
    pub pbs_behavior: Option<PbsBehavior>,
}

/// A decision the plan needs and the request lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The restore mode.
    Mode,
    /// The categories of a CUSTOM restore.
    Categories,
    /// SAFE or RECOVERY.
    ClusterMode,
    /// Merge or clean.
    PbsBehavior,
}

impl Decision {
    /// The flag that gives it.
    pub fn flag(self) -> &'static str {
        match self {
            Decision::Mode => "--mode",
            Decision::Categories => "--categories",
            Decision::ClusterMode => "--cluster-mode",
            Decision::PbsBehavior => "--pbs-behavior",
        }
    }

    /// The answers-file key that gives it.
    pub fn key(self) -> &'static str {
        match self {
            Decision::Mode => "mode",
            Decision::Categories => "categories",
            Decision::ClusterMode => "cluster_mode",
            Decision::PbsBehavior => "pbs_behavior",
        }
    }
}

/// Why no plan could be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A decision is needed.
    #[error("a decision is needed: {} (or `{}` in the answers file)", .0.flag(), .0.key())]
    Missing(Decision),
    /// `--categories` named something that is neither a category nor a path.
    #[error("{0}")]
    BadSelection(String),
    /// Nothing to restore.
    #[error("nothing to restore: {0}")]
    Empty(String),
    /// `--categories` named a known category the backup does not hold.
    #[error("category {0} is not in this backup")]
    NotInBackup(String),
}

impl From<PatternError> for PlanError {
    fn from(e: PatternError) -> Self {
        PlanError::BadSelection(e.to_string())
    }
}

/// How the host and the backup relate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Compatibility {
    /// Same role (or the backup's role is unknown).
    Compatible,
    /// The host's role could not be detected.
    UnknownHost {
        /// The warning.
        message: String,
    },
    /// The roles share PVE or PBS but differ.
    Partial {
        /// The warning.
        message: String,
    },
    /// No shared role.
    Incompatible {
        /// The warning.
        message: String,
    },
}

impl Compatibility {
    /// The warning to show, if any.
    pub fn warning(&self) -> Option<&str> {
        match self {
            Compatibility::Compatible => None,
            Compatibility::UnknownHost { message }
            | Compatibility::Partial { message }
            | Compatibility::Incompatible { message } => Some(message),
        }
    }
}

fn role_name(r: HostRole) -> &'static str {
    match r {
        HostRole::Pve => "PVE",
        HostRole::Pbs => "PBS",
        HostRole::Dual => "PVE+PBS",
        HostRole::Unknown => "unknown",
    }
}

/// Compares the host's role with the backup's type.
pub fn compatibility(host: HostRole, backup: BackupType) -> Compatibility {
    let b = backup.role();
    if host == HostRole::Unknown {
        return Compatibility::UnknownHost {
            message: format!(
                "cannot detect the current system type (no PVE or PBS found); the backup is a {} backup",
                role_name(b)
            ),
        };
    }
    if b == HostRole::Unknown || b == host {
        return Compatibility::Compatible;
    }
    if !host.overlaps(b) {
        return Compatibility::Incompatible {
            message: format!(
                "incompatible backup: this is a {} backup but you are running on a {} system",
                role_name(b),
                role_name(host)
            ),
        };
    }
    Compatibility::Partial {
        message: format!(
            "partial compatibility: the backup targets {}, the current system is {}; categories of the other role are exported, not written",
            role_name(b),
            role_name(host)
        ),
    }
}

/// Detects the role of the system under `root` from the registered domains' role markers
/// (paths such as a cluster filesystem's mount point or a product's binaries). Reads nothing
/// else, and only through a descriptor of the root: symbolic links are resolved inside it as
/// the system itself would once booted ([`proxsave_archive::dirfd::resolve_in_root`]), so a
/// link pointing outside the root counts only if its target exists *inside* the root. An
/// unreadable root is [`HostRole::Unknown`].
pub fn detect_role(root: &Path) -> HostRole {
    match dirfd::open_root(root) {
        Ok(fd) => detect_role_at(fd.as_fd()),
        Err(_) => HostRole::Unknown,
    }
}

/// [`detect_role`] for an open root.
pub fn detect_role_at(root: BorrowedFd<'_>) -> HostRole {
    let exists = |p: &str| dirfd::stat_in_root(root, p.as_bytes()).is_ok();
    let mut pve = false;
    let mut pbs = false;
    for d in crate::domain::domains() {
        if d.role_markers().iter().any(|p| exists(p)) {
            match d.kind() {
                Kind::Pve => pve = true,
                Kind::Pbs => pbs = true,
                Kind::Common => {}
            }
        }
    }
    HostRole::from_parts(pve, pbs)
}

/// The first line of the target system's `etc/hostname`, read through a descriptor of the root
/// (links resolved inside it, as [`detect_role`] does); `None` when absent, not a regular file,
/// larger than 4 KiB or empty.
pub fn host_name(root: &Path) -> Option<String> {
    let fd = dirfd::open_root(root).ok()?;
    let bytes = dirfd::read_in_root(fd.as_fd(), b"etc/hostname", 4096).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let first = text.lines().next()?.trim();
    (!first.is_empty()).then(|| first.to_string())
}

/// A category placed in a tier.
#[derive(Clone, Debug, Serialize)]
pub struct Placed {
    /// The category.
    pub category: &'static Category,
    /// Where its files go.
    pub tier: Tier,
    /// Why it is not in its natural tier, if moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The plan.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The mode.
    pub mode: Mode,
    /// The host's role.
    pub host_role: HostRole,
    /// The backup's type.
    pub backup_type: BackupType,
    /// The backed-up host's name (backup metadata, else manifest), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_hostname: Option<String>,
    /// Host vs backup.
    pub compatibility: Compatibility,
    /// Selected categories with their tier, in registry order.
    pub categories: Vec<Placed>,
    /// Paths/globs given in `--categories` (single-file restore), if any.
    pub paths: Vec<String>,
    #[serde(skip)]
    selector: Option<Selector>,
    /// The archive holds the PVE cluster database.
    pub cluster_payload: bool,
    /// The backup comes from a cluster node (SAFE/RECOVERY applies).
    pub cluster_backup: bool,
    /// SAFE/RECOVERY, when it applied.
    pub cluster_mode: Option<ClusterMode>,
    /// The cluster database is written: the domain stops its services and lifts its mounts.
    pub needs_cluster_restore: bool,
    /// PBS merge/clean, when it applied.
    pub pbs_behavior: Option<PbsBehavior>,
    /// PBS services are stopped.
    pub needs_pbs_services: bool,
    /// Services stopped before writing, in stop order.
    pub services_to_stop: Vec<&'static str>,
    /// Mount points unmounted before writing.
    pub unmounts: Vec<&'static str>,
    /// Things the user should read before confirming.
    pub warnings: Vec<String>,
    /// Export-tier categories whose files also go to the private stage, for the appliers
    /// that read exported categories ([`crate::applier::Applier::reads_exported`]); set by
    /// the engine ([`Plan::stage_exported`]), empty in a plan fresh from [`build`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exported_staged: Vec<&'static str>,
}

/// PBS categories whose application depends on merge/clean.
const PBS_BEHAVIOR_CATEGORIES: [&str; 7] = [
    "pbs_host",
    "datastore_pbs",
    "pbs_remotes",
    "pbs_jobs",
    "pbs_notifications",
    "pbs_access_control",
    "pbs_tape",
];

impl Plan {
    /// Categories in a tier.
    pub fn in_tier(&self, tier: Tier) -> impl Iterator<Item = &'static Category> + '_ {
        self.categories
            .iter()
            .filter(move |p| p.tier == tier)
            .map(|p| p.category)
    }

    /// True if the category is in the plan (any tier).
    pub fn has(&self, id: &str) -> bool {
        self.categories.iter().any(|p| p.category.id == id)
    }

    /// The same plan, with the export-tier categories among `ids` also staged (privately,
    /// for an applier that reads them; see [`Plan::exported_staged`]). Ids of categories not
    /// in the export tier of this plan are ignored.
    pub fn stage_exported(mut self, ids: &[&str]) -> Plan {
        let mut staged: Vec<&'static str> = self
            .categories
            .iter()
            .filter(|p| p.tier == Tier::Export && ids.contains(&p.category.id))
            .map(|p| p.category.id)
            .collect();
        staged.sort_unstable();
        staged.dedup();
        self.exported_staged = staged;
        self
    }

    /// True when `path` reaches the stage only because an exported category is also staged
    /// for an applier that reads it ([`Plan::stage_exported`]): the user sees it exported.
    pub fn staged_only_as_export(&self, path: &ArchivePath) -> bool {
        let mut via_export = false;
        for p in &self.categories {
            if !p.category.matches(path) {
                continue;
            }
            match p.tier {
                Tier::Staged => return false,
                Tier::Export if self.exported_staged.contains(&p.category.id) => via_export = true,
                _ => {}
            }
        }
        via_export
    }

    /// The tiers an archive entry goes to (empty: not restored).
    pub fn route(&self, path: &ArchivePath) -> Vec<Tier> {
        let mut tiers: Vec<Tier> = Vec::new();
        if let Some(sel) = &self.selector {
            if !sel.matches(path) {
                return tiers;
            }
            // Single-file restore: the tier of every category holding the path, or the
            // root when no category does (the user named the file explicitly).
            let mut any = false;
            for c in registry() {
                if c.matches(path) {
                    any = true;
                    let tier = self.tier_of(c);
                    tiers.push(tier);
                    if tier == Tier::Export && self.exported_staged.contains(&c.id) {
                        tiers.push(Tier::Staged);
                    }
                }
            }
            if !any {
                tiers.push(Tier::Normal);
            }
        } else {
            for p in &self.categories {
                if p.category.matches(path) {
                    tiers.push(p.tier);
                    if p.tier == Tier::Export && self.exported_staged.contains(&p.category.id) {
                        tiers.push(Tier::Staged);
                    }
                }
            }
        }
        tiers.sort();
        tiers.dedup();
        tiers
    }

    fn tier_of(&self, c: &'static Category) -> Tier {
        tier_for(c, self.host_role, self.cluster_mode).0
    }

    /// Display paths of what will be restored (patterns, sorted, deduplicated).
    pub fn display_paths(&self) -> Vec<String> {
        if !self.paths.is_empty() {
            return self
                .paths
                .iter()
                .map(|p| format!("/{}", p.trim_start_matches(['.', '/'])))
                .collect();
        }
        let mut out: Vec<String> = self
            .categories
            .iter()
            .flat_map(|p| p.category.patterns.iter().map(|pat| pat.display()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A category kind as a word: `PVE`, `PBS`, `common`.
fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Pve => "PVE",
        Kind::Pbs => "PBS",
        Kind::Common => "common",
    }
}

/// `a PVE` / `an unknown`: the indefinite article for a word as spoken.
fn article(word: &str) -> String {
    let vowel = word.chars().next().is_some_and(|c| "aeiouAEIO".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

fn tier_for(
    c: &'static Category,
    host: HostRole,
    cluster: Option<ClusterMode>,
) -> (Tier, Option<String>) {
    if c.handling == Handling::ExportOnly {
        return (Tier::Export, None);
    }
    if !c.fits(host) {
        return (
            Tier::Export,
            Some(if host == HostRole::Unknown {
                format!(
                    "exported only: {} category, and this host's type is unknown",
                    article(kind_label(c.kind))
                )
            } else {
                format!(
                    "exported only: {} category on {} host",
                    article(kind_label(c.kind)),
                    article(role_name(host))
                )
            }),
        );
    }
    if c.flags.cluster_db && cluster == Some(ClusterMode::Safe) {
        return (
            Tier::Export,
            Some("SAFE cluster restore: exported, config.db is not written".into()),
        );
    }
    if c.flags.fstab {
        return (
            Tier::Staged,
            Some("staged: /etc/fstab is never written raw (UUIDs differ on a new install)".into()),
        );
    }
    match c.handling {
        Handling::Staged => (Tier::Staged, None),
        _ => (Tier::Normal, None),
    }
}

/// Builds the plan.
///
/// `has_applier` tells whether a staged category has an applier (staged categories without
/// one only reach the stage folder, so they need no service stop).
///
/// # Errors
/// [`PlanError::Missing`] for a decision the request lacks (mode, CUSTOM categories,
/// SAFE/RECOVERY for a cluster backup, PBS merge/clean), [`PlanError::BadSelection`] for an
/// unknown category or bad path, [`PlanError::Empty`] when nothing would be restored.
pub fn build(
    analysis: &Analysis,
    host: HostRole,
    request: &Request,
    has_applier: &dyn Fn(&str) -> bool,
) -> Result<Plan, PlanError> {
    let mode = request.mode.ok_or(PlanError::Missing(Decision::Mode))?;
    let mut selected: Vec<&'static Category> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    if mode == Mode::Custom {
        if request.categories.is_empty() {
            return Err(PlanError::Missing(Decision::Categories));
        }
        for item in &request.categories {
            let item = item.trim();
            if let Some(c) = by_id(item) {
                if !analysis.has(c.id) {
                    return Err(PlanError::NotInBackup(c.id.to_string()));
                }
                if !selected.iter().any(|s| s.id == c.id) {
                    selected.push(c);
                }
            } else if item.contains('/') || item.contains('*') || item.contains('?') {
                paths.push(item.to_string());
            } else {
                return Err(PlanError::BadSelection(format!(
                    "`{item}` is neither a category id nor a path (paths contain a '/', e.g. /etc/hosts)"
                )));
            }
        }
        if !selected.is_empty() && !paths.is_empty() {
            return Err(PlanError::BadSelection(
                "give either category ids or paths in --categories, not both".into(),
            ));
        }
    } else {
        selected = categories_for_mode(mode, host, &analysis.available);
    }
    let selector = if paths.is_empty() {
        None
    } else {
        Some(Selector::new(&paths)?)
    };
    if selector.is_some() {
        // The categories touched are those holding any selected path; they decide services.
        selected = registry()
            .iter()
            .copied()
            .filter(|c| analysis.has(c.id))
            .collect();
    }
    if selected.is_empty() && selector.is_none() {
        return Err(PlanError::Empty(format!(
            "the {mode} mode selects no category available in this backup"
        )));
    }
    selected.sort_by_key(|c| c.order);

    let cluster_backup = analysis.is_cluster_backup();
    let writes_cluster_db = selected.iter().any(|c| c.flags.cluster_db && c.fits(host))
        && (selector.is_none()
            || paths.iter().any(|p| {
                let p = p.trim_start_matches(['.', '/']);
                selected
                    .iter()
                    .filter(|c| c.flags.cluster_db)
                    .flat_map(|c| c.patterns.iter())
                    .any(|pat| {
                        let d = pat.display();
                        let d = d.trim_start_matches('/').trim_end_matches('/');
                        p.starts_with(d) || d.starts_with(p)
                    })
            }));
    let cluster_mode = if writes_cluster_db && cluster_backup {
        Some(
            request
                .cluster_mode
                .ok_or(PlanError::Missing(Decision::ClusterMode))?,
        )
    } else {
        None
    };
    let needs_pbs_choice = host.supports_pbs()
        && selector.is_none()
        && selected
            .iter()
            .any(|c| PBS_BEHAVIOR_CATEGORIES.contains(&c.id));
    let pbs_behavior = if needs_pbs_choice {
        Some(
            request
                .pbs_behavior
                .ok_or(PlanError::Missing(Decision::PbsBehavior))?,
        )
    } else {
        None
    };

    let mut categories = Vec::new();
    for c in &selected {
        let (tier, note) = tier_for(c, host, cluster_mode);
        categories.push(Placed {
            category: c,
            tier,
            note,
        });
    }
    let normal_or_applied = |p: &&Placed| {
        p.tier == Tier::Normal || (p.tier == Tier::Staged && has_applier(p.category.id))
    };
    let needs_cluster_restore = host.supports_pve()
        && categories
            .iter()
            .filter(normal_or_applied)
            .any(|p| p.category.flags.cluster_db)
        && writes_cluster_db;
    let needs_pbs_services = host.supports_pbs()
        && selector.is_none()
        && categories
            .iter()
            .filter(normal_or_applied)
            .any(|p| p.category.touches_pbs());
    // Filled from the registered domains once the plan exists (below).
    let services_to_stop: Vec<&'static str> = Vec::new();
    let unmounts = Vec::new();

    let compatibility = compatibility(host, analysis.backup_type);
    let mut warnings: Vec<String> = Vec::new();
    if let Some(w) = compatibility.warning() {
        warnings.push(w.to_string());
    }
    if cluster_mode == Some(ClusterMode::Recovery) {
        warnings.push(
            "RECOVERY cluster restore: make sure the other cluster nodes are ISOLATED before proceeding"
                .into(),
        );
    }
    // The TFA/WebAuthn hint: access control really restored (not export-only) while the
    // network or SSL categories the backup holds are not.
    let restored = |id: &str| {
        categories
            .iter()
            .any(|p| p.category.id == id && p.tier != Tier::Export)
    };
    let access =
        selector.is_none() && (restored("pve_access_control") || restored("pbs_access_control"));
    let left_out: Vec<&str> = ["network", "ssl"]
        .into_iter()
        .filter(|id| analysis.has(id) && !restored(id))
        .collect();
    if access && !left_out.is_empty() {
        warnings.push(format!(
            "access control is restored without the backup's {} {}: TFA/WebAuthn may fail if the hostname or certificate changed",
            left_out.join(" and "),
            if left_out.len() == 1 { "category" } else { "categories" }
        ));
    }
    let unapplied: Vec<&str> = categories
        .iter()
        .filter(|p| p.tier == Tier::Staged && !has_applier(p.category.id))
        .map(|p| p.category.id)
        .collect();
    if !unapplied.is_empty() {
        warnings.push(if unapplied.len() == 1 {
            format!(
                "{} is staged for an applier this version does not have yet: its files are kept in the stage folder, not written to the system",
                unapplied[0]
            )
        } else {
            format!(
                "{} are staged for appliers this version does not have yet: their files are kept in the stage folder, not written to the system",
                unapplied.join(", ")
            )
        });
    }
    let mut plan = Plan {
        mode,
        host_role: host,
        backup_type: analysis.backup_type,
        backup_hostname: analysis.hostname.clone(),
        compatibility,
        categories,
        paths,
        selector,
        cluster_payload: analysis.cluster_payload,
        cluster_backup,
        cluster_mode,
        needs_cluster_restore,
        pbs_behavior,
        needs_pbs_services,
        services_to_stop,
        unmounts,
        warnings,
        exported_staged: Vec::new(),
    };
    for step in crate::domain::service_steps(&plan) {
        plan.services_to_stop.extend(step.units);
        plan.unmounts.extend(step.unmounts);
    }
    Ok(plan)
}

/// The decisions `request` still lacks for this analysis and host, in the order a person is
/// asked (mode, categories, SAFE/RECOVERY, PBS behaviour). Lets the CLI ask only what is
/// needed.
pub fn missing_decisions(analysis: &Analysis, host: HostRole, request: &Request) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut req = request.clone();
    loop {
        match build(analysis, host, &req, &|_| false) {
            Err(PlanError::Missing(d)) => {
                out.push(d);
                match d {
                    Decision::Mode => req.mode = Some(Mode::Full),
                    Decision::Categories => return out,
                    Decision::ClusterMode => req.cluster_mode = Some(ClusterMode::Safe),
                    Decision::PbsBehavior => req.pbs_behavior = Some(PbsBehavior::Merge),
                }
            }
            _ => return out,
        }
    }
}
