//! What the engine needs to know about a kind of host, supplied by the crate that knows it.
//!
//! The engine is domain-neutral: which units to stop for a plan, which root paths are never
//! written by extraction, how a host of that kind is recognised, which staged files hold
//! secrets, in what order stopped units come back, and whether a unit that will not stop may
//! be left running all come from a [`Domain`] registered with `inventory` by its crate
//! (`proxsave-pve`, `proxsave-pbs`). A program that embeds the engine without them gets a
//! restore of plain files.

use proxsave_archive::path::ArchivePath;
use proxsave_categories::Kind;

use crate::plan::Plan;

/// Units to stop before the root is written, and mounts to lift.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceStep {
    /// Units, in stop order.
    pub units: Vec<&'static str>,
    /// Mount points (absolute, inside the root) to unmount after the units stopped.
    pub unmounts: Vec<&'static str>,
    /// Said before stopping them.
    pub note: Option<&'static str>,
}

/// How to ask whether the run may go on when a unit did not stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopFailure {
    /// The question's stable id (`continue_with_pbs_services_running`).
    pub id: &'static str,
    /// Said first.
    pub warning: String,
    /// The question.
    pub question: String,
}

/// How a unit is checked after it was started: `systemctl is-active`, then `command` (when
/// given) must succeed.
#[derive(Clone, Debug)]
pub struct StartedCheck {
    /// What the command checks, for the report (`the PBS API answering`).
    pub what: &'static str,
    /// Run after `is-active` says active (through the [`crate::host::Host`] runner).
    pub command: Option<crate::host::HostCommand>,
}

/// A kind of host; see the module docs.
pub trait Domain: Send + Sync {
    /// Short name (`pve`).
    fn name(&self) -> &'static str;
    /// The categories' kind it stands for.
    fn kind(&self) -> Kind;
    /// Root paths whose presence says a host is of this kind (a product's binaries).
    fn role_markers(&self) -> &'static [&'static str] {
        &[]
    }
    /// Units to stop and mounts to lift for this plan.
    fn services(&self, _plan: &Plan) -> Option<ServiceStep> {
        None
    }
    /// Why extraction never writes `path` into the root (it is applied otherwise).
    fn guard(&self, _path: &ArchivePath) -> Option<&'static str> {
        None
    }
    /// True for a root-tier file that is also staged, so an applier can check it from its
    /// plan phase, before any service stops or anything is put in place (e.g. a database's
    /// integrity).
    fn stage_copy(&self, _path: &ArchivePath) -> bool {
        false
    }
    /// True for a file whose content is a secret (masked by `diff`).
    fn is_secret(&self, _path: &ArchivePath) -> bool {
        false
    }
    /// Where `unit` comes in the restart order (lower first); `None`: stop order.
    fn restart_rank(&self, _unit: &str) -> Option<u8> {
        None
    }
    /// Whether a run may go on with `unit` still running, and how to ask.
    fn stop_failure(&self, _unit: &str) -> Option<StopFailure> {
        None
    }
    /// How `unit` is checked after the restore started it; `None`: not checked.
    fn started_check(&self, _unit: &str) -> Option<StartedCheck> {
        None
    }
    /// Units that must be running while the applier of `category` applies (the API it
    /// calls). When the run stopped them, the engine starts them again just before that
    /// applier (so appliers that only write files come first, in their order).
    fn needs_running(&self, _category: &str) -> &'static [&'static str] {
        &[]
    }
    /// Lines for the summary of a completed restore (what to check or restart).
    fn hints(&self, _plan: &Plan) -> Vec<String> {
        Vec::new()
    }
    /// True when this plan's changes take a reboot to be fully applied.
    fn reboot_recommended(&self, _plan: &Plan) -> bool {
        false
    }
}

/// Registration of a [`Domain`] with `inventory`.
pub struct DomainRegistration(pub &'static dyn Domain);

inventory::collect!(DomainRegistration);

/// Every registered domain, by name.
pub fn domains() -> Vec<&'static dyn Domain> {
    let mut all: Vec<&'static dyn Domain> = inventory::iter::<DomainRegistration>()
        .map(|r| r.0)
        .collect();
    all.sort_by_key(|d| d.name());
    all
}

/// Why any domain keeps extraction from writing `path` into the root.
pub fn guard(path: &ArchivePath) -> Option<&'static str> {
    domains().iter().find_map(|d| d.guard(path))
}

/// True when a domain wants a staged copy of the root-tier file `path` (see
/// [`Domain::stage_copy`]).
pub fn stage_copy(path: &ArchivePath) -> bool {
    domains().iter().any(|d| d.stage_copy(path))
}

/// True when a domain says `path` holds a secret.
pub fn is_secret(path: &ArchivePath) -> bool {
    domains().iter().any(|d| d.is_secret(path))
}

/// The units of all domains to stop for `plan`, in order, and the mounts to lift.
pub fn service_steps(plan: &Plan) -> Vec<ServiceStep> {
    domains().iter().filter_map(|d| d.services(plan)).collect()
}

/// How the first domain that knows `unit` wants a stop failure handled.
pub fn stop_failure(unit: &str) -> Option<StopFailure> {
    domains().iter().find_map(|d| d.stop_failure(unit))
}

/// How the first domain that knows `unit` checks it after a start.
pub fn started_check(unit: &str) -> Option<StartedCheck> {
    domains().iter().find_map(|d| d.started_check(unit))
}

/// The units the domains need running while an applier of `categories` applies, in the
/// domains' order, without repeats.
pub fn needs_running(categories: &[&str]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in domains() {
        for c in categories {
            for u in d.needs_running(c) {
                if !out.contains(u) {
                    out.push(u);
                }
            }
        }
    }
    out
}

/// The summary hints of every domain for `plan`.
pub fn hints(plan: &Plan) -> Vec<String> {
    domains().iter().flat_map(|d| d.hints(plan)).collect()
}

/// True when a domain recommends a reboot after this plan.
pub fn reboot_recommended(plan: &Plan) -> bool {
    domains().iter().any(|d| d.reboot_recommended(plan))
}

/// `units` in restart order: by the domains' ranks (stable: stop order among equals and for
/// units no domain ranks, which come last).
pub fn restart_order<T>(mut units: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
    let all = domains();
    let rank = |u: &T| {
        all.iter()
            .find_map(|d| d.restart_rank(name(u)))
            .unwrap_or(u8::MAX)
    };
    units.sort_by_key(|u| rank(u));
    units
}
