//! The engine driven directly, with an in-memory recording command runner and a scripted
//! prompter: appliers (including one that panics), the safety-backup question, and the
//! service guard on every exit path.

use std::sync::{Arc, Mutex};

use proxsave_archive::backup::Backup;
use proxsave_archive::path::ArchivePath;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::Mode;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, AppliersSet, ApplyContext, ApplyError, Outcome,
    Status, has_applier,
};
use proxsave_restore::engine::{self, ExecuteOptions, Target};
use proxsave_restore::host::{CommandOutput, CommandRunner, Host, HostActions, HostCommand};
use proxsave_restore::plan::{self, Request};
use proxsave_restore::prompt::ScriptedPrompter;
use proxsave_restore::workspace::Workspace;
use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

// Link the domain crates so their categories are registered in this test binary.
mod common;
use common::{NoWait, NotMounted};

use proxsave_net as _;
use proxsave_pbs as _;
use proxsave_pve as _;

/// Records every command; `systemctl is-active` answers as systemctl does: `active` (exit 0)
/// for a unit that runs (at first, and after a start), `inactive` (exit 3) once stopped.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>, Mutex<Vec<String>>);

impl CommandRunner for Recorder {
    fn run(&self, cmd: &HostCommand, _cancel: &CancelToken) -> std::io::Result<CommandOutput> {
        self.0.lock().unwrap().push(cmd.display());
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let mut stopped = self.1.lock().unwrap();
        let (code, stdout) = match args.as_slice() {
            ["stop", .., unit] | ["kill", .., unit] => {
                stopped.push((*unit).to_string());
                (0, Vec::new())
            }
            ["start" | "restart", unit] => {
                stopped.retain(|u| u != unit);
                (0, Vec::new())
            }
            ["is-active", unit] if stopped.iter().any(|u| u == unit) => (3, b"inactive\n".to_vec()),
            ["is-active", _] => (0, b"active\n".to_vec()),
            _ => (0, Vec::new()),
        };
        Ok(CommandOutput {
            code: Some(code),
            stdout,
            stderr: Vec::new(),
            timed_out: false,
        })
    }
}

/// Applies `pve_jobs` by panicking (only registered in this test binary).
struct PanickingJobs;
impl Applier for PanickingJobs {
    fn name(&self) -> &'static str {
        "test-panicking-jobs"
    }
    fn categories(&self) -> &'static [&'static str] {
        &["pve_jobs"]
    }
    fn order(&self) -> u16 {
        10
    }
    fn apply(
        &self,
        _ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        panic!("applier bug");
    }
}
inventory::submit! { ApplierRegistration(&PanickingJobs) }

/// Applies `pve_notifications` by reading the staged file.
struct Notifications;
impl Applier for Notifications {
    fn name(&self) -> &'static str {
        "test-notifications"
    }
    fn categories(&self) -> &'static [&'static str] {
        &["pve_notifications"]
    }
    fn order(&self) -> u16 {
        20
    }
    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let path = ArchivePath::from_user("etc/pve/notifications.cfg").expect("path");
        let staged = ctx.stage.read(&path)?;
        Ok(vec![Outcome::new(
            "pve_notifications",
            if staged.is_some() {
                Status::Applied
            } else {
                Status::Failed {
                    error: "not staged".into(),
                }
            },
            format!(
                "read {}",
                ctx.stage.path().join("etc/pve/notifications.cfg").display()
            ),
        )])
    }
}
inventory::submit! { ApplierRegistration(&Notifications) }

struct Setup {
    dir: tempfile::TempDir,
    backup: Backup,
    target: HostRoot,
    runner: Arc<Recorder>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let source = HostTree::pve_cluster_node(dir.path().join("source"));
    let bundle = make_host_backup_in(&source, &host_spec(&source), dir.path());
    let backup = Backup::open(&bundle).unwrap();
    let target = HostRoot::pve(dir.path().join("root"));
    Setup {
        dir,
        backup,
        target,
        runner: Arc::new(Recorder::default()),
    }
}

fn host(s: &Setup) -> Host {
    Host::new(
        s.target.root().to_path_buf(),
        HostActions::Run,
        s.runner.clone(),
        Arc::new(NoWait),
        Arc::new(NotMounted),
    )
}

#[test]
fn a_panicking_applier_still_gets_services_restarted() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let scan = engine::scan(&s.backup, &opts, &CancelToken::new()).unwrap();
    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec![
            "pve_cluster".into(),
            "pve_jobs".into(),
            "pve_notifications".into(),
        ],
        cluster_mode: Some(plan::ClusterMode::Recovery),
        pbs_behavior: None,
    };
    let plan = plan::build(
        &scan.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    assert!(plan.needs_cluster_restore);
    let ws = Workspace::ensure(&s.dir.path().join("work"), "20260101_000000".into()).unwrap();
    let host = host(&s);
    let target = Target {
        backup: &s.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let mut prompter = ScriptedPrompter::default();
    // The panic is caught by the engine: the run goes on to the end.
    let (report, err) = engine::execute(
        &target,
        &scan,
        &plan,
        &mut prompter,
        &ExecuteOptions {
            export_dir: s.dir.path().join("export"),
            keep_stage: false,
            dry_run: false,
            cancel: CancelToken::new(),
            state: None,
            appliers: AppliersSet::registered(),
        },
    );
    assert!(err.is_none(), "{err:?}");
    let jobs = report
        .applied
        .iter()
        .find(|o| o.category == "pve_jobs")
        .expect("an outcome for pve_jobs");
    assert_eq!(jobs.applier, "test-panicking-jobs");
    assert!(
        matches!(&jobs.status, Status::Failed { error } if error.contains("applier bug")),
        "{jobs:?}"
    );
    assert!(
        report
            .applied
            .iter()
            .any(|o| o.category == "pve_notifications" && o.status == Status::Applied),
        "{:?}",
        report.applied
    );
    assert_eq!(
        report.outcome,
        proxsave_restore::report::Outcome::CompletedWithErrors
    );
    assert!(report.log.as_ref().is_some_and(|l| l.exists()));
    let ran = s.runner.0.lock().unwrap().clone();
    for unit in proxsave_pve::domain::PVE_SERVICES {
        let stop = ran
            .iter()
            .position(|c| c == &format!("systemctl stop --no-block {unit}"));
        let start = ran
            .iter()
            .position(|c| c == &format!("systemctl start {unit}"));
        assert!(
            stop.is_some() && start.is_some() && stop < start,
            "{unit}: {ran:#?}"
        );
    }
    // The database was written before the appliers ran.
    assert!(
        s.target
            .root()
            .join("var/lib/pve-cluster/config.db")
            .exists()
    );
}

#[test]
fn appliers_receive_the_stage_and_applied_categories_are_not_reported_as_staged_only() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let scan = engine::scan(&s.backup, &opts, &CancelToken::new()).unwrap();
    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec!["pve_notifications".into(), "network".into()],
        ..Request::default()
    };
    let plan = plan::build(
        &scan.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    let ws = Workspace::ensure(&s.dir.path().join("work"), "20260101_000001".into()).unwrap();
    let host = host(&s);
    let target = Target {
        backup: &s.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let mut prompter = ScriptedPrompter::default();
    let (report, err) = engine::execute(
        &target,
        &scan,
        &plan,
        &mut prompter,
        &ExecuteOptions {
            export_dir: s.dir.path().join("export"),
            keep_stage: false,
            dry_run: false,
            cancel: CancelToken::new(),
            state: None,
            // Only this file's applier: the real PVE notifications applier (linked through
            // proxsave-pve) is tested against the PVE double elsewhere.
            appliers: AppliersSet::new(vec![&Notifications]),
        },
    );
    assert!(err.is_none(), "{err:?}");
    // The registered pve_notifications applier of proxsave-pve runs too; this test's own
    // applier read the staged file.
    let ours: Vec<_> = report
        .applied
        .iter()
        .filter(|o| o.applier == "test-notifications")
        .collect();
    assert_eq!(ours.len(), 1, "{:?}", report.applied);
    assert_eq!(ours[0].status, Status::Applied, "{:?}", report.applied);
    assert_eq!(report.staged_not_applied, ["network"]);
    // Kept because network was not applied.
    assert!(
        report
            .stage_dir
            .as_ref()
            .unwrap()
            .join("etc/network/interfaces")
            .exists()
    );
}

#[test]
fn a_failed_safety_backup_asks_and_no_means_nothing_is_written() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let scan = engine::scan(&s.backup, &opts, &CancelToken::new()).unwrap();
    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec!["ssh".into()],
        ..Request::default()
    };
    let plan = plan::build(
        &scan.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    let before = s.target.snapshot();
    // A work directory that does not exist: the safety backup cannot be written.
    let ws = Workspace {
        dir: s.dir.path().join("missing-work-dir"),
        stamp: "20260101_000002".into(),
    };
    let host = host(&s);
    let target = Target {
        backup: &s.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let exec = |answer: bool| {
        let mut prompter = ScriptedPrompter {
            answers: vec![("continue_without_safety_backup", answer)],
            ..ScriptedPrompter::default()
        };
        let r = engine::execute(
            &target,
            &scan,
            &plan,
            &mut prompter,
            &ExecuteOptions {
                export_dir: s.dir.path().join("export"),
                keep_stage: false,
                dry_run: false,
                cancel: CancelToken::new(),
                state: None,
                appliers: AppliersSet::registered(),
            },
        );
        (r, prompter)
    };
    let ((report, err), prompter) = exec(false);
    assert_eq!(prompter.asked, ["continue_without_safety_backup"]);
    assert!(
        matches!(err, Some(proxsave_restore::RestoreError::SafetyBackup(_))),
        "{err:?}"
    );
    assert!(report.safety_backup.is_none());
    assert_eq!(s.target.snapshot(), before);

    // Without an answer in a non-interactive run: the question is an error, not a guess.
    let mut silent = ScriptedPrompter::default();
    let (_, err) = engine::execute(
        &target,
        &scan,
        &plan,
        &mut silent,
        &ExecuteOptions {
            export_dir: s.dir.path().join("export"),
            keep_stage: false,
            dry_run: false,
            cancel: CancelToken::new(),
            state: None,
            appliers: AppliersSet::registered(),
        },
    );
    assert!(err.unwrap().is_missing_decision());
    assert_eq!(s.target.snapshot(), before);
}

/// Reads the exported `/etc/pve` copy and the cluster database from the stage (not
/// registered: only given to the run below).
struct ExportReader;
impl Applier for ExportReader {
    fn name(&self) -> &'static str {
        "test-export-reader"
    }
    fn categories(&self) -> &'static [&'static str] {
        &["pve_config_export", "pve_cluster"]
    }
    fn order(&self) -> u16 {
        30
    }
    fn reads_exported(&self) -> bool {
        true
    }
    fn apply(
        &self,
        ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        let guest = ArchivePath::from_user("etc/pve/nodes/pve1/qemu-server/100.conf").expect("p");
        let db = ArchivePath::from_user("var/lib/pve-cluster/config.db").expect("p");
        let found = ctx.stage.read(&guest)?.is_some() && ctx.stage.read(&db)?.is_some();
        Ok(vec![Outcome::new(
            "pve_config_export",
            if found {
                Status::Applied
            } else {
                Status::Failed {
                    error: "not in the stage".into(),
                }
            },
            String::new(),
        )])
    }
}

/// Staged categories only (the default): never runs for an exported one.
struct StagedOnlyReader;
impl Applier for StagedOnlyReader {
    fn name(&self) -> &'static str {
        "test-staged-only"
    }
    fn categories(&self) -> &'static [&'static str] {
        &["pve_config_export"]
    }
    fn order(&self) -> u16 {
        31
    }
    fn apply(
        &self,
        _ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<Outcome>, ApplyError> {
        panic!("runs only for exported categories it does not read");
    }
}

#[test]
fn an_applier_reading_exported_categories_finds_them_in_the_stage_and_they_are_shown_exported() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let scan = engine::scan(&s.backup, &opts, &CancelToken::new()).unwrap();
    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec!["pve_config_export".into(), "pve_cluster".into()],
        cluster_mode: Some(plan::ClusterMode::Safe),
        pbs_behavior: None,
    };
    let plan = plan::build(
        &scan.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    assert!(!plan.needs_cluster_restore);
    assert!(plan.exported_staged.is_empty());
    let db_before = std::fs::read(s.target.root().join("var/lib/pve-cluster/config.db")).unwrap();
    let ws = Workspace::ensure(&s.dir.path().join("work"), "20260101_000003".into()).unwrap();
    let host = host(&s);
    let target = Target {
        backup: &s.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let mut prompter = ScriptedPrompter::default();
    let (report, err) = engine::execute(
        &target,
        &scan,
        &plan,
        &mut prompter,
        &ExecuteOptions {
            export_dir: s.dir.path().join("export"),
            keep_stage: false,
            dry_run: false,
            cancel: CancelToken::new(),
            state: None,
            appliers: AppliersSet::new(vec![&ExportReader, &StagedOnlyReader]),
        },
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert_eq!(report.applied[0].applier, "test-export-reader");
    assert_eq!(report.applied[0].status, Status::Applied);
    let planned: Vec<_> = report.appliers.iter().map(|a| &a.name).collect();
    assert_eq!(planned, ["test-export-reader"]);
    assert_eq!(
        report.appliers[0].categories,
        ["pve_config_export", "pve_cluster"]
    );
    // The user-visible result is unchanged: exported, never written to the root.
    let guest = report
        .files
        .iter()
        .find(|f| f.path == "/etc/pve/nodes/pve1/qemu-server/100.conf")
        .expect("listed");
    assert_eq!(guest.tier, Some(plan::Tier::Export), "{guest:?}");
    assert!(report.staged_not_applied.is_empty());
    assert_eq!(
        std::fs::read(s.target.root().join("var/lib/pve-cluster/config.db")).unwrap(),
        db_before
    );
    let export = report.export_dir.as_ref().expect("exported");
    assert!(
        export
            .join("etc/pve/nodes/pve1/qemu-server/100.conf")
            .exists()
    );
    // The private stage is removed after the run (everything staged was handled).
    assert!(report.stage_dir.is_none());
}

/// The analysis read's entry list past a tiny memory budget spills into the private work
/// directory, and the engine derives the same root targets, tiers and space needs from it
/// (the targets sorted through spilled runs too).
#[test]
fn a_spilled_scan_gives_the_same_targets_and_space_needs() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let work = s.dir.path().join("work");
    let ws = Workspace::ensure(&work, "20260101_000009".into()).unwrap();
    let in_memory = engine::scan(&s.backup, &opts, &CancelToken::new()).unwrap();
    let spilled = engine::scan_in(&s.backup, &opts, &CancelToken::new(), &ws.dir, 256).unwrap();
    assert!(!in_memory.is_spilled());
    assert!(
        spilled.is_spilled(),
        "{} entries past 256 bytes",
        spilled.len()
    );
    assert!(spilled.len() > 20);
    let a: Vec<_> = in_memory.entries().map(Result::unwrap).collect();
    let b: Vec<_> = spilled.entries().map(Result::unwrap).collect();
    assert_eq!(a, b);
    assert!(b.iter().any(|e| e.sha256.is_some()));
    // Nothing named is left in the work directory by the spill files.
    assert_eq!(std::fs::read_dir(&ws.dir).unwrap().count(), 0);

    let request = Request {
        mode: Some(Mode::Full),
        categories: Vec::new(),
        cluster_mode: Some(plan::ClusterMode::Safe),
        pbs_behavior: None,
    };
    let plan = plan::build(
        &in_memory.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    let wide = engine::routes(&plan, &in_memory, 1 << 20).unwrap();
    let tiny = engine::routes(&plan, &spilled, 64).unwrap();
    assert!(!wide.targets.is_spilled());
    assert!(tiny.targets.is_spilled(), "sorted runs spilled");
    let want = wide.targets.to_vec().unwrap();
    assert!(want.len() > 10);
    assert!(want.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
    assert_eq!(tiny.targets.to_vec().unwrap(), want);
    assert_eq!(
        engine::root_targets(&plan, &spilled)
            .unwrap()
            .to_vec()
            .unwrap(),
        want
    );
    assert_eq!(
        (wide.exports, wide.stages, &wide.staged_with_entries),
        (tiny.exports, tiny.stages, &tiny.staged_with_entries)
    );
    let needs = |scan: &engine::Scan, targets| {
        engine::space_needs(
            &plan,
            scan,
            s.target.root(),
            targets,
            &ws.dir,
            &s.dir.path().join("export"),
        )
        .unwrap()
        .into_iter()
        .map(|n| (n.bytes, n.inodes))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        needs(&in_memory, &wide.targets),
        needs(&spilled, &tiny.targets)
    );
}

/// The restore's analysis read keeps the verified tar stream privately, so the extraction
/// pass does not decrypt and decompress the backup again: a backup overwritten between the
/// plan and the extraction changes nothing — the restore writes exactly what it verified
/// (without the kept copy, the second read would fail on the checksum).
#[test]
fn the_extraction_reads_the_tar_stream_the_analysis_verified() {
    require_tools!("tar", "xz", "sha256sum");
    let s = setup();
    let opts = StreamOptions::default();
    let ws = Workspace::ensure(&s.dir.path().join("work"), "20260101_000010".into()).unwrap();
    let scan = engine::scan_in(
        &s.backup,
        &opts,
        &CancelToken::new(),
        &ws.dir,
        proxsave_archive::spill::LIST_BUDGET,
    )
    .unwrap();
    let kept = scan.kept_tar().expect("the verified tar stream is kept");
    assert_eq!(kept.len(), scan.stream.tar_bytes);
    // The stored archive is damaged after the analysis read (same size, other bytes).
    let (stored, _) = s.backup.stored_location();
    let stored = stored.to_path_buf();
    let mut bytes = std::fs::read(&stored).unwrap();
    for b in bytes.iter_mut().skip(64) {
        *b ^= 0x5a;
    }
    std::fs::write(&stored, &bytes).unwrap();

    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec!["network".into()],
        ..Request::default()
    };
    let plan = plan::build(
        &scan.analysis,
        plan::detect_role(s.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    let host = host(&s);
    let target = Target {
        backup: &s.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let (report, err) = engine::execute(
        &target,
        &scan,
        &plan,
        &mut ScriptedPrompter::default(),
        &ExecuteOptions {
            export_dir: s.dir.path().join("export"),
            keep_stage: true,
            dry_run: false,
            cancel: CancelToken::new(),
            state: None,
            appliers: AppliersSet::new(vec![]),
        },
    );
    assert!(err.is_none(), "{err:?}");
    let staged = report
        .stage_dir
        .as_ref()
        .expect("network is staged")
        .join("etc/network/interfaces");
    let source = s.dir.path().join("source/etc/network/interfaces");
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        std::fs::read(&source).unwrap(),
        "the bytes the analysis verified"
    );
    assert_eq!(report.sha256.as_deref(), Some(scan.stream.sha256.as_str()));
}
