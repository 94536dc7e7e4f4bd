//! The PVE API double against the reference facts of the Proxmox sources (error texts, exit
//! codes, what PVE writes where). Each test drives the fake `pvesh` as a program would.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::pve::{FRESH_STORAGE_CFG, PveDouble};

struct World {
    _dir: tempfile::TempDir,
    fake: FakeBin,
    pve: PveDouble,
    etc: PathBuf,
}

fn fresh() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeBin::new(dir.path().join("fake"));
    let etc = dir.path().join("root/etc/pve");
    let pve = PveDouble::fresh_node_with(
        std::path::Path::new(env!("CARGO_BIN_EXE_pve-double")),
        &fake,
        &etc,
        "pve1",
    );
    World {
        _dir: dir,
        fake,
        pve,
        etc,
    }
}

fn pvesh(w: &World, args: &[&str]) -> Output {
    w.fake
        .command("pvesh")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pvesh")
}

fn ok(w: &World, args: &[&str]) -> String {
    let out = pvesh(w, args);
    assert!(
        out.status.success(),
        "pvesh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(w: &World, args: &[&str]) -> (i32, String) {
    let out = pvesh(w, args);
    assert!(!out.status.success(), "pvesh {args:?} succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON {text:?}: {e}"))
}

#[test]
fn a_fresh_node_has_local_and_local_lvm_and_the_builtin_targets() {
    let w = fresh();
    assert_eq!(
        std::fs::read_to_string(w.etc.join("storage.cfg")).expect("storage.cfg"),
        FRESH_STORAGE_CFG
    );
    let list = json(&ok(&w, &["get", "/storage", "--output-format", "json"]));
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["storage"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["local", "local-lvm"]);
    let v = json(&ok(&w, &["get", "/version", "--output-format", "json"]));
    assert_eq!(v["version"], "8.4.1");
    let nodes = json(&ok(&w, &["get", "/nodes", "--output-format", "json"]));
    assert_eq!(nodes[0]["node"], "pve1");
    let targets = json(&ok(
        &w,
        &[
            "get",
            "/cluster/notifications/endpoints/sendmail",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(targets[0]["name"], "mail-to-root");
    assert_eq!(targets[0]["origin"], "builtin");
    let m = json(&ok(
        &w,
        &[
            "get",
            "/cluster/notifications/matchers/default-matcher",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(m["origin"], "builtin");
    assert!(w.pve.read_file("datacenter.cfg").is_none());
    let opts = json(&ok(
        &w,
        &["get", "/cluster/options", "--output-format", "json"],
    ));
    assert_eq!(opts["description"], "");
}

#[test]
fn creating_an_existing_storage_fails_like_pve() {
    let w = fresh();
    let (code, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=local",
            "--type=dir",
            "--path=/var/lib/vz",
            "--output-format",
            "json",
        ],
    );
    // PVE::API2::Storage::Config create: die inside lock_storage_config("create storage failed")
    assert_eq!(
        err,
        "create storage failed: storage ID 'local' already defined\n"
    );
    assert_eq!(code, 255);
    assert_eq!(
        std::fs::read_to_string(w.etc.join("storage.cfg")).expect("storage.cfg"),
        FRESH_STORAGE_CFG,
        "nothing written"
    );
}

#[test]
fn setting_a_fixed_option_is_rejected() {
    let w = fresh();
    for (id, arg, key) in [
        ("local", "--path=/srv/other", "path"),
        ("local-lvm", "--vgname=other", "vgname"),
        ("local-lvm", "--thinpool=other", "thinpool"),
    ] {
        let (code, err) = fails(&w, &["set", &format!("/storage/{id}"), arg]);
        assert_eq!(
            err,
            format!("update storage failed: can't change value of fixed parameter '{key}'\n")
        );
        assert_eq!(code, 255);
    }
    // `type` is not a parameter of the update call at all (updateSchema skips it)
    let (code, err) = fails(&w, &["set", "/storage/local", "--type=nfs"]);
    assert!(
        err.starts_with("Unknown option: type\n400 unable to parse option\n"),
        "{err}"
    );
    assert_eq!(code, 255);
    assert_eq!(
        std::fs::read_to_string(w.etc.join("storage.cfg")).expect("storage.cfg"),
        FRESH_STORAGE_CFG
    );
    // a non-fixed option is fine, and the file is rewritten the way PVE writes it
    ok(
        &w,
        &[
            "set",
            "/storage/local",
            "--content",
            "iso,backup",
            "--disable",
            "1",
        ],
    );
    assert_eq!(
        w.pve.read_file("storage.cfg").expect("storage.cfg"),
        "dir: local\n\tdisable\n\tpath /var/lib/vz\n\tcontent backup,iso\n\n\
         lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent images,rootdir\n\n"
    );
}

#[test]
fn unknown_options_are_rejected() {
    let w = fresh();
    // unknown to every storage type: Getopt refuses it
    let (code, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=x1",
            "--type=dir",
            "--path=/x",
            "--bogus=1",
        ],
    );
    assert!(
        err.starts_with("Unknown option: bogus\n400 unable to parse option\n"),
        "{err}"
    );
    assert_eq!(code, 255);
    // known to another type: check_config refuses it for this one
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=x1",
            "--type=dir",
            "--path=/x",
            "--server=nas",
        ],
    );
    assert_eq!(err, "unexpected property 'server'\n");
    let (_, err) = fails(&w, &["set", "/storage/local-lvm", "--sparse=1"]);
    assert_eq!(err, "update storage failed: unexpected property 'sparse'\n");
    // a required option missing
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=x1",
            "--type=nfs",
            "--server=a",
            "--path=/mnt/pve/x",
        ],
    );
    assert_eq!(err, "missing value for required option 'export'\n");
    // content a type cannot hold: warned and dropped; nothing left is an error
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=zp",
            "--type=zfspool",
            "--pool=rpool/data",
            "--content=backup",
        ],
    );
    assert_eq!(
        err,
        "storage does not support content type 'backup'\nstorage does not support content type 'none'\n"
    );
    let out = pvesh(
        &w,
        &[
            "create",
            "/storage",
            "--storage=zp",
            "--type=zfspool",
            "--pool=rpool/data",
            "--content=images,iso",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "storage does not support content type 'iso'\n"
    );
    assert_eq!(
        w.pve.state().storage_props("zp").expect("z")["content"],
        "images"
    );
    // a bad boolean is a parameter verification error
    let (_, err) = fails(&w, &["set", "/storage/local", "--disable=maybe"]);
    assert!(
        err.starts_with(
            "400 Parameter verification failed.\ndisable: type check ('boolean') failed - got 'maybe'\n"
        ),
        "{err}"
    );
}

#[test]
fn cifs_and_pbs_secrets_land_in_priv_storage() {
    let w = fresh();
    ok(
        &w,
        &[
            "create",
            "/storage",
            "--storage=smb",
            "--type=cifs",
            "--server=files.example.lan",
            "--share=backup",
            "--path=/mnt/pve/smb",
            "--username=bk",
            "--password=S3cr3t pass",
            "--content=backup",
        ],
    );
    let key = r#"{"kdf":null,"created":"2024-01-01T00:00:00+00:00","modified":"2024-01-01T00:00:00+00:00","data":"AAAA","fingerprint":"aa:bb:cc"}"#;
    let out = ok(
        &w,
        &[
            "create",
            "/storage",
            "--storage=pbs01",
            "--type=pbs",
            "--server=10.0.0.30",
            "--datastore=store1",
            "--username=backup@pbs",
            "--password=pbs-pw",
            &format!("--encryption-key={key}"),
            "--fingerprint=3a:7c:e1",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(json(&out)["config"]["encryption-key"], key);
    let st = w.pve.state();
    assert_eq!(st.storage_secrets["smb.pw"], "password=S3cr3t pass\n");
    assert_eq!(st.storage_secrets["pbs01.pw"], "pbs-pw\n");
    assert_eq!(st.storage_secrets["pbs01.enc"], format!("{key}\n"));
    let mode = std::fs::metadata(w.etc.join("priv/storage/smb.pw"))
        .expect("pw")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(w.etc.join("priv/storage"))
        .expect("priv/storage")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let pbs = st.storage_props("pbs01").expect("pbs01");
    assert_eq!(
        pbs["encryption-key"], "aa:bb:cc",
        "only the fingerprint is kept"
    );
    assert!(!pbs.contains_key("password"));
    assert!(
        !st.storage_props("smb")
            .expect("smb")
            .contains_key("password")
    );
    let text = w.pve.read_file("storage.cfg").expect("storage.cfg");
    assert!(
        !text.contains("S3cr3t") && !text.contains("pbs-pw") && !text.contains("AAAA"),
        "{text}"
    );
    // a key that is not a PBS key
    let (_, err) = fails(&w, &["set", "/storage/pbs01", "--encryption-key=nope"]);
    assert_eq!(
        err,
        "update storage failed: Value does not seems like a valid, JSON formatted encryption key!\n"
    );
    // a fixed PBS option
    let (_, err) = fails(&w, &["set", "/storage/pbs01", "--datastore=other"]);
    assert_eq!(
        err,
        "update storage failed: can't change value of fixed parameter 'datastore'\n"
    );
    // changing the password rewrites the file; deleting the storage removes them
    ok(&w, &["set", "/storage/smb", "--password", "new"]);
    assert_eq!(w.pve.state().storage_secrets["smb.pw"], "password=new\n");
    ok(&w, &["delete", "/storage/pbs01"]);
    let st = w.pve.state();
    assert!(!st.storage_secrets.contains_key("pbs01.pw"));
    assert!(!st.storage_secrets.contains_key("pbs01.enc"));
}

#[test]
fn get_of_a_missing_object_says_not_found() {
    let w = fresh();
    let (code, err) = fails(&w, &["get", "/storage/nas", "--output-format", "json"]);
    assert_eq!(err, "storage 'nas' does not exist\n");
    assert_eq!(code, 255);
    let (_, err) = fails(&w, &["set", "/storage/nas", "--content=backup"]);
    assert_eq!(err, "update storage failed: storage 'nas' does not exist\n");
    let (_, err) = fails(
        &w,
        &["get", "/cluster/backup/nightly", "--output-format", "json"],
    );
    assert!(
        err.starts_with("400 Parameter verification failed.\nid: No such job 'nightly'\n"),
        "{err}"
    );
    let (_, err) = fails(&w, &["set", "/cluster/backup/nightly", "--mode=stop"]);
    assert_eq!(err, "no such vzdump job\n");
    let (_, err) = fails(
        &w,
        &[
            "get",
            "/cluster/notifications/endpoints/smtp/relay",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(err, "404 endpoint 'relay' not found\n");
    let (code, err) = fails(&w, &["get", "/cluster/nothing-here"]);
    assert_eq!(
        err,
        "No 'get' handler defined for '/cluster/nothing-here'\n"
    );
    assert_eq!(code, 1);
}

#[test]
fn datacenter_options_are_written_like_pve() {
    let w = fresh();
    ok(
        &w,
        &[
            "set",
            "/cluster/options",
            "--keyboard=de",
            "--migration=network=10.10.10.0/24,type=secure",
            "--tag-style=shape=circle",
            "--description=Production: 100%\nsecond line",
        ],
    );
    // a line feed cannot be in a value... but pvesh passes it; PVE writes the description as
    // several `#` lines with ':' and '%' escaped
    assert_eq!(
        w.pve.read_file("datacenter.cfg").expect("datacenter.cfg"),
        "#Production%3A 100%25\n#second line\n\nkeyboard: de\nmigration: network=10.10.10.0/24,type=secure\ntag-style: shape=circle\n"
    );
    let st = w.pve.state();
    assert_eq!(st.datacenter_description, "Production: 100%\nsecond line");
    assert_eq!(st.datacenter["keyboard"], "de");
    // GET parses the property strings as PVE's parse_datacenter_config does
    let opts = json(&ok(
        &w,
        &["get", "/cluster/options", "--output-format", "json"],
    ));
    assert_eq!(opts["migration"]["network"], "10.10.10.0/24");
    assert_eq!(opts["migration"]["type"], "secure");
    assert_eq!(opts["tag-style"]["shape"], "circle");
    assert_eq!(opts["keyboard"], "de");
    assert_eq!(opts["description"], "Production: 100%\nsecond line");
    let (_, err) = fails(&w, &["set", "/cluster/options", "--keyboard=klingon"]);
    assert!(err.starts_with("400 Parameter verification failed.\nkeyboard: value 'klingon' does not have a value in the enumeration"), "{err}");
    let (_, err) = fails(&w, &["set", "/cluster/options", "--bogus=1"]);
    assert!(err.starts_with("Unknown option: bogus\n"), "{err}");
    ok(
        &w,
        &["set", "/cluster/options", "--delete=keyboard,description"],
    );
    assert_eq!(
        w.pve.read_file("datacenter.cfg").expect("datacenter.cfg"),
        "\nmigration: network=10.10.10.0/24,type=secure\ntag-style: shape=circle\n"
    );
}

#[test]
fn backup_jobs_create_set_and_conflicts() {
    let w = fresh();
    let create = [
        "create",
        "/cluster/backup",
        "--id=backup-1a2b",
        "--schedule=sun 01:00",
        "--all=1",
        "--mode=snapshot",
        "--storage=local",
        "--notes-template={{guestname}}",
    ];
    ok(&w, &create);
    let (code, err) = fails(&w, &create);
    assert_eq!(err, "Job 'backup-1a2b' already exists\n");
    assert_eq!(code, 255);
    let (_, err) = fails(&w, &["create", "/cluster/backup", "--id=b2", "--all=1"]);
    assert!(
        err.contains("schedule: neither 'starttime' nor 'schedule' were set"),
        "{err}"
    );
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/cluster/backup",
            "--id=b2",
            "--schedule=daily",
            "--all=1",
            "--bogus=x",
        ],
    );
    assert!(err.starts_with("Unknown option: bogus"), "{err}");
    ok(
        &w,
        &[
            "set",
            "/cluster/backup/backup-1a2b",
            "--mode=stop",
            "--comment=weekly",
        ],
    );
    assert_eq!(
        w.pve.read_file("jobs.cfg").expect("jobs.cfg"),
        "vzdump: backup-1a2b\n\tcomment weekly\n\tschedule sun 01:00\n\tall 1\n\tenabled 1\n\tmode stop\n\tnotes-template {{guestname}}\n\tstorage local\n\n"
    );
    let job = json(&ok(
        &w,
        &[
            "get",
            "/cluster/backup/backup-1a2b",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(job["mode"], "stop");
    assert_eq!(job["enabled"], 1);
}

#[test]
fn replication_needs_the_guest_and_the_target_node() {
    let w = fresh();
    let args = [
        "create",
        "/cluster/replication",
        "--id=100-0",
        "--type=local",
        "--target=pve2",
        "--schedule=*/15",
    ];
    let (_, err) = fails(&w, &args);
    assert_eq!(err, "Guest '100' does not exist.\n");
    w.pve.add_guest(100, "qemu", "pve1");
    let (_, err) = fails(&w, &args);
    assert_eq!(err, "Target 'pve2' does not exist.\n");
    w.pve.add_node("pve2");
    ok(&w, &args);
    assert_eq!(
        w.pve.read_file("replication.cfg").expect("replication.cfg"),
        "local: 100-0\n\ttarget pve2\n\tschedule */15\n\tsource pve1\n\n"
    );
    let (_, err) = fails(&w, &args);
    assert_eq!(err, "replication job '100-0' already exists\n");
}

#[test]
fn notification_endpoints_keep_secrets_in_priv_and_builtins_exist() {
    let w = fresh();
    ok(
        &w,
        &[
            "create",
            "/cluster/notifications/endpoints/smtp",
            "--name=relay",
            "--server=mail.example.com",
            "--mode=starttls",
            "--from-address=pve@example.com",
            "--mailto-user=root@pam",
            "--mailto-user=ops@pve",
            "--password=sm7p",
        ],
    );
    assert_eq!(
        w.pve
            .read_file("notifications.cfg")
            .expect("notifications.cfg"),
        "smtp: relay\n\tfrom-address pve@example.com\n\tmailto-user root@pam\n\tmailto-user ops@pve\n\tmode starttls\n\tserver mail.example.com\n"
    );
    assert_eq!(
        w.pve.read_file("priv/notifications.cfg").expect("priv"),
        "smtp: relay\n\tpassword sm7p\n"
    );
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/cluster/notifications/endpoints/sendmail",
            "--name=mail-to-root",
            "--mailto-user=root@pam",
        ],
    );
    assert_eq!(
        err,
        "400 Cannot create 'mail-to-root', an entity with the same name already exists\n"
    );
    ok(
        &w,
        &[
            "create",
            "/cluster/notifications/matchers",
            "--name=critical",
            "--match-severity=error",
            "--mode=all",
            "--target=relay",
        ],
    );
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/cluster/notifications/matchers",
            "--name=m2",
            "--target=nowhere",
        ],
    );
    assert_eq!(err, "404 endpoint 'nowhere' does not exist\n");
    ok(
        &w,
        &[
            "set",
            "/cluster/notifications/endpoints/smtp/relay",
            "--password=n3w",
        ],
    );
    assert_eq!(
        w.pve.read_file("priv/notifications.cfg").expect("priv"),
        "smtp: relay\n\tpassword n3w\n"
    );
    let relay = json(&ok(
        &w,
        &[
            "get",
            "/cluster/notifications/endpoints/smtp/relay",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(relay["origin"], "user-created");
    assert!(relay.get("password").is_none(), "secrets are not returned");
}

#[test]
fn sdn_set_applies_pending_configuration() {
    let w = fresh();
    assert!(!w.pve.sdn_pending());
    w.pve
        .write_file("sdn/zones.cfg", "simple: zone1\n\tipam pve\n\n");
    assert!(w.pve.sdn_pending());
    let zones = json(&ok(
        &w,
        &["get", "/cluster/sdn/zones", "--output-format", "json"],
    ));
    assert_eq!(zones[0]["zone"], "zone1");
    assert_eq!(zones[0]["state"], "new");
    ok(&w, &["set", "/cluster/sdn"]);
    assert!(!w.pve.sdn_pending());
    let zones = json(&ok(
        &w,
        &["get", "/cluster/sdn/zones", "--output-format", "json"],
    ));
    assert!(zones[0].get("state").is_none());
    w.pve
        .write_file("sdn/zones.cfg", "simple: zone1\n\tipam pve\n\tmtu 1450\n\n");
    assert!(w.pve.sdn_pending());
    let zones = json(&ok(
        &w,
        &["get", "/cluster/sdn/zones", "--output-format", "json"],
    ));
    assert_eq!(zones[0]["state"], "changed");
}

#[test]
fn calls_are_recorded_and_rules_still_answer_first() {
    let w = fresh();
    w.fake.respond(
        "pvesh",
        &["create", "/storage"],
        Response::fail(255, "create storage failed: mount error\n"),
    );
    let (_, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=n",
            "--type=dir",
            "--path=/n",
        ],
    );
    assert_eq!(err, "create storage failed: mount error\n");
    ok(&w, &["get", "/storage", "--output-format", "json"]);
    ok(&w, &["set", "/storage/local", "--content=iso"]);
    let calls: Vec<String> = w.pve.calls().iter().map(|c| c.line()).collect();
    assert_eq!(
        calls,
        [
            "pvesh create /storage --storage=n --type=dir --path=/n",
            "pvesh set /storage/local --content=iso"
        ]
    );
    assert_eq!(w.pve.all_calls().len(), 3);
    assert!(w.pve.state().storage.find_id("n").is_none());
}

/// The STORAGE scenario of issue 8 done call by call the way an applier should (set when the
/// id exists, without `type` and the fixed options; create otherwise; bare flags as `1`;
/// secrets from the backup's `priv/storage` files): the double's state then equals the
/// backup's, compared as PVE reads it (content as a set, bare flags as `1`).
#[test]
fn a_realistic_storage_cfg_applied_call_by_call_equals_the_backup() {
    use proxsave_formats::section;
    use proxsave_testkit::pve::{normalized, schema};

    let key = r#"{"kdf":null,"created":"2025-01-02T03:04:05+01:00","modified":"2025-01-02T03:04:05+01:00","data":"q83vEjRWeJA=","fingerprint":"aa:bb:cc:dd"}"#;
    let backup = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\tprune-backups keep-all=1\n\n\
        lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n\
        zfspool: tank\n\tpool tank/vm\n\tcontent images,rootdir\n\tsparse 1\n\n\
        nfs: nas-backup\n\texport /volume1/pve\n\tpath /mnt/pve/nas-backup\n\tserver 192.168.1.10\n\tcontent backup\n\toptions vers=4.2\n\t# weekly retention\n\tprune-backups keep-daily=7,keep-weekly=4\n\n\
        cifs: smb\n\tpath /mnt/pve/smb\n\tserver files.example.lan\n\tshare backup\n\tcontent backup\n\tusername bk\n\n\
        pbs: pbs01\n\tdatastore store1\n\tserver 192.168.1.30\n\tcontent backup\n\tfingerprint 3a:7c:00:e1\n\tusername backup@pbs\n\tencryption-key aa:bb:cc:dd\n\n\
        dir: usb-backup\n\tpath /mnt/usb-backup\n\tcontent backup\n\tdisable\n\tis_mountpoint 1\n\n";
    let secrets = [
        ("smb.pw", "password=S3cr3t!\n".to_string()),
        ("pbs01.pw", "pbs-pw\n".to_string()),
        ("pbs01.enc", format!("{key}\n")),
    ];
    let w = fresh();
    let (cfg, diags) = section::parse(backup);
    assert!(diags.is_empty(), "{diags:?}");
    for s in &cfg.sections {
        let exists = pvesh(
            &w,
            &[
                "get",
                &format!("/storage/{}", s.id),
                "--output-format",
                "json",
            ],
        )
        .status
        .success();
        let st = schema::storage_type(&s.ty).expect("modelled type");
        let mut args: Vec<String> = if exists {
            vec!["set".into(), format!("/storage/{}", s.id)]
        } else {
            vec![
                "create".into(),
                "/storage".into(),
                format!("--storage={}", s.id),
                format!("--type={}", s.ty),
            ]
        };
        for p in &s.props {
            let fixed = st.opt(&p.key).is_some_and(|o| o.fixed);
            if (exists && fixed) || p.key == "encryption-key" {
                continue;
            }
            args.push(format!("--{}={}", p.key, p.effective()));
        }
        for (file, text) in &secrets {
            let Some((id, ext)) = file.rsplit_once('.') else {
                continue;
            };
            if id != s.id {
                continue;
            }
            let value = text.trim_end_matches('\n');
            match (s.ty.as_str(), ext) {
                ("cifs", "pw") => args.push(format!(
                    "--password={}",
                    value.trim_start_matches("password=")
                )),
                (_, "pw") => args.push(format!("--password={value}")),
                (_, "enc") => args.push(format!("--encryption-key={value}")),
                _ => {}
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&w, &args);
    }
    let st = w.pve.state();
    let ids: Vec<&str> = st.storage.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "local",
            "local-lvm",
            "tank",
            "nas-backup",
            "smb",
            "pbs01",
            "usb-backup"
        ]
    );
    for s in &cfg.sections {
        assert_eq!(
            st.storage_props(&s.id).as_ref(),
            Some(&normalized(s)),
            "{}",
            s.id
        );
    }
    for (file, text) in &secrets {
        assert_eq!(st.storage_secrets.get(*file), Some(text), "{file}");
    }
    assert_eq!(st.storage_secrets.len(), secrets.len());
    let changes: Vec<String> = w
        .pve
        .calls()
        .iter()
        .map(|c| format!("{} {}", c.args[0], c.args[1]))
        .collect();
    assert_eq!(
        changes,
        [
            "set /storage/local",
            "set /storage/local-lvm",
            "create /storage",
            "create /storage",
            "create /storage",
            "create /storage",
            "create /storage"
        ]
    );
}

#[test]
fn an_unreachable_storage_is_not_created_and_exit_codes_can_vary() {
    let w = fresh();
    w.pve.set_offline("nas").set_die_exit_code(2);
    let (code, err) = fails(
        &w,
        &[
            "create",
            "/storage",
            "--storage=nas",
            "--type=cifs",
            "--server=10.9.9.9",
            "--share=s",
            "--path=/mnt/pve/nas",
            "--username=u",
            "--password=pw",
        ],
    );
    assert_eq!(err, "create storage failed: storage 'nas' is not online\n");
    assert_eq!(code, 2);
    let st = w.pve.state();
    assert!(st.storage.find_id("nas").is_none());
    assert!(
        st.storage_secrets.is_empty(),
        "on_delete_hook removed the password"
    );
    // a disabled storage is not activated
    ok(
        &w,
        &[
            "create",
            "/storage",
            "--storage=nas",
            "--type=cifs",
            "--server=10.9.9.9",
            "--share=s",
            "--path=/mnt/pve/nas",
            "--disable=1",
        ],
    );
    // a path without a handler still exits 1
    let (code, _) = fails(&w, &["get", "/nowhere"]);
    assert_eq!(code, 1);
}

#[test]
fn guests_are_their_config_files_and_set_is_as_strict_as_pve() {
    let w = fresh();
    w.pve
        .add_node("pve2")
        .add_volume("local-lvm:vm-100-disk-0")
        .write_file(
            "nodes/pve1/qemu-server/100.conf",
            "#old%20text\nmemory: 1024\nname: web\nscsi0: local-lvm:vm-100-disk-0,size=8G\n\n[s1]\nmemory: 512\nsnaptime: 1\n",
        )
        .write_file(
            "nodes/pve2/lxc/200.conf",
            "hostname: ct\nmemory: 512\nunprivileged: 1\nlxc.apparmor.profile = unconfined\n",
        );
    let res = json(&ok(
        &w,
        &[
            "get",
            "/cluster/resources",
            "--type",
            "vm",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(res.as_array().unwrap().len(), 2, "{res}");
    assert_eq!(res[0]["id"], "qemu/100");
    assert_eq!(res[0]["node"], "pve1");
    assert_eq!(res[1]["id"], "lxc/200");
    assert_eq!(res[1]["node"], "pve2");
    let list = json(&ok(
        &w,
        &["get", "/nodes/pve1/qemu", "--output-format", "json"],
    ));
    assert_eq!(list[0]["vmid"], 100);
    assert_eq!(list[0]["name"], "web");
    assert_eq!(
        json(&ok(
            &w,
            &["get", "/nodes/pve1/lxc", "--output-format", "json"]
        )),
        serde_json::json!([])
    );

    // The keys PVE writes itself are no options of the API.
    let (code, err) = fails(
        &w,
        &[
            "set",
            "/nodes/pve1/qemu/100/config",
            "--meta=creation-qemu=9.0.2",
            "--output-format",
            "json",
        ],
    );
    assert_eq!(code, 255);
    assert!(
        err.starts_with("Unknown option: meta\n400 unable to parse option"),
        "{err}"
    );
    let (_, err) = fails(
        &w,
        &["set", "/nodes/pve2/lxc/200/config", "--unprivileged=1"],
    );
    assert_eq!(err, "unable to modify read-only option: 'unprivileged'\n");
    let (_, err) = fails(
        &w,
        &[
            "set",
            "/nodes/pve2/lxc/200/config",
            "--lxc.apparmor.profile=unconfined",
        ],
    );
    assert!(
        err.starts_with("Unknown option: lxc.apparmor.profile\n"),
        "{err}"
    );
    let (_, err) = fails(&w, &["get", "/nodes/pve1/qemu/101/config"]);
    assert_eq!(
        err,
        "Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist\n"
    );
    let (_, err) = fails(
        &w,
        &[
            "set",
            "/nodes/pve1/qemu/100/config",
            "--scsi1=local-lvm:vm-100-disk-9",
        ],
    );
    assert_eq!(err, "volume 'local-lvm:vm-100-disk-9' does not exist\n");
    let (_, err) = fails(
        &w,
        &[
            "set",
            "/nodes/pve1/qemu/100/config",
            "--scsi1=nas:vm-100-disk-1",
        ],
    );
    assert_eq!(err, "storage 'nas' does not exist\n");
    let (_, err) = fails(&w, &["get", "/nodes/pve9/qemu"]);
    assert_eq!(err, "no such cluster node 'pve9'\n");

    // set rewrites the config the PVE way: description, sorted keys, snapshots untouched.
    ok(
        &w,
        &[
            "set",
            "/nodes/pve1/qemu/100/config",
            "--memory=4096",
            "--cores=2",
            "--description=Web: front\nline 2",
        ],
    );
    assert_eq!(
        w.pve.guest_config("pve1", "qemu", 100).unwrap(),
        "#Web%3A front\n#line 2\ncores: 2\nmemory: 4096\nname: web\nscsi0: local-lvm:vm-100-disk-0,size=8G\n\n[s1]\nmemory: 512\nsnaptime: 1\n"
    );
    let cfg = json(&ok(
        &w,
        &[
            "get",
            "/nodes/pve1/qemu/100/config",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(cfg["description"], "Web: front\nline 2\n");
    assert_eq!(cfg["memory"], "4096");
    let ct = json(&ok(
        &w,
        &[
            "get",
            "/nodes/pve2/lxc/200/config",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(
        ct["lxc"],
        serde_json::json!([["lxc.apparmor.profile", "unconfined"]])
    );

    // create: a used VMID anywhere in the cluster is refused; a new VM gets meta, smbios1, vmgenid.
    let (_, err) = fails(&w, &["create", "/nodes/pve1/qemu", "--vmid=200"]);
    assert_eq!(err, "CT 200 already exists on node 'pve2'\n");
    let upid = ok(
        &w,
        &[
            "create",
            "/nodes/pve1/qemu",
            "--vmid=101",
            "--output-format",
            "json",
        ],
    );
    assert!(upid.contains(":qmcreate:101:"), "{upid}");
    let created = w.pve.guest_config("pve1", "qemu", 101).unwrap();
    assert!(created.starts_with("meta: creation-qemu="), "{created}");
    assert!(created.contains("smbios1: uuid=") && created.contains("vmgenid: "));
    // a CT cannot be created without a template
    let (_, err) = fails(&w, &["create", "/nodes/pve1/lxc", "--vmid=201"]);
    assert!(err.starts_with("400 Parameter verification failed.\nostemplate: property is missing and it is not optional\n"), "{err}");
    let content = json(&ok(
        &w,
        &[
            "get",
            "/nodes/pve1/storage/local-lvm/content",
            "--output-format",
            "json",
        ],
    ));
    assert_eq!(content[0]["volid"], "local-lvm:vm-100-disk-0");
    let (_, err) = fails(&w, &["get", "/nodes/pve1/storage/nas/content"]);
    assert_eq!(err, "storage 'nas' does not exist\n");
}
