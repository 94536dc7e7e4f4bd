//! The appliers of the common categories, registered with `inventory` for the `proxsave`
//! binary (see [`crate::applier`] for the contract). Each one reads the stage and the root
//! through the handles it is given, calls the pure merge of [`crate::system`], and writes the
//! result through the [`crate::applier::RootHandle`]'s safe file operations.
//!
//! - [`accounts`]: the `accounts` category (`passwd`, `group`, `shadow`, `gshadow`, `subuid`,
//!   `subgid` merged; `sudoers` and each `sudoers.d` drop-in installed after `visudo -c -f`).

pub mod accounts;
