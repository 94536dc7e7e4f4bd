//! `proxsave diff`: content differences between a backup and the target root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::Mode;
use proxsave_restore::applier::{AppliersSet, has_applier};
use proxsave_restore::compare::Change;
use proxsave_restore::engine::Target;
use proxsave_restore::host::{Host, HostActions, SystemClock};
use proxsave_restore::plan::{self, ClusterMode, PbsBehavior, Request};
use proxsave_restore::workspace::Workspace;

use crate::answers::HostActionsArg;
use crate::cli::DiffArgs;
use crate::commands::{open_backup, scan_backup};
use crate::console::Console;
use crate::effects::{ProcMounts, ProcessRunner};
use crate::output::print_json;
use crate::{CmdResult, Exit, keys, progress};

/// Masked unless `--show-secrets`.
pub fn secrets(args: &DiffArgs) -> proxsave_restore::diff::Secrets {
    if args.show_secrets {
        proxsave_restore::diff::Secrets::Shown
    } else {
        proxsave_restore::diff::Secrets::Masked
    }
}

pub fn run(args: DiffArgs, cancel: &CancelToken) -> CmdResult {
    if args.config_db.from_config_db {
        return super::configdb::diff(args, cancel);
    }
    let backup = open_backup(&args.backup)?;
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let (scan, key) = scan_backup(&backup, &args.key, cancel, "reading", None)?;
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
    let live = std::fs::canonicalize(&root).is_ok_and(|r| r == Path::new("/"));
    let actions = match args.host_actions.unwrap_or(HostActionsArg::Auto) {
        HostActionsArg::Run => HostActions::Run,
        HostActionsArg::Defer => HostActions::Defer,
        HostActionsArg::Auto if live => HostActions::Run,
        HostActionsArg::Auto => HostActions::Defer,
    };
    let host = Host::new(
        root.clone(),
        actions,
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
    // Messages of the appliers' plan phase go to stderr; nothing is asked.
    let mut console = Console::new(false, true, cancel.clone());
    let set = AppliersSet::registered();
    let report = proxsave_restore::diff::diff_all(
        &target,
        &scan,
        &plan,
        Some((&set, &mut console)),
        cancel,
        secrets(&args),
    )
    .map_err(|e| Exit::Failure(e.into()))?;
    let diffs = report.files;
    let appliers = report.appliers;
    drop(bar);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            root: String,
            files: &'a [proxsave_restore::diff::FileDiff],
            appliers: &'a [proxsave_restore::engine::PlannedApplier],
        }
        print_json(
            "diff",
            &Out {
                backup: args.backup.display().to_string(),
                root: root.display().to_string(),
                files: &diffs,
                appliers: &appliers,
            },
        )?;
        return Ok(());
    }
    let counts = print_file_diffs(&diffs);
    // What the appliers would change (API objects, merged files), as unified diffs.
    let mut planned = 0usize;
    for a in &appliers {
        for c in &a.plan.changes {
            let Some(text) = c.unified_diff() else {
                continue;
            };
            planned += 1;
            match &c.call {
                Some(call) => println!("# {} ({}): {call}", a.name, c.kind.word()),
                None => println!("# {} ({}): {}", a.name, c.kind.word(), c.target),
            }
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    if planned > 0 {
        eprintln!("{planned} changes planned by the appliers");
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

/// Prints each file's difference (unchanged files silently); returns the counts of new,
/// changed, metadata-only and unchanged files.
pub fn print_file_diffs(diffs: &[proxsave_restore::diff::FileDiff]) -> [usize; 4] {
    let mut counts = [0usize; 4];
    for d in diffs {
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
    counts
}
