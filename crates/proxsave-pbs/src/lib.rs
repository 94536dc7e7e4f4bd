//! Proxmox Backup Server restore categories (and, in later work, their appliers: datastore.cfg
//! normaliser, datastore initialisation, `proxmox-backup-manager` apply).
//!
//! Linking this crate registers the nine PBS categories with `proxsave-categories`.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
mod categories;
pub mod domain;

/// Ids of the categories this crate registers, in registry order.
pub const CATEGORY_IDS: [&str; 9] = [
    "pbs_config",
    "pbs_host",
    "datastore_pbs",
    "maintenance_pbs",
    "pbs_jobs",
    "pbs_remotes",
    "pbs_notifications",
    "pbs_access_control",
    "pbs_tape",
];
