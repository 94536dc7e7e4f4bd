//! `--from-config-db` of `ls`, `cat`, `extract` and `diff`: the files of `/etc/pve` as the
//! backup's `var/lib/pve-cluster/config.db` (the pmxcfs database) holds them.
//!
//! The database (and a `config.db-wal` stored beside it) is copied out of the backup into a
//! new private folder of the work directory (0700, files 0600), opened there read-only after
//! the whole backup was verified, and the folder is removed when the command ends. Nothing is
//! written anywhere else, and the database is never opened from the backup's own folder.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use proxsave_archive::Error as ArchiveError;
use proxsave_archive::backup::Backup;
use proxsave_archive::entry::{EntryKind, Timestamp};
use proxsave_archive::ops::ListedEntry;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::pathmatch::Selector;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::{self, StreamOptions};
use proxsave_pve::configdb::{self, ConfigDbTree, TreeEntry};
use proxsave_restore::plan::Tier;
use proxsave_restore::workspace::Workspace;

use crate::cli::{CatArgs, ConfigDbArgs, DiffArgs, ExtractArgs, KeyArgs, LsArgs};
use crate::commands::extract::Destination;
use crate::commands::{open_backup, print_warnings};
use crate::output::{mode_string, print_json, time_string};
use crate::{CmdResult, Exit, keys, progress};

/// Where the database is shown as being (in listings and errors).
const SHOWN: &str = "/var/lib/pve-cluster/config.db";
/// Owner and group pmxcfs shows for every entry of `/etc/pve`.
const OWNER: (u64, u64, &str, &str) = (0, 33, "root", "www-data");

/// The private copy of the database; removed on drop.
struct WorkCopy {
    dir: PathBuf,
}

impl Drop for WorkCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tree of a backup's `config.db`, loaded from a private copy.
pub struct BackupConfigDb {
    /// The tree.
    pub tree: ConfigDbTree,
    /// SHA-256 of the backup (verified while reading).
    pub sha256: String,
    /// `<SHOWN> in <backup name>`, for messages.
    pub label: String,
    _copy: WorkCopy,
}

/// Copies `config.db` (and `config.db-wal`) of the backup into `dir`; returns whether
/// `config.db` was found as a regular file, after the whole backup was verified.
fn copy_out(
    backup: &Backup,
    opts: &StreamOptions<'_>,
    dir: &Path,
    cancel: &CancelToken,
) -> Result<(Option<Result<(), String>>, read::StreamSummary), ArchiveError> {
    let db_path = ArchivePath::from_user(configdb::BACKUP_PATH)
        .map_err(|e| ArchiveError::Extract(e.to_string()))?;
    let wal_path = ArchivePath::from_user(&format!("{}-wal", configdb::BACKUP_PATH))
        .map_err(|e| ArchiveError::Extract(e.to_string()))?;
    // A key retry reads again: start from an empty folder.
    for name in ["config.db", "config.db-wal"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let mut stream = read::open_stream(backup, opts)?;
    let mut found: Option<Result<(), String>> = None;
    while let Some(h) = stream.next_entry()? {
        cancel.check()?;
        let Ok(Some(path)) = ArchivePath::parse(&h.raw_path) else {
            continue;
        };
        let name = if path == db_path {
            "config.db"
        } else if path == wal_path {
            "config.db-wal"
        } else {
            continue;
        };
        let target = dir.join(name);
        if h.kind != EntryKind::File {
            // The last entry of a path wins, as for extraction.
            let _ = std::fs::remove_file(&target);
            if name == "config.db" {
                found = Some(Err(format!("is a {} in the backup, not a file", h.kind)));
            }
            continue;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| ArchiveError::io(&target, e))?;
        if let Err(e) = std::io::copy(stream.data(), &mut file) {
            return Err(stream.explain(ArchiveError::Read(e)));
        }
        file.flush().map_err(|e| ArchiveError::io(&target, e))?;
        if name == "config.db" {
            found = Some(Ok(()));
        }
    }
    let summary = stream.finish()?;
    Ok((found, summary))
}

/// Reads the backup once (verifying it), copies its `config.db` into a private folder of the
/// work directory and loads the tree from there.
pub fn load(
    backup_path: &Path,
    key: &KeyArgs,
    db: &ConfigDbArgs,
    cancel: &CancelToken,
) -> Result<(BackupConfigDb, Vec<String>), Exit> {
    let backup = open_backup(backup_path)?;
    let label = format!("{SHOWN} in {}", backup.display_name());
    let work_dir = db
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp/proxsave"));
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
    let ws = Workspace::ensure(&work_dir, stamp).map_err(|e| Exit::Failure(e.into()))?;
    let copy = WorkCopy {
        dir: ws
            .private_dir("configdb-")
            .map_err(|e| Exit::Failure(e.into()))?,
    };
    let bar = progress::bar("reading");
    let (found, summary) = keys::with_key(key, backup.display_name(), |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        copy_out(&backup, &opts, &copy.dir, cancel)
    })?;
    drop(bar);
    match found {
        Some(Ok(())) => {}
        Some(Err(what)) => {
            return Err(Exit::Failure(anyhow::anyhow!("{label}: {what}")));
        }
        None => {
            return Err(Exit::Failure(anyhow::anyhow!(
                "{}: the backup holds no {SHOWN} (only a PVE node's backup has one)",
                backup.display_name()
            )));
        }
    }
    let tree = ConfigDbTree::open(&copy.dir.join("config.db"))
        .map_err(|e| Exit::Failure(e.shown_as(&label).into()))?;
    Ok((
        BackupConfigDb {
            tree,
            sha256: summary.sha256.clone(),
            label,
            _copy: copy,
        },
        summary.warnings,
    ))
}

/// The path as the archive would hold it: `etc/pve/<path>`.
fn archive_path(e: &TreeEntry) -> Option<ArchivePath> {
    ArchivePath::from_user(&format!("etc/pve/{}", e.path)).ok()
}

/// Paths and globs as `ls`/`extract` take them, where a pattern that does not name
/// `etc/pve` (`storage.cfg`, `nodes/*/qemu-server`) is relative to `/etc/pve`, as for `cat`.
fn selector(patterns: &[String]) -> Result<Selector, Exit> {
    let patterns: Vec<String> = patterns
        .iter()
        .map(|p| {
            let bare = p.trim_start_matches("./").trim_start_matches('/');
            if bare == "etc/pve" || bare.starts_with("etc/pve/") || bare.is_empty() {
                p.clone()
            } else {
                format!("/etc/pve/{bare}")
            }
        })
        .collect();
    Selector::new(&patterns).map_err(|e| Exit::Usage(e.to_string()))
}

fn selected(selector: &Selector, e: &TreeEntry) -> bool {
    selector.is_empty() || archive_path(e).is_some_and(|p| selector.matches(&p))
}

fn listed(e: &TreeEntry) -> ListedEntry {
    ListedEntry {
        name: e.full_path(),
        kind: match e.kind {
            configdb::EntryKind::Dir => EntryKind::Directory,
            configdb::EntryKind::File => EntryKind::File,
        },
        mode: e.mode(),
        uid: OWNER.0,
        gid: OWNER.1,
        uname: Some(OWNER.2.into()),
        gname: Some(OWNER.3.into()),
        size: e.size,
        mtime: Timestamp {
            secs: i64::from(e.mtime),
            nanos: 0,
        },
        link: None,
    }
}

fn no_match(selector: &Selector) -> CmdResult {
    eprintln!(
        "proxsave: no entry of /etc/pve in the backup's config.db matches {}",
        selector.describe().join(", ")
    );
    Err(Exit::Code(1))
}

/// `ls --from-config-db`.
pub fn ls(args: LsArgs, cancel: &CancelToken) -> CmdResult {
    let selector = selector(&args.patterns)?;
    let (db, warnings) = load(&args.backup, &args.key, &args.config_db, cancel)?;
    print_warnings(&warnings);
    let entries: Vec<ListedEntry> = db
        .tree
        .entries()
        .iter()
        .filter(|e| selected(&selector, e))
        .map(listed)
        .collect();
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            sha256: &'a str,
            from: &'a str,
            entries: &'a [ListedEntry],
        }
        print_json(
            "ls",
            &Out {
                backup: args.backup.display().to_string(),
                sha256: &db.sha256,
                from: SHOWN,
                entries: &entries,
            },
        )?;
    } else {
        let mut out = std::io::stdout().lock();
        for e in &entries {
            let line = if args.long {
                format!(
                    "{} {:<12} {:>10} {} {}",
                    mode_string(e.kind, e.mode),
                    format!("{}/{}", OWNER.2, OWNER.3),
                    e.size,
                    time_string(e.mtime),
                    e.name
                )
            } else {
                e.name.clone()
            };
            if writeln!(out, "{line}").is_err() {
                break; // closed pipe
            }
        }
    }
    if !selector.is_empty() && entries.is_empty() {
        return no_match(&selector);
    }
    Ok(())
}

/// `cat --from-config-db`.
pub fn cat(args: CatArgs, cancel: &CancelToken) -> CmdResult {
    let (db, warnings) = load(&args.backup, &args.key, &args.config_db, cancel)?;
    print_warnings(&warnings);
    let bytes = db
        .tree
        .read(&args.file)
        .map_err(|e| Exit::Failure(e.shown_as(&db.label).into()))?;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Exit::Failure(
            anyhow::Error::new(e).context("writing to standard output"),
        )),
    }
}

/// `extract --from-config-db`: `<to>/etc/pve/...` with pmxcfs's modes and the stored times.
pub fn extract(args: ExtractArgs, cancel: &CancelToken) -> CmdResult {
    let selector = selector(&args.patterns)?;
    // Read (and check) the database before anything is created at the destination.
    let (db, warnings) = load(&args.backup, &args.key, &args.config_db, cancel)?;
    print_warnings(&warnings);
    let chosen: Vec<&TreeEntry> = db
        .tree
        .entries()
        .iter()
        .filter(|e| selected(&selector, e))
        .collect();
    if chosen.is_empty() && !selector.is_empty() {
        return no_match(&selector);
    }
    let dest = Destination::prepare(&args.to)?;
    let written = match db
        .tree
        .write_selected(&dest.path, &|e| selected(&selector, e))
    {
        Ok(n) => n,
        Err(e) => {
            dest.restore_original_state();
            return Err(Exit::Failure(e.into()));
        }
    };
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            sha256: &'a str,
            from: &'a str,
            to: String,
            files_written: usize,
            entries: Vec<String>,
        }
        print_json(
            "extract",
            &Out {
                backup: args.backup.display().to_string(),
                sha256: &db.sha256,
                from: SHOWN,
                to: dest.path.display().to_string(),
                files_written: written,
                entries: chosen.iter().map(|e| e.full_path()).collect(),
            },
        )?;
    } else {
        eprintln!(
            "Extracted {written} files of /etc/pve from {} into {} (checksum {} verified)",
            db.label,
            dest.path.join("etc/pve").display(),
            db.sha256
        );
    }
    Ok(())
}

/// `diff --from-config-db`: the files of the database against `<root>/etc/pve`.
pub fn diff(args: DiffArgs, cancel: &CancelToken) -> CmdResult {
    if args.mode.is_some()
        || !args.categories.is_empty()
        || args.cluster_mode.is_some()
        || args.host_actions.is_some()
    {
        return Err(Exit::Usage(
            "--from-config-db compares the files of /etc/pve only; it takes no --mode, \
             --categories, --cluster-mode or --host-actions"
                .into(),
        ));
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let (db, warnings) = load(&args.backup, &args.key, &args.config_db, cancel)?;
    print_warnings(&warnings);
    let mut files = Vec::new();
    for e in db.tree.entries() {
        if e.kind != configdb::EntryKind::File {
            continue;
        }
        let (Some(path), Ok(bytes)) = (archive_path(e), db.tree.read(&e.path)) else {
            continue;
        };
        files.push((path, bytes));
    }
    let diffs = proxsave_restore::diff::diff_contents(
        &root,
        files,
        Tier::Export,
        super::diff::secrets(&args),
    )
    .map_err(|e| Exit::Failure(e.into()))?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            root: String,
            from: &'a str,
            files: &'a [proxsave_restore::diff::FileDiff],
            appliers: [(); 0],
        }
        print_json(
            "diff",
            &Out {
                backup: args.backup.display().to_string(),
                root: root.display().to_string(),
                from: SHOWN,
                files: &diffs,
                appliers: [],
            },
        )?;
        return Ok(());
    }
    let counts = super::diff::print_file_diffs(&diffs);
    eprintln!(
        "{} files of {} compared with {}: {} new, {} changed, {} unchanged",
        diffs.len(),
        db.label,
        root.join("etc/pve").display(),
        counts[0],
        counts[1],
        counts[3]
    );
    Ok(())
}
