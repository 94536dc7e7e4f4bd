//! Proxmox Backup Server restore categories and their appliers: the `datastore.cfg` normaliser
//! ([`datastore_cfg`]), datastore safety ([`safety`]), chunk stores ([`chunkstore`]), the
//! `proxmox-backup-manager` client ([`pbm`]), the appliers ([`appliers`]) and access control
//! ([`access`]).
//!
//! Linking this crate registers the nine PBS categories with `proxsave-categories`.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod appliers;
mod categories;
pub mod chunkstore;
pub mod datastore_cfg;
pub mod domain;
pub mod pbm;
pub mod safety;

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
