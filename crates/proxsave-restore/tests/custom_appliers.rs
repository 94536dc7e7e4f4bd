//! The example program `examples/custom_appliers.rs`, compiled here as a module and run
//! against a backup made by the test kit: its own category and applier do their work, and
//! its subscriber receives the library's events (phases, files, appliers, summary); the
//! restore log is written by the `RestoreLog` layer as the run goes.

#[allow(dead_code)]
#[path = "../examples/custom_appliers.rs"]
mod example;

use std::sync::{Arc, Mutex};

use proxsave_restore::applier::Status;
use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

const BACKUP_MOTD: &[u8] = b"pve1: restored from backup\n";
const HOST_MOTD: &[u8] =
    b"\nThe programs included with the Debian GNU/Linux system are free software.\n";

#[test]
fn the_example_restores_with_its_own_applier_and_receives_the_events() {
    require_tools!("tar", "xz", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let mut source = HostTree::pve_standalone_node(dir.path().join("source"));
    source
        .file("etc/motd", BACKUP_MOTD, 0o644, ROOT)
        .settle_dirs();
    let bundle = make_host_backup_in(&source, &host_spec(&source), dir.path());
    let mut target = HostRoot::pve(dir.path().join("root"));
    target
        .tree_mut()
        .file("etc/motd", HOST_MOTD, 0o644, ROOT)
        .settle_dirs();

    let args = example::parse_args(
        [
            "--backup",
            bundle.to_str().unwrap(),
            "--root",
            target.root().to_str().unwrap(),
            "--work",
            dir.path().join("work").to_str().unwrap(),
        ]
        .map(String::from),
    )
    .unwrap();
    assert_eq!(args.categories, ["example_motd", "crontabs"]);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let report = example::run(&args, Arc::new(move |l| sink.lock().unwrap().push(l)))
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = lines.lock().unwrap().clone();
    let has = |needle: &[&str]| lines.iter().any(|l| needle.iter().all(|n| l.contains(n)));

    // The applier ran: the backup's motd is in place, the old one kept beside it.
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    let o = &report.applied[0];
    assert_eq!(
        (o.category.as_str(), o.applier.as_str(), &o.status),
        ("example_motd", "example-motd", &Status::Applied)
    );
    assert_eq!(std::fs::read(target.path("etc/motd")).unwrap(), BACKUP_MOTD);
    let baks: Vec<_> = std::fs::read_dir(target.path("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("motd.bak-"))
        .collect();
    assert_eq!(baks.len(), 1, "{baks:?}");
    assert_eq!(
        std::fs::read(target.path(&format!("etc/{}", baks[0]))).unwrap(),
        HOST_MOTD
    );
    // The question was answered by the scripted prompter.
    assert!(
        report
            .questions
            .iter()
            .any(|q| q.id == "motd.install" && q.answer.as_deref() == Some("yes")),
        "{:?}",
        report.questions
    );
    // crontabs went into the root.
    assert!(report.counts.restored > 0, "{:?}", report.counts);
    assert!(target.path("etc/cron.d/x").exists());

    // The subscriber saw the run: its span, phases, files, appliers and summary.
    assert!(
        has(&["SPAN proxsave::restore restore:", "log="]),
        "{lines:#?}"
    );
    for phase in [
        "extracting",
        "safety-backup",
        "stopping-services",
        "committing",
        "committed",
        "applying",
        "restarting",
    ] {
        assert!(
            has(&["INFO proxsave::phase:", &format!("phase=\"{phase}\"")]),
            "no phase {phase}: {lines:#?}"
        );
    }
    assert!(
        has(&[
            "DEBUG proxsave::file:",
            "path=\"/etc/motd\"",
            "tier=\"staged\"",
            "status=\"staged\""
        ]),
        "{lines:#?}"
    );
    assert!(
        has(&[
            "DEBUG proxsave::file:",
            "path=\"/etc/cron.d/x\"",
            "status=\"restored\""
        ]),
        "{lines:#?}"
    );
    assert!(
        has(&[
            "INFO proxsave::applier:",
            "applier=\"example-motd\"",
            "phase=\"plan\"",
            "status=\"planned\"",
            "files=1"
        ]),
        "{lines:#?}"
    );
    assert!(
        has(&[
            "INFO proxsave::applier:",
            "phase=\"apply\"",
            "category=\"example_motd\"",
            "status=\"applied\""
        ]),
        "{lines:#?}"
    );
    assert!(
        has(&["INFO proxsave::summary:", "section=\"end\""]),
        "{lines:#?}"
    );
    // Nothing ran on this machine: host actions are deferred.
    assert!(
        !has(&["proxsave::command:", "status=\"ran\""]),
        "{lines:#?}"
    );
    assert!(
        !has(&["proxsave::command:", "status=\"error\""]),
        "{lines:#?}"
    );

    // The restore log was written by the layer as the run went (its EVENTS sections), then
    // closed with the report's summary.
    let log = std::fs::read_to_string(report.log.as_ref().expect("a restore log")).unwrap();
    assert!(log.starts_with("=== RESTORE LOG ===\nStarted: "), "{log}");
    assert!(log.contains("\nEVENTS:\n"), "{log}");
    assert!(log.contains("\n  phase: extracting\n"), "{log}");
    let staged = log
        .split("\nSTAGED FILES:\n")
        .nth(1)
        .expect("a STAGED FILES section");
    assert!(
        staged.lines().next().is_some_and(
            |l| l.starts_with("  /etc/motd (ownership: ") && l.ends_with(", mode: 0644)")
        ),
        "{log}"
    );
    assert!(
        log.contains("  applier example-motd apply: example_motd applied (installed /etc/motd"),
        "{log}"
    );
    assert!(log.contains("\nSUMMARY:\n  Files extracted: "), "{log}");
    assert!(
        log.ends_with(&format!("  Outcome: {}\n", report.outcome.words())),
        "{log}"
    );
}
