//! Common system files a restore merges instead of overwriting (`/etc/fstab`, accounts, …):
//! pure, I/O-free parsers, classifiers and merges that the appliers call (they read the stage
//! and the root, and write the results through the root handle). No I/O here except small,
//! documented probes through the root's directory handle.

pub mod accounts;
pub mod fstab;
