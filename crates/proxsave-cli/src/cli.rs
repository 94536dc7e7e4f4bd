//! Command-line syntax (the contract in docs/cli.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `proxsave --version`: the package version and the git revision it was built from
/// (`unknown` outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("PROXSAVE_GIT_REV"),
    ")"
);

/// Restore, verify, inspect and extract proxsave backups of Proxmox VE / Backup Server hosts.
#[derive(Debug, Parser)]
#[command(name = "proxsave", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses `std::env::args`, accepting upstream's `--decrypt` (and, later, `--restore`)
    /// spelled as options.
    pub fn parse_with_aliases() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os()
            .enumerate()
            .map(|(i, a)| {
                if i == 1 && (a == "--decrypt" || a == "-decrypt") {
                    "decrypt".into()
                } else if i == 1 && (a == "--restore" || a == "-restore") {
                    "restore".into()
                } else {
                    a
                }
            })
            .collect();
        Cli::parse_from(args)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a backup's manifest, encryption and checksum status (no key needed).
    Inspect(InspectArgs),
    /// Read the whole backup and check it: checksum, decryption, decompression, tar
    /// structure and every extraction safety rule. Writes nothing; exit 0 only if sound.
    Verify(VerifyArgs),
    /// List the entries of a backup.
    Ls(LsArgs),
    /// Write one file's content from a backup to standard output.
    Cat(CatArgs),
    /// Extract (all or some) entries of a backup into a folder, safely.
    Extract(ExtractArgs),
    /// Decrypt a backup into `<name>.decrypted.bundle.tar`.
    Decrypt(DecryptArgs),
    /// List the backups found in the configured sources.
    List(ListArgs),
    /// Restore a backup: choose a mode and categories, review the plan, type RESTORE.
    Restore(Box<RestoreArgs>),
    /// Show how the files a restore would write differ from the target root (secrets masked).
    Diff(DiffArgs),
    /// The network COMMIT window from another shell: `status`, `commit`, `rollback-now`.
    Net(crate::commands::net::NetArgs),
    /// List the category ids `--categories` accepts: paths, handling and the modes that
    /// include each.
    Categories(CategoriesArgs),
    /// Write the man pages and shell completions (packaging; see docs/packaging.md).
    #[command(name = "generate-assets", hide = true)]
    GenerateAssets(GenerateAssetsArgs),
}

/// `proxsave generate-assets` (hidden): what the Debian package installs besides the binary.
#[derive(Debug, Args)]
pub struct GenerateAssetsArgs {
    /// Folder to write `man/*.1` and `completions/{proxsave.bash,_proxsave,proxsave.fish}`
    /// into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn parse_mode(s: &str) -> Result<proxsave_categories::Mode, String> {
    proxsave_categories::Mode::parse(s)
        .ok_or_else(|| "expected full, storage, base or custom".to_string())
}

fn parse_cluster(s: &str) -> Result<proxsave_restore::plan::ClusterMode, String> {
    proxsave_restore::plan::ClusterMode::parse(s)
        .ok_or_else(|| "expected safe or recovery".to_string())
}

fn parse_answer(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, value)) if !id.trim().is_empty() => {
            Ok((id.trim().to_string(), value.to_string()))
        }
        _ => Err("expected ID=VALUE (e.g. fstab.merge=all)".to_string()),
    }
}

fn parse_pbs(s: &str) -> Result<proxsave_restore::plan::PbsBehavior, String> {
    proxsave_restore::plan::PbsBehavior::parse(s)
        .ok_or_else(|| "expected merge or clean".to_string())
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (asked for interactively when missing).
    #[arg(long, value_name = "PATH")]
    pub backup: Option<PathBuf>,
    /// Restore into this folder as if it were `/` [default: /].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Create the --root folder if it does not exist (for scratch restores).
    #[arg(long)]
    pub create_root: bool,
    /// Restore mode.
    #[arg(long, value_name = "full|storage|base|custom", value_parser = parse_mode)]
    pub mode: Option<proxsave_categories::Mode>,
    /// Category ids and/or paths/globs (implies --mode custom), comma-separated or repeated.
    #[arg(long, value_name = "ID|PATH,…", value_delimiter = ',')]
    pub categories: Vec<String>,
    /// For cluster backups: SAFE (export + API) or RECOVERY (restore config.db).
    #[arg(long, value_name = "safe|recovery", value_parser = parse_cluster)]
    pub cluster_mode: Option<proxsave_restore::plan::ClusterMode>,
    /// On PBS hosts: merge into the existing PBS or clean 1:1.
    #[arg(long, value_name = "merge|clean", value_parser = parse_pbs)]
    pub pbs_behavior: Option<proxsave_restore::plan::PbsBehavior>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// TOML file with every decision (see docs/cli.md).
    #[arg(long, value_name = "FILE.toml")]
    pub answers: Option<PathBuf>,
    /// Answer the question ID up front (repeatable; wins over the answers file's [answers]).
    #[arg(long = "answer", value_name = "ID=VALUE", value_parser = parse_answer)]
    pub answer: Vec<(String, String)>,
    /// Non-interactive: take every decision from flags or --answers (a question with a default
    /// takes it); a missing one is an error naming it.
    #[arg(long)]
    pub yes: bool,
    /// Write nothing; show the plan and, per file, new / changed / unchanged.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan (with --dry-run) or the report as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Host commands (systemctl, umount, pvesh…): run when the root is / (auto), always, or never.
    #[arg(long, value_name = "auto|run|defer")]
    pub host_actions: Option<crate::answers::HostActionsArg>,
    /// Private work folder for safety backups, stage folders and logs [default: /tmp/proxsave].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Export folder [default: <ROOT>/<BASE_DIR>/proxmox-config-export-YYYYMMDD-HHMMSS,
    /// inside the --root folder].
    #[arg(long, value_name = "DIR")]
    pub export_dir: Option<PathBuf>,
    /// proxsave configuration (backup.env) for backup sources and BASE_DIR.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep the stage folder even when everything staged was applied.
    #[arg(long)]
    pub keep_stage: bool,
    /// Go on even if the backup's role (PVE/PBS) does not match the host's (the same as
    /// `--answer continue_incompatible=yes`).
    #[arg(long)]
    pub continue_incompatible: bool,
    /// Roll back to this safety backup (restore_backup_*.tar.gz) and exit: the root it was
    /// taken of (recorded beside it) is put back; `--root`, if given, must be that root.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["backup", "mode", "categories", "dry_run"])]
    pub rollback: Option<PathBuf>,
    /// With --rollback: roll back the --root given even though it is not the root the
    /// safety backup was taken of (another path, or another folder at that path).
    #[arg(long, requires_all = ["rollback", "root"])]
    pub force_root: bool,
    /// Start the services an interrupted or killed restore left stopped (from the services
    /// journal in --work-dir, for this --root) and exit; also done first by every restore.
    #[arg(long, conflicts_with_all = ["backup", "mode", "categories", "dry_run", "rollback"])]
    pub recover: bool,
    /// Length of every COMMIT window (firewall, HA, access control): the changes roll back
    /// unless COMMIT is typed (or `--yes` commits) within it [default: 180].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub commit_window: Option<u64>,
    /// List the pending COMMIT windows of --work-dir (area, paths, seconds left, timer) and exit.
    #[arg(long, conflicts_with_all = ["backup", "mode", "categories", "dry_run", "rollback", "recover"])]
    pub rollback_status: bool,
    /// Internal: fire the rollback of the COMMIT window in DIR (run by its timer).
    #[arg(long, value_name = "DIR", hide = true, conflicts_with_all = ["backup", "rollback", "recover", "rollback_status"])]
    pub commit_fire: Option<PathBuf>,
    /// Internal: with --commit-fire, wait this many seconds first.
    #[arg(long, value_name = "SECONDS", hide = true, requires = "commit_fire")]
    pub after: Option<u64>,
}

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The backup.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// Compare with this folder as `/` [default: /].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Restore mode whose files are compared [default: full].
    #[arg(long, value_name = "full|storage|base|custom", value_parser = parse_mode)]
    pub mode: Option<proxsave_categories::Mode>,
    /// Category ids and/or paths/globs.
    #[arg(long, value_name = "ID|PATH,…", value_delimiter = ',')]
    pub categories: Vec<String>,
    /// For cluster backups: compare as SAFE or RECOVERY [default: safe].
    #[arg(long, value_name = "safe|recovery", value_parser = parse_cluster)]
    pub cluster_mode: Option<proxsave_restore::plan::ClusterMode>,
    /// Read-only host commands the appliers use to plan (`pvesh get …`): run when the root
    /// is / (auto), always, or never. Nothing is ever changed.
    #[arg(long, value_name = "auto|run|defer")]
    pub host_actions: Option<crate::answers::HostActionsArg>,
    /// Show secrets as they are (password hashes, keys, tokens, `password=` values, key
    /// files); by default they are masked.
    #[arg(long)]
    pub show_secrets: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config_db: ConfigDbArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Reading `/etc/pve` from the backup's `config.db` (`ls`, `cat`, `extract`, `diff`).
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigDbArgs {
    /// Read the files of /etc/pve from the backup's var/lib/pve-cluster/config.db (the
    /// pmxcfs database), copied into a private folder of --work-dir and read-only there.
    #[arg(long)]
    pub from_config_db: bool,
    /// With --from-config-db: the private work folder the database is copied into (removed
    /// afterwards) [default: /tmp/proxsave].
    #[arg(long, value_name = "DIR", requires = "from_config_db")]
    pub work_dir: Option<PathBuf>,
}

/// How to decrypt.
#[derive(Debug, Clone, Args, Default)]
pub struct KeyArgs {
    /// File whose first line is the passphrase (or an AGE-SECRET-KEY); `-` reads stdin.
    #[arg(long, value_name = "FILE|-")]
    pub passphrase_file: Option<PathBuf>,
    /// age identity file (AGE-SECRET-KEY-… lines) or OpenSSH private key; repeatable.
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The backup: a .bundle.tar, or a raw archive with its .metadata/.sha256 beside it.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not compute the checksum of the stored bytes (manifest only).
    #[arg(long)]
    pub no_checksum: bool,
    /// Also read the whole backup and list the restore categories it holds (implied by a
    /// key option).
    #[arg(long)]
    pub categories: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The backup.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// Only entries matching these paths or globs (`etc/ssh`, `/etc/pve/*.cfg`).
    #[arg(value_name = "PATH|GLOB")]
    pub patterns: Vec<String>,
    /// Long listing: type and mode, owner, size, time, name.
    #[arg(short, long)]
    pub long: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config_db: ConfigDbArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// The backup.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// The file, as `etc/hosts`, `./etc/hosts` or `/etc/hosts`.
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub config_db: ConfigDbArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The backup.
    #[arg(long, value_name = "PATH")]
    pub backup: PathBuf,
    /// Destination folder: missing (created) or empty.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Only these paths or globs (a directory selects everything below it).
    #[arg(value_name = "PATH|GLOB")]
    pub patterns: Vec<String>,
    /// Write the acceptable entries even if some are refused by the safety rules
    /// (by default nothing is written then).
    #[arg(long)]
    pub skip_refused: bool,
    /// Do not restore numeric owners even when running as root.
    #[arg(long)]
    pub no_same_owner: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config_db: ConfigDbArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// The backup (asked for interactively when missing).
    #[arg(long, value_name = "PATH")]
    pub backup: Option<PathBuf>,
    /// Output folder [default: the current folder]. The bundle holds plaintext: it is
    /// written 0600.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// proxsave configuration (backup.env).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `categories`.
#[derive(Debug, Args)]
pub struct CategoriesArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// proxsave configuration (backup.env) [default: /opt/proxsave/configs/backup.env].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Scan this folder instead of the configured sources.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
