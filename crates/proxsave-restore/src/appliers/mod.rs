//! The appliers of the common categories (any Debian host), registered with `inventory` so
//! every program linking this crate runs them by default ([`crate::applier::AppliersSet`]).
//!
//! Each one turns a staged category into a change on the host through the
//! [applier contract](crate::applier): it reads the stage and the root in its plan phase,
//! asks its declared questions, and writes through the root handle's atomic replace. The
//! domain logic (parsers, merges) lives in [`crate::system`]; these modules are the glue.
//!
//! - [`fstab`]: `fstab-merge`, the smart `/etc/fstab` merge (`filesystem`, question
//!   `fstab.merge`).
//! - [`accounts`]: `accounts-merge`, the anti-lockout accounts merge (`accounts`: `passwd`,
//!   `group`, `shadow`, `gshadow`, `subuid`, `subgid` merged; `sudoers` and each `sudoers.d`
//!   drop-in installed only after `visudo -c -f` passes; questions `accounts.merge` and
//!   `sudoers.apply`).

pub mod accounts;
pub mod fstab;
