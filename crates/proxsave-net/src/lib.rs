//! The network restore category and its pure core.
//!
//! * [`ifaces`]: a lossless interfaces(5) model (parse any bytes, write them back byte for byte),
//!   structural renames, include resolution inside a root, and a lint.
//! * [`inventory`]: the backup's NIC inventory (JSON) and this host's (sysfs inside a root).
//! * [`matcher`]: backup NICs matched to this host's NICs, and a plan of safe renames and
//!   conflicts.
//! * [`overrides`]: persistent naming rules (udev rules, systemd `.link` files) that pin names.
//! * [`repair`]: all of the above in one call: the configuration's files before and after NIC
//!   repair, with the reasons and the lint of the result.
//!
//! * [`preflight`]: the installed configuration checked with the real tools (`ifup -s`/`-n`).
//! * [`resolv`]: the `/etc/resolv.conf` repair.
//! * [`applier`]: the `network` applier (staged install with NIC repair, preflight, hook for
//!   the live apply).
//!
//! The pure core spawns nothing: values that need a tool (`ethtool -P`) are supplied by the
//! caller through closures; the applier and the preflight run tools only through the host's
//! command runner. See `docs/network-model.md` and `docs/network-restore.md`.
//!
//! Linking this crate registers the `network` category with `proxsave-categories`.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod applier;
pub mod ifaces;
pub mod inventory;
pub mod live;
pub mod matcher;
pub mod overrides;
pub mod preflight;
pub mod repair;
pub mod resolv;
mod rootfs;

use proxsave_categories::{Category, Flags, Handling, Kind, Pattern, Presets};

use Pattern::{Dir, File};

/// Id of the category this crate registers.
pub const CATEGORY_ID: &str = "network";

::inventory::submit! {
    Category {
        id: "network",
        name: "Network Configuration",
        description: "Network interfaces and routing",
        kind: Kind::Common,
        handling: Handling::Staged,
        patterns: &[
            Dir("etc/network"),
            Dir("etc/netplan"),
            Dir("etc/systemd/network"),
            Dir("etc/NetworkManager/system-connections"),
            File("etc/hosts"),
            File("etc/hostname"),
            File("etc/resolv.conf"),
            File("etc/cloud/cloud.cfg.d/99-disable-network-config.cfg"),
            File("etc/dnsmasq.d/lxc-vmbr1.conf"),
            // Staged with the category, never written to the root: the NIC inventory (the
            // applier's NIC repair) and the recorded resolv.conf (its DNS repair).
            File("var/lib/proxsave-info/commands/system/network_inventory.json"),
            File("commands/network_inventory.json"),
            File("var/lib/proxsave-info/network_inventory.json"),
            File("var/lib/proxsave-info/commands/system/resolv_conf.txt"),
            File("commands/resolv_conf.txt"),
        ],
        presets: Presets { storage: false, base: true },
        flags: Flags::NONE,
        order: 23,
    }
}
