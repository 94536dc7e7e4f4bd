//! One module per command.

pub mod assets;
pub mod cat;
pub mod categories;
pub mod configdb;
pub mod decrypt;
pub mod diff;
pub mod extract;
pub mod inspect;
pub mod list;
pub mod ls;
pub mod net;
pub mod rclone;
pub mod recover;
pub mod restore;
pub mod verify;

use std::path::Path;

use anyhow::Context;
use proxsave_archive::backup::Backup;

/// Opens the backup named by `--backup`, with the path in the error.
/// `remote:path` (an rclone remote) is fetched first into a private folder
/// ([`rclone::fetch`]).
pub fn open_backup(path: &Path) -> anyhow::Result<Backup> {
    if rclone::is_remote_spec(path) {
        let spec = path.display().to_string();
        let local = rclone::fetch(&spec)?;
        return Backup::open(&local).with_context(|| format!("cannot open backup {spec}"));
    }
    Backup::open(path).with_context(|| format!("cannot open backup {}", path.display()))
}

/// Reads the whole backup once (verifying it, finding its categories), asking for a key in a
/// terminal when needed. Returns the scan and the key that worked, for the next read.
/// The scan's entry list spills into `spill_dir` (the run's private work directory) past
/// its memory budget; `None`: the system's temporary directory (an unnamed file either way).
pub fn scan_backup(
    backup: &Backup,
    key: &crate::cli::KeyArgs,
    cancel: &proxsave_archive::progress::CancelToken,
    verb: &str,
    spill_dir: Option<&Path>,
) -> Result<(proxsave_restore::engine::Scan, proxsave_archive::key::Key), crate::Exit> {
    let label = backup.display_name().to_string();
    let bar = crate::progress::bar(verb);
    crate::keys::with_key_kept(key, &label, |key, unlock| {
        let opts = proxsave_archive::read::StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        let scanned = match spill_dir {
            Some(dir) => proxsave_restore::engine::scan_in(
                backup,
                &opts,
                cancel,
                dir,
                proxsave_archive::spill::LIST_BUDGET,
            ),
            None => proxsave_restore::engine::scan(backup, &opts, cancel),
        };
        scanned.map_err(|e| match e {
            proxsave_restore::RestoreError::Archive(a) => a,
            other => proxsave_archive::Error::Extract(other.to_string()),
        })
    })
}

/// Prints the backup's layout warnings on stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
