//! `proxsave diff`: content differences between a backup and the target root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::Mode;
use proxsave_restore::applier::has_applier;
use proxsave_restore::compare::Change;
use proxsave_restore::engine::Target;
use proxsave_restore::host::{Host, HostActions, SystemClock};
use proxsave_restore::plan::{self, ClusterMode, PbsBehavior, Request};
use proxsave_restore::workspace::Workspace;

use crate::cli::DiffArgs;
use crate::commands::{open_backup, scan_backup};
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit, keys, progress};

pub fn run(args: DiffArgs, cancel: &CancelToken) -> CmdResult {
    let backup = open_backup(&args.backup)?;
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let (scan, key) = scan_backup(&backup, &args.key, cancel, "reading")?;
    let bar = progress::bar("comparing");
    let host_role = plan::detect_role(&root);
    let request = Request {
        mode: Some(args.mode.unwrap_or(if args.categories.is_empty() {
            Mode::Full
        } else {
            Mode::Custom
        })),
        categories: args.categories.clone(),
        cluster_mode: Some(args.cluster_mode.unwrap_or(ClusterMode::Safe)),
        pbs_behavior: Some(PbsBehavior::Merge),
    };
    let plan = plan::build(&scan.analysis, host_role, &request, &has_applier)
        .map_err(|e| Exit::Usage(e.to_string()))?;
    let host = Host::new(
        root.clone(),
        HostActions::Defer,
        Arc::new(ProcessRunner { path: None }),
        Arc::new(SystemClock),
        Arc::new(ProcMounts),
    );
    let ws = Workspace {
        dir: Path::new("/nonexistent").to_path_buf(),
        stamp: String::new(),
    };
    let stream_opts = StreamOptions {
        key: Some(&key),
        unlock: Some(&keys::TtyUnlock),
        progress: bar.clone(),
        threaded: true,
    };
    let target = Target {
        backup: &backup,
        stream: &stream_opts,
        host: &host,
        workspace: &ws,
    };
    let diffs = proxsave_restore::diff::diff(&target, &scan, &plan, cancel)
        .map_err(|e| Exit::Failure(e.into()))?;
    drop(bar);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            root: String,
            files: &'a [proxsave_restore::diff::FileDiff],
        }
        print_json(
            "diff",
            &Out {
                backup: args.backup.display().to_string(),
                root: root.display().to_string(),
                files: &diffs,
            },
        )?;
        return Ok(());
    }
    let mut counts = [0usize; 4];
    for d in &diffs {
        let i = match d.change {
            Change::New => 0,
            Change::Changed => 1,
            Change::Metadata => 2,
            Change::Unchanged => 3,
        };
        counts[i] += 1;
        match d.change {
            Change::Unchanged => {}
            Change::New => println!("new file: {}", d.path),
            Change::Metadata => println!("metadata differs (mode, owner or time): {}", d.path),
            Change::Changed => {
                if let Some(text) = &d.diff {
                    print!("{text}");
                } else {
                    println!("differs: {} ({})", d.path, d.note.as_deref().unwrap_or(""));
                }
            }
        }
    }
    eprintln!(
        "{} files compared with {}: {} new, {} changed, {} metadata only, {} unchanged",
        diffs.len(),
        root.display(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    Ok(())
}
