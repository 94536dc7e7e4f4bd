//! Restore modes and host roles.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Category, Handling, Kind};

/// The role of the host being restored (or of a backup).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    /// Proxmox VE.
    Pve,
    /// Proxmox Backup Server.
    Pbs,
    /// Both installed on one host.
    Dual,
    /// Neither detected.
    Unknown,
}

impl HostRole {
    /// True for PVE and dual.
    pub fn supports_pve(self) -> bool {
        matches!(self, HostRole::Pve | HostRole::Dual)
    }

    /// True for PBS and dual.
    pub fn supports_pbs(self) -> bool {
        matches!(self, HostRole::Pbs | HostRole::Dual)
    }

    /// From the two capabilities.
    pub fn from_parts(pve: bool, pbs: bool) -> HostRole {
        match (pve, pbs) {
            (true, true) => HostRole::Dual,
            (true, false) => HostRole::Pve,
            (false, true) => HostRole::Pbs,
            (false, false) => HostRole::Unknown,
        }
    }

    /// Long name as upstream shows it.
    pub fn long_name(self) -> &'static str {
        match self {
            HostRole::Pve => "Proxmox Virtual Environment (PVE)",
            HostRole::Pbs => "Proxmox Backup Server (PBS)",
            HostRole::Dual => "Proxmox VE + Proxmox Backup Server (dual)",
            HostRole::Unknown => "Unknown system",
        }
    }

    /// True if the two roles share PVE or PBS.
    pub fn overlaps(self, other: HostRole) -> bool {
        (self.supports_pve() && other.supports_pve())
            || (self.supports_pbs() && other.supports_pbs())
    }
}

impl fmt::Display for HostRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostRole::Pve => "pve",
            HostRole::Pbs => "pbs",
            HostRole::Dual => "dual",
            HostRole::Unknown => "unknown",
        })
    }
}

/// The four restore modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything available (export-only categories go to the export folder).
    Full,
    /// Cluster/storage/datastore definitions, jobs and mounts.
    Storage,
    /// Network, SSL, SSH, services, filesystem.
    Base,
    /// A chosen set of categories.
    Custom,
}

impl Mode {
    /// Parses `full`, `storage`, `base`, `custom` (case-insensitive).
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Some(Mode::Full),
            "storage" => Some(Mode::Storage),
            "base" => Some(Mode::Base),
            "custom" => Some(Mode::Custom),
            _ => None,
        }
    }

    /// Menu label for this host (`[2] STORAGE only`, `DATASTORE only`, …).
    pub fn menu_label(self, host: HostRole) -> &'static str {
        match self {
            Mode::Full => "FULL restore",
            Mode::Storage => match host {
                HostRole::Pbs => "DATASTORE only",
                HostRole::Dual => "STORAGE/DATASTORE only",
                _ => "STORAGE only",
            },
            Mode::Base => "SYSTEM BASE only",
            Mode::Custom => "CUSTOM selection",
        }
    }

    /// Plan label (`STORAGE only (cluster + storage + jobs + mounts)`).
    pub fn plan_label(self, host: HostRole, count: usize) -> String {
        match self {
            Mode::Full => "FULL restore (all categories)".into(),
            Mode::Storage => match host {
                HostRole::Pbs => "DATASTORE only (datastores + jobs + mounts)".into(),
                HostRole::Dual => "STORAGE/DATASTORE only (PVE + PBS storage/jobs + mounts)".into(),
                _ => "STORAGE only (cluster + storage + jobs + mounts)".into(),
            },
            Mode::Base => "SYSTEM BASE only (network + SSL + SSH + services + filesystem)".into(),
            Mode::Custom => format!("CUSTOM selection ({count} categories)"),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Storage => "storage",
            Mode::Base => "base",
            Mode::Custom => "custom",
        })
    }
}

/// The categories a mode selects from the `available` ones, in registry order.
///
/// - FULL: every available category (export-only ones included; the plan decides which are
///   exported instead of written on a host of another role).
/// - STORAGE: the storage preset of the host's role (common storage categories for every
///   known role), never export-only ones; nothing on an unknown host.
/// - BASE: the base preset, never export-only ones.
/// - CUSTOM: nothing (the caller chooses).
pub fn categories_for_mode(
    mode: Mode,
    host: HostRole,
    available: &[&'static Category],
) -> Vec<&'static Category> {
    let mut out: Vec<&'static Category> = match mode {
        Mode::Full => available.to_vec(),
        Mode::Storage => {
            if host == HostRole::Unknown {
                Vec::new()
            } else {
                available
                    .iter()
                    .copied()
                    .filter(|c| c.presets.storage && c.handling != Handling::ExportOnly)
                    .filter(|c| c.kind == Kind::Common || c.fits(host))
                    .collect()
            }
        }
        Mode::Base => available
            .iter()
            .copied()
            .filter(|c| c.presets.base && c.handling != Handling::ExportOnly)
            .collect(),
        Mode::Custom => Vec::new(),
    };
    out.sort_by_key(|c| c.order);
    out
}
