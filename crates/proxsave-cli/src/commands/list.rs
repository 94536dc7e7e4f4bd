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
    let m = &b.manifest;
    format!(
        "{} • Host {} • {} • {} • {}",
        m.created_at.display(),
        if m.hostname.is_empty() {
            "unknown host"
        } else {
            &m.hostname
        },
        if b.declared_encrypted() {
            "ENCRYPTED"
        } else {
            "PLAIN"
        },
        m.display_tool(),
        m.display_target()
    )
}

/// Scans every local source; rclone remotes are reported as not scanned.
pub fn scan_sources(config: &Config) -> Result<Vec<(Source, Vec<Backup>)>, Exit> {
    let mut out = Vec::new();
    for source in &config.sources {
        if source.remote {
            eprintln!(
                "note: {} ({}) is an rclone remote; mount it or copy the bundle locally to use it",
                source.label, source.location
            );
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
    let found = scan_sources(&config)?;
    let mut listed = Vec::new();
    for (source, backups) in &found {
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
    }
    if args.json {
        #[derive(Serialize)]
        struct Out<'a> {
            backups: &'a [Listed],
        }
        print_json("list", &Out { backups: &listed })?;
        return Ok(());
    }
    if found.is_empty() || listed.is_empty() {
        eprintln!("No backups found.");
        return Ok(());
    }
    for (source, backups) in &found {
        if backups.is_empty() {
            continue;
        }
        println!("{}: {}", source.label, source.location);
        for (i, b) in backups.iter().enumerate() {
            println!("  [{}] {}", i + 1, b.display_name());
            println!("      {}", summary_line(b));
        }
    }
    Ok(())
}
