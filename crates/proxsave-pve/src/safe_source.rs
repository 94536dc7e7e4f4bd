//! Where the SAFE appliers read the backup's `/etc/pve` from.
//!
//! A backup normally holds `/etc/pve` as files (the `pve_config_export` category). When it
//! does not (a backup made with the export disabled, or one that kept only the cluster
//! database), the SAFE appliers read the same tree rebuilt from the backup's
//! `var/lib/pve-cluster/config.db` ([`crate::configdb`]): the database, staged privately by
//! the engine ([`proxsave_restore::applier::Applier::also_reads`]), is opened read-only and its
//! tree written into a private folder (0700) next to the stage, removed when the view is
//! dropped. Nothing of it reaches the root or the export folder.

use std::path::Path;

use proxsave_archive::path::ArchivePath;
use proxsave_restore::applier::{ApplyError, Stage};

use crate::configdb;

/// The category of the backup's copy of `/etc/pve`.
pub const EXPORT_CATEGORY: &str = "pve_config_export";

/// The category whose exported files hold `config.db` (what the SAFE appliers' `also_reads` names).
pub const CLUSTER_CATEGORY: &str = "pve_cluster";

/// The export-tier categories the SAFE appliers also read (for `config.db`).
pub const ALSO_READS: &[&str] = &[CLUSTER_CATEGORY];

/// The backup's `/etc/pve` as the SAFE appliers read it.
#[derive(Debug)]
pub enum SafeSource<'a> {
    /// The backup's own copy of `/etc/pve`, in the stage.
    Files(&'a Stage),
    /// `/etc/pve` rebuilt from the backup's `config.db`.
    ConfigDb {
        /// A stage over the rebuilt tree.
        stage: Stage,
        /// The private folder holding it (removed on drop).
        _dir: tempfile::TempDir,
        /// How many files the tree holds.
        files: usize,
    },
    /// Neither is in the backup.
    Absent(&'a Stage),
}

impl SafeSource<'_> {
    /// The stage to read `etc/pve/...` from.
    pub fn stage(&self) -> &Stage {
        match self {
            SafeSource::Files(s) | SafeSource::Absent(s) => s,
            SafeSource::ConfigDb { stage, .. } => stage,
        }
    }

    /// The category whose files the tree comes from (the one outcomes are reported for).
    pub fn category(&self) -> &'static str {
        match self {
            SafeSource::ConfigDb { .. } => CLUSTER_CATEGORY,
            _ => EXPORT_CATEGORY,
        }
    }

    /// A line for the plan and the report when the tree comes from `config.db`.
    pub fn note(&self) -> Option<String> {
        match self {
            SafeSource::ConfigDb { files, .. } => Some(format!(
                "the backup holds no copy of /etc/pve: read from its /{} ({files} files)",
                configdb::BACKUP_PATH
            )),
            _ => None,
        }
    }
}

fn ap(s: &str) -> Result<ArchivePath, ApplyError> {
    ArchivePath::from_user(s).map_err(|e| ApplyError::Other(format!("{s}: {e}")))
}

/// Chooses the source: the staged `etc/pve` when it holds anything, else the staged
/// `config.db` rebuilt into a private folder beside the stage.
///
/// # Errors
/// The stage cannot be read, or the staged `config.db` is refused (the error names it and
/// gives SQLite's message or the bad row).
pub fn open(stage: &Stage) -> Result<SafeSource<'_>, ApplyError> {
    let io = |path: &Path, e: std::io::Error| ApplyError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let etc_pve = ap("etc/pve")?;
    let listed = stage
        .list(&etc_pve)
        .map_err(|e| io(&stage.path().join("etc/pve"), e))?;
    if !listed.is_empty() {
        return Ok(SafeSource::Files(stage));
    }
    let db = ap(configdb::BACKUP_PATH)?;
    let Some(bytes) = stage
        .read(&db)
        .map_err(|e| io(&stage.path().join(configdb::BACKUP_PATH), e))?
    else {
        return Ok(SafeSource::Absent(stage));
    };
    let private = stage.path().parent().unwrap_or(stage.path());
    let dir = tempfile::Builder::new()
        .prefix(".proxsave-safe-configdb-")
        .tempdir_in(private)
        .map_err(|e| io(private, e))?;
    let file = dir.path().join("config.db");
    write_private(&file, &bytes).map_err(|e| io(&file, e))?;
    // The WAL, when the backup holds one, carries committed writes.
    let wal = ap(&format!("{}-wal", configdb::BACKUP_PATH))?;
    if let Some(w) = stage.read(&wal).map_err(|e| io(stage.path(), e))? {
        let f = dir.path().join("config.db-wal");
        write_private(&f, &w).map_err(|e| io(&f, e))?;
    }
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).map_err(|e| io(&tree, e))?;
    let (_, files) = configdb::export_tree(&file, &tree).map_err(|e| {
        ApplyError::Other(
            e.shown_as(format!("/{} in the backup", configdb::BACKUP_PATH))
                .to_string(),
        )
    })?;
    let stage = Stage::open(&tree).map_err(|e| io(&tree, e))?;
    Ok(SafeSource::ConfigDb {
        stage,
        _dir: dir,
        files,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
