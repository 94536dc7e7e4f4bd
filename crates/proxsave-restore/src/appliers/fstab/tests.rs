//! The applier's phases against temporary roots and stages, with a scripted command runner
//! standing in for `findmnt` and `systemctl` (the real tools run in `tests/fstab_applier.rs`).

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeZone;
use proxsave_archive::manifest::Manifest;
use proxsave_archive::progress::CancelToken;
use proxsave_categories::{Analyzer, HostRole, Mode};

use super::*;
use crate::applier::{Answer, AnswerSource};
use crate::host::{Clock, CommandOutput, CommandRunner, Host, MountProbe};
use crate::plan::{self, Request};
use crate::prompt::ScriptedPrompter;

const NEW_ROOT: &str = "6a1f3c2e-8d4b-4e5f-9a7b-1c2d3e4f5a6b";
const OLD_ROOT: &str = "0e9d8c7b-6a59-4837-a261-5f4e3d2c1b0a";
const DATA: &str = "b3c1d2e4-5f60-4718-92a3-b4c5d6e7f809";
const GONE: &str = "c0ffee00-1234-4567-89ab-cdef01234567";
const SCRATCH: &str = "5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e";

fn current() -> String {
    format!(
        "# /etc/fstab: static file system information.\n\
         UUID={NEW_ROOT} /               ext4    errors=remount-ro 0       1\n\
         UUID=7A3B-1C2D  /boot/efi       vfat    umask=0077      0       1\n\
         UUID=2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901 none swap sw 0 0\n\
         proc /proc proc defaults 0 0\n"
    )
}

fn backup(root: &str) -> String {
    format!(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n\
         UUID={root} / ext4 errors=remount-ro 0 1\n\
         UUID=1A2B-3C4D /boot/efi vfat umask=0077 0 1\n\
         nas.example.lan:/export/iso /mnt/iso nfs vers=4.2,soft 0 0\n\
         //files.example.lan/backup /mnt/smb cifs username=bk,password=S3cr3t!,vers=3.0 0 0\n\
         UUID={DATA} /srv/data ext4 defaults 0 2\n\
         UUID={GONE} /srv/gone xfs defaults 0 2\n\
         /dev/sdb1 /srv/scratch ext4 noatime 0 2\n"
    )
}

fn lsblk() -> String {
    format!(
        r#"{{"blockdevices":[{{"name":"sdb","uuid":null,"fstype":null,"mountpoint":null,"children":[{{"name":"sdb1","uuid":"{SCRATCH}","fstype":"ext4","mountpoint":"/srv/scratch"}}]}}]}}"#
    )
}

/// The file `merge` should produce with every proposal.
fn merged_all() -> String {
    format!(
        "{}\n# --- proxsave: mounts restored from backup of pve-old.example.lan ---\n\
         nas.example.lan:/export/iso /mnt/iso nfs vers=4.2,soft,_netdev,nofail 0 0\n\
         //files.example.lan/backup /mnt/smb cifs username=bk,password=S3cr3t!,vers=3.0,_netdev,nofail 0 0\n\
         UUID={DATA} /srv/data ext4 defaults,nofail 0 2\n\
         # /dev/sdb1 in the backup (line 8) is UUID={SCRATCH} here\n\
         UUID={SCRATCH} /srv/scratch ext4 noatime,nofail 0 2\n\
         # --- end proxsave ---\n",
        current()
    )
}

type Respond = dyn Fn(&HostCommand) -> std::io::Result<CommandOutput> + Send + Sync;

/// Records every command and answers with `respond`.
struct Runner {
    calls: Mutex<Vec<HostCommand>>,
    respond: Box<Respond>,
}

impl CommandRunner for Runner {
    fn run(&self, cmd: &HostCommand, _c: &CancelToken) -> std::io::Result<CommandOutput> {
        self.calls.lock().expect("lock").push(cmd.clone());
        (self.respond)(cmd)
    }
}

fn ok(stdout: &str) -> std::io::Result<CommandOutput> {
    Ok(CommandOutput {
        code: Some(0),
        stdout: stdout.as_bytes().to_vec(),
        ..CommandOutput::default()
    })
}

/// `findmnt` passes on both files; `systemctl daemon-reload` succeeds.
fn all_pass(_: &HostCommand) -> std::io::Result<CommandOutput> {
    ok("Success, no errors or warnings detected\n")
}

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> chrono::DateTime<chrono::Local> {
        chrono::Local
            .with_ymd_and_hms(2026, 7, 24, 3, 4, 5)
            .single()
            .expect("a local time")
    }
    fn sleep(&self, _d: Duration) {}
}

struct NoMounts;
impl MountProbe for NoMounts {
    fn is_mount_point(&self, _p: &Path) -> bool {
        false
    }
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    stage: PathBuf,
    plan: Plan,
}

impl World {
    fn new(current: &str, backup: &str) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let stage = dir.path().join("stage");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::create_dir_all(root.join("dev/disk/by-uuid")).expect("mkdir");
        for u in [NEW_ROOT, DATA, SCRATCH] {
            symlink("../../sda1", root.join("dev/disk/by-uuid").join(u)).expect("link");
        }
        std::fs::write(root.join("etc/fstab"), current).expect("write");
        std::fs::set_permissions(
            root.join("etc/fstab"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        std::fs::create_dir_all(stage.join("etc")).expect("mkdir");
        std::fs::write(stage.join("etc/fstab"), backup).expect("write");
        let inv = stage.join(INVENTORY_DIR);
        std::fs::create_dir_all(&inv).expect("mkdir");
        std::fs::write(inv.join("lsblk_json.json"), lsblk()).expect("write");

        let mut a = Analyzer::new();
        a.observe(&fstab_path());
        let manifest = Manifest {
            hostname: "pve-old.example.lan".into(),
            ..Manifest::default()
        };
        let analysis = a.finish(&manifest);
        let request = Request {
            mode: Some(Mode::Custom),
            categories: vec![CATEGORY.into()],
            ..Request::default()
        };
        let plan = plan::build(&analysis, HostRole::Pve, &request, &|_| true).expect("plan");
        World {
            _dir: dir,
            root,
            stage,
            plan,
        }
    }

    fn host(&self, actions: HostActions, respond: Box<Respond>) -> (Host, Arc<Runner>) {
        let runner = Arc::new(Runner {
            calls: Mutex::new(Vec::new()),
            respond,
        });
        let host = Host::new(
            self.root.clone(),
            actions,
            runner.clone(),
            Arc::new(Fixed),
            Arc::new(NoMounts),
        );
        (host, runner)
    }

    fn plan_with(&self, preset: Option<&str>) -> Result<ApplierPlan, ApplyError> {
        let stage = Stage::open(&self.stage).expect("stage");
        let root = RootHandle::open(&self.root).expect("root");
        let (host, _) = self.host(HostActions::Run, Box::new(all_pass));
        let preset_of = |id: &str| {
            (id == QUESTION.id)
                .then(|| {
                    preset.map(|v| Answer {
                        value: v.to_string(),
                        source: AnswerSource::Flag,
                    })
                })
                .flatten()
        };
        let ctx = PlanContext {
            plan: &self.plan,
            stage: &stage,
            root: &root,
            host: &host,
            preset: &preset_of,
        };
        FstabMerge.plan(&ctx)
    }

    /// Plans, then applies with `answer` given up front (else the default).
    fn apply(
        &self,
        actions: HostActions,
        answer: Option<&str>,
        respond: Box<Respond>,
    ) -> (Result<Vec<Outcome>, ApplyError>, Vec<HostCommand>, Host) {
        let plan = self.plan_with(answer).expect("plan");
        let stage = Stage::open(&self.stage).expect("stage");
        let root = RootHandle::open(&self.root).expect("root");
        let (host, runner) = self.host(actions, respond);
        let mut prompter = ScriptedPrompter::default();
        if let Some(a) = answer {
            prompter.values.push((QUESTION.id, a.to_string()));
        }
        let cancel = CancelToken::new();
        let mut ctx = ApplyContext {
            plan: &self.plan,
            stage: &stage,
            root: &root,
            host: &host,
            prompter: &mut prompter,
            cancel: &cancel,
        };
        let out = FstabMerge.apply(&mut ctx, &plan);
        let calls = runner.calls.lock().expect("lock").clone();
        (out, calls, host)
    }

    fn fstab(&self) -> String {
        std::fs::read_to_string(self.root.join("etc/fstab")).expect("read")
    }

    fn etc_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("etc"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn one(out: Result<Vec<Outcome>, ApplyError>) -> Outcome {
    let mut v = out.expect("apply");
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

#[test]
fn plan_lists_proposals_and_skips_without_options_and_defaults_to_none_elsewhere() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let p = w.plan_with(None).expect("plan");
    assert_eq!(p.files, [fstab_path()]);
    assert_eq!(p.questions.len(), 1);
    let q = &p.questions[0];
    assert_eq!(q.spec.id, "fstab.merge");
    assert_eq!(q.default.as_deref(), Some("none"));
    assert!(
        q.details
            .iter()
            .any(|l| l == "  //files.example.lan/backup → /mnt/smb (cifs)"),
        "{:?}",
        q.details
    );
    assert!(
        q.details
            .iter()
            .any(|l| l.starts_with(&format!("  UUID={GONE} → /srv/gone (xfs): "))),
        "{:?}",
        q.details
    );
    assert!(
        p.actions.contains(&format!(
            "propose UUID={SCRATCH} → /srv/scratch (ext4) [was /dev/sdb1 in the backup] (not added unless chosen)"
        )),
        "{:?}",
        p.actions
    );
    assert!(
        p.actions[0].contains("4 safe mount(s) proposed"),
        "{:?}",
        p.actions
    );
    assert!(p.actions[0].contains("default `none`"), "{:?}", p.actions);
    assert_eq!(p.details["default"], "none");
    assert_eq!(p.details["proposals"].as_array().map(Vec::len), Some(4));
    assert_eq!(p.details["root"]["match"], "different");
    // Never an option anywhere: the CIFS password, `vers=`, `soft`.
    let shown = serde_json::to_string(&p).expect("json");
    for secret in ["S3cr3t", "password", "vers=", "soft", "username"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!format!("{p:?}").contains("S3cr3t"));
}

#[test]
fn plan_skips_a_missing_empty_non_utf8_or_linked_staged_fstab_with_the_reason() {
    let w = World::new(&current(), "");
    let staged = w.stage.join("etc/fstab");
    type Setup<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(Setup<'_>, &str)> = vec![
        (
            Box::new(|| std::fs::remove_file(&staged).expect("rm")),
            "the backup has no /etc/fstab",
        ),
        (
            Box::new(|| std::fs::write(&staged, " \n\n").expect("w")),
            "the backup's /etc/fstab is empty",
        ),
        (
            Box::new(|| {
                std::fs::write(&staged, b"/dev/sdb1 /mnt/\xff ext4 defaults 0 0\n").expect("w")
            }),
            "the backup's /etc/fstab is not valid UTF-8",
        ),
        (
            Box::new(|| symlink("/etc/fstab", &staged).expect("link")),
            "a symbolic link, not a file",
        ),
    ];
    for (setup, reason) in cases {
        setup();
        let p = w.plan_with(None).expect("plan");
        assert!(p.files.is_empty() && p.questions.is_empty(), "{p:?}");
        assert!(
            p.details["skipped_reason"]
                .as_str()
                .is_some_and(|r| r.contains(reason)),
            "{reason}: {p:?}"
        );
        assert!(p.actions[0].starts_with("skip /etc/fstab: "), "{p:?}");
        let (out, calls, _) = w.apply(HostActions::Run, None, Box::new(all_pass));
        let o = one(out);
        assert!(
            matches!(&o.status, Status::Skipped { reason: r } if r.contains(reason)),
            "{o:?}"
        );
        assert!(calls.is_empty());
        assert_eq!(w.fstab(), current());
        let _ = std::fs::remove_file(&staged);
    }
}

#[test]
fn an_answer_given_up_front_is_checked_while_planning() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    for (answer, named) in [
        ("/srv/gone", "/srv/gone is not a safe proposal (UUID="),
        (
            "/mnt/iso,/boot/efi",
            "/boot/efi is not a safe proposal (a system mountpoint",
        ),
        (
            "/nowhere",
            "/nowhere is not a safe proposal (the backup's fstab does not mount it)",
        ),
        ("some", "`some` is not an absolute mountpoint"),
    ] {
        match w.plan_with(Some(answer)) {
            Err(ApplyError::BadAnswer { id, reason }) => {
                assert_eq!(id, "fstab.merge");
                assert!(reason.contains(named), "{answer}: {reason}");
            }
            other => panic!("{answer}: {other:?}"),
        }
    }
    let p = w.plan_with(Some("/mnt/iso/,/srv/scratch")).expect("plan");
    assert_eq!(p.details["would_add"], json!(["/mnt/iso", "/srv/scratch"]));
    assert!(
        p.actions
            .contains(&"add nas.example.lan:/export/iso → /mnt/iso (nfs)".to_string())
    );
    let p = w.plan_with(Some("none")).expect("plan");
    assert!(p.files.is_empty(), "a fixed `none` writes nothing: {p:?}");
}

#[test]
fn all_is_checked_with_findmnt_written_with_a_bak_copy_and_reloads_systemd() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let before = std::fs::metadata(w.root.join("etc/fstab")).expect("meta");
    let stage = w.stage.clone();
    let (out, calls, _) = w.apply(
        HostActions::Run,
        Some("all"),
        Box::new(move |cmd| {
            if cmd.program == "env" {
                // The scratch copy is private while findmnt reads it.
                let file = PathBuf::from(&cmd.args[4]);
                assert!(file.starts_with(&stage), "{file:?}");
                let m = std::fs::metadata(&file).expect("scratch");
                assert_eq!(m.mode() & 0o777, 0o600);
                let d = std::fs::metadata(file.parent().expect("parent")).expect("dir");
                assert_eq!(d.mode() & 0o777, 0o700);
            }
            all_pass(cmd)
        }),
    );
    let o = one(out);
    assert_eq!(o.status, Status::Applied, "{o:?}");
    assert_eq!(
        o.detail,
        format!(
            "added 4 mounts to /etc/fstab: nas.example.lan:/export/iso → /mnt/iso (nfs), \
             //files.example.lan/backup → /mnt/smb (cifs), UUID={DATA} → /srv/data (ext4), \
             UUID={SCRATCH} → /srv/scratch (ext4) [was /dev/sdb1 in the backup]; \
             the previous file is /etc/fstab.bak-20260724-030405"
        )
    );
    assert_eq!(w.fstab(), merged_all());
    assert_eq!(
        std::fs::read_to_string(w.root.join("etc/fstab.bak-20260724-030405")).expect("bak"),
        current()
    );
    let after = std::fs::metadata(w.root.join("etc/fstab")).expect("meta");
    assert_eq!(
        (after.mode() & 0o7777, after.uid(), after.gid()),
        (before.mode() & 0o7777, before.uid(), before.gid())
    );
    let shown: Vec<String> = calls.iter().map(HostCommand::display).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[0].starts_with("env LC_ALL=C findmnt --verify --tab-file "));
    assert!(shown[0].ends_with("/fstab.current"), "{shown:?}");
    assert!(shown[1].ends_with("/fstab.merged"), "{shown:?}");
    assert_eq!(shown[2], "systemctl daemon-reload");
    // The scratch folder is gone.
    let left: Vec<_> = std::fs::read_dir(&w.stage)
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}"); // etc, var

    // A second identical run adds nothing and rewrites nothing.
    let ino = std::fs::metadata(w.root.join("etc/fstab"))
        .expect("m")
        .ino();
    let names = w.etc_names();
    let (out, calls, _) = w.apply(HostActions::Run, Some("all"), Box::new(all_pass));
    let o = one(out);
    assert_eq!(
        o.status,
        Status::Skipped {
            reason: "nothing to add: the backup's safe mounts are already in /etc/fstab".into()
        }
    );
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(w.fstab(), merged_all());
    assert_eq!(
        std::fs::metadata(w.root.join("etc/fstab"))
            .expect("m")
            .ino(),
        ino
    );
    assert_eq!(w.etc_names(), names);
    // Its plan asks nothing and writes nothing.
    let p = w.plan_with(None).expect("plan");
    assert!(p.files.is_empty() && p.questions.is_empty(), "{p:?}");
}

#[test]
fn the_default_adds_all_only_on_the_same_machine() {
    let w = World::new(&current(), &backup(NEW_ROOT));
    let p = w.plan_with(None).expect("plan");
    assert_eq!(p.questions[0].default.as_deref(), Some("all"));
    assert_eq!(p.details["root"]["match"], "same");
    let (out, _, _) = w.apply(HostActions::Run, None, Box::new(all_pass));
    assert_eq!(one(out).status, Status::Applied);
    assert!(w.fstab().ends_with("# --- end proxsave ---\n"));

    let w = World::new(&current(), &backup(OLD_ROOT));
    let (out, calls, _) = w.apply(HostActions::Run, None, Box::new(all_pass));
    let o = one(out);
    assert!(
        matches!(&o.status, Status::Skipped { reason } if reason.starts_with("nothing added: answer `none` (the default: the backup's root device (UUID=0e9d")),
        "{o:?}"
    );
    assert!(calls.is_empty());
    assert_eq!(w.fstab(), current());
    assert_eq!(w.etc_names(), ["fstab"]);
}

#[test]
fn a_new_findmnt_error_refuses_the_merge_but_old_and_unreachable_ones_do_not() {
    // The old file has an error and an unreachable source; the merged one repeats them, adds
    // unreachable targets, and one real new error.
    let old = "/\n   [E] unreachable on boot required source: UUID=x\n/proc\n   [W] odd thing\n";
    let new_ok = format!(
        "{old}/mnt/iso\n   [E] unreachable on boot required target: No such file or directory\n"
    );
    let new_bad = format!("{new_ok}/srv/data\n   [E] ext4 does not match with on-disk xfs\n");
    for (new, refused) in [(new_ok, false), (new_bad, true)] {
        let w2 = World::new(&current(), &backup(OLD_ROOT));
        let (out, calls, _) = w2.apply(
            HostActions::Run,
            Some("all"),
            Box::new(move |cmd| {
                if cmd.program != "env" {
                    return all_pass(cmd);
                }
                let text = if cmd.args.last().is_some_and(|a| a.ends_with("fstab.merged")) {
                    new.clone()
                } else {
                    old.to_string()
                };
                Ok(CommandOutput {
                    code: Some(1),
                    stdout: text.into_bytes(),
                    stderr: b"0 parse errors, 2 errors, 1 warning\n".to_vec(),
                    timed_out: false,
                })
            }),
        );
        let o = one(out);
        if refused {
            match &o.status {
                Status::Failed { error } => {
                    assert!(
                        error.contains("error: /srv/data: ext4 does not match with on-disk xfs"),
                        "{error}"
                    );
                    assert!(!error.contains("odd thing"), "{error}");
                }
                s => panic!("{s:?}"),
            }
            assert_eq!(w2.fstab(), current());
            assert_eq!(w2.etc_names(), ["fstab"]);
            assert_eq!(calls.len(), 2, "no daemon-reload: {calls:?}");
        } else {
            assert_eq!(o.status, Status::Applied, "{o:?}");
            assert_eq!(w2.fstab(), merged_all());
        }
    }
}

#[test]
fn without_findmnt_the_merge_is_written_with_a_warning_naming_it() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let (out, calls, _) = w.apply(
        HostActions::Run,
        Some("/srv/data"),
        Box::new(|cmd| {
            if cmd.program == "env" {
                Ok(CommandOutput {
                    code: Some(127),
                    stderr: b"env: 'findmnt': No such file or directory\n".to_vec(),
                    ..CommandOutput::default()
                })
            } else {
                all_pass(cmd)
            }
        }),
    );
    let o = one(out);
    assert_eq!(o.status, Status::Applied);
    assert!(
        o.detail.contains(
            "warning: `findmnt` is not available on this host (exit code 127: env: 'findmnt': No such file or directory); install util-linux: the merged /etc/fstab was written unchecked"
        ),
        "{}",
        o.detail
    );
    assert!(o.detail.starts_with(&format!(
        "added 1 mount to /etc/fstab: UUID={DATA} → /srv/data (ext4)"
    )));
    assert_eq!(
        calls.len(),
        2,
        "findmnt once, then daemon-reload: {calls:?}"
    );
    assert!(
        w.fstab()
            .contains(&format!("UUID={DATA} /srv/data ext4 defaults,nofail 0 2\n"))
    );
    assert!(!w.fstab().contains("/mnt/iso"));
}

#[test]
fn deferred_host_actions_write_the_merge_and_leave_findmnt_and_the_reload_as_said() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let (out, calls, host) = w.apply(HostActions::Defer, Some("all"), Box::new(all_pass));
    let o = one(out);
    assert_eq!(o.status, Status::Applied);
    assert!(
        o.detail.contains(
            "; `systemctl daemon-reload` deferred (host actions are deferred): run it on the host"
        ),
        "{}",
        o.detail
    );
    assert!(
        o.detail.contains(
            "warning: `findmnt --verify` was not run (host actions are deferred): the merged /etc/fstab was written unchecked"
        ),
        "{}",
        o.detail
    );
    assert!(calls.is_empty());
    assert_eq!(host.deferred(), ["systemctl daemon-reload"]);
    assert_eq!(w.fstab(), merged_all());
}

#[test]
fn a_failed_daemon_reload_is_partly_applied() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let (out, _, _) = w.apply(
        HostActions::Run,
        Some("all"),
        Box::new(|cmd| {
            if cmd.program == "systemctl" {
                Ok(CommandOutput {
                    code: Some(1),
                    stderr: b"Failed to connect to bus\n".to_vec(),
                    ..CommandOutput::default()
                })
            } else {
                all_pass(cmd)
            }
        }),
    );
    let o = one(out);
    assert_eq!(o.status, Status::PartlyApplied);
    assert!(
        o.detail
            .contains("`systemctl daemon-reload` failed (exit code 1: Failed to connect to bus)"),
        "{}",
        o.detail
    );
    assert_eq!(w.fstab(), merged_all());
}

#[test]
fn a_linked_host_fstab_is_left_alone() {
    let w = World::new(&current(), &backup(OLD_ROOT));
    let f = w.root.join("etc/fstab");
    std::fs::rename(&f, w.root.join("etc/fstab.real")).expect("mv");
    symlink("fstab.real", &f).expect("link");
    let p = w.plan_with(Some("all")).expect("plan");
    assert!(p.files.is_empty());
    let (out, calls, _) = w.apply(HostActions::Run, Some("all"), Box::new(all_pass));
    let o = one(out);
    assert!(
        matches!(&o.status, Status::Skipped { reason } if reason.contains("not a regular file")),
        "{o:?}"
    );
    assert!(calls.is_empty());
    assert_eq!(
        std::fs::read_to_string(w.root.join("etc/fstab.real")).expect("r"),
        current()
    );
}
