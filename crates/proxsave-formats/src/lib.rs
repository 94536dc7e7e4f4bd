//! Proxmox configuration file formats, pure: no I/O, no processes, no environment.
//!
//! * [`section`]: the section-config format of `storage.cfg`, `jobs.cfg`, `notifications.cfg`,
//!   `domains.cfg`, `ha/*.cfg`, `sdn/*.cfg` (Perl `PVE::SectionConfig` rules, [`section::parse`])
//!   and of the PBS / proxmox-notify files (Rust `proxmox-section-config` rules,
//!   [`section::parse_strict`]). Unchanged input is written back byte for byte.
//! * [`propstring`]: property strings (`key=value,key=value`, a part without `=` being the
//!   format's default key), as used in many option values.
//! * [`text`]: PVE's percent-escaping of free text in colon-separated files.
//!
//! Both the PVE and the PBS crates depend on this one. docs/pve-formats.md describes the grammars
//! and where they differ from upstream proxsave.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod propstring;
pub mod section;
pub mod text;
