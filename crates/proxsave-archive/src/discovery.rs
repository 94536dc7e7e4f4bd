//! Finding backups in a folder (one level, as upstream does).
//!
//! A folder may hold bundles (`*.bundle.tar`), raw archives with a `.metadata` (or
//! `.manifest.json`) sidecar, and raw archives with only a `.sha256` sidecar. In-flight files
//! (`*.partial`, `*.tmp-*`) are ignored. Candidates are sorted newest first by the instant in
//! the manifest's `created_at` (ties by name), so the list reads like upstream's menu.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::backup::Backup;
use crate::compression::Compression;
use crate::error::{Error, Result};

/// The outcome of scanning a folder.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Usable backups, newest first.
    pub backups: Vec<Backup>,
    /// Files that looked like backups but could not be opened, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Scans `dir` (not recursively) for backups.
///
/// # Errors
/// [`Error::Io`] when the folder cannot be read. Unusable candidates are listed in
/// [`Discovery::skipped`] instead.
pub fn discover(dir: &Path) -> Result<Discovery> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false)
            || entry
                .path()
                .metadata()
                .map(|m| m.is_file())
                .unwrap_or(false);
        if !is_file {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            names.insert(name.to_string());
        }
    }
    let mut picked: Vec<PathBuf> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        if name.ends_with(".partial") || name.contains(".tmp-") {
            continue;
        }
        if name.ends_with(".bundle.tar") {
            picked.push(dir.join(name));
            continue;
        }
        for suffix in [".metadata", ".manifest.json"] {
            if let Some(archive) = name.strip_suffix(suffix)
                && names.contains(archive)
                && !archive.ends_with(".metadata")
                && covered.insert(archive.to_string())
            {
                picked.push(dir.join(archive));
            }
        }
    }
    for name in &names {
        let plain = name.strip_suffix(".age").unwrap_or(name);
        if !covered.contains(name)
            && !name.ends_with(".bundle.tar")
            && Compression::from_archive_name(plain).is_some()
            && names.contains(&format!("{name}.sha256"))
        {
            covered.insert(name.clone());
            picked.push(dir.join(name));
        }
    }
    let mut out = Discovery::default();
    for path in picked {
        match Backup::open(&path) {
            Ok(b) => out.backups.push(b),
            Err(e) => out.skipped.push((path, e.to_string())),
        }
    }
    out.backups.sort_by(|a, b| {
        b.manifest
            .created_at
            .cmp(&a.manifest.created_at)
            .then_with(|| a.display_name().cmp(b.display_name()))
    });
    Ok(out)
}
