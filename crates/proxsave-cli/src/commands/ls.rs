//! `proxsave ls`: list entries (printed after the whole backup was verified).

use proxsave_archive::ops;
use proxsave_archive::pathmatch::Selector;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

use crate::cli::LsArgs;
use crate::commands::{open_backup, print_warnings};
use crate::output::{mode_string, print_json, time_string};
use crate::{CmdResult, Exit, keys, progress};

pub fn run(args: LsArgs, cancel: &CancelToken) -> CmdResult {
    if args.config_db.from_config_db {
        return super::configdb::ls(args, cancel);
    }
    let selector = Selector::new(&args.patterns).map_err(|e| Exit::Usage(e.to_string()))?;
    let backup = open_backup(&args.backup)?;
    let label = backup.display_name().to_string();
    let bar = progress::bar("reading");
    let (entries, summary) = keys::with_key(&args.key, &label, |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        ops::list(&backup, &selector, &opts, cancel)
    })?;
    print_warnings(&summary.warnings);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            sha256: &'a str,
            entries: &'a [ops::ListedEntry],
        }
        print_json(
            "ls",
            &Out {
                backup: args.backup.display().to_string(),
                sha256: &summary.sha256,
                entries: &entries,
            },
        )?;
    } else {
        let mut out = std::io::stdout().lock();
        for e in &entries {
            use std::io::Write;
            let line = if args.long {
                let owner = match (&e.uname, &e.gname) {
                    (Some(u), Some(g)) => format!("{u}/{g}"),
                    _ => format!("{}/{}", e.uid, e.gid),
                };
                let link = e
                    .link
                    .as_ref()
                    .map(|l| format!(" -> {l}"))
                    .unwrap_or_default();
                format!(
                    "{} {owner:<12} {:>10} {} {}{link}",
                    mode_string(e.kind, e.mode),
                    e.size,
                    time_string(e.mtime),
                    e.name
                )
            } else {
                e.name.clone()
            };
            if writeln!(out, "{line}").is_err() {
                break; // closed pipe (e.g. `| head`)
            }
        }
    }
    if !selector.is_empty() && entries.is_empty() {
        eprintln!(
            "proxsave: no entry matches {}",
            selector.describe().join(", ")
        );
        return Err(Exit::Code(1));
    }
    Ok(())
}
