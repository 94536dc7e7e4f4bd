//! Read, verify, decrypt and safely extract backups written by proxsave.
//!
//! A proxsave backup is a compressed (and usually age-encrypted) tar archive with two
//! sidecars: a JSON manifest (`.metadata`) and a `sha256sum`-style checksum (`.sha256`).
//! Since upstream v0.12.5 the three travel together in a plain `*.bundle.tar`.
//!
//! This crate reads every layout upstream ever wrote and turns it into a stream of tar
//! entries in one pass over the stored bytes:
//!
//! ```text
//! file ─► SHA-256 (stored bytes) ─► age (optional) ─► decompressor ─► tar entries
//! ```
//!
//! The checksum is computed while reading and checked when the stream ends, so callers
//! that write anything ([`extract::Extractor`]) stage their output and commit it only after
//! the whole backup has been proven intact.
//!
//! The crate never prints, prompts or spawns processes; progress and secrets come in through
//! [`progress::Progress`] and [`key::Key`].

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod backup;
pub mod bundle;
pub mod checkpoint;
pub mod checksum;
pub mod compression;
pub mod dirfd;
pub mod discovery;
pub mod entry;
pub mod error;
pub mod extract;
pub mod key;
pub mod keyset;
pub mod manifest;
pub mod ops;
pub mod path;
pub mod pathmatch;
pub mod policy;
pub mod progress;
pub mod read;
pub mod spill;
pub mod tar;
pub mod write;

pub use age::secrecy;
pub use error::{Error, Result};
