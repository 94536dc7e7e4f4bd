//! The PBS categories (upstream registry positions 12–20).

use proxsave_categories::{Category, Flags, Handling, Kind, Pattern, Presets};

use Pattern::{Dir, File, Glob};

inventory::submit! {
    Category {
        id: "pbs_config",
        name: "PBS Config Export",
        description: "Export-only copy of /etc/proxmox-backup (never written to system paths)",
        kind: Kind::Pbs,
        handling: Handling::ExportOnly,
        patterns: &[Dir("etc/proxmox-backup")],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 12,
    }
}

inventory::submit! {
    Category {
        id: "pbs_host",
        name: "PBS Host & Integrations",
        description: "Node settings, ACME configuration, proxy, external metric servers and traffic control rules",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/node.cfg"),
            File("etc/proxmox-backup/proxy.cfg"),
            File("etc/proxmox-backup/acme/accounts.cfg"),
            Dir("etc/proxmox-backup/acme/accounts"),
            File("etc/proxmox-backup/acme/plugins.cfg"),
            File("etc/proxmox-backup/metricserver.cfg"),
            File("etc/proxmox-backup/traffic-control.cfg"),
            File("var/lib/proxsave-info/commands/pbs/node_config.json"),
            File("var/lib/proxsave-info/commands/pbs/acme_accounts.json"),
            File("var/lib/proxsave-info/commands/pbs/acme_plugins.json"),
            File("var/lib/proxsave-info/commands/pbs/traffic_control.json"),
            Glob("var/lib/proxsave-info/commands/pbs/acme_account_*_info.json"),
            Glob("var/lib/proxsave-info/commands/pbs/acme_plugin_*_config.json"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 13,
    }
}

inventory::submit! {
    Category {
        id: "datastore_pbs",
        name: "PBS Datastore Configuration",
        description: "Datastore definitions and settings (including S3 endpoint definitions)",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/datastore.cfg"),
            File("etc/proxmox-backup/s3.cfg"),
            File("var/lib/proxsave-info/commands/pbs/datastore_list.json"),
            File("var/lib/proxsave-info/commands/pbs/s3_endpoints.json"),
            File("var/lib/proxsave-info/commands/pbs/pbs_datastore_inventory.json"),
            Glob("var/lib/proxsave-info/commands/pbs/datastore_*_status.json"),
            Glob("var/lib/proxsave-info/commands/pbs/s3_endpoint_*_buckets.json"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags { recreate_dirs: true, ..Flags::NONE },
        order: 14,
    }
}

inventory::submit! {
    Category {
        id: "maintenance_pbs",
        name: "PBS Maintenance",
        description: "Maintenance settings (restore only if environment matches)",
        kind: Kind::Pbs,
        handling: Handling::Normal,
        patterns: &[File("etc/proxmox-backup/maintenance.cfg")],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 15,
    }
}

inventory::submit! {
    Category {
        id: "pbs_jobs",
        name: "PBS Jobs",
        description: "Sync, verify, and prune job configurations",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/sync.cfg"),
            File("etc/proxmox-backup/verification.cfg"),
            File("etc/proxmox-backup/prune.cfg"),
            File("var/lib/proxsave-info/commands/pbs/sync_jobs.json"),
            File("var/lib/proxsave-info/commands/pbs/verification_jobs.json"),
            File("var/lib/proxsave-info/commands/pbs/prune_jobs.json"),
            File("var/lib/proxsave-info/commands/pbs/gc_jobs.json"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 16,
    }
}

inventory::submit! {
    Category {
        id: "pbs_remotes",
        name: "PBS Remotes",
        description: "Remote definitions for sync/verify jobs (may include credentials)",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/remote.cfg"),
            File("var/lib/proxsave-info/commands/pbs/remote_list.json"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 17,
    }
}

inventory::submit! {
    Category {
        id: "pbs_notifications",
        name: "PBS Notifications",
        description: "Notification targets and matchers",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/notifications.cfg"),
            File("etc/proxmox-backup/notifications-priv.cfg"),
            File("var/lib/proxsave-info/commands/pbs/notification_targets.json"),
            File("var/lib/proxsave-info/commands/pbs/notification_matchers.json"),
            Glob("var/lib/proxsave-info/commands/pbs/notification_endpoints_*.json"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 18,
    }
}

inventory::submit! {
    Category {
        id: "pbs_access_control",
        name: "PBS Access Control",
        description: "Users, realms and permissions",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/user.cfg"),
            File("etc/proxmox-backup/domains.cfg"),
            File("etc/proxmox-backup/acl.cfg"),
            File("etc/proxmox-backup/token.cfg"),
            File("etc/proxmox-backup/shadow.json"),
            File("etc/proxmox-backup/token.shadow"),
            File("etc/proxmox-backup/tfa.json"),
            File("var/lib/proxsave-info/commands/pbs/user_list.json"),
            File("var/lib/proxsave-info/commands/pbs/realms_ldap.json"),
            File("var/lib/proxsave-info/commands/pbs/realms_ad.json"),
            File("var/lib/proxsave-info/commands/pbs/realms_openid.json"),
            File("var/lib/proxsave-info/commands/pbs/acl_list.json"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 19,
    }
}

inventory::submit! {
    Category {
        id: "pbs_tape",
        name: "PBS Tape Backup",
        description: "Tape jobs, pools, changers and tape encryption keys",
        kind: Kind::Pbs,
        handling: Handling::Staged,
        patterns: &[
            File("etc/proxmox-backup/tape.cfg"),
            File("etc/proxmox-backup/tape-job.cfg"),
            File("etc/proxmox-backup/media-pool.cfg"),
            File("etc/proxmox-backup/tape-encryption-keys.json"),
            File("var/lib/proxsave-info/commands/pbs/tape_drives.json"),
            File("var/lib/proxsave-info/commands/pbs/tape_changers.json"),
            File("var/lib/proxsave-info/commands/pbs/tape_pools.json"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 20,
    }
}
