//! What the restore engine needs to know about a Proxmox Backup Server host.

use proxsave_archive::path::ArchivePath;
use proxsave_categories::Kind;
use std::time::Duration;

use proxsave_restore::domain::{
    Domain, DomainRegistration, ServiceStep, StartedCheck, StopFailure,
};
use proxsave_restore::host::HostCommand;
use proxsave_restore::plan::Plan;

/// PBS services stopped (in this order); restarted API daemon first, then the proxy that
/// talks to it.
pub const PBS_SERVICES: [&str; 2] = ["proxmox-backup-proxy", "proxmox-backup"];

/// The categories whose appliers call the PBS API (`proxmox-backup-manager`): the engine
/// starts [`PBS_SERVICES`] again before the first of them. The others
/// (`pbs_access_control`, `pbs_tape`) only write files and run first, while the services are
/// stopped.
pub const API_CATEGORIES: [&str; 5] = [
    "datastore_pbs",
    "pbs_remotes",
    "pbs_jobs",
    "pbs_host",
    "pbs_notifications",
];

/// The check that the PBS API answers once `proxmox-backup-proxy` is started again:
/// `proxmox-backup-manager task list` is one of the few subcommands that go through the HTTPS
/// API on `localhost:8007` (the proxy, which forwards to the `proxmox-backup` daemon) instead
/// of reading the configuration in-process.
pub fn api_check() -> HostCommand {
    HostCommand::new(
        "proxmox-backup-manager",
        ["task", "list", "--limit", "1", "--output-format", "json"],
    )
    .timeout(Duration::from_secs(15))
}

/// The Proxmox Backup Server domain.
pub struct Pbs;

fn under(p: &[u8], dir: &[u8]) -> bool {
    p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
}

impl Domain for Pbs {
    fn name(&self) -> &'static str {
        "pbs"
    }

    fn kind(&self) -> Kind {
        Kind::Pbs
    }

    fn role_markers(&self) -> &'static [&'static str] {
        &["etc/proxmox-backup", "usr/sbin/proxmox-backup-proxy"]
    }

    fn services(&self, plan: &Plan) -> Option<ServiceStep> {
        plan.needs_pbs_services.then(|| ServiceStep {
            units: PBS_SERVICES.to_vec(),
            unmounts: Vec::new(),
            note: None,
        })
    }

    fn guard(&self, path: &ArchivePath) -> Option<&'static str> {
        let p = path.as_bytes();
        (matches!(
            p,
            b"etc/proxmox-backup/domains.cfg"
                | b"etc/proxmox-backup/user.cfg"
                | b"etc/proxmox-backup/acl.cfg"
                | b"var/lib/proxmox-backup/.clusterlock"
        ) || under(p, b"var/lib/proxmox-backup/lock"))
        .then_some("PBS runtime or access file; never written raw")
    }

    fn is_secret(&self, path: &ArchivePath) -> bool {
        matches!(
            path.as_bytes(),
            b"etc/proxmox-backup/shadow.json"
                | b"etc/proxmox-backup/token.shadow"
                | b"etc/proxmox-backup/tfa.json"
                | b"etc/proxmox-backup/tape-encryption-keys.json"
                | b"etc/proxmox-backup/notifications-priv.cfg"
        )
    }

    fn hints(&self, plan: &Plan) -> Vec<String> {
        if plan.needs_pbs_services {
            vec!["PBS services were stopped/restarted during restore; verify status with: systemctl status proxmox-backup proxmox-backup-proxy".into()]
        } else if plan.host_role.supports_pbs() {
            vec!["PBS services: systemctl restart proxmox-backup proxmox-backup-proxy".into()]
        } else {
            Vec::new()
        }
    }

    fn reboot_recommended(&self, plan: &Plan) -> bool {
        plan.has("network")
    }

    fn restart_rank(&self, unit: &str) -> Option<u8> {
        match unit {
            "proxmox-backup" => Some(10),
            "proxmox-backup-proxy" => Some(11),
            _ => None,
        }
    }

    fn started_check(&self, unit: &str) -> Option<StartedCheck> {
        match unit {
            "proxmox-backup" => Some(StartedCheck {
                what: "is-active",
                command: None,
            }),
            "proxmox-backup-proxy" => Some(StartedCheck {
                what: "the PBS API answering (proxmox-backup-manager task list)",
                command: Some(api_check()),
            }),
            _ => None,
        }
    }

    fn needs_running(&self, category: &str) -> &'static [&'static str] {
        if API_CATEGORIES.contains(&category) {
            &PBS_SERVICES
        } else {
            &[]
        }
    }

    fn stop_failure(&self, unit: &str) -> Option<StopFailure> {
        PBS_SERVICES.contains(&unit).then(|| StopFailure {
            id: "continue_with_pbs_services_running",
            warning: format!("Unable to stop PBS services automatically: {unit}"),
            question: "Continue restore with PBS services still running?".into(),
        })
    }
}

inventory::submit! { DomainRegistration(&Pbs) }
