//! The proxsave restore engine.
//!
//! A restore is: [`engine::scan`] (one read: verify the backup, find its categories), a
//! [`plan::Plan`] built from the user's [`plan::Request`] (pure), a confirmation by the
//! caller, then [`engine::execute`]: safety backup, service stop (restarted on every exit
//! path), one read feeding the target root, the export folder and the stage folder, commit
//! after verification, dedup repair, appliers, report and restore log.
//!
//! What happens is emitted as `tracing` events ([`events`]: phases, files, commands,
//! services, warnings, appliers); the restore log is a `tracing` layer ([`log::RestoreLog`]).
//!
//! The engine is generic over its effects: a [`host::Host`] (root folder, command runner,
//! clock, mount probe, run-or-defer host actions) and a [`prompt::Prompter`]. It never prints,
//! prompts, reads the environment or spawns processes itself.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod applier;
pub mod appliers;
pub mod commit;
pub mod compare;
mod dedup;
pub mod diff;
pub mod domain;
pub mod engine;
pub mod error;
pub mod events;
pub mod host;
pub mod journal;
pub mod log;
pub mod pathlist;
pub mod plan;
pub mod prompt;
pub mod report;
pub mod roothandle;
pub mod runstate;
pub mod safety;
pub mod services;
mod sort;
pub mod system;
pub mod workspace;

pub use error::RestoreError;
