//! The PVE API appliers: `storage_pve` ([`storage`]), `pve_jobs` ([`jobs`]) and
//! `pve_notifications` ([`notifications`]). Each reads its staged files, plans every `pvesh`
//! call (reading the host with `pvesh get` only), and applies object by object through
//! [`crate::pvesh`]; see docs/pve-api-appliers.md.

mod api;
pub mod jobs;
pub mod notifications;
pub mod storage;
