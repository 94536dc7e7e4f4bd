//! RECOVERY of a PVE cluster node (the cluster database `config.db` put back) with the real
//! binary against a temporary PVE root: fake `systemctl` (unit state machine), the pmxcfs
//! mount model (`/etc/pve` mounted while `pve-cluster` runs, `umount` answering
//! "not mounted"), a stateful fake `pvecm status`, and a virtual clock
//! (`PROXSAVE_TEST_CLOCK=virtual`) so every deadline of the stop escalation and of the
//! post-restart checks expires without waiting.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{HostTree, snapshot};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

const DB: &str = "var/lib/pve-cluster/config.db";
const WAL: &str = "var/lib/pve-cluster/config.db-wal";
const SHM: &str = "var/lib/pve-cluster/config.db-shm";

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    source: HostTree,
    bundle: PathBuf,
}

impl Lab {
    fn new(tweak: impl FnOnce(&mut HostTree)) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let mut source = HostTree::pve_cluster_node(dir.path().join("source"));
        tweak(&mut source);
        let spec = host_spec(&source);
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pve(dir.path().join("root"));
        // A stale write-ahead log and index of the database being replaced.
        fs::write(target.root().join(WAL), b"stale wal of the old database").unwrap();
        fs::write(target.root().join(SHM), b"stale shm").unwrap();
        fake.model_pmxcfs(&target.root().join("etc/pve"));
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

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn command(&self) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("PROXSAVE_TEST_CLOCK", "virtual")
            .env("PROXSAVE_TEST_MOUNTINFO", self.fake.mountinfo_path())
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.work())
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args(["--yes", "--json", "--host-actions", "run"])
            .args(["--mode", "custom", "--categories", "pve_cluster"])
            .args(["--cluster-mode", "recovery"]);
        cmd
    }

    fn restore(&self) -> Output {
        self.command().output().expect("run proxsave")
    }

    /// `systemctl` calls other than `is-active`.
    fn systemctl(&self) -> Vec<String> {
        self.fake
            .calls_of("systemctl")
            .iter()
            .map(|c| c.args.join(" "))
            .filter(|l| !l.starts_with("is-active"))
            .collect()
    }

    fn safety_listing(&self) -> Vec<String> {
        let sb = fs::read_dir(self.work())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("restore_backup_") && n.ends_with(".tar.gz")
            })
            .expect("a safety backup");
        let out = Command::new("tar").arg("-tzf").arg(&sb).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
            .collect()
    }
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

fn outcomes<'a>(r: &'a serde_json::Value, applier: &str) -> Vec<&'a serde_json::Value> {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["applier"] == applier)
        .collect()
}

fn all_text(out: &Output) -> String {
    format!("{}\n{}", common::stdout(out), common::stderr(out))
}

const STOPPED_AND_STARTED: [&str; 12] = [
    "stop --no-block pve-cluster",
    "reset-failed pve-cluster",
    "stop --no-block pvedaemon",
    "reset-failed pvedaemon",
    "stop --no-block pveproxy",
    "reset-failed pveproxy",
    "stop --no-block pvestatd",
    "reset-failed pvestatd",
    "start pve-cluster",
    "start pvedaemon",
    "start pveproxy",
    "start pvestatd",
];

#[test]
fn recovery_stops_in_order_writes_the_database_with_the_wal_aside_starts_and_verifies() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    let lab = Lab::new(|_| {});
    lab.fake
        .model_pvecm("prod", &["192.0.2.10", "192.0.2.11"], Some(2));
    assert!(lab.fake.pmxcfs_mounted());
    let out = lab.restore();
    common::assert_ok(&out);
    let r = report(&out);

    // Stopped in order (pve-cluster first), /etc/pve unmounted ("not mounted": pmxcfs went
    // with pve-cluster), started again in order.
    assert_eq!(lab.systemctl(), STOPPED_AND_STARTED);
    let mount = lab.root().join("etc/pve");
    let umounts: Vec<String> = lab
        .fake
        .calls_of("umount")
        .iter()
        .map(|c| c.args.join(" "))
        .collect();
    assert_eq!(umounts, [mount.display().to_string()]);
    let unmount = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"] == "unmount")
        .expect("an unmount action");
    assert_eq!(unmount["result"], "not mounted");

    // The database is the backup's, byte for byte; the old WAL/SHM are aside, not beside it.
    assert_eq!(
        fs::read(lab.root().join(DB)).unwrap(),
        fs::read(lab.source.root.join(DB)).unwrap()
    );
    assert!(!lab.root().join(WAL).exists() && !lab.root().join(SHM).exists());
    let aside: Vec<String> = fs::read_dir(lab.root().join("var/lib/pve-cluster"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".proxsave-stale-"))
        .collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    let wal_aside = aside
        .iter()
        .find(|n| n.starts_with("config.db-wal."))
        .unwrap();
    assert_eq!(
        fs::read(lab.root().join("var/lib/pve-cluster").join(wal_aside)).unwrap(),
        b"stale wal of the old database"
    );
    // ... and in the safety backup, with the old database.
    let listing = lab.safety_listing();
    for p in [DB, WAL, SHM] {
        assert!(listing.contains(&p.to_string()), "{p} in {listing:?}");
    }

    // Verified after the start: units active, /etc/pve mounted again, quorate on the third
    // `pvecm status`.
    assert!(lab.fake.pmxcfs_mounted());
    assert_eq!(lab.fake.calls_of("pvecm").len(), 3);
    let checks = outcomes(&r, "pve-cluster-db");
    let last = checks.last().expect("a post-restart outcome");
    assert_eq!(last["status"], "applied", "{last:#}");
    let d = last["detail"].as_str().unwrap();
    assert!(d.contains("`pvecm status` quorate"), "{d}");
    assert!(d.contains("ISOLATED"), "{d}");
    let plan = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-cluster-db")
        .expect("the applier's plan");
    assert!(
        plan["actions"][0]
            .as_str()
            .unwrap()
            .contains("SQLite integrity check passed"),
        "{plan:#}"
    );
}

#[test]
fn a_unit_that_never_stops_restarts_the_others_and_leaves_the_root_untouched() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    let lab = Lab::new(|_| {});
    lab.fake
        .model_pvecm("prod", &["192.0.2.10", "192.0.2.11"], Some(0));
    // pvedaemon ignores every stop request and every signal.
    lab.fake.respond(
        "systemctl",
        &["is-active", "pvedaemon"],
        Response::ok("active\n"),
    );
    let before = snapshot(lab.root());
    let out = lab.restore();
    assert_eq!(common::code(&out), 1, "{}", all_text(&out));
    let text = all_text(&out);
    assert!(text.contains("pvedaemon"), "{text}");
    assert!(text.contains("did not stop after 4 attempts"), "{text}");
    assert_eq!(
        lab.systemctl(),
        [
            "stop --no-block pve-cluster",
            "reset-failed pve-cluster",
            "stop --no-block pvedaemon",
            "stop pvedaemon",
            "kill --signal=SIGTERM --kill-who=all pvedaemon",
            "kill --signal=SIGKILL --kill-who=all pvedaemon",
            // The unit that stopped is started again; pvedaemon still runs.
            "start pve-cluster",
        ]
    );
    assert_eq!(lab.fake.unit_state("pve-cluster"), "active");
    assert!(lab.fake.pmxcfs_mounted());
    assert!(lab.fake.calls_of("umount").is_empty());
    assert!(lab.fake.calls_of("pvecm").is_empty());
    assert_eq!(snapshot(lab.root()), before, "the root is untouched");
}

#[test]
fn a_node_that_never_becomes_quorate_ends_with_that_warning_and_the_rollback_command() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    let lab = Lab::new(|_| {});
    lab.fake
        .model_pvecm("prod", &["192.0.2.10", "192.0.2.11"], None);
    let out = lab.restore();
    common::assert_ok(&out);
    let r = report(&out);
    assert_eq!(lab.systemctl(), STOPPED_AND_STARTED);
    // Probed until the deadline (60 s every 2 s on the virtual clock).
    assert_eq!(lab.fake.calls_of("pvecm").len(), 31);
    let checks = outcomes(&r, "pve-cluster-db");
    let last = checks.last().unwrap();
    assert_eq!(last["status"], "deferred", "{last:#}");
    let todo = last["todo"].as_str().unwrap();
    assert!(
        todo.contains("not quorate after 60s (Quorate: No)"),
        "{todo}"
    );
    assert!(todo.contains("rollback"), "{todo}");
    let text = all_text(&out);
    assert!(text.contains("not quorate"), "{text}");
    let cmd = r["rollback_command"].as_str().unwrap();
    assert!(cmd.contains("--rollback"), "{cmd}");
    assert!(text.contains(&format!("Roll back with: {cmd}")), "{text}");
    assert!(
        text.contains("TO DO (pve_cluster, pve-cluster-db)"),
        "{text}"
    );
}

/// A backup whose `config.db` is replaced by `bytes`: refused before anything is stopped or
/// written, with SQLite's message; exit 1.
fn refused(bytes: Vec<u8>, expect: &[&str]) {
    let lab = Lab::new(move |t| fs::write(t.root.join(DB), &bytes).unwrap());
    lab.fake
        .model_pvecm("prod", &["192.0.2.10", "192.0.2.11"], Some(0));
    let before = snapshot(lab.root());
    let out = lab.restore();
    assert_eq!(common::code(&out), 1, "{}", all_text(&out));
    let text = all_text(&out);
    assert!(
        text.contains("pve-cluster-db: preflight failed: the backup's config.db is refused, nothing was stopped or written: /var/lib/pve-cluster/config.db: "),
        "{text}"
    );
    for e in expect {
        assert!(text.contains(e), "{e:?} in {text}");
    }
    assert!(
        lab.fake.calls_of("systemctl").is_empty(),
        "{:?}",
        lab.fake.call_lines()
    );
    assert!(lab.fake.calls_of("umount").is_empty());
    assert!(lab.fake.calls_of("pvecm").is_empty());
    assert_eq!(lab.fake.unit_state("pve-cluster"), "active");
    assert_eq!(snapshot(lab.root()), before, "the root is untouched");
}

#[test]
fn a_corrupt_database_is_refused_before_any_service_stops() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    let mut db = proxsave_testkit::configdb::ConfigDb::pve_cluster();
    // Several pages: damaged() overwrites the second (the tree table's b-tree).
    db.file("nodes/pve1/lrm_status", &[b'x'; 20_000], 1_721_780_100);
    let good = db.bytes();
    refused(
        proxsave_testkit::configdb::damaged(&good),
        &["SQLite integrity check failed"],
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_sqlites_message() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    refused(
        b"this is not an SQLite database at all, just text".to_vec(),
        &["file is not a database"],
    );
}

#[test]
fn a_database_without_the_tree_table_is_refused() {
    require_tools!("tar", "xz", "sha256sum", "gzip");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    proxsave_testkit::configdb::without_tree(&db);
    refused(
        fs::read(&db).unwrap(),
        &["no `tree` table: not a pmxcfs config.db"],
    );
}
