//! The common categories (any Debian host). `network` is registered by `proxsave-net`.

use crate::{Category, Flags, Handling, Kind, Pattern, Presets};

use Pattern::{Dir, File, Glob};

inventory::submit! {
    Category {
        id: "filesystem",
        name: "Filesystem Configuration",
        description: "Mount points and filesystems (/etc/fstab) - WARNING: Critical for boot",
        kind: Kind::Common,
        handling: Handling::Normal,
        // The backup's disk inventory comes along (staged with the fstab, never written to
        // the root): the fstab applier remaps `/dev/sdX` through it. The names are
        // `proxsave_restore::system::fstab::INVENTORY_FILES`.
        patterns: &[
            File("etc/fstab"),
            File("var/lib/proxsave-info/commands/system/lsblk_json.json"),
            File("var/lib/proxsave-info/commands/system/blkid.txt"),
        ],
        presets: Presets { storage: true, base: true },
        flags: Flags { fstab: true, ..Flags::NONE },
        order: 21,
    }
}

inventory::submit! {
    Category {
        id: "storage_stack",
        name: "Storage Stack (Mounts/Targets)",
        description: "Storage stack configuration used by mounts (iSCSI/LVM/MDADM/multipath/autofs/crypttab)",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[
            File("etc/crypttab"),
            Dir("etc/iscsi"),
            Dir("var/lib/iscsi"),
            Dir("etc/multipath"),
            File("etc/multipath.conf"),
            Dir("etc/mdadm"),
            Dir("etc/lvm/backup"),
            Dir("etc/lvm/archive"),
            File("etc/autofs.conf"),
            File("etc/auto.master"),
            Dir("etc/auto.master.d"),
            Glob("etc/auto.*"),
            Dir("etc/keys"),
            Dir("etc/luks-keys"),
            Dir("etc/cryptsetup-keys.d"),
        ],
        presets: Presets { storage: true, base: false },
        flags: Flags::NONE,
        order: 22,
    }
}

inventory::submit! {
    Category {
        id: "ssl",
        name: "SSL Certificates",
        description: "SSL/TLS certificates and private keys",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[
            Dir("etc/ssl"),
            File("etc/proxmox-backup/proxy.pem"),
            File("etc/proxmox-backup/proxy.key"),
            Dir("etc/proxmox-backup/ssl"),
        ],
        presets: Presets { storage: false, base: true },
        flags: Flags::NONE,
        order: 24,
    }
}

inventory::submit! {
    Category {
        id: "ssh",
        name: "SSH Configuration",
        description: "SSH keys and authorized_keys",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[Dir("root/.ssh"), Dir("etc/ssh")],
        presets: Presets { storage: false, base: true },
        flags: Flags::NONE,
        order: 25,
    }
}

inventory::submit! {
    Category {
        id: "scripts",
        name: "Custom Scripts",
        description: "User scripts and custom tools",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[Dir("usr/local/bin"), Dir("usr/local/sbin")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 26,
    }
}

inventory::submit! {
    Category {
        id: "crontabs",
        name: "Scheduled Tasks",
        description: "Cron jobs and systemd timers",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[
            Dir("etc/cron.d"),
            File("etc/crontab"),
            Dir("var/spool/cron"),
            Dir("etc/cron.daily"),
            Dir("etc/cron.hourly"),
            Dir("etc/cron.weekly"),
            Dir("etc/cron.monthly"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 27,
    }
}

inventory::submit! {
    Category {
        id: "services",
        name: "System Services",
        description: "Systemd service configurations",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[
            Dir("etc/systemd/system"),
            Dir("etc/default"),
            Dir("etc/udev/rules.d"),
            Dir("etc/apt"),
            Dir("etc/logrotate.d"),
            File("etc/timezone"),
            File("etc/sysctl.conf"),
            Dir("etc/sysctl.d"),
            Dir("etc/modprobe.d"),
            File("etc/modules"),
            Dir("etc/iptables"),
            File("etc/nftables.conf"),
            Dir("etc/nftables.d"),
        ],
        presets: Presets { storage: false, base: true },
        flags: Flags::NONE,
        order: 28,
    }
}

inventory::submit! {
    Category {
        id: "accounts",
        name: "System Accounts & Auth (WARNING)",
        description: "The account database (/etc/passwd, /etc/group, /etc/shadow, /etc/gshadow, /etc/subuid, /etc/subgid) is MERGED, not replaced: every account of this host is kept and the backup's regular users are added. /etc/sudoers and each /etc/sudoers.d drop-in are REPLACED one by one, only after visudo -c -f validates that file; one that fails is not installed. subuid, subgid and sudoers.d go beyond upstream's category. WARNING: prefer restoring onto a matching or freshly installed host.",
        kind: Kind::Common,
        handling: Handling::Staged,
        patterns: &[
            File("etc/passwd"),
            File("etc/group"),
            File("etc/shadow"),
            File("etc/gshadow"),
            File("etc/subuid"),
            File("etc/subgid"),
            File("etc/sudoers"),
            Dir("etc/sudoers.d"),
        ],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 29,
    }
}

inventory::submit! {
    Category {
        id: "user_data",
        name: "User Data (Home Directories)",
        description: "Root and user home directories (/root and /home)",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[Dir("root"), Dir("home")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 30,
    }
}

inventory::submit! {
    Category {
        id: "zfs",
        name: "ZFS Configuration",
        description: "ZFS pool cache and configuration files",
        kind: Kind::Common,
        handling: Handling::Normal,
        patterns: &[Dir("etc/zfs"), File("etc/hostid")],
        presets: Presets { storage: true, base: false },
        flags: Flags { zfs_check: true, ..Flags::NONE },
        order: 31,
    }
}

inventory::submit! {
    Category {
        id: "proxsave_info",
        name: "ProxSave Diagnostics (Export Only)",
        description: "ProxSave command outputs and inventory reports (export-only; never written to system paths)",
        kind: Kind::Common,
        handling: Handling::ExportOnly,
        patterns: &[Dir("var/lib/proxsave-info"), File("manifest.json")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 32,
    }
}
