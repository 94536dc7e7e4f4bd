//! Pure knowledge about the restored system's own files (`/etc/fstab`, accounts, …): parsers,
//! classifiers and merges the appliers call. No I/O here except small, documented probes
//! through the root's directory handle.

pub mod fstab;
