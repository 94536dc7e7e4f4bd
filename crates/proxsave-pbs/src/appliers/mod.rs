//! PBS appliers.

pub mod datastore;
