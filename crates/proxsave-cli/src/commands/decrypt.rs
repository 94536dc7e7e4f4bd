//! `proxsave decrypt`: write `<name>.decrypted.bundle.tar` (0600) into `--out` or the current
//! folder.

use std::path::PathBuf;

use proxsave_archive::backup::Backup;
use proxsave_archive::ops;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

use crate::cli::DecryptArgs;
use crate::commands::extract::Destination;
use crate::commands::{list, open_backup, print_warnings};
use crate::config::Config;
use crate::{CmdResult, Exit, keys, progress, term};

fn choose_backup(config: &Config) -> Result<Backup, Exit> {
    if !term::stdin_is_tty() {
        return Err(Exit::Usage(
            "--backup is required when not running in a terminal".into(),
        ));
    }
    let found = list::scan_sources(config)?;
    // Local backups first, then those on rclone remotes (listed as `proxsave list` does),
    // fetched like `--backup REMOTE:PATH` once chosen.
    let mut encrypted: Vec<(String, Result<Backup, String>)> = found
        .iter()
        .flat_map(|(_, backups)| backups.iter())
        .filter(|b| b.declared_encrypted())
        .map(|b| (list::summary_line(b), Ok(b.clone())))
        .collect();
    for source in config.sources.iter().filter(|s| s.remote) {
        match super::rclone::scan(&source.location) {
            Ok((backups, _)) => encrypted.extend(
                backups
                    .into_iter()
                    .filter(|r| r.manifest.is_encrypted())
                    .map(|r| {
                        (
                            format!("{} • {}", list::manifest_line(&r.manifest, true), r.path),
                            Err(r.path),
                        )
                    }),
            ),
            Err(e) => eprintln!("warning: {}: {e}", source.location),
        }
    }
    if encrypted.is_empty() {
        return Err(Exit::Failure(anyhow::anyhow!(
            "no encrypted backups found in the configured sources"
        )));
    }
    eprintln!("Encrypted backups:");
    for (i, (line, _)) in encrypted.iter().enumerate() {
        eprintln!("  [{}] {line}", i + 1);
    }
    eprintln!("  [0] Cancel");
    loop {
        eprint!("Choice: ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
            return Err(Exit::Aborted);
        }
        match line.trim().parse::<usize>() {
            Ok(0) => return Err(Exit::Aborted),
            Ok(n) if n <= encrypted.len() => {
                return match &encrypted[n - 1] {
                    (_, Ok(b)) => Ok(b.clone()),
                    // On a remote: fetched like `--backup REMOTE:PATH`.
                    (_, Err(path)) => Ok(open_backup(std::path::Path::new(path))?),
                };
            }
            _ => eprintln!("Please enter a number from 0 to {}.", encrypted.len()),
        }
    }
}

pub fn run(args: DecryptArgs, cancel: &CancelToken) -> CmdResult {
    let config = Config::load(args.config.as_deref())?;
    let backup = match &args.backup {
        Some(p) => open_backup(p)?,
        None => choose_backup(&config)?,
    };
    // The bundle holds plaintext: by default it goes where the user is, never into a
    // system folder.
    let out_dir: PathBuf = match &args.out {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| anyhow::anyhow!("the current folder (give --out DIR): {e}"))?,
    };
    // An existing folder may hold other files (only the new bundle is ever added to it); a
    // missing one is created and, on failure, removed again up to what existed before.
    let dest = if out_dir.exists() {
        if !out_dir.is_dir() {
            return Err(Exit::Failure(anyhow::anyhow!(
                "{} is not a folder",
                out_dir.display()
            )));
        }
        None
    } else {
        Some(Destination::prepare(&out_dir)?)
    };
    let label = backup.display_name().to_string();
    let bar = progress::bar("decrypting");
    let result = keys::with_key(&args.key, &label, |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: false,
        };
        ops::decrypt(&backup, &out_dir, &opts, cancel, env!("CARGO_PKG_VERSION"))
    });
    match result {
        Ok(path) => {
            print_warnings(&backup.warnings);
            eprintln!("Decrypted bundle created: {}", path.display());
            println!("{}", path.display());
            Ok(())
        }
        Err(e) => {
            if let Some(d) = dest {
                d.restore_original_state();
            }
            Err(e)
        }
    }
}
