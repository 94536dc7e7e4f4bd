//! Unit tests of the `accounts` applier: its phases driven directly, with a temporary stage
//! and root, a scripted prompter and a command runner that models `visudo -c -f` (the
//! end-to-end test in `tests/accounts_applier.rs` runs the real one).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxsave_archive::manifest::Manifest;
use proxsave_archive::progress::CancelToken;
use proxsave_categories::{Analyzer, HostRole, Mode};

use super::*;
use crate::host::{Clock, CommandOutput, CommandRunner, Host, HostCommand, MountProbe};
use crate::plan::{self, Plan, Request};
use crate::prompt::ScriptedPrompter;

const HOST_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\ncarol:x:1002:1002:Carol,,,:/home/carol:/bin/bash\n";
const HOST_GROUP: &str =
    "root:x:0:\nsudo:x:27:\nwww-data:x:33:\nbackup:x:34:\nshadow:x:42:\ncarol:x:1002:\n";
const HOST_SHADOW: &str = "root:$y$j9T$host$HOSTROOTHASH:19810:0:99999:7:::\nwww-data:*:19810:0:99999:7:::\nbackup:*:19810:0:99999:7:::\ncarol:$y$j9T$carol$CAROLHASH:19811:0:99999:7:::\n";
const HOST_GSHADOW: &str = "root:*::\nsudo:*::\nwww-data:*::\nbackup:*::\nshadow:*::\ncarol:!::\n";

const BACKUP_PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\ndave:x:1002:1002:Dave,,,:/home/dave:/bin/bash\n";
const BACKUP_GROUP: &str = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\ndave:x:1002:\n";
const BACKUP_SHADOW: &str = "root:$y$j9T$old$OLDROOTHASH:19000:0:99999:7:::\nalice:$y$j9T$alice$ALICEHASH:19100:0:99999:7:::\ndave:$y$j9T$dave$DAVEHASH:19102:0:99999:7:::\n";
const BACKUP_GSHADOW: &str = "root:*::\nsudo:*::alice\nalice:!::\ndave:!::\n";

const SUDOERS_HOST: &str = "Defaults\tenv_reset\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";
const SUDOERS_BACKUP: &str = "Defaults\tenv_reset\nDefaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";
const DROP_IN_OK: &str = "alice ALL=(ALL) NOPASSWD: /usr/bin/systemctl\n";
const DROP_IN_BROKEN: &str = "bob ALL=(ALL) NOPASSWD ALL\n";

/// A model of `visudo -c -f FILE`: a file holding `NOPASSWD ALL` (a missing `:`) is a syntax
/// error, anything else parses. Records every command line.
#[derive(Default)]
struct Visudo(Mutex<Vec<String>>);

impl CommandRunner for Visudo {
    fn run(&self, cmd: &HostCommand, _cancel: &CancelToken) -> std::io::Result<CommandOutput> {
        self.0.lock().expect("lock").push(cmd.display());
        assert_eq!(cmd.program, "visudo");
        assert_eq!(cmd.args[..2], ["-c", "-f"]);
        let file = &cmd.args[2];
        let text = fs::read_to_string(file)?;
        if text.contains("NOPASSWD ALL") {
            return Ok(CommandOutput {
                code: Some(1),
                stdout: Vec::new(),
                stderr: format!("{file}:1:24: syntax error\n{text}\n                       ^~~\n")
                    .into_bytes(),
                timed_out: false,
            });
        }
        Ok(CommandOutput {
            code: Some(0),
            stdout: format!("{file}: parsed OK\n").into_bytes(),
            stderr: Vec::new(),
            timed_out: false,
        })
    }
}

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        use chrono::TimeZone;
        chrono::Local
            .with_ymd_and_hms(2026, 7, 24, 2, 3, 4)
            .single()
            .expect("a valid local time")
    }
    fn sleep(&self, _d: Duration) {}
}

struct NoMounts;
impl MountProbe for NoMounts {
    fn is_mount_point(&self, _p: &Path) -> bool {
        false
    }
}

struct Lab {
    _dir: tempfile::TempDir,
    stage_dir: std::path::PathBuf,
    root_dir: std::path::PathBuf,
    runner: Arc<Visudo>,
    plan: Plan,
}

fn write(base: &Path, rel: &str, text: &[u8], mode: u32) {
    let p = base.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let stage_dir = dir.path().join("stage");
    let root_dir = dir.path().join("root");
    for (rel, text, mode) in [
        ("etc/passwd", HOST_PASSWD, 0o644),
        ("etc/group", HOST_GROUP, 0o644),
        ("etc/shadow", HOST_SHADOW, 0o640),
        ("etc/gshadow", HOST_GSHADOW, 0o640),
        ("etc/sudoers", SUDOERS_HOST, 0o440),
    ] {
        write(&root_dir, rel, text.as_bytes(), mode);
    }
    for (rel, text) in [
        ("etc/passwd", BACKUP_PASSWD),
        ("etc/group", BACKUP_GROUP),
        ("etc/shadow", BACKUP_SHADOW),
        ("etc/gshadow", BACKUP_GSHADOW),
        ("etc/subuid", "alice:231072:65536\n"),
        ("etc/sudoers", SUDOERS_BACKUP),
        ("etc/sudoers.d/alice", DROP_IN_OK),
        ("etc/sudoers.d/bob", DROP_IN_BROKEN),
        ("etc/sudoers.d/alice.dpkg-old", DROP_IN_OK),
    ] {
        write(&stage_dir, rel, text.as_bytes(), 0o600);
    }
    let mut analyzer = Analyzer::new();
    analyzer.observe(&ArchivePath::from_user("etc/passwd").expect("path"));
    let analysis = analyzer.finish(&Manifest::default());
    let request = Request {
        mode: Some(Mode::Custom),
        categories: vec![CATEGORY.into()],
        ..Request::default()
    };
    let plan = plan::build(&analysis, HostRole::Pve, &request, &|_| true).expect("plan");
    Lab {
        _dir: dir,
        stage_dir,
        root_dir,
        runner: Arc::new(Visudo::default()),
        plan,
    }
}

impl Lab {
    fn host(&self, actions: HostActions) -> Host {
        Host::new(
            self.root_dir.clone(),
            actions,
            self.runner.clone(),
            Arc::new(Fixed),
            Arc::new(NoMounts),
        )
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root_dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn plan_with(
        &self,
        actions: HostActions,
        prompter: &ScriptedPrompter,
    ) -> Result<ApplierPlan, ApplyError> {
        let stage = Stage::open(&self.stage_dir).expect("stage");
        let root = RootHandle::open(&self.root_dir).expect("root");
        let host = self.host(actions);
        let preset = |id: &str| crate::prompt::Prompter::preset(prompter, id);
        let ctx = PlanContext {
            plan: &self.plan,
            stage: &stage,
            root: &root,
            host: &host,
            preset: &preset,
        };
        AccountsMerge.plan(&ctx)
    }

    /// Plans and applies; the outcome and the plan.
    fn run(
        &self,
        actions: HostActions,
        answers: &[(&'static str, &str)],
    ) -> (Outcome, ApplierPlan) {
        let mut prompter = ScriptedPrompter {
            values: answers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            ..ScriptedPrompter::default()
        };
        let plan = self.plan_with(actions, &prompter).expect("plan");
        let stage = Stage::open(&self.stage_dir).expect("stage");
        let root = RootHandle::open(&self.root_dir).expect("root");
        let host = self.host(actions);
        let cancel = CancelToken::new();
        let mut ctx = ApplyContext {
            plan: &self.plan,
            stage: &stage,
            root: &root,
            host: &host,
            prompter: &mut prompter,
            cancel: &cancel,
        };
        let mut outcomes = AccountsMerge.apply(&mut ctx, &plan).expect("apply");
        assert_eq!(outcomes.len(), 1);
        (outcomes.remove(0), plan)
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root_dir.join(rel))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Writing owners (root:shadow) needs root; CI runs as root.
fn as_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        !proxsave_testkit::tools_required(),
        "the accounts applier sets owners (root:shadow): CI runs as root"
    );
    eprintln!("SKIP: setting owners needs root");
    false
}

fn paths(plan: &ApplierPlan) -> Vec<String> {
    plan.files.iter().map(ToString::to_string).collect()
}

#[test]
fn the_plan_lists_files_actions_and_questions_and_never_a_hash() {
    let lab = lab();
    let plan = lab
        .plan_with(HostActions::Run, &ScriptedPrompter::default())
        .expect("plan");
    assert_eq!(
        paths(&plan),
        [
            "etc/passwd.bak-20260724-020304",
            "etc/passwd",
            "etc/group.bak-20260724-020304",
            "etc/group",
            "etc/shadow.bak-20260724-020304",
            "etc/shadow",
            "etc/gshadow.bak-20260724-020304",
            "etc/gshadow",
            "etc/subuid",
            "etc/sudoers.d",
            "etc/sudoers.bak-20260724-020304",
            "etc/sudoers",
            "etc/sudoers.d/alice",
            "etc/sudoers.d/bob",
        ]
    );
    let ids: Vec<(&str, Option<&str>)> = plan
        .questions
        .iter()
        .map(|q| (q.spec.id, q.default.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [
            ("accounts.merge", Some("yes")),
            ("sudoers.apply", Some("yes"))
        ]
    );
    let actions = plan.actions.join("\n");
    for expected in [
        "users added: alice (1000)",
        "memberships added: alice in sudo",
        "uid 1002: this host has carol (uid 1002), the backup has dave (uid 1002)",
        "sudoers: etc/sudoers.d/alice: install after visudo -c -f passes (0440 root:root)",
        "sudoers: etc/sudoers.d/alice.dpkg-old: skipped: its name contains `.`",
    ] {
        assert!(
            actions.contains(expected),
            "{expected:?} not in:\n{actions}"
        );
    }
    let json = serde_json::to_string(&plan).expect("json");
    assert!(!json.contains("$y$") && !json.contains("HASH"), "{json}");
    assert_eq!(plan.details["merge"]["status"], "changes");
    assert_eq!(
        plan.details["merge"]["report"]["conflicts"][0]["kind"],
        "same_uid_other_name"
    );
    assert_eq!(plan.details["backup_stamp"], "20260724-020304");
    // Nothing was written or run while planning.
    assert_eq!(lab.read("etc/passwd"), HOST_PASSWD);
    assert!(lab.runner.0.lock().expect("lock").is_empty());
}

#[test]
fn apply_merges_all_or_nothing_and_installs_only_what_visudo_accepts() {
    if !as_root() {
        return;
    }
    let lab = lab();
    let (outcome, _) = lab.run(HostActions::Run, &[]);
    assert_eq!(outcome.status, Status::PartlyApplied, "{}", outcome.detail);
    assert!(
        outcome.detail.starts_with(
            "etc/sudoers.d/bob not installed (the current one stays): visudo -c -f: exit code 1: etc/sudoers.d/bob:1:24: syntax error"
        ),
        "{}",
        outcome.detail
    );
    assert!(
        outcome
            .detail
            .contains("uid 1002: this host has carol (uid 1002), the backup has dave (uid 1002)"),
        "{}",
        outcome.detail
    );
    assert_eq!(
        lab.read("etc/passwd"),
        format!("{HOST_PASSWD}alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n")
    );
    assert_eq!(
        lab.read("etc/group"),
        HOST_GROUP.replace("sudo:x:27:\n", "sudo:x:27:alice\n") + "alice:x:1000:\n"
    );
    assert_eq!(
        lab.read("etc/shadow"),
        format!("{HOST_SHADOW}alice:$y$j9T$alice$ALICEHASH:19100:0:99999:7:::\n")
    );
    assert_eq!(lab.read("etc/subuid"), "alice:231072:65536\n");
    for (rel, mode, gid) in [
        ("etc/passwd", 0o644, 0),
        ("etc/group", 0o644, 0),
        ("etc/shadow", 0o640, 42),
        ("etc/gshadow", 0o640, 42),
        ("etc/subuid", 0o644, 0),
        ("etc/sudoers", 0o440, 0),
        ("etc/sudoers.d/alice", 0o440, 0),
    ] {
        let m = fs::metadata(lab.root_dir.join(rel)).expect("meta");
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, 0, gid),
            "{rel}"
        );
    }
    assert_eq!(
        fs::metadata(lab.root_dir.join("etc/sudoers.d"))
            .expect("sudoers.d")
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(lab.read("etc/sudoers"), SUDOERS_BACKUP);
    assert_eq!(lab.read("etc/sudoers.bak-20260724-020304"), SUDOERS_HOST);
    assert_eq!(lab.read("etc/passwd.bak-20260724-020304"), HOST_PASSWD);
    assert_eq!(lab.names("etc/sudoers.d"), ["alice"]);
    // Each file was checked on its own; the scratch copies are gone.
    let calls = lab.runner.0.lock().expect("lock").clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|c| c.starts_with("visudo -c -f ")));
    assert_eq!(
        fs::read_dir(&lab.stage_dir)
            .expect("ls")
            .filter(|e| e
                .as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".proxsave-visudo-"))
            .count(),
        0
    );

    // A second identical run changes nothing and makes no new copy.
    let before: Vec<String> = lab.names("etc");
    let passwd_mtime = fs::metadata(lab.root_dir.join("etc/passwd"))
        .expect("meta")
        .mtime_nsec();
    let (again, plan) = lab.run(HostActions::Run, &[]);
    assert_eq!(lab.names("etc"), before);
    assert_eq!(
        fs::metadata(lab.root_dir.join("etc/passwd"))
            .expect("meta")
            .mtime_nsec(),
        passwd_mtime
    );
    assert_eq!(paths(&plan), ["etc/sudoers.d/bob"]);
    assert!(
        !plan.questions.iter().any(|q| q.spec.id == "accounts.merge"),
        "nothing to merge, nothing to ask"
    );
    // Only the broken drop-in is tried again, and refused again.
    assert_eq!(
        again.status,
        Status::Failed {
            error: "etc/sudoers.d/bob not installed (the current one stays): visudo -c -f: exit code 1: etc/sudoers.d/bob:1:24: syntax error".into()
        }
    );
    assert!(again.detail.contains("accounts: nothing to change"));
}

#[test]
fn deferred_host_actions_install_no_sudoers_file() {
    if !as_root() {
        return;
    }
    let lab = lab();
    let (outcome, plan) = lab.run(HostActions::Defer, &[]);
    assert_eq!(outcome.status, Status::Applied, "{}", outcome.detail);
    assert!(
        outcome
            .detail
            .contains("sudoers not installed: host actions are deferred, so visudo cannot check etc/sudoers, etc/sudoers.d/alice, etc/sudoers.d/bob"),
        "{}",
        outcome.detail
    );
    assert!(!paths(&plan).iter().any(|p| p.contains("sudoers")));
    assert!(!plan.questions.iter().any(|q| q.spec.id == "sudoers.apply"));
    assert_eq!(lab.read("etc/sudoers"), SUDOERS_HOST);
    assert!(!lab.root_dir.join("etc/sudoers.d").exists());
    assert!(lab.runner.0.lock().expect("lock").is_empty());
    assert!(lab.read("etc/passwd").contains("alice:x:1000"));

    // With nothing else to do, the category is skipped with that reason.
    let (again, _) = lab.run(HostActions::Defer, &[]);
    match again.status {
        Status::Skipped { reason } => assert!(
            reason.starts_with("sudoers not installed: host actions are deferred"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn answering_no_leaves_everything_as_it_is() {
    let lab = lab();
    let before = lab.names("etc");
    let (outcome, plan) = lab.run(
        HostActions::Run,
        &[("accounts.merge", "n"), ("sudoers.apply", " NO ")],
    );
    assert!(plan.files.is_empty(), "{:?}", paths(&plan));
    assert_eq!(
        outcome.status,
        Status::Skipped {
            reason: "account files left as they are (accounts.merge = no); sudoers files left as they are (sudoers.apply = no)".into()
        }
    );
    assert_eq!(lab.names("etc"), before);
    assert_eq!(lab.read("etc/passwd"), HOST_PASSWD);
    assert!(lab.runner.0.lock().expect("lock").is_empty());
}

#[test]
fn an_answer_other_than_yes_or_no_is_refused_while_planning() {
    let lab = lab();
    let prompter = ScriptedPrompter {
        values: vec![("sudoers.apply", "maybe".into())],
        ..ScriptedPrompter::default()
    };
    match lab.plan_with(HostActions::Run, &prompter) {
        Err(ApplyError::BadAnswer { id, reason }) => {
            assert_eq!(id, "sudoers.apply");
            assert_eq!(reason, "`maybe` is not one of: yes, no");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unusable_staged_files_skip_the_merge_with_a_clear_reason() {
    let lab = lab();
    let passwd = lab.stage_dir.join("etc/passwd");
    fs::remove_file(&passwd).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", &passwd).expect("link");
    let plan = lab
        .plan_with(HostActions::Run, &ScriptedPrompter::default())
        .expect("plan");
    assert_eq!(plan.details["merge"]["status"], "skipped");
    let reason = plan.details["merge"]["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("the backup's etc/passwd cannot be used: ")
            && reason.ends_with("a symbolic link, not a file"),
        "{reason}"
    );
    assert!(!paths(&plan).contains(&"etc/passwd".to_string()));

    fs::remove_file(&passwd).expect("rm");
    fs::write(&passwd, b"alice:x:1000:1000:Al\xe9:/home/alice:/bin/bash\n").expect("write");
    let plan = lab
        .plan_with(HostActions::Run, &ScriptedPrompter::default())
        .expect("plan");
    assert_eq!(
        plan.details["merge"]["reason"],
        "the backup's etc/passwd is not valid UTF-8"
    );

    fs::write(&passwd, b"").expect("write");
    let (outcome, _) = lab.run(HostActions::Defer, &[]);
    assert_eq!(
        outcome.status,
        Status::Skipped {
            reason: "accounts not merged: the backup's etc/passwd is empty; sudoers not installed: host actions are deferred, so visudo cannot check etc/sudoers, etc/sudoers.d/alice, etc/sudoers.d/bob; restore the accounts category again with host actions run to install them".into()
        }
    );
    assert_eq!(lab.read("etc/passwd"), HOST_PASSWD);

    // A symlinked drop-in is never installed.
    let link = lab.stage_dir.join("etc/sudoers.d/link");
    std::os::unix::fs::symlink("alice", &link).expect("link");
    let plan = lab
        .plan_with(HostActions::Run, &ScriptedPrompter::default())
        .expect("plan");
    assert!(
        plan.actions.contains(
            &"sudoers: etc/sudoers.d/link: skipped: a symlink in the backup; sudoers files are never links"
                .to_string()
        ),
        "{:?}",
        plan.actions
    );
}

#[test]
fn a_host_file_that_cannot_be_read_fails_the_merge_and_writes_nothing() {
    let lab = lab();
    let shadow = lab.root_dir.join("etc/shadow");
    fs::remove_file(&shadow).expect("rm");
    std::os::unix::fs::symlink("/etc/shadow", &shadow).expect("link");
    let (outcome, plan) = lab.run(HostActions::Run, &[("sudoers.apply", "no")]);
    assert_eq!(plan.details["merge"]["status"], "failed");
    match &outcome.status {
        Status::Failed { error } => assert!(
            error.starts_with(
                "accounts not merged (nothing written): cannot read this host's etc/shadow"
            ),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(lab.read("etc/passwd"), HOST_PASSWD);
}

#[test]
fn a_file_the_plan_did_not_list_is_never_written() {
    let lab = lab();
    let mut prompter = ScriptedPrompter {
        values: vec![("sudoers.apply", "no".into())],
        ..ScriptedPrompter::default()
    };
    let mut plan = lab.plan_with(HostActions::Run, &prompter).expect("plan");
    plan.files.retain(|p| p.to_string() != "etc/gshadow");
    let stage = Stage::open(&lab.stage_dir).expect("stage");
    let root = RootHandle::open(&lab.root_dir).expect("root");
    let host = lab.host(HostActions::Run);
    let cancel = CancelToken::new();
    let mut ctx = ApplyContext {
        plan: &lab.plan,
        stage: &stage,
        root: &root,
        host: &host,
        prompter: &mut prompter,
        cancel: &cancel,
    };
    let outcome = AccountsMerge.apply(&mut ctx, &plan).expect("apply");
    assert_eq!(
        outcome[0].status,
        Status::Failed {
            error: "account files not written: etc/gshadow changed since the plan (not covered by the safety backup)".into()
        }
    );
    assert_eq!(lab.read("etc/passwd"), HOST_PASSWD);
}
