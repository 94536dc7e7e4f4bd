//! Restore categories: what a proxsave backup holds, grouped the way an administrator restores
//! it (cluster database, storage, network, SSH, …).
//!
//! Each category is a [`Category`] registered with [`inventory`] by the crate that owns its
//! domain: the common ones here, the PVE ones in `proxsave-pve`, the PBS ones in
//! `proxsave-pbs`, `network` in `proxsave-net`. [`registry`] returns them in upstream's order
//! (the `order` field), whatever order the linker collected them in.
//!
//! A binary must link every domain crate for its categories to be registered (a crate that is
//! only depended on but never used is not linked): `proxsave-cli` does `use proxsave_pve as _;`
//! and a test there asserts that all 32 categories are seen.
//!
//! One matcher ([`Pattern::matches`]) serves both the availability analysis and the
//! extraction filter; upstream has two that disagree on edge cases.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod analysis;
mod common;
mod modes;

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use proxsave_archive::path::ArchivePath;
use proxsave_archive::pathmatch::glob_match;
use serde::Serialize;

pub use analysis::{Analysis, Analyzer, BackupMetadata, BackupType, TypeSource};
pub use modes::{HostRole, Mode, categories_for_mode};

/// Which system a category belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Proxmox VE.
    Pve,
    /// Proxmox Backup Server.
    Pbs,
    /// Any Debian host.
    Common,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pve => "pve",
            Kind::Pbs => "pbs",
            Kind::Common => "common",
        })
    }
}

/// How a category's files reach the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Extracted into the target root.
    Normal,
    /// Extracted into a private stage folder and applied by an applier.
    Staged,
    /// Only copied into the export folder; never written to system paths.
    ExportOnly,
}

/// A category path pattern, relative (no leading `./`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// A directory and everything below it (`etc/pve`).
    Dir(&'static str),
    /// One exact path (`etc/fstab`).
    File(&'static str),
    /// A Go `path.Match` glob (`etc/pve/nodes/*/host.fw`); `*` does not cross `/`.
    Glob(&'static str),
}

impl Pattern {
    /// True if `path` is selected by this pattern.
    pub fn matches(&self, path: &ArchivePath) -> bool {
        let p = path.as_bytes();
        match self {
            Pattern::Dir(d) => {
                let d = d.as_bytes();
                p == d || (p.len() > d.len() && p.starts_with(d) && p[d.len()] == b'/')
            }
            Pattern::File(f) => p == f.as_bytes(),
            Pattern::Glob(g) => glob_match(g, p).unwrap_or(false),
        }
    }

    /// The pattern as shown in plans: `/etc/pve/` for directories, `/etc/fstab` for files.
    pub fn display(&self) -> String {
        match self {
            Pattern::Dir(d) => format!("/{d}/"),
            Pattern::File(f) | Pattern::Glob(f) => format!("/{f}"),
        }
    }

    /// The path text without decoration.
    pub fn text(&self) -> &'static str {
        match self {
            Pattern::Dir(s) | Pattern::File(s) | Pattern::Glob(s) => s,
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

/// Membership in mode presets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Presets {
    /// Part of the STORAGE preset (for hosts of this category's role; common ones for all).
    pub storage: bool,
    /// Part of the SYSTEM BASE preset.
    pub base: bool,
}

impl Presets {
    /// In no preset.
    pub const NONE: Presets = Presets {
        storage: false,
        base: false,
    };
}

/// Special handling a category needs from the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Flags {
    /// The PVE cluster database: SAFE/RECOVERY decision, PVE services stopped.
    pub cluster_db: bool,
    /// `/etc/fstab`: merged, never extracted raw on a live system.
    pub fstab: bool,
    /// Worth a `zpool import` check after restore.
    pub zfs_check: bool,
    /// Storage/datastore directories may need recreating after restore.
    pub recreate_dirs: bool,
}

impl Flags {
    /// No special handling.
    pub const NONE: Flags = Flags {
        cluster_db: false,
        fstab: false,
        zfs_check: false,
        recreate_dirs: false,
    };
}

/// One restore category.
#[derive(Debug)]
pub struct Category {
    /// Stable id (`pve_cluster`).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// One-line description shown in menus and plans.
    pub description: &'static str,
    /// PVE, PBS or common.
    pub kind: Kind,
    /// Normal, staged or export-only.
    pub handling: Handling,
    /// Paths it covers.
    pub patterns: &'static [Pattern],
    /// Mode presets.
    pub presets: Presets,
    /// Special handling.
    pub flags: Flags,
    /// Position in upstream's registry (1-based).
    pub order: u16,
}

inventory::collect!(Category);

impl Category {
    /// True if any pattern selects `path`.
    pub fn matches(&self, path: &ArchivePath) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// True when writing this category means stopping PBS services on a PBS host: it is a
    /// PBS category or it covers files under `etc/proxmox-backup` or `var/lib/proxmox-backup`.
    pub fn touches_pbs(&self) -> bool {
        self.kind == Kind::Pbs
            || self.patterns.iter().any(|p| {
                let t = p.text();
                t.starts_with("etc/proxmox-backup") || t.starts_with("var/lib/proxmox-backup")
            })
    }

    /// True if this category may be written on a host of `role` (common ones always).
    pub fn fits(&self, role: HostRole) -> bool {
        match self.kind {
            Kind::Common => true,
            Kind::Pve => role.supports_pve(),
            Kind::Pbs => role.supports_pbs(),
        }
    }
}

impl Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Category", 6)?;
        st.serialize_field("id", self.id)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("description", self.description)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("handling", &self.handling)?;
        st.serialize_field("patterns", self.patterns)?;
        st.end()
    }
}

/// Every registered category, in upstream's order.
///
/// # Panics
/// If two registered categories share an id or an order (a programming error caught by
/// the tests of every binary).
pub fn registry() -> &'static [&'static Category] {
    static REGISTRY: OnceLock<Vec<&'static Category>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut all: Vec<&'static Category> = inventory::iter::<Category>().collect();
        all.sort_by_key(|c| (c.order, c.id));
        let mut ids = HashSet::new();
        let mut orders = HashSet::new();
        for c in &all {
            assert!(ids.insert(c.id), "category id {} registered twice", c.id);
            assert!(
                orders.insert(c.order),
                "category order {} used twice",
                c.order
            );
        }
        all
    })
}

/// The category with this id.
pub fn by_id(id: &str) -> Option<&'static Category> {
    registry().iter().copied().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ArchivePath {
        ArchivePath::from_user(s).unwrap()
    }

    #[test]
    fn one_matcher_for_dirs_files_and_globs() {
        assert!(Pattern::Dir("etc/pve").matches(&p("etc/pve")));
        assert!(Pattern::Dir("etc/pve").matches(&p("etc/pve/storage.cfg")));
        assert!(!Pattern::Dir("etc/pve").matches(&p("etc/pveuser.conf")));
        assert!(Pattern::File("etc/fstab").matches(&p("./etc/fstab")));
        assert!(!Pattern::File("etc/fstab").matches(&p("etc/fstab.bak")));
        assert!(Pattern::Glob("etc/pve/nodes/*/host.fw").matches(&p("etc/pve/nodes/n1/host.fw")));
        assert!(!Pattern::Glob("etc/auto.*").matches(&p("etc/auto.master.d/x")));
        assert_eq!(Pattern::Dir("etc/pve").display(), "/etc/pve/");
    }

    #[test]
    fn common_categories_are_registered_here() {
        let ids: Vec<&str> = registry()
            .iter()
            .filter(|c| c.kind == Kind::Common)
            .map(|c| c.id)
            .collect();
        for id in [
            "filesystem",
            "storage_stack",
            "ssl",
            "ssh",
            "scripts",
            "crontabs",
            "services",
            "accounts",
            "user_data",
            "zfs",
            "proxsave_info",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
    }
}
