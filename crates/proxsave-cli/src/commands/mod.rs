//! One module per command.

pub mod cat;
pub mod decrypt;
pub mod diff;
pub mod extract;
pub mod inspect;
pub mod list;
pub mod ls;
pub mod restore;
pub mod verify;

use std::path::Path;

use anyhow::Context;
use proxsave_archive::backup::Backup;

/// Opens the backup named by `--backup`, with the path in the error.
pub fn open_backup(path: &Path) -> anyhow::Result<Backup> {
    Backup::open(path).with_context(|| format!("cannot open backup {}", path.display()))
}

/// Prints the backup's layout warnings on stderr.
pub fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
