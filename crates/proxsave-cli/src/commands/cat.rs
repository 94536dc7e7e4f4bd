//! `proxsave cat`: one file's bytes on stdout, after the whole backup was verified.

use std::io::Write;

use proxsave_archive::ops;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

use crate::cli::CatArgs;
use crate::commands::{open_backup, print_warnings};
use crate::{CmdResult, Exit, keys, progress};

pub fn run(args: CatArgs, cancel: &CancelToken) -> CmdResult {
    if args.config_db.from_config_db {
        return super::configdb::cat(args, cancel);
    }
    let path = ArchivePath::from_user(&args.file)
        .map_err(|e| Exit::Usage(format!("{}: {e}", args.file)))?;
    let backup = open_backup(&args.backup)?;
    let label = backup.display_name().to_string();
    let bar = progress::bar("reading");
    let (mut spool, summary) = keys::with_key(&args.key, &label, |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        ops::read_file(&backup, &path, &opts, cancel)
    })?;
    print_warnings(&summary.warnings);
    let mut out = std::io::stdout().lock();
    match spool.write_to(&mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Exit::Failure(
            anyhow::Error::new(e).context("writing to standard output"),
        )),
    }
}
