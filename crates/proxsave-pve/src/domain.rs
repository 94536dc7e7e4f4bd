//! What the restore engine needs to know about a Proxmox VE host.

use proxsave_archive::path::ArchivePath;
use proxsave_categories::Kind;
use proxsave_restore::domain::{Domain, DomainRegistration, ServiceStep};
use proxsave_restore::plan::Plan;

/// PVE services stopped (in this order) for a cluster database restore; `pve-cluster` comes
/// back first (it mounts `/etc/pve` again), the others in stop order.
pub const PVE_SERVICES: [&str; 4] = ["pve-cluster", "pvedaemon", "pveproxy", "pvestatd"];

/// The Proxmox VE domain.
pub struct Pve;

fn under(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
}

impl Domain for Pve {
    fn name(&self) -> &'static str {
        "pve"
    }

    fn kind(&self) -> Kind {
        Kind::Pve
    }

    fn role_markers(&self) -> &'static [&'static str] {
        &[
            "etc/pve",
            "usr/bin/qm",
            "usr/sbin/qm",
            "usr/bin/pct",
            "usr/sbin/pct",
        ]
    }

    fn services(&self, plan: &Plan) -> Option<ServiceStep> {
        plan.needs_cluster_restore.then(|| ServiceStep {
            units: PVE_SERVICES.to_vec(),
            unmounts: vec!["/etc/pve"],
            note: Some(
                "Preparing system for cluster database restore: stopping PVE services and unmounting /etc/pve",
            ),
        })
    }

    fn guard(&self, path: &ArchivePath) -> Option<&'static str> {
        under(path.as_bytes(), b"etc/pve")
            .then_some("writes to /etc/pve are prohibited (pmxcfs); see the export folder")
    }

    fn stage_copy(&self, path: &ArchivePath) -> bool {
        // Checked with SQLite before any service stops (crate::recovery).
        path.as_bytes() == crate::recovery::CONFIG_DB.as_bytes()
    }

    fn is_secret(&self, path: &ArchivePath) -> bool {
        under(path.as_bytes(), b"etc/pve/priv")
    }

    fn hints(&self, plan: &Plan) -> Vec<String> {
        if plan.needs_cluster_restore {
            vec!["PVE services were stopped/restarted during restore; verify status with: pvecm status".into()]
        } else if plan.host_role.supports_pve() {
            vec!["PVE services: systemctl restart pve-cluster pvedaemon pveproxy".into()]
        } else {
            Vec::new()
        }
    }

    fn reboot_recommended(&self, plan: &Plan) -> bool {
        plan.has("network") || plan.has("pve_cluster")
    }

    fn restart_rank(&self, unit: &str) -> Option<u8> {
        PVE_SERVICES
            .iter()
            .position(|u| *u == unit)
            .map(|i| i as u8)
    }
}

inventory::submit! { DomainRegistration(&Pve) }
