//! PVE access control: the merge of the backup with this host ([`merge`]) and the
//! `pve_access_control` applier ([`applier`]).

pub mod applier;
pub mod merge;
