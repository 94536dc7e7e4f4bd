//! Availability analysis: which categories a backup holds, and what kind of backup it is.
//!
//! [`Analyzer`] is fed every entry of the one streaming read that also verifies the backup;
//! it never reads the archive itself.

use proxsave_archive::entry::EntryKind;
use proxsave_archive::manifest::Manifest;
use proxsave_archive::path::ArchivePath;
use serde::Serialize;

use crate::{Category, Kind, registry};

/// Path of the metadata file proxsave writes into every archive.
pub const METADATA_PATH: &str = "var/lib/proxsave-info/backup_metadata.txt";
/// Largest metadata file read.
pub const METADATA_LIMIT: u64 = 8 << 10;

/// What kind of host a backup comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Proxmox VE.
    Pve,
    /// Proxmox Backup Server.
    Pbs,
    /// Both.
    Dual,
    /// Neither could be told.
    Unknown,
}

impl BackupType {
    /// As a host role.
    pub fn role(self) -> crate::HostRole {
        match self {
            BackupType::Pve => crate::HostRole::Pve,
            BackupType::Pbs => crate::HostRole::Pbs,
            BackupType::Dual => crate::HostRole::Dual,
            BackupType::Unknown => crate::HostRole::Unknown,
        }
    }

    fn from_parts(pve: bool, pbs: bool) -> BackupType {
        match (pve, pbs) {
            (true, true) => BackupType::Dual,
            (true, false) => BackupType::Pve,
            (false, true) => BackupType::Pbs,
            (false, false) => BackupType::Unknown,
        }
    }

    /// Parses upstream's type strings (`pve`, `proxmox-ve`, `pbs`, `dual`, `pve,pbs`, …).
    pub fn parse(s: &str) -> BackupType {
        let s = s.trim().to_ascii_lowercase();
        if s.contains("dual") || (s.contains("pve") && s.contains("pbs")) {
            BackupType::Dual
        } else if s == "pve" || s.contains("proxmox-ve") || s.contains("proxmox ve") {
            BackupType::Pve
        } else if s == "pbs" || s.contains("proxmox-backup") || s.contains("proxmox backup") {
            BackupType::Pbs
        } else {
            BackupType::Unknown
        }
    }
}

/// Where the backup type came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeSource {
    /// The categories found in the archive.
    Categories,
    /// `backup_metadata.txt` inside the archive.
    InternalMetadata,
    /// The manifest.
    Manifest,
    /// Nothing told.
    Unknown,
}

/// The parsed `backup_metadata.txt`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackupMetadata {
    /// `BACKUP_TYPE`.
    pub backup_type: Option<String>,
    /// `BACKUP_TARGETS`.
    pub targets: Vec<String>,
    /// `PVE_CLUSTER_MODE` or `CLUSTER_MODE`.
    pub cluster_mode: Option<String>,
    /// `HOSTNAME`.
    pub hostname: Option<String>,
    /// `VERSION`.
    pub version: Option<String>,
}

impl BackupMetadata {
    /// Parses `KEY=VALUE` lines (`#` comments, blank lines ignored).
    pub fn parse(text: &str) -> BackupMetadata {
        let mut m = BackupMetadata::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().to_string();
            let opt = || (!v.is_empty()).then(|| v.clone());
            match k.trim() {
                "BACKUP_TYPE" => m.backup_type = opt(),
                "BACKUP_TARGETS" => {
                    m.targets = v
                        .split(',')
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect()
                }
                "PVE_CLUSTER_MODE" => m.cluster_mode = opt(),
                "CLUSTER_MODE" if m.cluster_mode.is_none() => m.cluster_mode = opt(),
                "HOSTNAME" => m.hostname = opt(),
                "VERSION" => m.version = opt(),
                _ => {}
            }
        }
        m
    }
}

/// The result of the analysis.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// Categories with at least one entry, in registry order.
    pub available: Vec<&'static Category>,
    /// The backup's type.
    pub backup_type: BackupType,
    /// Where the type came from.
    pub type_source: TypeSource,
    /// True when the archive holds the PVE cluster database (`var/lib/pve-cluster/`).
    pub cluster_payload: bool,
    /// `cluster` / `standalone` from the metadata file, else the manifest.
    pub cluster_mode: Option<String>,
    /// The archive holds a corosync configuration (`etc/corosync/corosync.conf` or
    /// `etc/pve/corosync.conf`): only a cluster node has one. Decides when neither the
    /// metadata nor the manifest records the cluster mode.
    pub corosync_conf: bool,
    /// Host name from the metadata file, else the manifest.
    pub hostname: Option<String>,
    /// The metadata file, when present and readable.
    pub metadata: Option<BackupMetadata>,
    /// Entries seen.
    pub entries: u64,
    /// Disagreements and ignored inputs.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// True when the backup comes from a PVE cluster node (SAFE/RECOVERY applies).
    ///
    /// Every PVE backup holds `var/lib/pve-cluster/` (at least its version file), so the
    /// archive's payload does not decide: the recorded cluster mode does, and when none is
    /// recorded, the presence of a corosync configuration (the safe side: SAFE/RECOVERY is
    /// asked).
    pub fn is_cluster_backup(&self) -> bool {
        match self.cluster_mode.as_deref() {
            Some(m) => m.eq_ignore_ascii_case("cluster"),
            None => self.corosync_conf,
        }
    }

    /// True if the category with `id` is available.
    pub fn has(&self, id: &str) -> bool {
        self.available.iter().any(|c| c.id == id)
    }
}

/// Collects what an [`Analysis`] needs from a stream of entries.
pub struct Analyzer {
    seen: Vec<bool>,
    metadata: Option<BackupMetadata>,
    metadata_done: bool,
    corosync_conf: bool,
    entries: u64,
    warnings: Vec<String>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::new()
    }
}

impl Analyzer {
    /// A fresh analyzer over the registered categories.
    pub fn new() -> Analyzer {
        Analyzer {
            seen: vec![false; registry().len()],
            metadata: None,
            metadata_done: false,
            corosync_conf: false,
            entries: 0,
            warnings: Vec::new(),
        }
    }

    /// Records one entry.
    pub fn observe(&mut self, path: &ArchivePath) {
        self.entries += 1;
        if matches!(
            path.as_bytes(),
            b"etc/corosync/corosync.conf" | b"etc/pve/corosync.conf"
        ) {
            self.corosync_conf = true;
        }
        for (i, c) in registry().iter().enumerate() {
            if !self.seen[i] && c.matches(path) {
                self.seen[i] = true;
            }
        }
    }

    /// True if the caller should pass this entry's content to [`Analyzer::observe_metadata`]:
    /// the first regular `backup_metadata.txt`.
    pub fn wants_content(&mut self, path: &ArchivePath, kind: EntryKind, size: u64) -> bool {
        if self.metadata_done
            || kind != EntryKind::File
            || path.as_bytes() != METADATA_PATH.as_bytes()
        {
            return false;
        }
        if size > METADATA_LIMIT {
            self.metadata_done = true;
            self.warnings.push(format!(
                "{METADATA_PATH} is {size} bytes (more than {METADATA_LIMIT}); ignored"
            ));
            return false;
        }
        true
    }

    /// Parses the metadata file's content.
    pub fn observe_metadata(&mut self, bytes: &[u8]) {
        self.metadata_done = true;
        self.metadata = Some(BackupMetadata::parse(&String::from_utf8_lossy(bytes)));
    }

    /// Combines what was seen with the manifest.
    pub fn finish(self, manifest: &Manifest) -> Analysis {
        let mut warnings = self.warnings;
        let available: Vec<&'static Category> = registry()
            .iter()
            .zip(&self.seen)
            .filter(|(_, seen)| **seen)
            .map(|(c, _)| *c)
            .collect();
        let by_cats = BackupType::from_parts(
            available.iter().any(|c| c.kind == Kind::Pve),
            available.iter().any(|c| c.kind == Kind::Pbs),
        );
        let by_meta = self.metadata.as_ref().map(|m| {
            if m.targets.is_empty() {
                m.backup_type
                    .as_deref()
                    .map_or(BackupType::Unknown, BackupType::parse)
            } else {
                BackupType::parse(&m.targets.join(","))
            }
        });
        let by_manifest = {
            let t = if !manifest.proxmox_targets.is_empty() {
                BackupType::parse(&manifest.proxmox_targets.join(","))
            } else {
                BackupType::parse(&manifest.proxmox_type)
            };
            if t == BackupType::Unknown {
                let h = manifest.hostname.to_ascii_lowercase();
                BackupType::from_parts(h.contains("pve"), h.contains("pbs"))
            } else {
                t
            }
        };
        let (backup_type, type_source) = if by_cats != BackupType::Unknown {
            if let Some(meta) = by_meta
                && meta != BackupType::Unknown
                && meta != by_cats
            {
                warnings.push(format!(
                    "the archive's contents ({by_cats:?}) and its metadata ({meta:?}) disagree on the backup type; using the contents"
                ));
            }
            (by_cats, TypeSource::Categories)
        } else if let Some(meta) = by_meta.filter(|t| *t != BackupType::Unknown) {
            (meta, TypeSource::InternalMetadata)
        } else if by_manifest != BackupType::Unknown {
            (by_manifest, TypeSource::Manifest)
        } else {
            (BackupType::Unknown, TypeSource::Unknown)
        };
        let cluster_payload = available.iter().any(|c| c.flags.cluster_db);
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let cluster_mode = self
            .metadata
            .as_ref()
            .and_then(|m| m.cluster_mode.clone())
            .or_else(|| non_empty(&manifest.cluster_mode));
        let hostname = self
            .metadata
            .as_ref()
            .and_then(|m| m.hostname.clone())
            .or_else(|| non_empty(&manifest.hostname));
        Analysis {
            available,
            backup_type,
            type_source,
            cluster_payload,
            cluster_mode,
            corosync_conf: self.corosync_conf,
            hostname,
            metadata: self.metadata,
            entries: self.entries,
            warnings,
        }
    }
}
