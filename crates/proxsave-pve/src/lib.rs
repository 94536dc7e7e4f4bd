//! Proxmox VE restore categories (and, in later work, their appliers: cluster SAFE/RECOVERY,
//! `pvesh` apply, storage directories).
//!
//! Linking this crate registers the eleven PVE categories with `proxsave-categories`.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod appliers;
mod categories;
pub mod clusterfs;
pub mod configdb;
pub mod domain;
pub mod formats;
pub mod pvesh;
pub mod recovery;
pub mod storage_dirs;
pub mod zfs;

/// Ids of the categories this crate registers, in registry order.
pub const CATEGORY_IDS: [&str; 11] = [
    "pve_config_export",
    "pve_cluster",
    "storage_pve",
    "pve_jobs",
    "pve_notifications",
    "pve_access_control",
    "pve_firewall",
    "pve_ha",
    "pve_sdn",
    "corosync",
    "ceph",
];
