//! A restore run by a program of its own: its own category and applier set, a scripted
//! prompter, host actions deferred, and a `tracing` subscriber that prints every event the
//! library emits (plus the restore log layer).
//!
//! ```text
//! cargo run -p proxsave-restore --example custom_appliers -- \
//!     --backup /path/to/pve1-backup-….bundle.tar --root /tmp/restore-root \
//!     [--passphrase-file FILE] [--work DIR] [--categories example_motd,crontabs]
//! ```
//!
//! It restores the CUSTOM selection `example_motd` (a category this program registers:
//! `/etc/motd`, staged) and `crontabs` (written into the root) into `--root`, never `/`.
//! The example applier installs the staged `/etc/motd` through the root handle (atomic
//! replace, a `.bak-…` copy of the old file) after asking `motd.install` (answered `yes` by
//! the scripted prompter). Nothing runs on this machine: host actions are deferred.
//!
//! `crates/proxsave-restore/tests/custom_appliers.rs` runs this same code against a backup
//! made by `proxsave-testkit` and checks the events and the applier's work.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use proxsave_archive::backup::Backup;
use proxsave_archive::key::Key;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::{Category, Flags, Handling, Kind, Mode, Pattern, Presets};
use proxsave_restore::applier::{
    Applier, ApplierPlan, AppliersSet, ApplyContext, ApplyError, Ask, FileSpec, Outcome,
    PlanContext, QuestionSpec, Status,
};
use proxsave_restore::engine::{self, ExecuteOptions, Target};
use proxsave_restore::host::{
    CommandOutput, CommandRunner, Host, HostActions, HostCommand, MountProbe, SystemClock,
};
use proxsave_restore::plan::{self, Request};
use proxsave_restore::prompt::ScriptedPrompter;
use proxsave_restore::report::Report;
use proxsave_restore::workspace::Workspace;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

// ---------------------------------------------------------------------------------------
// A category and its applier.

/// The category this program adds: `/etc/motd`, staged for [`MotdApplier`].
pub const MOTD_CATEGORY: &str = "example_motd";

inventory::submit! {
    Category {
        id: MOTD_CATEGORY,
        name: "Message of the day (example)",
        description: "/etc/motd, installed by the example applier",
        kind: Kind::Common,
        handling: Handling::Staged,
        patterns: &[Pattern::File("etc/motd")],
        presets: Presets::NONE,
        flags: Flags::NONE,
        order: 900,
    }
}

/// The question the applier asks before it writes.
pub const INSTALL: QuestionSpec = QuestionSpec {
    id: "motd.install",
    prompt: "Install the backup's /etc/motd?",
    choices: &["yes", "no"],
};

/// Installs the backup's `/etc/motd` when it differs from the root's.
pub struct MotdApplier;

fn motd_path() -> ArchivePath {
    ArchivePath::from_user("etc/motd").expect("a valid path")
}

impl Applier for MotdApplier {
    fn name(&self) -> &'static str {
        "example-motd"
    }

    fn categories(&self) -> &'static [&'static str] {
        &[MOTD_CATEGORY]
    }

    fn order(&self) -> u16 {
        100
    }

    fn questions(&self) -> &'static [QuestionSpec] {
        &[INSTALL]
    }

    /// Reads the stage and the root (nothing is written yet): says what it will do, the file
    /// it writes (saved in the safety backup) and the question it will ask.
    fn plan(&self, ctx: &PlanContext<'_>) -> Result<ApplierPlan, ApplyError> {
        let path = motd_path();
        let mut plan = ApplierPlan::default();
        let Some(staged) = ctx.stage.read(&path)? else {
            return Ok(plan);
        };
        if ctx.root.read(&path)?.as_deref() == Some(staged.as_slice()) {
            plan.actions
                .push("/etc/motd is already as in the backup".into());
            return Ok(plan);
        }
        plan.actions.push(format!(
            "replace /etc/motd ({} bytes), keeping a .bak copy",
            staged.len()
        ));
        plan.files.push(path);
        plan.questions.push(Ask {
            spec: INSTALL,
            default: Some("yes".into()),
            details: Vec::new(),
            timeout: None,
        });
        plan.details = serde_json::json!({ "bytes": staged.len() });
        Ok(plan)
    }

    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let (Some(path), Some(ask)) = (plan.files.first(), plan.questions.first()) else {
            let why = plan
                .actions
                .first()
                .cloned()
                .unwrap_or_else(|| "no /etc/motd in the backup".into());
            return Ok(vec![Outcome::new(
                MOTD_CATEGORY,
                Status::Skipped { reason: why },
                "",
            )]);
        };
        match ctx.prompter.ask(ask)?.value.as_str() {
            "yes" => {}
            "no" => {
                return Ok(vec![Outcome::new(
                    MOTD_CATEGORY,
                    Status::Skipped {
                        reason: "answered no".into(),
                    },
                    "",
                )]);
            }
            other => {
                return Err(ApplyError::BadAnswer {
                    id: INSTALL.id,
                    reason: format!("`{other}` is not yes or no"),
                });
            }
        }
        let bytes = ctx
            .stage
            .read(path)?
            .ok_or_else(|| ApplyError::Other("/etc/motd left the stage".into()))?;
        let spec = FileSpec {
            backup_stamp: Some(ctx.host.clock.now().format("%Y%m%d-%H%M%S").to_string()),
            ..FileSpec::default()
        };
        let done = ctx.root.replace(path, &bytes, &spec)?;
        let detail = match &done.backup {
            Some(b) => format!("installed /etc/motd (old one kept as /{b})"),
            None => "installed /etc/motd".to_string(),
        };
        Ok(vec![Outcome::new(MOTD_CATEGORY, Status::Applied, detail)])
    }
}

/// The applier set of this program: only its own applier (not the registered ones).
pub static MOTD: MotdApplier = MotdApplier;

// ---------------------------------------------------------------------------------------
// A subscriber layer that prints every span and event.

/// Hands every span and event, as one line, to `sink`.
pub struct PrintEvents {
    /// Receives `LEVEL target: field=value …` lines.
    pub sink: Arc<dyn Fn(String) + Send + Sync>,
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S: Subscriber> Layer<S> for PrintEvents {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let m = attrs.metadata();
        let mut line = Line(format!("SPAN {} {}:", m.target(), m.name()));
        attrs.record(&mut line);
        (self.sink)(line.0);
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let m = event.metadata();
        let mut line = Line(format!("{} {}:", m.level(), m.target()));
        event.record(&mut line);
        (self.sink)(line.0);
    }
}

// ---------------------------------------------------------------------------------------
// The program.

/// Command line.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// The backup (archive or bundle).
    pub backup: PathBuf,
    /// The root restored into (never `/`).
    pub root: PathBuf,
    /// A passphrase or age key file, for encrypted backups.
    pub passphrase_file: Option<PathBuf>,
    /// Work directory (safety backup, stage, log); default: `proxsave-example` in the
    /// system's temporary folder.
    pub work: Option<PathBuf>,
    /// The CUSTOM selection.
    pub categories: Vec<String>,
}

/// Parses `--backup PATH --root DIR [--passphrase-file F] [--work DIR] [--categories a,b]`.
///
/// # Errors
/// A usage message.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut out = Args {
        categories: vec![MOTD_CATEGORY.to_string(), "crontabs".to_string()],
        ..Args::default()
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--backup" => out.backup = value()?.into(),
            "--root" => out.root = value()?.into(),
            "--passphrase-file" => out.passphrase_file = Some(value()?.into()),
            "--work" => out.work = Some(value()?.into()),
            "--categories" => {
                out.categories = value()?.split(',').map(|c| c.trim().to_string()).collect();
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if out.backup.as_os_str().is_empty() || out.root.as_os_str().is_empty() {
        return Err("usage: custom_appliers --backup PATH --root DIR [--passphrase-file F] [--work DIR] [--categories a,b]".into());
    }
    Ok(out)
}

/// Runs nothing: with host actions deferred the engine never calls it.
struct NoCommands;

impl CommandRunner for NoCommands {
    fn run(&self, cmd: &HostCommand, _cancel: &CancelToken) -> std::io::Result<CommandOutput> {
        Err(std::io::Error::other(format!(
            "this program runs no host command ({})",
            cmd.display()
        )))
    }
}

/// Says nothing is mounted (the root is a plain folder).
struct NoMounts;

impl MountProbe for NoMounts {
    fn is_mount_point(&self, _path: &Path) -> bool {
        false
    }
}

/// Scans the backup, plans the CUSTOM selection, and restores it into `args.root` with
/// [`MotdApplier`] as the only applier, every `tracing` event going to `sink` (and the
/// restore log written by [`proxsave_restore::log::RestoreLog`]).
///
/// # Errors
/// The backup cannot be read, the plan cannot be built, or the restore failed (its report
/// is printed by the caller from the error text).
pub fn run(
    args: &Args,
    sink: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Report, Box<dyn std::error::Error>> {
    if std::fs::canonicalize(&args.root)? == Path::new("/") {
        return Err("this example never restores into /".into());
    }
    let mut key = Key::new();
    if let Some(f) = &args.passphrase_file {
        key.add_passphrase_file(f)?;
    }
    let backup = Backup::open(&args.backup)?;
    let stream = StreamOptions {
        key: Some(&key),
        ..StreamOptions::default()
    };
    let subscriber = tracing_subscriber::registry()
        .with(PrintEvents { sink })
        .with(proxsave_restore::log::RestoreLog::new());
    // This thread's subscriber while the restore runs (the engine emits from the calling
    // thread); a program of its own would rather install one for good with `.init()`.
    tracing::subscriber::with_default(subscriber, || {
        let cancel = CancelToken::new();
        let scan = engine::scan(&backup, &stream, &cancel)?;
        let appliers = AppliersSet::new(vec![&MOTD]);
        let request = Request {
            mode: Some(Mode::Custom),
            categories: args.categories.clone(),
            ..Request::default()
        };
        let plan = plan::build(
            &scan.analysis,
            plan::detect_role(&args.root),
            &request,
            &|c| appliers.handles(c),
        )?;
        let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S").to_string();
        let work = args
            .work
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("proxsave-example"));
        let workspace = Workspace::ensure(&work, stamp.clone())?;
        let host = Host::new(
            std::fs::canonicalize(&args.root)?,
            HostActions::Defer,
            Arc::new(NoCommands),
            Arc::new(SystemClock),
            Arc::new(NoMounts),
        );
        let mut prompter = ScriptedPrompter {
            values: vec![(INSTALL.id, "yes".to_string())],
            ..ScriptedPrompter::default()
        };
        let target = Target {
            backup: &backup,
            stream: &stream,
            host: &host,
            workspace: &workspace,
        };
        let opts = ExecuteOptions {
            export_dir: work.join(format!("export-{stamp}")),
            keep_stage: false,
            dry_run: false,
            cancel,
            state: None,
            appliers,
        };
        let (report, err) = engine::execute(&target, &scan, &plan, &mut prompter, &opts);
        match err {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, Arc::new(|line| println!("{line}"))) {
        Ok(report) => {
            println!("outcome: {}", report.outcome.words());
            for o in &report.applied {
                println!(
                    "{} ({}): {} {}",
                    o.category,
                    o.applier,
                    o.status.word(),
                    o.detail
                );
            }
            if let Some(log) = &report.log {
                println!("restore log: {}", log.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restore failed: {e}");
            ExitCode::FAILURE
        }
    }
}
