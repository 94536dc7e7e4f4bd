//! PBS appliers.

pub mod common;
pub mod datastore;
pub mod host;
pub mod jobs;
pub mod notifications;
pub mod remotes;
pub mod tape;
