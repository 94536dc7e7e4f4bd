//! End-to-end restores: the real binary against temporary roots built like PVE, PBS and dual
//! hosts, with fake `systemctl`, `umount`, `pvesh`, … first on `PATH` recording what would
//! have run on a real host. Every mode, custom selections (ids and single paths), decisions
//! from flags and from an answers file, dry runs, rollbacks, service failures and Ctrl+C.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree, snapshot};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::paused::{Paused, Reached};
use proxsave_testkit::require_tools;
use rustix::process::Signal;

fn run_text(lab: &Lab, name: &str) -> String {
    fs::read_to_string(lab.dir.path().join(name)).unwrap_or_default()
}

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    source: HostTree,
    bundle: PathBuf,
}

impl Lab {
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn export(&self) -> PathBuf {
        self.dir.path().join("export")
    }
    fn root(&self) -> &Path {
        self.target.root()
    }
    fn src(&self, rel: &str) -> Vec<u8> {
        fs::read(self.source.root.join(rel)).unwrap()
    }
    fn dst(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root().join(rel)).unwrap()
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.work())
            .arg("--export-dir")
            .arg(self.export())
            .args(extra);
        cmd
    }

    fn restore(&self, extra: &[&str]) -> Output {
        self.command(extra).output().expect("run proxsave")
    }

    /// The JSON report of a run made with `--json`.
    fn report(out: &Output) -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}):\n{}\n{}",
                common::stdout(out),
                common::stderr(out)
            )
        })
    }

    fn systemctl(&self) -> Vec<String> {
        self.fake
            .calls_of("systemctl")
            .iter()
            .map(|c| c.args.join(" "))
            .filter(|l| !l.starts_with("is-active"))
            .collect()
    }

    fn only(&self, prefix: &str) -> Vec<PathBuf> {
        fs::read_dir(self.work())
            .map(|rd| {
                rd.map(|e| e.unwrap().path())
                    .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn safety_listing(&self) -> Vec<String> {
        let sb = self
            .only("restore_backup_")
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .expect("a safety backup");
        let out = Command::new("tar").arg("-tzf").arg(&sb).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_end_matches('/').to_string())
            .collect()
    }
}

fn make_lab(target: fn(PathBuf) -> HostRoot, source: fn(PathBuf) -> HostTree) -> Lab {
    lab_with(target, source, Compressor::Xz)
}

fn lab_with(
    target: fn(PathBuf) -> HostRoot,
    source: fn(PathBuf) -> HostTree,
    c: Compressor,
) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBin::new(dir.path().join("fake"));
    let source = source(dir.path().join("source"));
    let spec = BackupSpec {
        compressor: c,
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

fn pve_root(p: PathBuf) -> HostRoot {
    HostRoot::pve(p)
}
fn pbs_root(p: PathBuf) -> HostRoot {
    HostRoot::pbs(p)
}
fn dual_root(p: PathBuf) -> HostRoot {
    HostRoot::dual(p)
}
fn pve_cluster(p: PathBuf) -> HostTree {
    HostTree::pve_cluster_node(p)
}
fn pve_standalone(p: PathBuf) -> HostTree {
    HostTree::pve_standalone_node(p)
}
fn pbs_node(p: PathBuf) -> HostTree {
    HostTree::pbs_node(p)
}
fn dual_node(p: PathBuf) -> HostTree {
    HostTree::dual_node(p)
}

fn sub_snapshot(root: &Path, rel: &str) -> Vec<String> {
    let p = root.join(rel);
    if p.exists() { snapshot(&p) } else { Vec::new() }
}

const RUN: &[&str] = &["--yes", "--host-actions", "run", "--json"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = RUN.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn pve_full_recovery_writes_the_database_and_restarts_pve_services() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let pve_before = sub_snapshot(lab.root(), "etc/pve");
    let old_db = lab.dst("var/lib/pve-cluster/config.db");
    let out = lab.restore(&args(&[
        "--mode",
        "full",
        "--cluster-mode",
        "recovery",
        "--keep-stage",
    ]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["schema"], "proxsave/restore/v1");
    assert_eq!(r["outcome"], "warnings");
    assert_eq!(r["plan"]["cluster_mode"], "recovery");

    // Services stopped in order before writing, restarted in the same order after.
    let sc = lab.systemctl();
    let stops: Vec<&String> = sc.iter().filter(|l| l.starts_with("stop")).collect();
    assert_eq!(
        stops,
        [
            "stop --no-block pve-cluster",
            "stop --no-block pvedaemon",
            "stop --no-block pveproxy",
            "stop --no-block pvestatd"
        ]
    );
    let starts: Vec<&String> = sc.iter().filter(|l| l.starts_with("start")).collect();
    assert_eq!(
        starts,
        [
            "start pve-cluster",
            "start pvedaemon",
            "start pveproxy",
            "start pvestatd"
        ]
    );
    assert!(
        sc.iter().position(|l| l.starts_with("stop"))
            < sc.iter().position(|l| l.starts_with("start"))
    );

    // The database is written; /etc/pve is never written by extraction, it is exported.
    assert_eq!(
        lab.dst("var/lib/pve-cluster/config.db"),
        lab.src("var/lib/pve-cluster/config.db")
    );
    assert_eq!(sub_snapshot(lab.root(), "etc/pve"), pve_before);
    assert_eq!(
        fs::read(lab.export().join("etc/pve/storage.cfg")).unwrap(),
        lab.src("etc/pve/storage.cfg")
    );
    assert_eq!(
        fs::metadata(lab.export()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Normal categories land in the root, byte for byte.
    for f in [
        "etc/ssh/sshd_config",
        "root/.ssh/authorized_keys",
        "usr/local/bin/pve-helper",
        "etc/corosync/corosync.conf",
    ] {
        assert_eq!(lab.dst(f), lab.src(f), "{f}");
    }
    // Dedup link materialised from the archive as a regular file with the recorded mode.
    let x = lab.root().join("usr/local/sbin/x");
    let meta = fs::symlink_metadata(&x).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(fs::read(&x).unwrap(), lab.src("usr/local/bin/x"));

    // Staged categories are kept for their appliers, never reported as restored.
    let stage = PathBuf::from(r["stage_dir"].as_str().expect("stage kept"));
    assert_eq!(
        fs::read(stage.join("etc/network/interfaces")).unwrap(),
        lab.src("etc/network/interfaces")
    );
    // The network applier installs the backup's configuration on disk (this root has no
    // sysfs, so no NIC is renamed) and never applies it live.
    assert_eq!(
        lab.read_root("etc/network/interfaces"),
        String::from_utf8(lab.src("etc/network/interfaces")).unwrap()
    );
    let net = r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == "network")
        .expect("network outcome");
    assert_eq!(net["status"], "deferred", "{net:#}");
    let not_applied: Vec<&str> = r["staged_not_applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // storage_pve has its applier: in RECOVERY it writes /etc/vzdump.conf and leaves /etc/pve
    // (the database brings it back).
    assert!(!not_applied.contains(&"storage_pve"), "{not_applied:?}");
    assert_eq!(lab.dst("etc/vzdump.conf"), lab.src("etc/vzdump.conf"));
    assert!(
        lab.fake.calls_of("pvesh").is_empty(),
        "no pvesh call in RECOVERY"
    );
    // `filesystem` has its applier: the fstab merge finds nothing to add (the backup's only
    // data disk is not on this host).
    assert!(!not_applied.contains(&"filesystem"), "{not_applied:?}");
    let fstab = r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == "filesystem")
        .expect("a filesystem outcome");
    assert_eq!(fstab["applier"], "fstab-merge");
    assert_eq!(fstab["status"], "skipped", "{fstab}");
    // The safety backup holds the old database; rolling back is documented in the report.
    let listing = lab.safety_listing();
    assert!(
        listing.contains(&"var/lib/pve-cluster/config.db".to_string()),
        "{listing:?}"
    );
    assert_ne!(
        old_db,
        lab.src("var/lib/pve-cluster/config.db"),
        "the fixture must overwrite an existing database"
    );
    assert!(
        r["rollback_command"]
            .as_str()
            .unwrap()
            .contains("--rollback")
    );
    let sb = r["safety_backup"]["path"].as_str().unwrap();
    assert_eq!(
        fs::metadata(sb).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The restore log, guide format.
    let log = fs::read_to_string(r["log"].as_str().unwrap()).unwrap();
    assert!(log.starts_with("=== RESTORE LOG ===\nStarted: "), "{log}");
    assert!(log.contains("EXTRACTED FILES:\n"));
    assert!(
        log.contains("  /var/lib/pve-cluster/config.db (ownership: 0:0, mode: 0600"),
        "{log}"
    );
    assert!(log.contains("SKIPPED FILES:\n"));
    assert!(log.contains("SUMMARY:\n  Files extracted: "));
    assert!(log.contains("  Duration: "));
    // Report facts agree with the tree.
    assert_eq!(r["counts"]["failed"], 0);
    assert!(r["counts"]["restored"].as_u64().unwrap() > 5);
}

trait ReadRoot {
    fn read_root(&self, rel: &str) -> String;
}
impl ReadRoot for Lab {
    fn read_root(&self, rel: &str) -> String {
        String::from_utf8_lossy(&self.dst(rel)).into_owned()
    }
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn storage_mode_safe_exports_the_database_and_stops_nothing() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let db_before = lab.dst("var/lib/pve-cluster/config.db");
    let out = lab.restore(&args(&["--mode", "storage", "--cluster-mode", "safe"]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["plan"]["mode"], "storage");
    assert!(lab.systemctl().is_empty(), "{:?}", lab.systemctl());
    assert_eq!(lab.dst("var/lib/pve-cluster/config.db"), db_before);
    assert_eq!(
        fs::read(lab.export().join("var/lib/pve-cluster/config.db")).unwrap(),
        lab.src("var/lib/pve-cluster/config.db")
    );
    // STORAGE writes zfs and storage-stack files; nothing of SSH.
    assert_eq!(
        lab.dst("etc/zfs/zpool.cache"),
        lab.src("etc/zfs/zpool.cache")
    );
    assert_ne!(
        lab.root()
            .join("etc/ssh/sshd_config")
            .exists()
            .then(|| lab.dst("etc/ssh/sshd_config")),
        Some(lab.src("etc/ssh/sshd_config"))
    );
}

#[test]
fn base_mode_writes_ssh_and_services_and_stages_network_and_fstab() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_standalone);
    let fstab_before = lab.dst("etc/fstab");
    // `--keep-stage`: every staged category of BASE has its applier now (network, fstab).
    let out = lab.restore(&args(&["--mode", "base", "--keep-stage"]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(
        lab.dst("etc/ssh/sshd_config"),
        lab.src("etc/ssh/sshd_config")
    );
    assert_eq!(
        lab.dst("etc/systemd/system/x.service"),
        lab.src("etc/systemd/system/x.service")
    );
    // fstab is never written raw (UUIDs of a new install differ); it is staged.
    assert_eq!(lab.dst("etc/fstab"), fstab_before);
    let stage = PathBuf::from(r["stage_dir"].as_str().unwrap());
    assert_eq!(
        fs::read(stage.join("etc/fstab")).unwrap(),
        lab.src("etc/fstab")
    );
    assert!(lab.systemctl().is_empty());
    // Nothing outside BASE was touched.
    assert!(!lab.export().exists() || fs::read_dir(lab.export()).unwrap().next().is_none());
}

#[test]
fn custom_selection_by_ids_and_by_single_paths() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_standalone);
    let before = lab.target.snapshot();
    let out = lab.restore(&args(&[
        "--categories",
        "/etc/ssh/sshd_config,/usr/local/bin/pve-helper",
    ]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["plan"]["mode"], "custom");
    assert_eq!(
        lab.dst("etc/ssh/sshd_config"),
        lab.src("etc/ssh/sshd_config")
    );
    assert_eq!(
        lab.dst("usr/local/bin/pve-helper"),
        lab.src("usr/local/bin/pve-helper")
    );
    let after = lab.target.snapshot();
    let changed: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        changed.iter().all(|l| l.contains("./etc/ssh")
            || l.contains("./usr/local")
            || l.contains("./usr")
            || l.contains("./etc ")),
        "unexpected changes: {changed:#?}"
    );

    let lab2 = lab_with(pve_root, pve_standalone, Compressor::Zstd);
    let out = lab2.restore(&args(&["--categories", "ssh,crontabs"]));
    common::assert_ok(&out);
    assert_eq!(
        lab2.dst("root/.ssh/authorized_keys"),
        lab2.src("root/.ssh/authorized_keys")
    );
    assert_eq!(
        lab2.dst("var/spool/cron/crontabs/root"),
        lab2.src("var/spool/cron/crontabs/root")
    );
    assert_ne!(lab2.dst("etc/hosts"), lab2.src("etc/hosts"));
    // Unknown ids are usage errors.
    let bad = lab2.restore(&args(&["--categories", "sshh"]));
    assert_eq!(common::code(&bad), 2);
    assert!(common::stderr(&bad).contains("`sshh` is neither a category id nor a path"));
}

#[test]
fn pbs_restore_stops_pbs_services_and_never_writes_raw_access_files() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pbs_root, pbs_node);
    let user_before = lab.dst("etc/proxmox-backup/user.cfg");
    // Upstream's PBS merge/clean question is required on a PBS host.
    let missing = lab.restore(&args(&["--mode", "full"]));
    assert_eq!(common::code(&missing), 2, "{}", common::stderr(&missing));
    assert!(common::stderr(&missing).contains("--pbs-behavior"));
    lab.fake.clear_calls();

    // `--keep-stage`: every PBS category has its applier now, so the stage would be removed.
    let out = lab.restore(&args(&[
        "--mode",
        "full",
        "--pbs-behavior",
        "merge",
        "--keep-stage",
    ]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["plan"]["pbs_behavior"], "merge");
    let sc = lab.systemctl();
    let stops: Vec<&String> = sc.iter().filter(|l| l.starts_with("stop")).collect();
    assert_eq!(
        stops,
        [
            "stop --no-block proxmox-backup-proxy",
            "stop --no-block proxmox-backup"
        ]
    );
    let starts: Vec<&String> = sc.iter().filter(|l| l.starts_with("start")).collect();
    assert_eq!(
        starts,
        ["start proxmox-backup", "start proxmox-backup-proxy"]
    );
    // maintenance.cfg and the proxy certificate are normal categories on a PBS host.
    assert_eq!(
        lab.dst("etc/proxmox-backup/maintenance.cfg"),
        lab.src("etc/proxmox-backup/maintenance.cfg")
    );
    assert_eq!(
        lab.dst("etc/proxmox-backup/proxy.pem"),
        lab.src("etc/proxmox-backup/proxy.pem")
    );
    // Access-control files: staged for their applier, never written raw.
    assert_eq!(lab.dst("etc/proxmox-backup/user.cfg"), user_before);
    let stage = PathBuf::from(r["stage_dir"].as_str().unwrap());
    assert_eq!(
        fs::read(stage.join("etc/proxmox-backup/user.cfg")).unwrap(),
        lab.src("etc/proxmox-backup/user.cfg")
    );
    assert!(
        !lab.root()
            .join("var/lib/proxmox-backup/.clusterlock")
            .exists()
            || lab.dst("var/lib/proxmox-backup/.clusterlock")
                != lab.src("var/lib/proxmox-backup/.clusterlock")
    );
    // The whole /etc/proxmox-backup is also exported for reference.
    assert_eq!(
        fs::read(lab.export().join("etc/proxmox-backup/datastore.cfg")).unwrap(),
        lab.src("etc/proxmox-backup/datastore.cfg")
    );

    // DATASTORE only.
    let lab2 = make_lab(pbs_root, pbs_node);
    let out = lab2.restore(&args(&["--mode", "storage", "--pbs-behavior", "clean"]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let ids: Vec<&str> = r["plan"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"]["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"datastore_pbs") && ids.contains(&"pbs_jobs"),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"pbs_config"),
        "export-only never in STORAGE: {ids:?}"
    );
}

#[test]
fn dual_host_full_restore() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(dual_root, dual_node);
    let out = lab.restore(&args(&["--mode", "full", "--pbs-behavior", "merge"]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["plan"]["host_role"], "dual");
    assert_eq!(r["plan"]["backup_type"], "dual");
    // A standalone dual node: no SAFE/RECOVERY question, database written, both stacks stopped.
    assert_eq!(
        lab.dst("var/lib/pve-cluster/config.db"),
        lab.src("var/lib/pve-cluster/config.db")
    );
    let sc = lab.systemctl();
    for unit in [
        "pve-cluster",
        "pvestatd",
        "proxmox-backup-proxy",
        "proxmox-backup",
    ] {
        assert!(
            sc.contains(&format!("stop --no-block {unit}")),
            "{unit}: {sc:?}"
        );
        assert!(sc.contains(&format!("start {unit}")), "{unit}: {sc:?}");
    }
    assert_eq!(
        lab.dst("etc/proxmox-backup/maintenance.cfg"),
        lab.src("etc/proxmox-backup/maintenance.cfg")
    );
}

#[test]
fn pve_backup_on_a_pbs_host_only_writes_common_categories() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pbs_root, pve_standalone);
    let refused = lab.restore(&args(&["--mode", "full"]));
    assert_eq!(
        common::code(&refused),
        2,
        "the mismatch needs an explicit decision"
    );
    assert!(common::stderr(&refused).contains("continue_incompatible"));
    let out = lab.restore(&args(&["--mode", "full", "--continue-incompatible"]));
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let cats = r["plan"]["categories"].as_array().unwrap();
    let tier = |id: &str| {
        cats.iter()
            .find(|c| c["category"]["id"] == id)
            .map(|c| c["tier"].as_str().unwrap().to_string())
    };
    assert_eq!(tier("pve_cluster").as_deref(), Some("export"));
    assert_eq!(tier("ssh").as_deref(), Some("normal"));
    assert!(!lab.root().join("var/lib/pve-cluster").exists());
    assert_eq!(
        fs::read(lab.export().join("var/lib/pve-cluster/config.db")).unwrap(),
        lab.src("var/lib/pve-cluster/config.db")
    );
    assert_eq!(
        lab.dst("etc/ssh/sshd_config"),
        lab.src("etc/ssh/sshd_config")
    );
    assert!(lab.systemctl().iter().all(|l| !l.contains("pve-cluster")));
}

#[test]
fn missing_decisions_are_usage_errors_naming_the_flag_and_write_nothing() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let before = lab.target.snapshot();
    for (extra, flag) in [
        (vec!["--yes"], "--mode"),
        (vec!["--yes", "--mode", "full"], "--cluster-mode"),
        (vec!["--yes", "--mode", "custom"], "--categories"),
        (vec!["--mode", "full", "--cluster-mode", "safe"], "--yes"),
    ] {
        let out = lab.restore(&extra);
        assert_eq!(common::code(&out), 2, "{extra:?}: {}", common::stderr(&out));
        assert!(
            common::stderr(&out).contains(flag),
            "{extra:?}: {}",
            common::stderr(&out)
        );
        assert_eq!(lab.target.snapshot(), before);
    }
    assert!(lab.fake.calls().is_empty());
}

#[test]
fn answers_file_drives_a_run_and_bad_files_point_at_the_line() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let answers = lab.dir.path().join("answers.toml");
    fs::write(
        &answers,
        "# runbook\nmode = \"custom\"\ncategories = [\"ssh\", \"pve_cluster\"]\ncluster_mode = \"recovery\"\nhost_actions = \"run\"\n",
    )
    .unwrap();
    let a = answers.display().to_string();
    let out = lab.restore(&["--yes", "--json", "--answers", &a]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert_eq!(r["plan"]["cluster_mode"], "recovery");
    assert_eq!(
        lab.dst("var/lib/pve-cluster/config.db"),
        lab.src("var/lib/pve-cluster/config.db")
    );
    assert!(!lab.systemctl().is_empty());

    fs::write(&answers, "mode = \"custom\"\ncluster-mode = \"safe\"\n").unwrap();
    let out = lab.restore(&["--yes", "--answers", &a]);
    assert_eq!(common::code(&out), 2);
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("{a}:2:1: unknown field `cluster-mode`")),
        "{err}"
    );
}

#[test]
fn defer_runs_no_host_command_and_lists_them() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "recovery",
        "--host-actions",
        "defer",
    ]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    assert!(lab.fake.calls().is_empty(), "{:?}", lab.fake.call_lines());
    let deferred: Vec<&str> = r["deferred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        deferred.contains(&"systemctl stop --no-block pve-cluster"),
        "{deferred:?}"
    );
    assert!(
        deferred.iter().any(|d| d.starts_with("umount ")),
        "{deferred:?}"
    );
    // Files are still written into the root.
    assert_eq!(
        lab.dst("var/lib/pve-cluster/config.db"),
        lab.src("var/lib/pve-cluster/config.db")
    );
    // auto = defer for a root that is not /.
    let lab2 = make_lab(pve_root, pve_cluster);
    let out = lab2.restore(&["--yes", "--mode", "full", "--cluster-mode", "recovery"]);
    common::assert_ok(&out);
    assert!(lab2.fake.calls().is_empty());
}

#[test]
fn a_service_that_does_not_stop_aborts_before_any_write() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    // Every step of the escalation fails (stop --no-block, stop, SIGTERM, SIGKILL).
    for step in [
        &["stop", "--no-block"][..],
        &["stop"],
        &["kill", "--signal=SIGTERM", "--kill-who=all"],
        &["kill", "--signal=SIGKILL", "--kill-who=all"],
    ] {
        lab.fake.respond(
            "systemctl",
            &[step, &["pvedaemon"]].concat(),
            Response::fail(1, "Job for pvedaemon.service failed\n"),
        );
    }
    let before = lab.target.snapshot();
    let out = lab.restore(&args(&["--mode", "full", "--cluster-mode", "recovery"]));
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    let r = Lab::report(&out);
    assert_eq!(r["outcome"], "failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("cannot stop pvedaemon")
    );
    assert_eq!(lab.target.snapshot(), before, "the root was written");
    // What was stopped was started again.
    let sc = lab.systemctl();
    assert!(sc.contains(&"start pve-cluster".to_string()), "{sc:?}");
    assert!(!sc.iter().any(|l| l.contains("pveproxy")), "{sc:?}");
    assert!(lab.only("restore-stage-").is_empty());
}

#[test]
fn dry_run_writes_nothing_and_a_second_restore_finds_everything_unchanged() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_standalone);
    let before = lab.target.snapshot();
    let out = lab.restore(&[
        "--dry-run",
        "--json",
        "--mode",
        "full",
        "--host-actions",
        "run",
    ]);
    common::assert_ok(&out);
    let plan = Lab::report(&out);
    assert_eq!(plan["schema"], "proxsave/plan/v1");
    assert_eq!(plan["outcome"], "dry_run");
    assert_eq!(lab.target.snapshot(), before, "dry run changed the root");
    assert!(!lab.work().exists() && !lab.export().exists());
    assert!(lab.fake.calls().is_empty());
    let files = plan["files"].as_array().unwrap();
    let status = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p && f["tier"] == "normal")
            .map(|f| f["change"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(status("/etc/ssh/sshd_config").as_deref(), Some("changed"));
    assert_eq!(status("/usr/local/bin/pve-helper").as_deref(), Some("new"));

    let first = lab.restore(&args(&["--mode", "full"]));
    common::assert_ok(&first);
    let after_first = lab.target.snapshot();
    let second = lab.restore(&args(&["--mode", "full"]));
    common::assert_ok(&second);
    let r = Lab::report(&second);
    let c = &r["counts"];
    assert!(c["restored"].as_u64().unwrap() > 10);
    let not_unchanged: Vec<&serde_json::Value> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "restored" && f["change"] != "unchanged")
        .collect();
    assert!(
        not_unchanged.is_empty(),
        "not unchanged: {not_unchanged:#?}"
    );
    assert_eq!(c["restored"], c["unchanged"]);
    assert_eq!(lab.target.snapshot(), after_first);
    // A dry run now says the same.
    let again = lab.restore(&["--dry-run", "--json", "--mode", "full"]);
    let p = Lab::report(&again);
    assert_eq!(p["counts"]["restored"], p["counts"]["unchanged"]);
}

#[test]
fn rollback_returns_the_root_to_its_exact_prior_state() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_cluster);
    let before = lab.target.snapshot();
    let out = lab.restore(&args(&["--mode", "full", "--cluster-mode", "recovery"]));
    common::assert_ok(&out);
    assert_ne!(lab.target.snapshot(), before);
    let r = Lab::report(&out);
    let sb = r["safety_backup"]["path"].as_str().unwrap().to_string();
    let mut cmd = lab.fake.command(common::bin());
    let out = cmd
        .args(["restore", "--rollback", &sb, "--root"])
        .arg(lab.root())
        .arg("--yes")
        .output()
        .unwrap();
    common::assert_ok(&out);
    assert_eq!(lab.target.snapshot(), before, "rollback is not exact");
}

#[test]
fn ctrl_c_during_extraction_stops_nothing_writes_nothing_and_leaves_no_stage() {
    require_tools!("tar", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let source = HostTree::pve_standalone_node(dir.path().join("source"));
    let spec = BackupSpec {
        compressor: Compressor::None,
        ..host_spec(&source)
    };
    let bundle = make_host_backup_in(&source, &spec, dir.path());
    let fake = FakeBin::new(dir.path().join("fake"));
    let target = HostRoot::pve(dir.path().join("root"));
    let before = target.snapshot();
    let lab = Lab {
        dir,
        fake,
        target,
        source,
        bundle,
    };
    // Held at the tenth entry the extraction stages (an exact point, not a timer), then a
    // real SIGINT.
    let mut run = Paused::spawn(
        &mut lab.command(&["--yes", "--host-actions", "run", "--mode", "full"]),
        "extract:10",
        lab.dir.path(),
        "run",
    );
    assert!(
        matches!(run.wait_stopped(), Reached::Stopped),
        "{}",
        run.stderr_text()
    );
    run.signal(Signal::INT);
    let status = run.finish();
    let seen = format!(
        "{}{}",
        run_text(&lab, "run.stdout"),
        run_text(&lab, "run.stderr")
    );
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("RESTORE ABORTED"), "{seen}");
    // The extraction only stages: nothing was in place yet, so no safety backup was needed
    // and no service was stopped; nothing committed and no stage left.
    assert!(!seen.contains("Safety backup preserved at: "), "{seen}");
    assert_eq!(lab.target.snapshot(), before);
    assert!(lab.only("restore-stage-").is_empty());
    assert!(lab.only("restore_backup_").is_empty());
    let sc = lab.systemctl();
    assert!(sc.iter().all(|c| !c.starts_with("stop")), "{sc:?}");
    let leftovers: Vec<_> = fs::read_dir(lab.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".proxsave"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn diff_shows_content_changes_with_secrets_masked() {
    require_tools!("tar", "xz", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let mut source = HostTree::pve_standalone_node(dir.path().join("source"));
    source.file(
        "etc/iscsi/iscsid.conf",
        b"node.startup = automatic\nnode.session.auth.username = pve\nnode.session.auth.password = supersecret\n",
        0o600,
        (0, 0),
    );
    let bundle = make_host_backup_in(&source, &host_spec(&source), dir.path());
    let mut target = HostRoot::pve(dir.path().join("root"));
    target.tree_mut().file(
        "etc/iscsi/iscsid.conf",
        b"node.startup = manual\nnode.session.auth.username = pve\nnode.session.auth.password = oldsecret\n",
        0o600,
        (0, 0),
    );
    let before = target.snapshot();
    let out = common::proxsave()
        .arg("diff")
        .arg("--backup")
        .arg(&bundle)
        .arg("--root")
        .arg(target.root())
        .args(["--categories", "ssh,storage_stack"])
        .output()
        .unwrap();
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(
        text.contains("--- /etc/ssh/sshd_config (current)"),
        "{text}"
    );
    assert!(text.contains("+++ /etc/ssh/sshd_config (backup)"), "{text}");
    assert!(
        text.contains("-node.startup = manual\n+node.startup = automatic"),
        "{text}"
    );
    assert!(
        text.contains("node.session.auth.password = ********"),
        "{text}"
    );
    assert!(
        !text.contains("supersecret") && !text.contains("oldsecret"),
        "{text}"
    );
    assert!(
        text.contains(
            "differs: /etc/ssh/ssh_host_ed25519_key (secret file: content differs (not shown))"
        ),
        "{text}"
    );
    assert!(common::stderr(&out).contains("files compared with"));
    assert_eq!(target.snapshot(), before, "diff wrote into the root");
    let json = common::proxsave()
        .arg("diff")
        .arg("--backup")
        .arg(&bundle)
        .arg("--root")
        .arg(target.root())
        .args(["--categories", "ssh", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["schema"], "proxsave/diff/v1");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/etc/ssh/sshd_config" && f["change"] == "changed")
    );
}

#[test]
fn access_control_on_a_renamed_host_is_warned_about() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = make_lab(pve_root, pve_standalone);
    fs::write(lab.root().join("etc/hostname"), "pve9\n").unwrap();
    let out = lab.restore(&[
        "--dry-run",
        "--json",
        "--categories",
        "pve_access_control,network,ssl",
    ]);
    common::assert_ok(&out);
    let r = Lab::report(&out);
    let warnings: Vec<&str> = r["plan"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("comes from host pve1 but this host is pve9")),
        "{warnings:?}"
    );
}
