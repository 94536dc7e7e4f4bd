//! `proxsave list`: backups found in the configured sources (or one folder).

use std::path::Path;

use proxsave_archive::backup::Backup;
use proxsave_archive::discovery;
use serde::Serialize;

use crate::cli::ListArgs;
use crate::config::{Config, Source};
use crate::output::print_json;
use crate::{CmdResult, Exit};

/// Upstream's one-line description of a candidate.
pub fn summary_line(b: &Backup) -> String {
    manifest_line(&b.manifest, b.declared_encrypted())
}

/// The same line from a manifest alone (a backup on an rclone remote).
pub fn manifest_line(m: &proxsave_archive::manifest::Manifest, encrypted: bool) -> String {
    format!(
        "{} • Host {} • {} • {} • {}",
        m.created_at.display(),
        if m.hostname.is_empty() {
            "unknown host"
        } else {
            &m.hostname
        },
        if encrypted { "ENCRYPTED" } else { "PLAIN" },
        m.display_tool(),
        m.display_target()
    )
}

/// Scans every local source (rclone remotes are left to `rclone::scan`).
pub fn scan_sources(config: &Config) -> Result<Vec<(Source, Vec<Backup>)>, Exit> {
    let mut out = Vec::new();
    for source in &config.sources {
        if source.remote {
            // Listed with rclone when chosen (see `scan_one`, `rclone::scan`).
            continue;
        }
        let dir = Path::new(&source.location);
        if !dir.is_dir() {
            continue;
        }
        match discovery::discover(dir) {
            Ok(d) => {
                for (p, why) in &d.skipped {
                    eprintln!("warning: skipped {}: {why}", p.display());
                }
                out.push((source.clone(), d.backups));
            }
            Err(e) => eprintln!("warning: {}: {e}", source.location),
        }
    }
    Ok(out)
}

/// What `list` found in one source.
enum SourceState {
    /// Read; these backups (maybe none), newest first.
    Read(Vec<Backup>),
    /// The folder does not exist.
    Missing,
    /// It exists but could not be read (not a folder, permission, I/O error).
    Unreadable(String),
    /// An rclone remote, listed with `rclone lsjson`; these bundles, newest first.
    Remote(Vec<super::rclone::RemoteBackup>),
}

fn scan_one(source: &Source) -> SourceState {
    if source.remote {
        return match super::rclone::scan(&source.location) {
            Ok((backups, skipped)) => {
                for (p, why) in &skipped {
                    eprintln!("warning: skipped {p}: {why}");
                }
                SourceState::Remote(backups)
            }
            Err(e) => SourceState::Unreadable(e),
        };
    }
    let dir = Path::new(&source.location);
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SourceState::Missing,
        Err(e) => return SourceState::Unreadable(e.to_string()),
        Ok(m) if !m.is_dir() => return SourceState::Unreadable("not a folder".to_string()),
        Ok(_) => {}
    }
    match discovery::discover(dir) {
        Ok(d) => {
            for (p, why) in &d.skipped {
                eprintln!("warning: skipped {}: {why}", p.display());
            }
            SourceState::Read(d.backups)
        }
        Err(e) => SourceState::Unreadable(e.to_string()),
    }
}

#[derive(Serialize)]
struct Listed {
    source: String,
    path: String,
    name: String,
    created_at: String,
    hostname: String,
    encrypted: bool,
    target: String,
    tool: String,
    size: u64,
}

#[derive(Serialize)]
struct SourceJson {
    label: String,
    location: String,
    /// `read`, `missing` or `unreadable`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    backups: usize,
}

/// `proxsave list`: every source with its backups newest first, or why it could not be read.
/// Exit 1 when no source could be read; a readable source without backups is exit 0.
pub fn run(args: ListArgs) -> CmdResult {
    let config = match &args.dir {
        Some(dir) => Config {
            base_dir: Config::load(args.config.as_deref())?.base_dir,
            sources: vec![Source {
                label: "Folder".into(),
                location: dir.display().to_string(),
                remote: false,
            }],
        },
        None => Config::load(args.config.as_deref())?,
    };
    let states: Vec<(Source, SourceState)> = config
        .sources
        .iter()
        .map(|s| (s.clone(), scan_one(s)))
        .collect();
    let any_read = states
        .iter()
        .any(|(_, st)| matches!(st, SourceState::Read(_) | SourceState::Remote(_)));
    if args.json {
        let mut listed = Vec::new();
        let mut sources = Vec::new();
        for (source, state) in &states {
            let (status, error, n) = match state {
                SourceState::Read(backups) => {
                    for b in backups {
                        listed.push(Listed {
                            source: source.label.clone(),
                            path: b.path.display().to_string(),
                            name: b.display_name().to_string(),
                            created_at: b.manifest.created_at.to_go_string(),
                            hostname: b.manifest.hostname.clone(),
                            encrypted: b.declared_encrypted(),
                            target: b.manifest.display_target(),
                            tool: b.manifest.display_tool(),
                            size: b.stored_size,
                        });
                    }
                    ("read", None, backups.len())
                }
                SourceState::Missing => ("missing", None, 0),
                SourceState::Unreadable(e) => ("unreadable", Some(e.clone()), 0),
                SourceState::Remote(backups) => {
                    for b in backups {
                        listed.push(Listed {
                            source: source.label.clone(),
                            path: b.path.clone(),
                            name: b.name.trim_end_matches(".bundle.tar").to_string(),
                            created_at: b.manifest.created_at.to_go_string(),
                            hostname: b.manifest.hostname.clone(),
                            encrypted: b.manifest.is_encrypted(),
                            target: b.manifest.display_target(),
                            tool: b.manifest.display_tool(),
                            size: b.size,
                        });
                    }
                    ("read", None, backups.len())
                }
            };
            sources.push(SourceJson {
                label: source.label.clone(),
                location: source.location.clone(),
                status,
                error,
                backups: n,
            });
        }
        #[derive(Serialize)]
        struct Out<'a> {
            sources: &'a [SourceJson],
            backups: &'a [Listed],
        }
        print_json(
            "list",
            &Out {
                sources: &sources,
                backups: &listed,
            },
        )?;
        return if any_read { Ok(()) } else { Err(Exit::Code(1)) };
    }
    for (source, state) in &states {
        match state {
            SourceState::Read(backups) if backups.is_empty() => {
                println!("{}: {} — no backups", source.label, source.location);
            }
            SourceState::Read(backups) => {
                println!("{}: {}", source.label, source.location);
                for (i, b) in backups.iter().enumerate() {
                    println!("  [{}] {}", i + 1, b.display_name());
                    println!(
                        "      {} • {}",
                        summary_line(b),
                        crate::output::human_bytes(b.stored_size)
                    );
                }
            }
            SourceState::Missing => {
                println!(
                    "{}: {} — missing (no such folder)",
                    source.label, source.location
                );
            }
            SourceState::Unreadable(e) => {
                println!(
                    "{}: {} — cannot be read: {e}",
                    source.label, source.location
                );
            }
            SourceState::Remote(backups) if backups.is_empty() => {
                println!("{}: {} — no backups", source.label, source.location);
            }
            SourceState::Remote(backups) => {
                println!("{}: {}", source.label, source.location);
                for (i, b) in backups.iter().enumerate() {
                    println!("  [{}] {}", i + 1, b.name.trim_end_matches(".bundle.tar"));
                    println!(
                        "      {} • {}",
                        manifest_line(&b.manifest, b.manifest.is_encrypted()),
                        crate::output::human_bytes(b.size)
                    );
                }
            }
        }
    }
    if !any_read {
        if states.len() == 1 {
            eprintln!("proxsave: error: the backup source could not be read");
        } else {
            eprintln!(
                "proxsave: error: none of the {} backup sources could be read",
                states.len()
            );
        }
        return Err(Exit::Code(1));
    }
    Ok(())
}
