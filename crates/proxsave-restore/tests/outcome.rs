//! How a restore ends, driven through the engine: 0-worthy outcomes only when everything asked
//! for happened; failed/refused entries, a failed applier or a service left stopped are
//! "completed with errors"; a cancellation seen at any point (even after the files were
//! written, or during the last applier) is "aborted", with the state it left in the report.

use std::sync::{Arc, Mutex};

use proxsave_archive::backup::Backup;
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;
use proxsave_categories::Mode;
use proxsave_restore::applier::{
    Applier, ApplierPlan, ApplierRegistration, AppliersSet, ApplyContext, ApplyError, Status,
    has_applier,
};
use proxsave_restore::engine::{self, ExecuteOptions, Scan, Target};
use proxsave_restore::host::{CommandOutput, CommandRunner, Host, HostActions, HostCommand};
use proxsave_restore::plan::{self, ClusterMode, Request};
use proxsave_restore::prompt::{Level, PromptError, Prompter, Question};
use proxsave_restore::report::{FileStatus, Outcome, Report};
use proxsave_restore::workspace::Workspace;
use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

mod common;
use common::{NoWait, NotMounted};

use proxsave_net as _;
use proxsave_pbs as _;
use proxsave_pve as _;

/// Records commands; `systemctl is-active` answers as systemctl does (`active`, exit 0, for a
/// unit that runs; `inactive`, exit 3, once stopped); starting `fail_start` fails.
#[derive(Default)]
struct Runner {
    calls: Mutex<Vec<String>>,
    stopped: Mutex<Vec<String>>,
    fail_start: Option<&'static str>,
}

impl CommandRunner for Runner {
    fn run(&self, cmd: &HostCommand, _cancel: &CancelToken) -> std::io::Result<CommandOutput> {
        self.calls.lock().unwrap().push(cmd.display());
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        let fails = matches!(
            (args.as_slice(), self.fail_start),
            (["start" | "restart", unit], Some(bad)) if *unit == bad
        );
        let mut stopped = self.stopped.lock().unwrap();
        match args.as_slice() {
            ["stop", .., unit] | ["kill", .., unit] => stopped.push((*unit).to_string()),
            ["start" | "restart", unit] if !fails => stopped.retain(|u| u != unit),
            _ => {}
        }
        let down =
            matches!(args.as_slice(), ["is-active", unit] if stopped.iter().any(|u| u == unit));
        Ok(CommandOutput {
            code: Some(if down {
                3
            } else if fails {
                1
            } else {
                0
            }),
            stdout: match args.first() {
                Some(&"is-active") if down => b"inactive\n".to_vec(),
                Some(&"is-active") => b"active\n".to_vec(),
                _ => Vec::new(),
            },
            stderr: if fails {
                b"Job for unit failed\n".to_vec()
            } else {
                Vec::new()
            },
            timed_out: false,
        })
    }
}

/// Applies `network` and fails (only registered in this test binary).
struct FailingNetwork;
impl Applier for FailingNetwork {
    fn name(&self) -> &'static str {
        "test-failing-network"
    }
    fn categories(&self) -> &'static [&'static str] {
        &["network"]
    }
    fn order(&self) -> u16 {
        10
    }
    fn apply(
        &self,
        _ctx: &mut ApplyContext<'_>,
        _plan: &ApplierPlan,
    ) -> Result<Vec<proxsave_restore::applier::Outcome>, ApplyError> {
        Ok(vec![proxsave_restore::applier::Outcome::new(
            "network",
            Status::Failed {
                error: "ifreload -a: exit code 1".into(),
            },
            "",
        )])
    }
}
inventory::submit! { ApplierRegistration(&FailingNetwork) }

/// Applies `pve_notifications`, and the user presses Ctrl+C while it runs (the last step).
struct InterruptedNotifications;
impl Applier for InterruptedNotifications {
    fn name(&self) -> &'static str {
        "test-interrupted-notifications"
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
    ) -> Result<Vec<proxsave_restore::applier::Outcome>, ApplyError> {
        ctx.cancel.cancel();
        Ok(vec![proxsave_restore::applier::Outcome::new(
            "pve_notifications",
            Status::Applied,
            "done just before Ctrl+C",
        )])
    }
}
inventory::submit! { ApplierRegistration(&InterruptedNotifications) }

/// Answers nothing; cancels `token` when told a message starting with `cancel_on`.
struct CancelOn {
    token: CancelToken,
    cancel_on: &'static str,
    said: Vec<String>,
}

impl Prompter for CancelOn {
    fn confirm(&mut self, question: &Question) -> Result<bool, PromptError> {
        Err(PromptError::Missing {
            id: question.id,
            flag: question.flag,
        })
    }
    fn say(&mut self, _level: Level, message: &str) {
        if message.starts_with(self.cancel_on) {
            self.token.cancel();
        }
        self.said.push(message.to_string());
    }
}

struct Lab {
    dir: tempfile::TempDir,
    backup: Backup,
    target: HostRoot,
    scan: Scan,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let source = HostTree::pve_cluster_node(dir.path().join("source"));
    let bundle = make_host_backup_in(&source, &host_spec(&source), dir.path());
    let backup = Backup::open(&bundle).unwrap();
    let target = HostRoot::pve(dir.path().join("root"));
    let scan = engine::scan(&backup, &StreamOptions::default(), &CancelToken::new()).unwrap();
    Lab {
        dir,
        backup,
        target,
        scan,
    }
}

/// Runs a restore of `categories` (cluster RECOVERY when the cluster database is among them).
fn restore(
    lab: &Lab,
    categories: &[&str],
    runner: Runner,
    cancel_on: &'static str,
) -> (Report, Option<proxsave_restore::RestoreError>, Arc<Runner>) {
    let request = Request {
        mode: Some(Mode::Custom),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        cluster_mode: Some(ClusterMode::Recovery),
        pbs_behavior: None,
    };
    let plan = plan::build(
        &lab.scan.analysis,
        plan::detect_role(lab.target.root()),
        &request,
        &has_applier,
    )
    .unwrap();
    let runner = Arc::new(runner);
    let host = Host::new(
        lab.target.root().to_path_buf(),
        HostActions::Run,
        runner.clone(),
        Arc::new(NoWait),
        Arc::new(NotMounted),
    );
    let ws = Workspace::ensure(&lab.dir.path().join("work"), "20260101_000000".into()).unwrap();
    let opts = StreamOptions::default();
    let target = Target {
        backup: &lab.backup,
        stream: &opts,
        host: &host,
        workspace: &ws,
    };
    let token = CancelToken::new();
    let mut prompter = CancelOn {
        token: token.clone(),
        cancel_on,
        said: Vec::new(),
    };
    let (report, err) = engine::execute(
        &target,
        &lab.scan,
        &plan,
        &mut prompter,
        &ExecuteOptions {
            export_dir: lab.dir.path().join("export"),
            keep_stage: false,
            dry_run: false,
            cancel: token,
            state: None,
            appliers: AppliersSet::registered(),
        },
    );
    (report, err, runner)
}

const NEVER: &str = "\u{0}never";

fn status_of(report: &Report, path: &str) -> Option<FileStatus> {
    report
        .files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.status)
}

#[test]
fn a_clean_restore_is_a_success_with_no_errors() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let (report, err, _) = restore(&lab, &["ssh"], Runner::default(), NEVER);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(report.outcome, Outcome::Success, "{:?}", report.warnings);
    assert!(report.errors.is_empty());
    assert!(!report.outcome.is_error());
    let log = std::fs::read_to_string(report.log.as_ref().unwrap()).unwrap();
    assert!(log.contains("  Outcome: success\n"), "{log}");
}

#[test]
fn a_folder_where_the_backup_has_a_file_is_completed_with_errors() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    // An existing folder is never replaced by a file.
    std::fs::remove_file(lab.target.path("etc/ssh/sshd_config")).unwrap();
    std::fs::create_dir(lab.target.path("etc/ssh/sshd_config")).unwrap();
    let (report, err, _) = restore(&lab, &["ssh"], Runner::default(), NEVER);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(report.outcome, Outcome::CompletedWithErrors);
    assert!(report.outcome.is_error());
    let st = status_of(&report, "/etc/ssh/sshd_config");
    assert!(
        matches!(st, Some(FileStatus::Refused | FileStatus::Failed)),
        "{st:?}"
    );
    assert!(
        report.errors.iter().any(|e| e.starts_with("1 entry ")),
        "{:?}",
        report.errors
    );
    let log = std::fs::read_to_string(report.log.as_ref().unwrap()).unwrap();
    assert!(
        log.contains("  Outcome: completed with errors\n  - 1 entry "),
        "{log}"
    );
    // The rest was written.
    assert_eq!(
        status_of(&report, "/etc/ssh/ssh_host_ed25519_key"),
        Some(FileStatus::Restored)
    );
}

#[test]
fn a_failed_applier_is_completed_with_errors() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let (report, err, _) = restore(&lab, &["network"], Runner::default(), NEVER);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(report.outcome, Outcome::CompletedWithErrors);
    assert_eq!(
        report.errors,
        ["applying network (test-failing-network) failed: ifreload -a: exit code 1"]
    );
}

#[test]
fn a_service_left_stopped_is_completed_with_errors() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let runner = Runner {
        fail_start: Some("pvedaemon"),
        ..Runner::default()
    };
    let (report, err, runner) = restore(&lab, &["pve_cluster"], runner, NEVER);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(report.outcome, Outcome::CompletedWithErrors);
    // The restart failure, and RECOVERY's check after the restart naming the unit and how
    // to roll back.
    assert_eq!(report.errors.len(), 2, "{:#?}", report.errors);
    assert!(report.errors.contains(
        &"service pvedaemon was not started again: exit code 1: Job for unit failed".to_string()
    ));
    assert!(
        report.errors.iter().any(|e| e
            .contains("post-restart check failed: pvedaemon is not active (inactive)")
            && e.contains("--rollback")),
        "{:#?}",
        report.errors
    );
    let calls = runner.calls.lock().unwrap().clone();
    assert!(
        calls.contains(&"systemctl restart pvedaemon".to_string()),
        "{calls:#?}"
    );
}

#[test]
fn ctrl_c_right_after_the_commit_is_aborted_and_lists_what_was_written() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let old_db = std::fs::read(lab.target.path("var/lib/pve-cluster/config.db")).unwrap();
    // The engine says this once every tier is committed.
    let (report, err, runner) = restore(
        &lab,
        &["pve_cluster"],
        Runner::default(),
        "Successfully restored",
    );
    assert!(err.as_ref().is_some_and(|e| e.is_abort()), "{err:?}");
    assert_eq!(report.outcome, Outcome::Aborted);
    // The state it left: the database is written and listed; services are running again.
    assert_ne!(
        std::fs::read(lab.target.path("var/lib/pve-cluster/config.db")).unwrap(),
        old_db
    );
    assert_eq!(
        status_of(&report, "/var/lib/pve-cluster/config.db"),
        Some(FileStatus::Restored)
    );
    assert!(report.counts.restored > 0);
    assert!(report.safety_backup.is_some());
    let calls = runner.calls.lock().unwrap().clone();
    for unit in proxsave_pve::domain::PVE_SERVICES {
        assert!(
            calls.contains(&format!("systemctl start {unit}")),
            "{unit}: {calls:#?}"
        );
    }
    let log = std::fs::read_to_string(report.log.as_ref().unwrap()).unwrap();
    assert!(log.contains("  Outcome: aborted\n"), "{log}");
    assert!(
        log.contains("  /var/lib/pve-cluster/config.db (ownership: "),
        "{log}"
    );
}

#[test]
fn ctrl_c_during_the_last_step_is_aborted_not_success() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let (report, err, _) = restore(
        &lab,
        &["ssh", "pve_notifications"],
        Runner::default(),
        NEVER,
    );
    assert!(err.as_ref().is_some_and(|e| e.is_abort()), "{err:?}");
    assert_eq!(report.outcome, Outcome::Aborted);
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert_eq!(
        status_of(&report, "/etc/ssh/sshd_config"),
        Some(FileStatus::Restored)
    );
}
