//! `proxsave extract`: hardened extraction into a folder that is missing or empty.
//!
//! Nothing is written before the whole backup was verified; on any failure the folder is left
//! as it was found (removed if this command created it, emptied again if it was empty).

use std::path::{Path, PathBuf};

use anyhow::Context;
use proxsave_archive::Error as ArchiveError;
use proxsave_archive::extract::{ExtractOptions, ExtractReport};
use proxsave_archive::ops;
use proxsave_archive::pathmatch::Selector;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

use crate::cli::ExtractArgs;
use crate::commands::{open_backup, print_warnings};
use crate::output::{human_bytes, print_json};
use crate::{CmdResult, Exit, keys, progress};

/// A destination folder and how to put it back as it was.
pub struct Destination {
    /// The folder.
    pub path: PathBuf,
    /// The outermost folder this command created, if any.
    created: Option<PathBuf>,
}

impl Destination {
    /// Accepts a missing folder (created, with missing parents) or an existing empty one.
    pub fn prepare(path: &Path) -> Result<Destination, Exit> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let mut entries = std::fs::read_dir(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if entries.next().is_some() {
                    return Err(Exit::Failure(anyhow::anyhow!(
                        "{} is not empty; extract into a new or empty folder",
                        path.display()
                    )));
                }
                Ok(Destination {
                    path: path.to_path_buf(),
                    created: None,
                })
            }
            Ok(_) => Err(Exit::Failure(anyhow::anyhow!(
                "{} exists and is not a folder",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut top = path.to_path_buf();
                while let Some(parent) = top.parent() {
                    if parent.as_os_str().is_empty() || parent.exists() {
                        break;
                    }
                    top = parent.to_path_buf();
                }
                std::fs::create_dir_all(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Ok(Destination {
                    path: path.to_path_buf(),
                    created: Some(top),
                })
            }
            Err(e) => Err(Exit::Failure(
                anyhow::Error::new(e).context(format!("{}", path.display())),
            )),
        }
    }

    /// Puts the folder back as it was found.
    pub fn restore_original_state(&self) {
        match &self.created {
            Some(top) => {
                let _ = std::fs::remove_dir_all(top);
            }
            None => {
                if let Ok(entries) = std::fs::read_dir(&self.path) {
                    for entry in entries.flatten() {
                        let p = entry.path();
                        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
                        let _ = if is_dir {
                            std::fs::remove_dir_all(&p)
                        } else {
                            std::fs::remove_file(&p)
                        };
                    }
                }
            }
        }
    }
}

fn print_refused(report: &ExtractReport) {
    for r in report.refused_entries() {
        eprintln!(
            "  refused {}: {}",
            r.name,
            r.reason.as_deref().unwrap_or("")
        );
    }
}

pub fn run(args: ExtractArgs, cancel: &CancelToken) -> CmdResult {
    if args.config_db.from_config_db {
        return super::configdb::extract(args, cancel);
    }
    let selector = Selector::new(&args.patterns).map_err(|e| Exit::Usage(e.to_string()))?;
    let backup = open_backup(&args.backup)?;
    let dest = Destination::prepare(&args.to)?;
    let label = backup.display_name().to_string();
    let bar = progress::bar("extracting");
    let result = keys::with_key(&args.key, &label, |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        let extract_opts = ExtractOptions {
            preserve_owner: !args.no_same_owner && rustix::process::geteuid().is_root(),
            strict: !args.skip_refused,
            record_written: args.json,
            cancel: cancel.clone(),
            ..ExtractOptions::default()
        };
        ops::extract(&backup, &dest.path, &selector, &opts, extract_opts)
    });
    let (summary, report) = match result {
        Ok(v) => v,
        Err(Exit::Failure(e)) => {
            dest.restore_original_state();
            if let Some(ArchiveError::Refused(report)) = e.downcast_ref::<ArchiveError>() {
                eprintln!(
                    "proxsave: {} of {} entries are refused by the extraction safety rules; nothing was written:",
                    report.refused, report.total
                );
                print_refused(report);
                eprintln!("(use --skip-refused to extract the other entries anyway)");
                return Err(Exit::Code(1));
            }
            return Err(Exit::Failure(e));
        }
        Err(other) => {
            dest.restore_original_state();
            return Err(other);
        }
    };
    if report.failed > 0 {
        dest.restore_original_state();
        eprintln!(
            "proxsave: {} entries could not be written; {} was left as it was:",
            report.failed,
            dest.path.display()
        );
        for f in report.failed_entries() {
            eprintln!("  {}: {}", f.name, f.reason.as_deref().unwrap_or(""));
        }
        return Err(Exit::Code(1));
    }
    print_warnings(&summary.warnings);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.refused > 0 {
        eprintln!(
            "warning: {} entries were refused by the extraction safety rules and not written:",
            report.refused
        );
        print_refused(&report);
    }
    if !selector.is_empty() && report.written == 0 {
        dest.restore_original_state();
        eprintln!(
            "proxsave: no entry matches {}",
            selector.describe().join(", ")
        );
        return Err(Exit::Code(1));
    }
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            to: String,
            stream: &'a proxsave_archive::read::StreamSummary,
            report: &'a ExtractReport,
        }
        print_json(
            "extract",
            &Out {
                backup: args.backup.display().to_string(),
                to: dest.path.display().to_string(),
                stream: &summary,
                report: &report,
            },
        )?;
    } else {
        eprintln!(
            "Extracted {} of {} entries ({}) into {} (checksum {} verified)",
            report.written,
            report.total,
            human_bytes(report.bytes_written),
            dest.path.display(),
            summary.sha256
        );
    }
    Ok(())
}
