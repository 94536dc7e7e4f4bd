//! `proxsave inspect`: manifest, encryption and checksum status, without a key; with a key
//! (or for an unencrypted backup with `--categories`), also what the backup holds.

use proxsave_archive::backup::{Backup, ManifestSource};
use proxsave_archive::progress::CancelToken;
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::commands::{open_backup, scan_backup};
use crate::output::{human_bytes, print_json};
use crate::{CmdResult, Exit};

#[derive(Serialize)]
struct Integrity {
    /// "ok", "mismatch", "conflict", "missing", "not_checked".
    status: &'static str,
    expected: Option<String>,
    from_sha256_file: Option<String>,
    from_manifest: Option<String>,
    computed: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    path: String,
    layout: &'static str,
    archive_name: &'a str,
    stored_size: u64,
    manifest_source: ManifestSource,
    manifest: &'a proxsave_archive::manifest::Manifest,
    encrypted: bool,
    integrity: &'a Integrity,
    #[serde(skip_serializing_if = "Option::is_none")]
    contents: Option<Contents>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct Contents {
    backup_type: proxsave_categories::BackupType,
    cluster_mode: Option<String>,
    hostname: Option<String>,
    entries: u64,
    categories: Vec<&'static str>,
}

fn integrity(backup: &Backup, compute: bool) -> Integrity {
    let manifest_sha = (!backup.manifest.sha256.trim().is_empty())
        .then(|| backup.manifest.sha256.trim().to_lowercase());
    let mut out = Integrity {
        status: "not_checked",
        expected: None,
        from_sha256_file: backup.sidecar_sha256.clone(),
        from_manifest: manifest_sha,
        computed: None,
        detail: None,
    };
    let expectation = match backup.expectation() {
        Ok(e) => e,
        Err(e) => {
            out.status = if out.from_manifest.is_none() && out.from_sha256_file.is_none() {
                "missing"
            } else {
                "conflict"
            };
            out.detail = Some(e.to_string());
            return out;
        }
    };
    out.expected = Some(expectation.sha256.clone());
    if !compute {
        return out;
    }
    match backup.stored_sha256() {
        Ok(actual) => {
            out.status = if actual == expectation.sha256 {
                "ok"
            } else {
                "mismatch"
            };
            out.computed = Some(actual);
        }
        Err(e) => {
            out.status = "unreadable";
            out.detail = Some(e.to_string());
        }
    }
    out
}

pub fn run(args: InspectArgs, cancel: &CancelToken) -> CmdResult {
    let backup = open_backup(&args.backup)?;
    let integrity = integrity(&backup, !args.no_checksum);
    let encrypted = backup.declared_encrypted();
    let wants_contents =
        args.categories || args.key.passphrase_file.is_some() || !args.key.identity.is_empty();
    let contents = if wants_contents {
        let (scan, _) = scan_backup(&backup, &args.key, cancel, "reading", None)?;
        let a = &scan.analysis;
        Some(Contents {
            backup_type: a.backup_type,
            cluster_mode: a.cluster_mode.clone(),
            hostname: a.hostname.clone(),
            // As `verify` and `extract` count them: every entry of the tar stream.
            entries: scan.tar_entries,
            categories: a.available.iter().map(|c| c.id).collect(),
        })
    } else {
        None
    };
    if args.json {
        print_json(
            "inspect",
            &Report {
                path: backup.path.display().to_string(),
                layout: backup.layout_name(),
                archive_name: &backup.archive_name,
                stored_size: backup.stored_size,
                manifest_source: backup.manifest_source,
                manifest: &backup.manifest,
                encrypted,
                integrity: &integrity,
                contents,
                warnings: &backup.warnings,
            },
        )?;
    } else {
        let m = &backup.manifest;
        let or_unknown = |s: &str| {
            if s.is_empty() {
                "unknown".to_string()
            } else {
                s.to_string()
            }
        };
        println!(
            "Backup:       {} ({})",
            args.backup.display(),
            backup.layout_name()
        );
        println!(
            "Archive:      {} ({}, {} bytes)",
            backup.archive_name,
            human_bytes(backup.stored_size),
            backup.stored_size
        );
        println!("Created:      {}", m.created_at.display());
        println!("Host:         {}", or_unknown(&m.hostname));
        println!("System:       {}", m.display_target());
        println!("Tool:         {}", m.display_tool());
        let level = if m.compression_type.is_empty() {
            String::new()
        } else {
            format!(
                " (level {}{})",
                m.compression_level,
                if m.compression_mode.is_empty() {
                    String::new()
                } else {
                    format!(", {}", m.compression_mode)
                }
            )
        };
        println!("Compression:  {}{level}", or_unknown(&m.compression_type));
        let enc = if encrypted {
            if m.passphrase_salt.is_empty() {
                "age".to_string()
            } else {
                format!("age (passphrase salt {})", m.passphrase_salt)
            }
        } else {
            "none".to_string()
        };
        println!("Encryption:   {enc}");
        if backup.manifest_source != ManifestSource::Json {
            println!(
                "Manifest:     {}",
                match backup.manifest_source {
                    ManifestSource::Legacy => "legacy KEY=VALUE metadata",
                    ManifestSource::Missing => "missing (facts from the file name)",
                    ManifestSource::Json => "json",
                }
            );
        }
        let sources = match (&integrity.from_sha256_file, &integrity.from_manifest) {
            (Some(_), Some(_)) => ".sha256 file and manifest agree",
            (Some(_), None) => ".sha256 file",
            (None, Some(_)) => "manifest",
            (None, None) => "none",
        };
        match integrity.status {
            "ok" => println!(
                "Checksum:     {} ({sources}): OK, the stored bytes match",
                integrity.expected.as_deref().unwrap_or("")
            ),
            "not_checked" => println!(
                "Checksum:     {} ({sources}): not computed",
                integrity.expected.as_deref().unwrap_or("")
            ),
            "mismatch" => println!(
                "Checksum:     MISMATCH: expected {} ({sources}), the stored bytes hash to {}",
                integrity.expected.as_deref().unwrap_or(""),
                integrity.computed.as_deref().unwrap_or("")
            ),
            _ => println!(
                "Checksum:     {}: {}",
                integrity.status.to_uppercase(),
                integrity.detail.as_deref().unwrap_or("")
            ),
        }
        if let Some(c) = &contents {
            println!(
                "Contents:     {} entries; backup type {}{}",
                c.entries,
                match c.backup_type {
                    proxsave_categories::BackupType::Pve => "PVE",
                    proxsave_categories::BackupType::Pbs => "PBS",
                    proxsave_categories::BackupType::Dual => "PVE+PBS",
                    proxsave_categories::BackupType::Unknown => "unknown",
                },
                c.cluster_mode
                    .as_deref()
                    .map(|m| format!(", {m}"))
                    .unwrap_or_default()
            );
            println!("Categories:   {}", c.categories.join(", "));
        }
        for w in &backup.warnings {
            println!("Warning:      {w}");
        }
    }
    match integrity.status {
        "ok" | "not_checked" => Ok(()),
        _ => Err(Exit::Code(1)),
    }
}
