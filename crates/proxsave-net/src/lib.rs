//! The network restore category (and, in later work, its appliers: interfaces(5) model, NIC
//! mapper, preflight, staged install, COMMIT-or-rollback apply, resolv.conf repair).
//!
//! Linking this crate registers the `network` category with `proxsave-categories`.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use proxsave_categories::{Category, Flags, Handling, Kind, Pattern, Presets};

use Pattern::{Dir, File};

/// Id of the category this crate registers.
pub const CATEGORY_ID: &str = "network";

inventory::submit! {
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
        ],
        presets: Presets { storage: false, base: true },
        flags: Flags::NONE,
        order: 23,
    }
}
