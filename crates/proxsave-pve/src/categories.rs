//! The PVE categories (upstream registry positions 1–11).

use proxsave_categories::{Category, Flags, Handling, Kind, Pattern, Presets};

use Pattern::{Dir, File, Glob};

inventory::submit! {
    Category {
        id: "pve_config_export",
        name: "PVE Config Export",
        description: "Export-only copy of /etc/pve (never written to system paths)",
        kind: Kind::Pve,
        handling: Handling::ExportOnly,
        patterns: &[Dir("etc/pve"), File("etc/pve/jobs.cfg"), File("etc/pve/vzdump.cron")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 1,
    }
}

inventory::submit! {
    Category {
        id: "pve_cluster",
        name: "PVE Cluster Configuration",
        description: "Proxmox VE cluster configuration and database",
        kind: Kind::Pve,
        handling: Handling::Normal,
        patterns: &[Dir("var/lib/pve-cluster")],
        presets: Presets { storage: true, base: false },
        flags: Flags { cluster_db: true, ..Flags::NONE },
        order: 2,
    }
}

inventory::submit! {
    Category {
        id: "storage_pve",
        name: "PVE Storage Configuration",
        description: "Storage definitions (applied via API) and VZDump configuration",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[
            File("etc/pve/storage.cfg"),
            File("etc/pve/datacenter.cfg"),
            File("etc/vzdump.conf"),
            Dir("etc/pve/priv/storage"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags { recreate_dirs: true, ..Flags::NONE },
        order: 3,
    }
}

inventory::submit! {
    Category {
        id: "pve_jobs",
        name: "PVE Backup Jobs",
        description: "Scheduled backup job definitions (applied via API)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[
            File("etc/pve/jobs.cfg"),
            File("etc/pve/vzdump.cron"),
            File("etc/pve/replication.cfg"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 4,
    }
}

inventory::submit! {
    Category {
        id: "pve_notifications",
        name: "PVE Notifications",
        description: "Datacenter notification targets and matchers (applied via API)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[File("etc/pve/notifications.cfg"), File("etc/pve/priv/notifications.cfg")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 5,
    }
}

inventory::submit! {
    Category {
        id: "pve_access_control",
        name: "PVE Access Control",
        description: "Users, tokens, groups, roles, ACLs, pools, realms, password hashes and TFA (merged with this host's root@pam; written to the mounted /etc/pve)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[
            File("etc/pve/user.cfg"),
            File("etc/pve/domains.cfg"),
            File("etc/pve/priv/shadow.cfg"),
            File("etc/pve/priv/token.cfg"),
            File("etc/pve/priv/tfa.cfg"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 6,
    }
}

inventory::submit! {
    Category {
        id: "pve_firewall",
        name: "PVE Firewall",
        description: "Firewall rules and options (staged; applied with rollback safety)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[Dir("etc/pve/firewall"), Glob("etc/pve/nodes/*/host.fw")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 7,
    }
}

inventory::submit! {
    Category {
        id: "pve_ha",
        name: "PVE High Availability (HA)",
        description: "HA resources/groups/rules (staged; applied with rollback safety)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[
            File("etc/pve/ha/resources.cfg"),
            File("etc/pve/ha/groups.cfg"),
            File("etc/pve/ha/rules.cfg"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 8,
    }
}

inventory::submit! {
    Category {
        id: "pve_sdn",
        name: "PVE SDN",
        description: "Software-defined networking configuration (staged; applied to pmxcfs)",
        kind: Kind::Pve,
        handling: Handling::Staged,
        patterns: &[Dir("etc/pve/sdn"), File("etc/pve/sdn.cfg")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 9,
    }
}

inventory::submit! {
    Category {
        id: "corosync",
        name: "Corosync Configuration",
        description: "Cluster communication and quorum settings",
        kind: Kind::Pve,
        handling: Handling::Normal,
        patterns: &[Dir("etc/corosync")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 10,
    }
}

inventory::submit! {
    Category {
        id: "ceph",
        name: "Ceph Configuration",
        description: "Ceph storage cluster configuration",
        kind: Kind::Pve,
        handling: Handling::Normal,
        patterns: &[Dir("etc/ceph")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 11,
    }
}
