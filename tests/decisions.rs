//! Decisions, one mechanism (issue 7, point 6): every question has a stable id and is answered
//! at the console, by `--answer ID=VALUE`, or by the answers file's `[answers]` table; flags
//! win; unknown ids are exit 2 naming them (in the file, at their line and column); a
//! non-interactive run without an answer is exit 2 naming the id and how to answer it;
//! `--dry-run --json` lists the questions with where their answers came from.
//!
//! No applier can be registered into the real binary from here, so the mechanism is driven
//! end to end by the restore's own questions: `continue_incompatible` (a PVE backup onto a
//! PBS root) and `continue_with_pbs_services_running` (a PBS service that does not stop).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    source: HostTree,
    bundle: PathBuf,
}

impl Lab {
    fn new(target: fn(PathBuf) -> HostRoot, source: fn(PathBuf) -> HostTree) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let source = source(dir.path().join("source"));
        let spec = BackupSpec {
            compressor: Compressor::Xz,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = target(dir.path().join("root"));
        Lab {
            dir,
            fake,
            target,
            source,
            bundle,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn answers_file(&self, text: &str) -> String {
        let p = self.dir.path().join("answers.toml");
        fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn restore(&self, extra: &[&str]) -> Output {
        let mut cmd: Command = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args(extra);
        cmd.output().expect("run proxsave")
    }

    fn report(out: &Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}):\n{}\n{}",
                common::stdout(out),
                common::stderr(out)
            )
        })
    }
}

fn pve_standalone(p: PathBuf) -> HostTree {
    HostTree::pve_standalone_node(p)
}
fn pbs_node(p: PathBuf) -> HostTree {
    HostTree::pbs_node(p)
}
fn pbs_root(p: PathBuf) -> HostRoot {
    HostRoot::pbs(p)
}

/// The report's record of question `id`.
fn question<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["questions"]
        .as_array()
        .expect("a questions list")
        .iter()
        .find(|q| q["id"] == id)
        .unwrap_or_else(|| panic!("no question {id} in {}", report["questions"]))
}

const RUN: [&str; 6] = ["--yes", "--json", "--host-actions", "run", "--mode", "full"];

#[test]
fn the_incompatibility_question_is_answered_by_flag_by_file_and_the_flag_wins() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = Lab::new(pbs_root, pve_standalone);
    let before = lab.target.snapshot();

    // No answer: exit 2 naming the id and both ways to answer it; nothing written or run.
    let out = lab.restore(&RUN);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains("no answer to question `continue_incompatible`")
            && err.contains("--answer continue_incompatible=VALUE")
            && err.contains("[answers]")
            && err.contains("VALUE: yes or no"),
        "{err}"
    );
    assert_eq!(lab.target.snapshot(), before);
    assert!(lab.fake.calls().is_empty());

    // The answers file says no: the run stops there (declined: aborted), nothing written.
    let file = lab.answers_file("[answers]\ncontinue_incompatible = \"no\"\n");
    let out = lab.restore(&[&RUN[..], &["--answers", &file]].concat());
    assert_eq!(common::code(&out), 130, "{}", common::stderr(&out));
    assert_eq!(lab.target.snapshot(), before);

    // The flag wins over the file.
    let out = lab.restore(
        &[
            &RUN[..],
            &["--answers", &file, "--answer", "continue_incompatible=yes"],
        ]
        .concat(),
    );
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let q = question(&r, "continue_incompatible");
    assert_eq!(q["answer"], "yes");
    assert_eq!(q["source"], "flag");
    assert_eq!(q["choices"], serde_json::json!(["yes", "no"]));
    assert!(q["default"].is_null());
    assert_eq!(
        fs::read(lab.root().join("etc/ssh/sshd_config")).unwrap(),
        fs::read(lab.source.root.join("etc/ssh/sshd_config")).unwrap()
    );
}

#[test]
fn the_old_top_level_key_and_booleans_still_answer() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = Lab::new(pbs_root, pve_standalone);
    // The older spelling, as a dry run: the answer shows with its source.
    let file = lab.answers_file("continue_incompatible = true\n");
    let out = lab.restore(&[&RUN[..], &["--dry-run", "--answers", &file]].concat());
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["outcome"], "dry_run");
    let q = question(&r, "continue_incompatible");
    assert_eq!(
        (&q["answer"], &q["source"]),
        (&"yes".into(), &"answers-file".into())
    );

    // A boolean in [answers] is yes/no; the old key agreeing with it is fine.
    let file =
        lab.answers_file("continue_incompatible = true\n[answers]\ncontinue_incompatible = true\n");
    let out = lab.restore(&[&RUN[..], &["--dry-run", "--answers", &file]].concat());
    common::assert_ok(&out);
    // Disagreeing is an error at the [answers] value.
    let file = lab
        .answers_file("continue_incompatible = true\n[answers]\ncontinue_incompatible = \"no\"\n");
    let out = lab.restore(&[&RUN[..], &["--dry-run", "--answers", &file]].concat());
    assert_eq!(common::code(&out), 2);
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("{file}:3:25: [answers]: `continue_incompatible`")),
        "{err}"
    );
}

#[test]
fn unknown_ids_and_bad_values_are_exit_2_naming_them_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    // The backup is never opened: answers are checked first.
    let missing_backup = dir.path().join("no-such.bundle.tar");
    let run = |extra: &[&str]| {
        common::proxsave()
            .arg("restore")
            .arg("--backup")
            .arg(&missing_backup)
            .arg("--root")
            .arg(&root)
            .args(["--yes", "--mode", "full"])
            .args(extra)
            .output()
            .unwrap()
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["--answer", "fstab.mrege=all"],
            "--answer fstab.mrege=all: no question has the id `fstab.mrege` (known: continue_incompatible, continue_without_safety_backup, continue_with_pbs_services_running",
        ),
        (
            &["--answer", "continue_incompatible=maybe"],
            "--answer continue_incompatible=maybe: `continue_incompatible` takes yes or no, not \"maybe\"",
        ),
        (
            &[
                "--answer",
                "continue_incompatible=yes",
                "--answer",
                "continue_incompatible=no",
            ],
            "--answer continue_incompatible=yes and --answer continue_incompatible=no disagree",
        ),
        (
            &[
                "--continue-incompatible",
                "--answer",
                "continue_incompatible=n",
            ],
            "--answer continue_incompatible=n and --continue-incompatible disagree",
        ),
        (&["--answer", "no-equals-sign"], "expected ID=VALUE"),
    ];
    for (extra, want) in cases {
        let out = run(extra);
        assert_eq!(common::code(&out), 2, "{extra:?}: {}", common::stderr(&out));
        assert!(
            common::stderr(&out).contains(want),
            "{extra:?}: {}",
            common::stderr(&out)
        );
    }

    // In the answers file: the key's line and column (the value's for a bad value).
    let file = dir.path().join("answers.toml");
    let a = file.display().to_string();
    for (text, want) in [
        (
            "mode = \"full\"\n\n[answers]\n  \"fstab.mrege\" = \"all\"\n",
            format!("{a}:4:3: [answers]: no question has the id `fstab.mrege`"),
        ),
        (
            "[answers]\nfstab.mrege = \"all\"\n",
            format!("{a}:2:1: [answers]: no question has the id `fstab.mrege`"),
        ),
        (
            "[answers]\ncontinue_with_pbs_services_running = \"perhaps\"\n",
            format!(
                "{a}:2:38: [answers]: `continue_with_pbs_services_running` takes yes or no, not \"perhaps\""
            ),
        ),
        (
            "[answers]\ncontinue_incompatible = 1\n",
            format!("{a}:2:25: the answer to `continue_incompatible` is a number"),
        ),
    ] {
        fs::write(&file, text).unwrap();
        let out = run(&["--answers", &a]);
        assert_eq!(common::code(&out), 2, "{text:?}: {}", common::stderr(&out));
        assert!(
            common::stderr(&out).contains(&want),
            "{text:?}: {}",
            common::stderr(&out)
        );
    }
    assert!(common::missing_or_empty(&root));
}

#[test]
fn a_pbs_service_that_does_not_stop_asks_and_the_answer_can_be_given_up_front() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = Lab::new(pbs_root, pbs_node);
    // Denied at every step of the escalation (stop --no-block, stop, SIGTERM, SIGKILL).
    for step in [
        &["stop", "--no-block"][..],
        &["stop"],
        &["kill", "--signal=SIGTERM", "--kill-who=all"],
        &["kill", "--signal=SIGKILL", "--kill-who=all"],
    ] {
        let args = [step, &["proxmox-backup-proxy"]].concat();
        let verb = if step[0] == "stop" { "stop" } else { "kill" };
        lab.fake.respond(
            "systemctl",
            &args,
            Response::fail(
                1,
                format!("Failed to {verb} proxmox-backup-proxy.service: Access denied\n"),
            ),
        );
    }
    let run = [&RUN[..], &["--pbs-behavior", "merge"]].concat();
    let before = lab.target.snapshot();

    // Without an answer: exit 2 naming the question, nothing put in place, what was stopped
    // started again.
    let out = lab.restore(&run);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains("no answer to question `continue_with_pbs_services_running`")
            && err.contains("--answer continue_with_pbs_services_running=VALUE"),
        "{err}"
    );
    assert_eq!(lab.target.snapshot(), before);

    // `no` from the answers file: the run stops before writing.
    let file = lab.answers_file("[answers]\n\"continue_with_pbs_services_running\" = false\n");
    let out = lab.restore(&[&run[..], &["--answers", &file]].concat());
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    assert_eq!(lab.target.snapshot(), before);
    let r = Lab::report(&out);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("cannot stop proxmox-backup-proxy"),
        "{}",
        r["error"]
    );

    // `--answer …=yes` beats the file: the restore goes on with the service running.
    let out = lab.restore(
        &[
            &run[..],
            &[
                "--answers",
                &file,
                "--answer",
                "continue_with_pbs_services_running=yes",
            ],
        ]
        .concat(),
    );
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let q = question(&r, "continue_with_pbs_services_running");
    assert_eq!(
        (&q["answer"], &q["source"]),
        (&"yes".into(), &"flag".into())
    );
    assert!(
        r["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("proxmox-backup-proxy could not be stopped")),
        "{}",
        r["warnings"]
    );
    assert_eq!(
        fs::read(lab.root().join("etc/proxmox-backup/maintenance.cfg")).unwrap(),
        fs::read(lab.source.root.join("etc/proxmox-backup/maintenance.cfg")).unwrap()
    );
}

#[test]
fn a_dry_run_shows_the_answers_given_up_front_in_json_and_in_words() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = Lab::new(pbs_root, pve_standalone);
    let file = lab.answers_file("[answers]\ncontinue_without_safety_backup = \"no\"\n");
    let extra = [
        "--dry-run",
        "--mode",
        "full",
        "--answers",
        &file,
        "--answer",
        "continue_incompatible=YES",
    ];
    let out = lab.restore(&[&extra[..], &["--json"]].concat());
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(
        r["questions"],
        serde_json::json!([
            {
                "id": "continue_incompatible",
                "prompt": "The backup comes from another kind of system (PVE/PBS) than this host: continue anyway?",
                "choices": ["yes", "no"],
                "default": null,
                "answer": "yes",
                "source": "flag"
            },
            {
                "id": "continue_without_safety_backup",
                "prompt": "The safety backup could not be created: continue without it?",
                "choices": ["yes", "no"],
                "default": null,
                "answer": "no",
                "source": "answers-file"
            },
            {
                // The accounts applier's question (the full restore includes `accounts`;
                // host actions are deferred for this root, so `sudoers.apply` is not asked).
                "id": "accounts.merge",
                "prompt": "Merge the backup's regular users, their groups and subordinate ids into this host's account files?",
                "choices": ["yes", "no"],
                "default": "yes",
                "answer": null,
                "source": null
            }
        ])
    );
    // In words: the answers before the plan's end, the questions in the dry run's summary.
    let out = lab.restore(&extra);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("{l:?} not printed:\n{text}"))
    };
    let given = at("Answers given up front:");
    assert_eq!(
        lines[given + 1..given + 3],
        [
            "  • continue_incompatible = yes (flag)",
            "  • continue_without_safety_backup = no (answers file)"
        ]
    );
    let questions = at("Questions:");
    assert!(
        given < at("DRY RUN COMPLETED (nothing was written)")
            && at("DRY RUN COMPLETED (nothing was written)") < questions
    );
    assert_eq!(
        lines[questions + 1..questions + 3],
        [
            "  continue_incompatible: The backup comes from another kind of system (PVE/PBS) than this host: continue anyway? (yes | no)",
            "    no default; answer yes (flag)"
        ]
    );
}
