//! The `zfs-report` applier end to end (scenario 32): the real binary restores the `zfs`
//! category (`/etc/zfs/zpool.cache`, `/etc/hostid`) as plain files onto a PVE root whose
//! systemd enables `zfs-import@tank.service`; a fake `zpool` on `PATH` answers `zpool import`.
//! The report (console and JSON) lists the configured and the importable pools and the
//! commands to import them; nothing is imported (`zpool import <pool>` is never called).
//! When nothing is importable, `zpool status tank` says the pool is already imported.
//! Under `--host-actions defer` no `zpool` runs and the probe is listed as a to-do.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, ROOT, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

const CACHE: &[u8] = b"\0\0\0\x0czpool-cache-bytes\x01\x02";

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let mut source = HostTree::new(dir.path().join("source"));
        source
            .file(
                "var/lib/proxsave-info/backup_metadata.txt",
                b"# ProxSave Metadata\nVERSION=0.30.0\nBACKUP_TYPE=pve\nBACKUP_TARGETS=pve\nHOSTNAME=pve1\nPVE_VERSION=8.2.4\nPVE_CLUSTER_MODE=standalone\n",
                0o640,
                ROOT,
            )
            .file("etc/zfs/zpool.cache", CACHE, 0o644, ROOT)
            .file("etc/hostid", b"\x12\x34\x56\x78", 0o644, ROOT)
            .settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);

        let mut target = HostRoot::pve(dir.path().join("root"));
        let t = target.tree_mut();
        t.symlink(
            "etc/systemd/system/zfs-import.target.wants/zfs-import@tank.service",
            "/lib/systemd/system/zfs-import@.service",
        );
        t.symlink(
            "etc/systemd/system/zfs-import.target.wants/zfs-import-cache.service",
            "/lib/systemd/system/zfs-import-cache.service",
        );
        t.settle_dirs();
        Lab {
            dir,
            fake,
            target,
            bundle,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    /// `restore --yes --mode custom --categories zfs --json …`.
    fn restore(&self, extra: &[&str]) -> Output {
        let out = self
            .fake
            .command(common::bin())
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
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
            .args(["--yes", "--mode", "custom", "--categories", "zfs", "--json"])
            .args(extra)
            .output()
            .unwrap();
        common::assert_ok(&out);
        out
    }

    fn zpool_calls(&self) -> Vec<Vec<String>> {
        self.fake
            .calls_of("zpool")
            .into_iter()
            .map(|c| c.args)
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

/// The one `zfs` outcome of the report.
fn zfs_outcome(r: &serde_json::Value) -> serde_json::Value {
    let applied = r["applied"].as_array().expect("applied");
    let zfs: Vec<_> = applied.iter().filter(|o| o["category"] == "zfs").collect();
    assert_eq!(zfs.len(), 1, "{applied:#?}");
    assert_eq!(zfs[0]["applier"], "zfs-report");
    zfs[0].clone()
}

#[test]
fn importable_pools_are_reported_with_the_commands_and_nothing_is_imported() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    lab.fake.respond(
        "zpool",
        &["import"],
        Response::ok("   pool: tank\n     id: 123\n  state: ONLINE\n action: The pool can be imported using its name or numeric identifier.\n config:\n\n\ttank        ONLINE\n\t  sda3      ONLINE\n"),
    );

    // The dry run describes the report and runs nothing.
    let out = lab.restore(&["--host-actions", "run", "--dry-run"]);
    let r = report(&out);
    let planned = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "zfs-report")
        .expect("zfs-report planned")
        .clone();
    assert_eq!(planned["categories"], serde_json::json!(["zfs"]));
    assert_eq!(planned["files"], serde_json::json!([]));
    assert!(
        planned["actions"][0]
            .as_str()
            .unwrap()
            .contains("nothing is imported"),
        "{planned}"
    );
    assert!(lab.fake.calls().is_empty(), "{:?}", lab.fake.call_lines());

    let out = lab.restore(&["--host-actions", "run"]);
    let r = report(&out);
    // The files are restored as they are.
    assert_eq!(
        fs::read(lab.root().join("etc/zfs/zpool.cache")).unwrap(),
        CACHE
    );
    // Only the read-only probe ran: nothing was imported.
    assert_eq!(lab.zpool_calls(), [["import"]]);
    let zfs = zfs_outcome(&r);
    assert_eq!(zfs["status"], "deferred", "{zfs}");
    assert_eq!(
        zfs["todo"],
        "import the ZFS pools by hand: zpool import tank"
    );
    let detail = zfs["detail"].as_str().unwrap();
    let want = [
        "ZFS pools configured on this host (systemd import units): tank",
        "ZFS: /etc/zfs/zpool.cache is present: zfs-import-cache.service imports the pools it lists at boot",
        "ZFS pools that can be imported (`zpool import`): tank; nothing was imported. Import them by hand:",
        "  zpool import tank",
        "  (if its devices were renamed: zpool import -d /dev/disk/by-id tank)",
        "  then check them with: zpool status",
    ];
    assert_eq!(detail.lines().collect::<Vec<_>>(), want);
    // The console shows the same lines as warnings.
    let console = common::stderr(&out);
    for line in want {
        assert!(
            console.contains(&format!("WARNING: {line}\n")),
            "{line:?} not in:\n{console}"
        );
    }
    assert_eq!(r["outcome"], "success", "a report is not an error");
    // No stage left behind for a category restored into the root.
    assert!(r["stage_dir"].is_null(), "{}", r["stage_dir"]);
    assert!(r["staged_not_applied"].as_array().unwrap().is_empty());
}

#[test]
fn no_importable_pool_checks_the_configured_ones() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    lab.fake
        .respond(
            "zpool",
            &["import"],
            Response::fail(1, "no pools available to import\n"),
        )
        .respond(
            "zpool",
            &["status", "tank"],
            Response::ok("  pool: tank\n state: ONLINE\nerrors: No known data errors\n"),
        );
    let out = lab.restore(&["--host-actions", "run"]);
    let r = report(&out);
    assert_eq!(lab.zpool_calls(), [vec!["import"], vec!["status", "tank"]]);
    let zfs = zfs_outcome(&r);
    assert_eq!(zfs["status"], "applied", "{zfs}");
    let detail = zfs["detail"].as_str().unwrap();
    assert!(
        detail.contains("ZFS: `zpool import` finds no pool waiting to be imported"),
        "{detail}"
    );
    assert!(
        detail.contains("ZFS pool tank: already imported (zpool status tank)"),
        "{detail}"
    );
    assert!(
        common::stderr(&out).contains("ZFS pool tank: already imported (zpool status tank)\n"),
        "{}",
        common::stderr(&out)
    );

    // A configured pool that `zpool status` does not know is named with what to do.
    lab.fake.clear_calls();
    lab.fake.clear_rules();
    lab.fake
        .respond(
            "zpool",
            &["import"],
            Response::fail(1, "no pools available to import\n"),
        )
        .respond(
            "zpool",
            &["status", "tank"],
            Response::fail(1, "cannot open 'tank': no such pool\n"),
        );
    let r = report(&lab.restore(&["--host-actions", "run"]));
    let zfs = zfs_outcome(&r);
    assert_eq!(zfs["status"], "deferred", "{zfs}");
    assert!(
        zfs["detail"].as_str().unwrap().contains(
            "ZFS pool tank: configured but neither imported nor importable: check its disks, \
             then `zpool import tank` or `zpool import -d /dev/disk/by-id tank`"
        ),
        "{zfs}"
    );
}

#[test]
fn deferred_host_actions_run_no_zpool_and_list_the_probe() {
    require_tools!("tar", "sha256sum");
    let lab = Lab::new();
    let out = lab.restore(&["--host-actions", "defer"]);
    let r = report(&out);
    assert!(lab.fake.calls().is_empty(), "{:?}", lab.fake.call_lines());
    let deferred: Vec<&str> = r["deferred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(deferred, ["zpool import"]);
    let zfs = zfs_outcome(&r);
    assert_eq!(zfs["status"], "deferred");
    assert_eq!(
        zfs["todo"],
        "run `zpool import` to list the ZFS pools that can be imported"
    );
    assert_eq!(
        fs::read(lab.root().join("etc/hostid")).unwrap(),
        b"\x12\x34\x56\x78"
    );
}
