//! The private work directory (`/tmp/proxsave` by default): safety backups, stage folders,
//! restore logs.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::RestoreError;

/// A verified private work directory and the run's timestamp.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The directory (mode 0700, owned by us or root).
    pub dir: PathBuf,
    /// `YYYYMMDD_HHMMSS` of this run, used in file names as upstream does.
    pub stamp: String,
}

impl Workspace {
    /// Creates `dir` (0700) if missing, then refuses it unless it is a real directory (not a
    /// symlink), not group/world-writable, and owned by the current user or root.
    ///
    /// # Errors
    /// [`RestoreError::Workspace`] naming the problem.
    pub fn ensure(dir: &Path, stamp: String) -> Result<Workspace, RestoreError> {
        let bad = |reason: String| RestoreError::Workspace {
            path: dir.to_path_buf(),
            reason,
        };
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| bad(format!("cannot create it: {e}")))?;
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| bad(format!("cannot make it private: {e}")))?;
            }
            Err(e) => return Err(bad(e.to_string())),
            Ok(_) => {}
        }
        let meta = fs::symlink_metadata(dir).map_err(|e| bad(e.to_string()))?;
        if meta.file_type().is_symlink() {
            return Err(bad("it is a symbolic link; refusing to use it".into()));
        }
        if !meta.is_dir() {
            return Err(bad("it is not a directory".into()));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(bad(format!(
                "it is writable by group or others (mode {:04o}); make it 0700",
                meta.mode() & 0o7777
            )));
        }
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid && meta.uid() != 0 {
            return Err(bad(format!(
                "it is owned by uid {}, not by you (uid {euid}) or root",
                meta.uid()
            )));
        }
        Ok(Workspace {
            dir: dir.to_path_buf(),
            stamp,
        })
    }

    /// A new private (0700) folder inside the work directory, `<prefix><stamp>` (with a
    /// numeric suffix if taken).
    ///
    /// # Errors
    /// [`RestoreError::Io`].
    pub fn private_dir(&self, prefix: &str) -> Result<PathBuf, RestoreError> {
        for n in 0..1000 {
            let name = if n == 0 {
                format!("{prefix}{}", self.stamp)
            } else {
                format!("{prefix}{}_{n}", self.stamp)
            };
            let p = self.dir.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => {
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o700))
                        .map_err(|e| RestoreError::io(&p, e))?;
                    return Ok(p);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(RestoreError::io(&p, e)),
            }
        }
        Err(RestoreError::io(
            &self.dir,
            std::io::Error::other("no free folder name"),
        ))
    }

    /// A file path in the work directory, `<prefix><stamp><suffix>` (numeric suffix if taken).
    pub fn file_path(&self, prefix: &str, suffix: &str) -> PathBuf {
        for n in 0..1000 {
            let name = if n == 0 {
                format!("{prefix}{}{suffix}", self.stamp)
            } else {
                format!("{prefix}{}_{n}{suffix}", self.stamp)
            };
            let p = self.dir.join(name);
            if fs::symlink_metadata(&p).is_err() {
                return p;
            }
        }
        self.dir.join(format!("{prefix}{}{suffix}", self.stamp))
    }
}
