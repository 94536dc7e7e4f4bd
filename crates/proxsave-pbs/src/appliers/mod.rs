//! PBS appliers.

pub mod common;
pub mod datastore;
pub mod jobs;
pub mod remotes;
