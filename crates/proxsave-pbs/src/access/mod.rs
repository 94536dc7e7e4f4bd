//! PBS access control: `user.cfg` (users and tokens), `acl.cfg`, `domains.cfg`,
//! `token.shadow`, `shadow.json`, `tfa.json`.
//!
//! [`formats`] reads and writes the six grammars, [`merge`] combines the backup's files with
//! this host's (pure), [`applier`] is the `pbs_access_control` applier.

pub mod applier;
pub mod formats;
pub mod merge;
