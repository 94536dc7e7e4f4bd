//! The PVE appliers.
//!
//! - API appliers: `storage_pve` ([`storage`]), `pve_jobs` ([`jobs`]) and
//!   `pve_notifications` ([`notifications`]). Each reads its staged files, plans every `pvesh`
//!   call (reading the host with `pvesh get` only), and applies object by object through
//!   [`crate::pvesh`]; see docs/pve-api-appliers.md.
//! - Cluster-filesystem appliers: `pve_firewall`, `pve_ha`, `pve_sdn` ([`cluster_files`]),
//!   written on the mounted `/etc/pve`, firewall and HA under a COMMIT window; see
//!   docs/pve-cluster-files.md.
//! - SAFE apply of guests ([`safe_guests`]): the exported `/etc/pve`'s VMs and CTs re-created
//!   through the API; see docs/pve-safe-recovery.md.

mod api;
pub mod cluster_files;
pub use cluster_files::*;
pub mod jobs;
pub mod notifications;
pub mod safe_guests;
pub mod storage;
