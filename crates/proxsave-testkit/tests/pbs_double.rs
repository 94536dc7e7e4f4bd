//! The `proxmox-backup-manager` double against the reference facts of the Proxmox sources
//! (error texts, exit codes, what PBS writes where). Each test drives the fake command as a
//! program would.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Output;

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::pbs::{PbsDouble, ids, props};

struct World {
    _dir: tempfile::TempDir,
    fake: FakeBin,
    pbs: PbsDouble,
    root: PathBuf,
}

fn fresh() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBin::new(dir.path().join("fake"));
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nbackup:x:34:34:backup:/var/backups:/usr/sbin/nologin\n",
    )
    .unwrap();
    let pbs = PbsDouble::install_with(
        std::path::Path::new(env!("CARGO_BIN_EXE_pbs-double")),
        &fake,
        &root.join("etc/proxmox-backup"),
    );
    World {
        _dir: dir,
        fake,
        pbs,
        root,
    }
}

fn pbm(w: &World, args: &[&str]) -> Output {
    w.fake
        .command("proxmox-backup-manager")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run proxmox-backup-manager")
}

fn ok(w: &World, args: &[&str]) -> String {
    let out = pbm(w, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(w: &World, args: &[&str]) -> String {
    let out = pbm(w, args);
    assert_eq!(out.status.code(), Some(255), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn remote_password_is_stored_base64_and_never_listed() {
    let w = fresh();
    ok(
        &w,
        &[
            "remote",
            "create",
            "pbs-b",
            "--host",
            "10.0.0.20",
            "--auth-id",
            "sync@pbs",
            "--password",
            "secret",
            "--fingerprint",
            "aa:bb",
        ],
    );
    assert_eq!(
        w.pbs.read_file("remote.cfg").unwrap(),
        "remote: pbs-b\n\tauth-id sync@pbs\n\tfingerprint aa:bb\n\thost 10.0.0.20\n\tpassword c2VjcmV0\n"
    );
    let meta = std::fs::metadata(w.pbs.etc().join("remote.cfg")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (0, 34));
    let list = ok(&w, &["remote", "list", "--output-format", "json"]);
    assert!(!list.contains("c2VjcmV0") && !list.contains("secret"));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], "pbs-b");
    assert_eq!(v[0]["host"], "10.0.0.20");

    let err = fails(
        &w,
        &[
            "remote",
            "create",
            "pbs-b",
            "--host",
            "h",
            "--auth-id",
            "a@pbs",
            "--password",
            "x",
        ],
    );
    assert_eq!(
        err,
        "Error: parameter verification errors\n\nparameter 'name': remote 'pbs-b' already exists.\n"
    );
    ok(
        &w,
        &[
            "remote",
            "update",
            "pbs-b",
            "--password",
            "new pw",
            "--delete",
            "fingerprint",
        ],
    );
    let st = w.pbs.state();
    let r = props(st.remote.find("remote", "pbs-b").unwrap());
    assert_eq!(r["password"], "bmV3IHB3");
    assert!(!r.contains_key("fingerprint"));
    assert_eq!(
        fails(&w, &["remote", "update", "nope", "--host", "x"]),
        "Error: no such remote 'nope'\n"
    );
    assert_eq!(
        fails(&w, &["remote", "remove", "nope"]),
        "Error: remote 'nope' does not exist.\n"
    );
    let err = fails(&w, &["remote", "create", "r2", "--host", "h"]);
    assert!(
        err.contains("parameter 'auth-id': parameter is missing and it is not optional."),
        "{err}"
    );
    assert!(
        err.contains("parameter 'password': parameter is missing and it is not optional."),
        "{err}"
    );
    let err = fails(&w, &["remote", "update", "pbs-b", "--bogus", "1"]);
    assert!(
        err.contains("parameter 'bogus': schema does not allow additional properties."),
        "{err}"
    );
}

#[test]
fn remote_used_by_a_sync_job_cannot_be_removed_and_jobs_are_sorted_sections() {
    let w = fresh();
    ok(
        &w,
        &[
            "remote",
            "create",
            "pbs-b",
            "--host",
            "h",
            "--auth-id",
            "sync@pbs",
            "--password",
            "p",
        ],
    );
    ok(
        &w,
        &[
            "sync-job",
            "create",
            "pull-b",
            "--store",
            "store1",
            "--remote",
            "pbs-b",
            "--remote-store",
            "store1",
            "--schedule",
            "hourly",
            "--group-filter",
            "type:vm",
            "--group-filter",
            "group:vm/100",
            "--remove-vanished",
            "1",
        ],
    );
    assert_eq!(
        w.pbs.read_file("sync.cfg").unwrap(),
        "sync: pull-b\n\tgroup-filter type:vm\n\tgroup-filter group:vm/100\n\tremote pbs-b\n\tremote-store store1\n\tremove-vanished true\n\tschedule hourly\n\tstore store1\n"
    );
    let err = fails(&w, &["remote", "remove", "pbs-b"]);
    assert_eq!(
        err,
        "Error: parameter verification errors\n\nparameter 'name': remote 'pbs-b' is used by sync job 'pull-b' (datastore 'store1')\n"
    );
    let err = fails(
        &w,
        &[
            "sync-job",
            "create",
            "pull-b",
            "--store",
            "s",
            "--remote",
            "pbs-b",
            "--remote-store",
            "t",
        ],
    );
    assert!(
        err.contains("parameter 'id': job 'pull-b' already exists."),
        "{err}"
    );
    ok(&w, &["sync-job", "remove", "pull-b"]);
    assert_eq!(
        fails(&w, &["sync-job", "remove", "pull-b"]),
        "Error: job 'pull-b' does not exist.\n"
    );
    ok(&w, &["remote", "remove", "pbs-b"]);
    assert!(ids(&w.pbs.state().remote).is_empty());

    ok(
        &w,
        &[
            "verify-job",
            "create",
            "v1",
            "--store",
            "store1",
            "--schedule",
            "daily",
            "--ignore-verified",
            "true",
            "--outdated-after",
            "30",
        ],
    );
    ok(
        &w,
        &[
            "prune-job",
            "create",
            "p1",
            "--store",
            "store1",
            "--schedule",
            "daily",
            "--keep-daily",
            "7",
        ],
    );
    let err = fails(&w, &["prune-job", "create", "p2", "--store", "store1"]);
    assert!(
        err.contains("parameter 'schedule': parameter is missing"),
        "{err}"
    );
    let list = ok(&w, &["verify-job", "list", "--output-format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["id"], "v1");
    assert_eq!(v[0]["ignore-verified"], true);
    assert_eq!(v[0]["outdated-after"], 30);
    assert_eq!(
        fails(&w, &["prune-job", "remove", "zz"]),
        "Error: no such prune 'zz'\n"
    );
    assert_eq!(
        w.pbs.read_file("prune.cfg").unwrap(),
        "prune: p1\n\tkeep-daily 7\n\tschedule daily\n\tstore store1\n"
    );
}

#[test]
fn datastore_create_builds_a_chunk_store_and_refuses_an_existing_one() {
    let w = fresh();
    std::fs::create_dir_all(w.root.join("mnt/ds1")).unwrap();
    ok(
        &w,
        &[
            "datastore",
            "create",
            "ds1",
            "/mnt/ds1",
            "--comment",
            "Main",
            "--gc-schedule",
            "daily",
        ],
    );
    let base = w.root.join("mnt/ds1");
    let chunks = base.join(".chunks");
    assert_eq!(std::fs::read_dir(&chunks).unwrap().count(), 65536);
    for d in ["0000", "abcd", "ffff"] {
        let m = std::fs::metadata(chunks.join(d)).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.uid(), m.gid()), (34, 34));
        assert_eq!(m.permissions().mode() & 0o7777, 0o750);
    }
    let m = std::fs::metadata(&chunks).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.permissions().mode() & 0o7777),
        (34, 34, 0o750)
    );
    let lock = std::fs::metadata(base.join(".lock")).unwrap();
    assert!(lock.is_file() && lock.len() == 0);
    assert_eq!(lock.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        w.pbs.read_file("datastore.cfg").unwrap(),
        "datastore: ds1\n\tcomment Main\n\tgc-schedule daily\n\tpath /mnt/ds1\n"
    );
    // the same chunk store again, under another name: PBS 3.2 fails on the existing .chunks
    let err = fails(&w, &["datastore", "create", "ds2", "/mnt/ds1"]);
    assert_eq!(
        err,
        "Error: unable to create chunk store 'ds2' subdir \"/mnt/ds1/.chunks\" - EEXIST: File exists\n"
    );
    assert_eq!(ids(&w.pbs.state().datastore), vec!["ds1"]);
    let err = fails(&w, &["datastore", "create", "ds1", "/mnt/other"]);
    assert!(
        err.contains("parameter 'name': datastore 'ds1' already exists."),
        "{err}"
    );
    assert!(!w.root.join("mnt/other").exists());
    let err = fails(&w, &["datastore", "update", "ds1", "--path", "/x"]);
    assert!(
        err.contains("parameter 'path': schema does not allow additional properties."),
        "{err}"
    );
    ok(
        &w,
        &[
            "datastore",
            "update",
            "ds1",
            "--delete",
            "comment",
            "--keep-daily",
            "7",
        ],
    );
    let list = ok(&w, &["datastore", "list", "--output-format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], "ds1");
    assert_eq!(v[0]["keep-daily"], 7);
    assert!(v[0].get("comment").is_none());
    ok(&w, &["datastore", "remove", "ds1"]);
    assert!(base.join(".chunks/0000").is_dir(), "remove keeps the data");
    assert_eq!(
        fails(&w, &["datastore", "remove", "ds1"]),
        "Error: datastore 'ds1' does not exist.\n"
    );
    let err = fails(&w, &["datastore", "create", "x", "/y"]);
    assert!(
        err.contains("parameter 'name': value must be at least 3 characters long"),
        "{err}"
    );
}

#[test]
fn node_cfg_keeps_its_flat_grammar() {
    let w = fresh();
    w.pbs.write_file(
        "node.cfg",
        "#My node\nacme: account=default\nacmedomain0: pbs.example.com\n",
    );
    let show = ok(&w, &["node", "show", "--output-format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["acme"], "account=default");
    assert_eq!(v["description"], "My node\n");
    ok(
        &w,
        &[
            "node",
            "update",
            "--email-from",
            "pbs@example.com",
            "--acmedomain1",
            "domain=b.example.com,plugin=cf",
            "--delete",
            "acmedomain0",
        ],
    );
    assert_eq!(
        w.pbs.read_file("node.cfg").unwrap(),
        "#My node\nacme: account=default\nacmedomain1: domain=b.example.com,plugin=cf\nemail-from: pbs@example.com\n"
    );
    let err = fails(&w, &["node", "update", "--acmedomain0", "b.example.com"]);
    assert_eq!(
        err,
        "Error: duplicate domain 'b.example.com' in ACME config\n"
    );
    let err = fails(&w, &["node", "update", "--bogus", "1"]);
    assert!(err.contains("parameter 'bogus': schema does not allow additional properties."));
}

#[test]
fn notification_endpoints_keep_secrets_in_the_priv_file() {
    let w = fresh();
    ok(
        &w,
        &[
            "notification",
            "endpoint",
            "gotify",
            "create",
            "gw",
            "--server",
            "https://gotify.example",
            "--token",
            "T0kEn",
            "--comment",
            "phone",
        ],
    );
    assert_eq!(
        w.pbs.read_file("notifications.cfg").unwrap(),
        "gotify: gw\n\tcomment phone\n\tserver https://gotify.example\n"
    );
    assert_eq!(
        w.pbs.read_file("notifications-priv.cfg").unwrap(),
        "gotify: gw\n\ttoken T0kEn\n"
    );
    let m = std::fs::metadata(w.pbs.etc().join("notifications-priv.cfg")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let list = ok(
        &w,
        &[
            "notification",
            "endpoint",
            "gotify",
            "list",
            "--output-format",
            "json",
        ],
    );
    assert!(!list.contains("T0kEn"));
    let err = fails(
        &w,
        &[
            "notification",
            "endpoint",
            "gotify",
            "create",
            "gw",
            "--server",
            "s",
            "--token",
            "t",
        ],
    );
    assert_eq!(
        err,
        "Error: Cannot create 'gw', an entity with the same name already exists\n"
    );
    let err = fails(
        &w,
        &[
            "notification",
            "matcher",
            "create",
            "m1",
            "--target",
            "nope",
        ],
    );
    assert_eq!(err, "Error: endpoint 'nope' does not exist\n");
    ok(
        &w,
        &[
            "notification",
            "matcher",
            "create",
            "m1",
            "--target",
            "gw",
            "--match-severity",
            "error",
        ],
    );
    let err = fails(&w, &["notification", "endpoint", "gotify", "delete", "gw"]);
    assert!(err.contains("referenced by: m1"), "{err}");
    let err = fails(
        &w,
        &[
            "notification",
            "endpoint",
            "smtp",
            "create",
            "s1",
            "--server",
            "smtp.x",
            "--from-address",
            "a@b",
        ],
    );
    assert!(err.contains("at least provide one recipient"), "{err}");
    ok(&w, &["notification", "matcher", "delete", "m1"]);
    ok(&w, &["notification", "endpoint", "gotify", "delete", "gw"]);
    assert_eq!(w.pbs.read_file("notifications-priv.cfg").unwrap(), "");
    let err = fails(&w, &["notification", "endpoint", "gotify", "remove", "gw"]);
    assert!(err.contains("no such command"), "{err}");
}

#[test]
fn traffic_control_and_s3_and_a_failing_rule() {
    let w = fresh();
    ok(
        &w,
        &[
            "traffic-control",
            "create",
            "lan",
            "--network",
            "10.0.0.0/8",
            "--network",
            "192.168.0.0/16",
            "--rate-in",
            "10MB",
        ],
    );
    assert_eq!(
        w.pbs.read_file("traffic-control.cfg").unwrap(),
        "rule: lan\n\tnetwork 10.0.0.0/8\n\tnetwork 192.168.0.0/16\n\trate-in 10MB\n"
    );
    ok(
        &w,
        &[
            "s3",
            "endpoint",
            "create",
            "s3a",
            "--endpoint",
            "s3.example",
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
        ],
    );
    let list = ok(&w, &["s3", "endpoint", "list", "--output-format", "json"]);
    assert!(!list.contains("SK"));
    // a rule added with FakeBin::respond answers first
    w.fake.respond(
        "proxmox-backup-manager",
        &["remote", "create"],
        Response::fail(255, "Error: boom\n"),
    );
    let err = fails(
        &w,
        &[
            "remote",
            "create",
            "r1",
            "--host",
            "h",
            "--auth-id",
            "a@pbs",
            "--password",
            "p",
        ],
    );
    assert_eq!(err, "Error: boom\n");
    assert_eq!(w.pbs.calls().len(), 3);
}

#[test]
fn an_unparseable_file_fails_every_call_on_it() {
    let w = fresh();
    w.pbs.write_file("remote.cfg", "remote: a\nhost x\n");
    let err = fails(&w, &["remote", "list", "--output-format", "json"]);
    assert!(
        err.starts_with("Error: parsing \"") && err.contains("remote.cfg\" failed: line 2"),
        "{err}"
    );
}

#[test]
fn pbs_3_3_adopts_an_existing_chunk_store_with_reuse_datastore() {
    let w = fresh();
    // 3.2.4 (the default) does not know the option.
    let err = fails(
        &w,
        &[
            "datastore",
            "create",
            "ds1",
            "/mnt/ds1",
            "--reuse-datastore",
            "true",
        ],
    );
    assert!(
        err.contains("parameter 'reuse-datastore': schema does not allow additional properties."),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBin::new(dir.path().join("fake"));
    let root = dir.path().join("root");
    let pbs = PbsDouble::install_full(
        std::path::Path::new(env!("CARGO_BIN_EXE_pbs-double")),
        &fake,
        &root.join("etc/proxmox-backup"),
        Some("3.3.2"),
    );
    let run = |args: &[&str]| {
        fake.command("proxmox-backup-manager")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run")
    };
    let v = run(&["version"]);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        "proxmox-backup-server 3.3.2-1 running version: 3.3.2\n"
    );
    std::fs::create_dir_all(root.join("mnt/old/.chunks/abcd")).unwrap();
    std::fs::write(root.join("mnt/old/.chunks/abcd/c1"), b"chunk").unwrap();
    let out = run(&[
        "datastore",
        "create",
        "old",
        "/mnt/old",
        "--reuse-datastore",
        "true",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(root.join("mnt/old/.chunks/abcd/c1")).unwrap(),
        b"chunk"
    );
    assert!(
        !root.join("mnt/old/.chunks/0000").exists(),
        "not re-created"
    );
    assert_eq!(ids(&pbs.state().datastore), ["old"]);
    // a job of a removed datastore goes with it; --destroy-data removes the chunk store
    let out = run(&[
        "prune-job",
        "create",
        "p3",
        "--store",
        "old",
        "--schedule",
        "daily",
    ]);
    assert!(out.status.success());
    let out = run(&["datastore", "remove", "old", "--destroy-data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.join("mnt/old").exists());
    assert!(ids(&pbs.state().prune).is_empty());
    assert!(ids(&pbs.state().datastore).is_empty());
    let out = run(&[
        "datastore",
        "create",
        "none",
        "/mnt/none",
        "--reuse-datastore",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: unable to open chunk store 'none' at \"/mnt/none/.chunks\" - ENOENT: No such file or directory\n"
    );
}

#[test]
fn task_list_answers_through_the_proxy_and_fails_while_it_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBin::new(dir.path().join("fake"));
    let _pbs = PbsDouble::install(&fake, &dir.path().join("root/etc/proxmox-backup"));
    let run = |fake: &FakeBin| {
        fake.command("proxmox-backup-manager")
            .args(["task", "list", "--limit", "1", "--output-format", "json"])
            .output()
            .unwrap()
    };
    let up = run(&fake);
    assert!(up.status.success(), "{up:?}");
    assert_eq!(String::from_utf8_lossy(&up.stdout), "[]\n");
    fake.set_unit_state("proxmox-backup-proxy", "inactive");
    let down = run(&fake);
    assert_eq!(down.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&down.stderr),
        "Error: error trying to connect: tcp connect error: Connection refused (os error 111)\n"
    );
}
