//! The applier extension point.
//!
//! Staged categories (storage, jobs, access control, network, accounts, …) are extracted into
//! a private stage folder; an [`Applier`] registered by the domain crate that owns the
//! category turns the staged files into changes on the host (through `pvesh`,
//! `proxmox-backup-manager`, a safe file merge, a network apply with COMMIT…). Appliers run
//! in their `order`, after the extraction was verified and committed.
//!
//! A staged category without an applier is reported as "staged, not applied" and its stage
//! folder is kept for the administrator; it is never reported as restored.

use std::path::Path;

use proxsave_archive::progress::CancelToken;
use serde::Serialize;

use crate::host::Host;
use crate::plan::Plan;
use crate::prompt::Prompter;

/// What an applier did for one category.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// The category id.
    pub category: String,
    /// `applied`, `skipped` or `failed`.
    pub status: &'static str,
    /// Details shown to the user.
    pub detail: String,
}

/// Everything an applier may use.
pub struct ApplyContext<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// The stage folder (files laid out as in the archive, e.g. `etc/pve/storage.cfg`).
    pub stage: &'a Path,
    /// The host (root, command runner, clock).
    pub host: &'a Host,
    /// For questions and messages.
    pub prompter: &'a mut dyn Prompter,
    /// Set on Ctrl+C.
    pub cancel: &'a CancelToken,
}

/// Applies staged categories; see the module docs.
pub trait Applier: Send + Sync {
    /// A short stable name (`pve-storage`).
    fn name(&self) -> &'static str;
    /// The categories it applies.
    fn categories(&self) -> &'static [&'static str];
    /// Run order among appliers (lower first).
    fn order(&self) -> u16;
    /// Services to stop before applying (restarted afterwards).
    fn services_to_stop(&self) -> &'static [&'static str] {
        &[]
    }
    /// Applies the categories of `ctx.plan` it owns.
    fn apply(&self, ctx: &mut ApplyContext<'_>) -> Vec<Applied>;
}

/// Registration of an applier with `inventory`.
pub struct ApplierRegistration(pub &'static dyn Applier);

inventory::collect!(ApplierRegistration);

/// All registered appliers, in order.
pub fn appliers() -> Vec<&'static dyn Applier> {
    let mut all: Vec<&'static dyn Applier> = inventory::iter::<ApplierRegistration>()
        .map(|r| r.0)
        .collect();
    all.sort_by_key(|a| (a.order(), a.name()));
    all
}

/// True if a registered applier handles `category`.
pub fn has_applier(category: &str) -> bool {
    appliers()
        .iter()
        .any(|a| a.categories().contains(&category))
}
