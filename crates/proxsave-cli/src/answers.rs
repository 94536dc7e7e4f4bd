//! `--answers FILE.toml`: every decision of a restore, for runbooks.
//!
//! Keys mirror the flags (flags win when both are given). Unknown keys and bad values are
//! errors that name the file, line and column. Relative paths are taken relative to the
//! answers file's folder.
//!
//! ```toml
//! backup = "/mnt/usb/pve1.example.lan-backup-20260724-023000.tar.xz.age.bundle.tar"
//! passphrase_file = "/root/proxsave-passphrase"
//! mode = "custom"
//! categories = ["network", "ssh", "/etc/hosts"]
//! cluster_mode = "safe"          # only asked for cluster backups
//! pbs_behavior = "merge"         # only asked on PBS hosts
//! continue_incompatible = false  # backup of another role: stop
//! continue_without_safety_backup = false
//! continue_with_pbs_services_running = false
//! ```

use std::path::{Path, PathBuf};

use proxsave_categories::Mode;
use proxsave_restore::plan::{ClusterMode, PbsBehavior};
use serde::Deserialize;

/// `--host-actions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HostActionsArg {
    /// Run host commands when the root is `/`, defer them otherwise.
    Auto,
    /// Always run them.
    Run,
    /// Never run them; list them as to-dos.
    Defer,
}

/// The answers file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    /// `--backup`.
    pub backup: Option<PathBuf>,
    /// `--root`.
    pub root: Option<PathBuf>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--categories`.
    pub categories: Option<Vec<String>>,
    /// `--cluster-mode`.
    pub cluster_mode: Option<ClusterMode>,
    /// `--pbs-behavior`.
    pub pbs_behavior: Option<PbsBehavior>,
    /// `--host-actions`.
    pub host_actions: Option<HostActionsArg>,
    /// `--work-dir`.
    pub work_dir: Option<PathBuf>,
    /// `--export-dir`.
    pub export_dir: Option<PathBuf>,
    /// `--passphrase-file`.
    pub passphrase_file: Option<PathBuf>,
    /// `--identity`.
    pub identity: Option<Vec<PathBuf>>,
    /// `--keep-stage`.
    pub keep_stage: Option<bool>,
    /// Go on when the backup's role does not match the host's.
    pub continue_incompatible: Option<bool>,
    /// Go on when the safety backup cannot be created.
    pub continue_without_safety_backup: Option<bool>,
    /// Go on when PBS services cannot be stopped.
    pub continue_with_pbs_services_running: Option<bool>,
}

impl Answers {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// A message `FILE:LINE:COLUMN: problem`.
    pub fn load(path: &Path) -> Result<Answers, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut answers: Answers = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            format!("{}:{line}:{col}: {}", path.display(), e.message().trim())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(v) = p
                && v.is_relative()
            {
                *v = base.join(&*v);
            }
        };
        fix(&mut answers.backup);
        fix(&mut answers.root);
        fix(&mut answers.work_dir);
        fix(&mut answers.export_dir);
        fix(&mut answers.passphrase_file);
        if let Some(ids) = &mut answers.identity {
            for p in ids.iter_mut() {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(answers)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Answers, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("answers.toml");
        std::fs::write(&p, text).unwrap();
        Answers::load(&p).map_err(|e| e.replace(&p.display().to_string(), "answers.toml"))
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = load("mode = \"custom\"\nmoed = \"full\"\n").unwrap_err();
        assert!(
            e.starts_with("answers.toml:2:1: unknown field `moed`"),
            "{e}"
        );
        let e = load("mode = \"fulll\"\n").unwrap_err();
        assert!(
            e.starts_with("answers.toml:1:8: unknown variant `fulll`"),
            "{e}"
        );
        let e = load("categories = \"network\"\n").unwrap_err();
        assert!(e.starts_with("answers.toml:1:14:"), "{e}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "backup = \"b.bundle.tar\"\ncluster_mode = \"safe\"\n").unwrap();
        let a = Answers::load(&p).unwrap();
        assert_eq!(a.backup.unwrap(), dir.path().join("b.bundle.tar"));
        assert_eq!(a.cluster_mode, Some(ClusterMode::Safe));
    }
}
