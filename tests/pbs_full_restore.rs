//! A FULL restore of a realistic PBS backup against the stateful `proxmox-backup-manager`
//! double (`proxsave_testkit::pbs`), in merge mode and in clean mode, onto a PBS root that has
//! an extra datastore (`store1`) and an extra remote (`old-remote`) of its own.
//!
//! The backup (`pbs1`): three datastores — `main` on a mounted filesystem that already holds a
//! chunk store, `fresh` on an empty mounted filesystem, `offsite` under `/mnt/usb-offsite`
//! where nothing is mounted —; two remotes with base64 passwords; sync, verify and prune jobs;
//! `node.cfg` with ACME domains; a tape pool; a gotify endpoint with its token and a matcher;
//! two users with tokens (plus `root@pam`, whose section and token must not come back).
//!
//! Each test re-runs itself inside a private mount namespace (`unshare -m`), where two tmpfs
//! are mounted inside the target root: the mounts vanish with the namespace whatever happens.
//! That needs root: outside CI the tests skip with a message, under `CI` /
//! `PROXSAVE_REQUIRE_TOOLS=1` they fail.
//!
//! What is checked: the double's state (every file parsed as PBS parses it) and the files
//! equal the expected ones; the unmounted datastore is deferred and its folder does not exist
//! on the root filesystem; the chunk stores; the services' order (every API call runs with the
//! PBS services started again, the access-control files are written while they are stopped);
//! no secret (remote passwords, gotify token, hashes, TOTP secrets) in the output, the JSON
//! report, the log, or any error.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::pbs::{PbsDouble, PbsState, ids, props};

const ROOT_BACKUP: (u32, u32) = (0, 34);
const BACKUP_IDS: (u32, u32) = (34, 34);

const DATASTORE_CFG: &str = "datastore: main\n\tcomment Main backup store\n\tgc-schedule daily\n\tpath /mnt/ds1/main\n\n\
datastore: fresh\n\tcomment Second disk\n\tpath /mnt/ds2\n\n\
datastore: offsite\n\tkeep-daily 7\n\tpath /mnt/usb-offsite/pbs\n";

const REMOTE_B_PASSWORD: &str = "Remote-B-Secret!42";
const REMOTE_C_PASSWORD: &str = "Remote-C-Secret?77";
const GOTIFY_TOKEN: &str = "AGotifyAppTokenXyz123";
const ALICE_HASH: &str = "$5$aliceSALT$ALICEPASSWORDHASH0123456789";
const SYNC_HASH: &str = "$5$syncSALT$SYNCPASSWORDHASH0123456789";
const ALICE_TOKEN: &str = "$5$tokSALT$ALICETOKENSECRETHASH";
const SYNC_TOKEN: &str = "$5$tokSALT$SYNCTOKENSECRETHASH";
const OLD_ROOT_TOKEN: &str = "$5$tokSALT$OLDROOTTOKENHASH";
const ALICE_TOTP: &str = "ALICETOTPSECRETBASE32";
const LIVE_ROOT_TOKEN: &str = "$5$tokSALT$LIVEROOTMONITORHASH";
const OLD_REMOTE_PASSWORD_B64: &str = "b2xkLXJlbW90ZS1wYXNz";

const FINGERPRINT: &str = "aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99";

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn secrets() -> Vec<String> {
    vec![
        REMOTE_B_PASSWORD.into(),
        REMOTE_C_PASSWORD.into(),
        b64(REMOTE_B_PASSWORD),
        b64(REMOTE_C_PASSWORD),
        OLD_REMOTE_PASSWORD_B64.into(),
        GOTIFY_TOKEN.into(),
        ALICE_HASH.into(),
        SYNC_HASH.into(),
        ALICE_TOKEN.into(),
        SYNC_TOKEN.into(),
        OLD_ROOT_TOKEN.into(),
        ALICE_TOTP.into(),
        LIVE_ROOT_TOKEN.into(),
    ]
}

fn remote_cfg() -> String {
    format!(
        "remote: pbs-b\n\tauth-id sync@pbs\n\tfingerprint {FINGERPRINT}\n\thost 10.0.0.20\n\tpassword {}\n\n\
remote: pbs-c\n\tauth-id sync@pbs!pull\n\tcomment offsite copy\n\thost pbs-c.example.lan\n\tpassword {}\n\tport 8007\n",
        b64(REMOTE_B_PASSWORD),
        b64(REMOTE_C_PASSWORD)
    )
}

const SYNC_CFG: &str = "sync: pull-b\n\tremote pbs-b\n\tremote-store store1\n\tschedule hourly\n\tstore main\n\n\
sync: pull-c\n\tremote pbs-c\n\tremote-store archive\n\tschedule daily\n\tstore fresh\n";
const VERIFY_CFG: &str = "verification: v-main\n\tignore-verified true\n\toutdated-after 30\n\tschedule daily\n\tstore main\n";
const PRUNE_CFG: &str =
    "prune: p-main\n\tkeep-daily 7\n\tkeep-weekly 4\n\tschedule daily\n\tstore main\n";
const NODE_CFG: &str = "acme: account=default\nacmedomain0: pbs1.example.lan\nacmedomain1: backup.example.lan\nemail-from: pbs1@example.lan\n";
const MEDIA_POOL_CFG: &str = "pool: weekly\n\tallocation weekly\n\tretention 4 weeks\n";
const NOTIFICATIONS_CFG: &str = "gotify: gotify-ops\n\tcomment Ops phone\n\tserver https://gotify.example.lan\n\n\
matcher: ops\n\tmode all\n\ttarget gotify-ops\n";

fn notifications_priv() -> String {
    format!("gotify: gotify-ops\n\ttoken {GOTIFY_TOKEN}\n")
}

const USER_CFG: &str = "user: root@pam\n\tcomment Superuser\n\tenable false\n\n\
token: root@pam!old\n\tcomment old CI\n\n\
user: alice@pbs\n\tcomment Alice\n\temail alice@example.lan\n\n\
token: alice@pbs!ci\n\tcomment CI uploads\n\n\
user: sync@pbs\n\tcomment Pull from pbs-b\n\n\
token: sync@pbs!pull\n\tcomment pull token\n";
const ACL_CFG: &str = "acl:1:/:alice@pbs:Admin\nacl:1:/:root@pam!old:Admin\n\
acl:1:/datastore/main:sync@pbs,sync@pbs!pull:DatastoreBackup\n";

// This host's access control.
const LIVE_USER_CFG: &str = "user: root@pam\n\tcomment Superuser\n\temail root@pbs9.example.lan\n\tenable true\n\n\
token: root@pam!monitor\n\tcomment live monitoring\n";
const LIVE_ACL_CFG: &str = "acl:1:/:root@pam!monitor:Audit\n";

// ------------------------------------------------------------------------------------------
// The namespace
// ------------------------------------------------------------------------------------------

const INNER: &str = "PROXSAVE_TEST_PBS_FULL_INNER";

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn skip(why: &str) -> bool {
    if proxsave_testkit::tools_required() {
        panic!("{why}");
    }
    eprintln!("SKIP: {why}");
    false
}

/// True when the caller is the inner run (inside the namespace): it does the test. The outer
/// run re-executes this test binary for `name` under `unshare -m` and checks it passed.
fn in_namespace(name: &str) -> bool {
    if std::env::var_os(INNER).is_some() {
        return true;
    }
    if !is_root() {
        return skip("the full PBS restore test needs root (tmpfs mounts in a mount namespace)");
    }
    if proxsave_testkit::which("unshare").is_none() {
        return skip("`unshare` (util-linux) is not installed");
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", common::stdout(&out), common::stderr(&out));
    if !out.status.success() && text.contains("unshare failed") {
        skip(&format!("cannot make a mount namespace: {text}"));
        return false;
    }
    if !out.status.success() && text.contains("cannot mount a tmpfs") {
        skip(&format!("cannot mount a tmpfs in the namespace: {text}"));
        return false;
    }
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "inner run ran nothing:\n{text}");
    false
}

fn mount_tmpfs(at: &Path) {
    fs::create_dir_all(at).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "proxsave-test"])
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs on {}", at.display());
}

// ------------------------------------------------------------------------------------------
// The lab
// ------------------------------------------------------------------------------------------

struct Lab {
    fake: FakeBin,
    pbs: PbsDouble,
    target: HostRoot,
    bundle: PathBuf,
    dir: tempfile::TempDir,
}

fn source(dir: &Path) -> HostTree {
    let mut t = HostTree::pbs_node(dir.join("source"));
    let mut cfg = |name: &str, text: &str, mode: u32, owner: (u32, u32)| {
        t.file(
            &format!("etc/proxmox-backup/{name}"),
            text.as_bytes(),
            mode,
            owner,
        );
    };
    cfg("datastore.cfg", DATASTORE_CFG, 0o640, ROOT_BACKUP);
    cfg("remote.cfg", &remote_cfg(), 0o640, ROOT_BACKUP);
    cfg("sync.cfg", SYNC_CFG, 0o640, ROOT_BACKUP);
    cfg("verification.cfg", VERIFY_CFG, 0o640, ROOT_BACKUP);
    cfg("prune.cfg", PRUNE_CFG, 0o640, ROOT_BACKUP);
    cfg("node.cfg", NODE_CFG, 0o640, ROOT_BACKUP);
    cfg("media-pool.cfg", MEDIA_POOL_CFG, 0o640, ROOT_BACKUP);
    cfg("notifications.cfg", NOTIFICATIONS_CFG, 0o640, ROOT_BACKUP);
    cfg(
        "notifications-priv.cfg",
        &notifications_priv(),
        0o600,
        (0, 0),
    );
    cfg("user.cfg", USER_CFG, 0o640, ROOT_BACKUP);
    cfg("acl.cfg", ACL_CFG, 0o640, ROOT_BACKUP);
    cfg(
        "token.shadow",
        &format!(
            r#"{{"alice@pbs!ci":"{ALICE_TOKEN}","root@pam!old":"{OLD_ROOT_TOKEN}","sync@pbs!pull":"{SYNC_TOKEN}"}}"#
        ),
        0o640,
        BACKUP_IDS,
    );
    cfg(
        "shadow.json",
        &format!("{{\n  \"alice@pbs\": \"{ALICE_HASH}\",\n  \"sync@pbs\": \"{SYNC_HASH}\"\n}}"),
        0o600,
        (0, 0),
    );
    cfg(
        "tfa.json",
        &format!(
            r#"{{"users":{{"alice@pbs":{{"totp":[{{"info":{{"id":"a1","enable":true}},"entry":"otpauth://totp/alice?secret={ALICE_TOTP}"}}]}}}}}}"#
        ),
        0o600,
        (0, 0),
    );
    t.file(
        "etc/proxmox-backup/acme/accounts/default",
        br#"{"location":"https://acme-v02.api.letsencrypt.org/acme/acct/1","account":{"status":"valid","contact":["mailto:ops@example.lan"]},"tos":"https://letsencrypt.org/documents/LE-SA-v1.4-April-3-2024.pdf","directory":"https://acme-v02.api.letsencrypt.org/directory"}"#,
        0o600,
        (0, 0),
    );
    t.settle_dirs();
    t
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let src = source(dir.path());
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&src)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&src, &spec, &bundles);
        // This host: PBS with its own datastore `store1` (a chunk store at
        // /mnt/datastore/store1), an extra remote, its own root@pam with a token.
        let target = HostRoot::pbs(dir.path().join("root"));
        let root = target.root().to_path_buf();
        let pbs = PbsDouble::install(&fake, &root.join("etc/proxmox-backup"));
        pbs.write_file(
            "remote.cfg",
            &format!(
                "remote: old-remote\n\tauth-id old@pbs\n\thost 10.0.0.99\n\tpassword {OLD_REMOTE_PASSWORD_B64}\n"
            ),
        );
        pbs.write_file("user.cfg", LIVE_USER_CFG);
        pbs.write_file("acl.cfg", LIVE_ACL_CFG);
        pbs.write_file(
            "token.shadow",
            &format!(r#"{{"root@pam!monitor":"{LIVE_ROOT_TOKEN}"}}"#),
        );
        for f in ["remote.cfg", "user.cfg", "acl.cfg", "token.shadow"] {
            let p = root.join("etc/proxmox-backup").join(f);
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
            let owner = if f == "token.shadow" {
                BACKUP_IDS
            } else {
                ROOT_BACKUP
            };
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
        }
        // The data disks: ds1 holds the chunk store of `main`, ds2 is empty.
        mount_tmpfs(&root.join("mnt/ds1"));
        mount_tmpfs(&root.join("mnt/ds2"));
        let main = root.join("mnt/ds1/main");
        fs::create_dir_all(main.join(".chunks/0000")).unwrap();
        fs::create_dir_all(main.join(".chunks/abcd")).unwrap();
        fs::write(main.join(".chunks/abcd/abcd0123deadbeef"), b"chunk data").unwrap();
        fs::write(main.join(".lock"), b"").unwrap();
        fs::create_dir_all(main.join("vm/100")).unwrap();
        for p in [&main, &main.join(".chunks"), &main.join(".lock")] {
            std::os::unix::fs::chown(p, Some(34), Some(34)).unwrap();
        }
        Lab {
            fake,
            pbs,
            target,
            bundle,
            dir,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn restore(&self, behavior: &str, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .env("PROXSAVE_TEST_COMMIT_TIMER", "detached")
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
            .args([
                "--yes",
                "--json",
                "--host-actions",
                "run",
                "--mode",
                "custom",
                "--categories",
                "datastore_pbs,pbs_remotes,pbs_jobs,pbs_host,pbs_tape,pbs_notifications,pbs_access_control",
                "--pbs-behavior",
                behavior,
                "--answer",
                "pbs.access-control.apply=yes",
                "--answer",
                "pbs.notifications.apply=yes",
                "--answer",
                "pbs.datastores.create=yes",
            ])
            .args(extra);
        cmd.output().unwrap()
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join("etc/proxmox-backup").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
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

fn assert_no_secret(out: &Output, r: &serde_json::Value) {
    let mut texts = vec![common::stdout(out), common::stderr(out), r.to_string()];
    if let Some(log) = r["log"].as_str() {
        texts.push(fs::read_to_string(log).unwrap_or_default());
    }
    for t in &texts {
        for s in secrets() {
            assert!(!t.contains(&s), "secret {s} shown:\n{t}");
        }
    }
}

fn statuses(r: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["category"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn p(cfg: &proxsave_formats::section::SectionConfig, ty: &str, id: &str) -> Vec<(String, String)> {
    let s = cfg
        .find(ty, id)
        .unwrap_or_else(|| panic!("no `{ty}: {id}` in the state"));
    props(s).into_iter().collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// Datastores: the backup's applied, the unmounted one deferred, the chunk stores.
fn assert_datastores(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // Datastores.
    assert_eq!(
        p(&st.datastore, "datastore", "main"),
        kv(&[
            ("comment", "Main backup store"),
            ("gc-schedule", "daily"),
            ("path", "/mnt/ds1/main")
        ])
    );
    assert_eq!(
        p(&st.datastore, "datastore", "fresh"),
        kv(&[("comment", "Second disk"), ("path", "/mnt/ds2")])
    );
    assert!(st.datastore.find("datastore", "offsite").is_none());
    let deferred = lab.read("datastore.cfg.deferred");
    assert!(
        deferred.contains("datastore: offsite\n\tkeep-daily 7\n\tpath /mnt/usb-offsite/pbs\n"),
        "{deferred}"
    );
    assert!(
        deferred.contains("proxmox-backup-manager datastore create offsite /mnt/usb-offsite/pbs"),
        "{deferred}"
    );
    assert!(!root.join("mnt/usb-offsite").exists());
    // The existing chunk store untouched; the empty disk got PBS's layout.
    assert_eq!(
        fs::read(root.join("mnt/ds1/main/.chunks/abcd/abcd0123deadbeef")).unwrap(),
        b"chunk data"
    );
    assert_eq!(
        fs::read_dir(root.join("mnt/ds1/main/.chunks"))
            .unwrap()
            .count(),
        2
    );
    let ds2 = root.join("mnt/ds2");
    assert_eq!(mode_owner(&ds2.join(".lock")), (0o644, 34, 34));
    assert_eq!(mode_owner(&ds2.join(".chunks")), (0o750, 34, 34));
    assert_eq!(fs::read_dir(ds2.join(".chunks")).unwrap().count(), 65536);
    assert_eq!(mode_owner(&ds2.join(".chunks/ffff")), (0o750, 34, 34));
}

/// Access control: this host's root@pam and its token, the backup's two users and tokens.
fn assert_access(lab: &Lab, st: &PbsState) {
    let _ = st;
    let root = lab.root();
    // Access control: this host's root@pam and its token, the backup's two users and tokens
    // (not the backup's disabled root@pam, its token or its ACL line).
    assert_eq!(
        lab.read("user.cfg"),
        "user: root@pam\n\tcomment Superuser\n\temail root@pbs9.example.lan\n\tenable true\n\n\
token: root@pam!monitor\n\tcomment live monitoring\n\n\
user: alice@pbs\n\tcomment Alice\n\temail alice@example.lan\n\n\
token: alice@pbs!ci\n\tcomment CI uploads\n\n\
user: sync@pbs\n\tcomment Pull from pbs-b\n\n\
token: sync@pbs!pull\n\tcomment pull token\n"
    );
    assert_eq!(
        lab.read("acl.cfg"),
        "acl:1:/:root@pam!monitor:Audit\nacl:1:/:alice@pbs:Admin\n\
acl:1:/datastore/main:sync@pbs,sync@pbs!pull:DatastoreBackup\n"
    );
    let hashes: serde_json::Value = serde_json::from_str(&lab.read("shadow.json")).unwrap();
    assert_eq!(
        hashes,
        serde_json::json!({ "alice@pbs": ALICE_HASH, "sync@pbs": SYNC_HASH })
    );
    let tfa: serde_json::Value = serde_json::from_str(&lab.read("tfa.json")).unwrap();
    assert!(tfa["users"]["alice@pbs"].to_string().contains(ALICE_TOTP));
    let tokens: serde_json::Value = serde_json::from_str(&lab.read("token.shadow")).unwrap();
    let mut names: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["alice@pbs!ci", "root@pam!monitor", "sync@pbs!pull"]);
    assert_eq!(tokens["root@pam!monitor"], LIVE_ROOT_TOKEN);
    assert_eq!(
        mode_owner(&root.join("etc/proxmox-backup/token.shadow")),
        (0o640, 34, 34)
    );
    assert_eq!(
        mode_owner(&root.join("etc/proxmox-backup/shadow.json")),
        (0o600, 0, 0)
    );
    assert_eq!(
        mode_owner(&root.join("etc/proxmox-backup/user.cfg")),
        (0o640, 0, 34)
    );
}

/// Remotes: the passwords stored as in the backup (base64 once, not twice).
fn assert_remotes(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // Remotes: the passwords stored as in the backup (base64 once, not twice).
    assert_eq!(
        p(&st.remote, "remote", "pbs-b"),
        kv(&[
            ("auth-id", "sync@pbs"),
            ("fingerprint", FINGERPRINT),
            ("host", "10.0.0.20"),
            ("password", &b64(REMOTE_B_PASSWORD)),
        ])
    );
    assert_eq!(
        p(&st.remote, "remote", "pbs-c"),
        kv(&[
            ("auth-id", "sync@pbs!pull"),
            ("comment", "offsite copy"),
            ("host", "pbs-c.example.lan"),
            ("password", &b64(REMOTE_C_PASSWORD)),
            ("port", "8007"),
        ])
    );
}

/// Sync, verify and prune jobs.
fn assert_jobs(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // Jobs.
    assert_eq!(ids(&st.sync), ["pull-b", "pull-c"]);
    assert_eq!(
        p(&st.sync, "sync", "pull-c"),
        kv(&[
            ("remote", "pbs-c"),
            ("remote-store", "archive"),
            ("schedule", "daily"),
            ("store", "fresh"),
        ])
    );
    assert_eq!(
        p(&st.sync, "sync", "pull-b"),
        kv(&[
            ("remote", "pbs-b"),
            ("remote-store", "store1"),
            ("schedule", "hourly"),
            ("store", "main"),
        ])
    );
    assert_eq!(ids(&st.verification), ["v-main"]);
    assert_eq!(
        p(&st.verification, "verification", "v-main"),
        kv(&[
            ("ignore-verified", "true"),
            ("outdated-after", "30"),
            ("schedule", "daily"),
            ("store", "main"),
        ])
    );
    assert_eq!(ids(&st.prune), ["p-main"]);
    assert_eq!(
        p(&st.prune, "prune", "p-main"),
        kv(&[
            ("keep-daily", "7"),
            ("keep-weekly", "4"),
            ("schedule", "daily"),
            ("store", "main"),
        ])
    );
}

/// node.cfg in its flat grammar, the ACME account file.
fn assert_host(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // node.cfg in its flat grammar, the ACME account file.
    assert_eq!(
        st.node.get("acme").map(String::as_str),
        Some("account=default")
    );
    assert_eq!(
        st.node.get("acmedomain0").map(String::as_str),
        Some("pbs1.example.lan")
    );
    assert_eq!(
        st.node.get("acmedomain1").map(String::as_str),
        Some("backup.example.lan")
    );
    assert_eq!(
        st.node.get("email-from").map(String::as_str),
        Some("pbs1@example.lan")
    );
    assert!(lab.read("acme/accounts/default").contains("acme-v02"));
}

/// The tape pool.
fn assert_tape(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // Tape pool.
    assert_eq!(lab.read("media-pool.cfg"), MEDIA_POOL_CFG);
}

/// The gotify endpoint, its token in the private file, the matcher.
fn assert_notifications(lab: &Lab, st: &PbsState) {
    let _ = (&lab, &st);
    let root = lab.root();
    let _ = root;
    // Notifications: the endpoint, its token in the private file, the matcher.
    assert_eq!(
        p(&st.notifications, "gotify", "gotify-ops"),
        kv(&[
            ("comment", "Ops phone"),
            ("server", "https://gotify.example.lan")
        ])
    );
    assert_eq!(
        p(&st.notifications_priv, "gotify", "gotify-ops"),
        kv(&[("token", GOTIFY_TOKEN)])
    );
    assert_eq!(
        p(&st.notifications, "matcher", "ops"),
        kv(&[("mode", "all"), ("target", "gotify-ops")])
    );
    assert_eq!(
        mode_owner(&root.join("etc/proxmox-backup/notifications-priv.cfg")),
        (0o600, 0, 0)
    );
}

/// What both modes leave for the categories applied through the API after the datastores
/// (in the order the appliers run).
fn assert_api_objects(lab: &Lab, st: &PbsState) {
    assert_remotes(lab, st);
    assert_jobs(lab, st);
    assert_host(lab, st);
    assert_tape(lab, st);
    assert_notifications(lab, st);
}

/// Every `proxmox-backup-manager` change call ran after the PBS services were started again;
/// the services were stopped proxy first, started daemon first, and checked at the end.
fn assert_services(lab: &Lab) {
    let lines = lab.fake.call_lines();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("no `{needle}` in {lines:#?}"))
    };
    let stop_proxy = pos("systemctl stop --no-block proxmox-backup-proxy");
    let stop_daemon = pos("systemctl stop --no-block proxmox-backup");
    let start_daemon = pos("systemctl start proxmox-backup");
    let start_proxy = pos("systemctl start proxmox-backup-proxy");
    assert!(stop_proxy < stop_daemon && stop_daemon < start_daemon && start_daemon < start_proxy);
    // No API call while the services are stopped (the plan phase's lists come before).
    let while_stopped: Vec<&String> = lines[stop_proxy..start_daemon]
        .iter()
        .filter(|l| l.starts_with("proxmox-backup-manager "))
        .collect();
    assert!(while_stopped.is_empty(), "{while_stopped:#?}");
    // Started once each (no second start at the end), and the API check after the proxy.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("systemctl start proxmox-backup"))
            .count(),
        2,
        "{lines:#?}"
    );
    assert!(
        lines[start_proxy..]
            .iter()
            .any(|l| l == "proxmox-backup-manager task list --limit 1 --output-format json")
    );
}

// ------------------------------------------------------------------------------------------
// The tests
// ------------------------------------------------------------------------------------------

#[test]
fn merge_restores_everything_and_keeps_this_hosts_extra_objects() {
    if !in_namespace("merge_restores_everything_and_keeps_this_hosts_extra_objects") {
        return;
    }
    let lab = Lab::new();
    // The plan says when the services come back, before anything is done.
    let dry = lab.restore("merge", &["--dry-run"]);
    assert_eq!(common::code(&dry), 0, "{}", common::stderr(&dry));
    let plan = report(&dry);
    let ds = plan["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "datastore-pbs")
        .expect("datastore-pbs planned");
    assert!(
        ds["actions"].to_string().contains(
            "needs proxmox-backup-proxy, proxmox-backup running (it calls their API): they are stopped for the restore and started again just before this applier"
        ),
        "{ds:#}"
    );
    assert!(!lab.root().join("mnt/ds2/.chunks").exists());
    assert!(
        lab.fake
            .call_lines()
            .iter()
            .all(|l| !l.starts_with("systemctl stop"))
    );
    assert_no_secret(&dry, &plan);
    let out = lab.restore("merge", &[]);
    let r = report(&out);
    assert_no_secret(&out, &r);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let st = lab.pbs.state();
    assert_datastores(&lab, &st);
    assert_access(&lab, &st);
    assert_services(&lab);
    // Merge: this host's datastore and remote stay.
    assert_eq!(ids(&st.datastore), ["fresh", "main", "store1"]);
    assert_api_objects(&lab, &st);
    assert_eq!(ids(&st.remote), ["old-remote", "pbs-b", "pbs-c"]);
    let s = statuses(&r);
    assert!(
        s.contains(&("datastore_pbs".into(), "deferred".into())),
        "{s:?}"
    );
    for c in [
        "pbs_access_control",
        "pbs_host",
        "pbs_jobs",
        "pbs_notifications",
        "pbs_remotes",
        "pbs_tape",
    ] {
        assert!(s.contains(&(c.into(), "applied".into())), "{c}: {s:?}");
    }
}

#[test]
fn clean_restores_everything_and_removes_this_hosts_extra_objects() {
    if !in_namespace("clean_restores_everything_and_removes_this_hosts_extra_objects") {
        return;
    }
    let lab = Lab::new();
    let store1_before = fs::read_dir(lab.root().join("mnt/datastore/store1/.chunks"))
        .map(|d| d.count())
        .unwrap_or(0);
    let out = lab.restore("clean", &[]);
    let r = report(&out);
    assert_no_secret(&out, &r);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let st = lab.pbs.state();
    assert_datastores(&lab, &st);
    assert_access(&lab, &st);
    assert_services(&lab);
    // Clean: this host's datastore is removed from the configuration (its data stays), its
    // remote is removed.
    assert_eq!(ids(&st.datastore), ["fresh", "main"]);
    assert!(lab.root().join("mnt/datastore/store1/.chunks").is_dir());
    assert_eq!(
        fs::read_dir(lab.root().join("mnt/datastore/store1/.chunks"))
            .unwrap()
            .count(),
        store1_before
    );
    assert!(
        !lab.pbs
            .all_calls()
            .iter()
            .any(|c| c.args.iter().any(|a| a.contains("destroy-data")))
    );
    assert_api_objects(&lab, &st);
    assert_eq!(ids(&st.remote), ["pbs-b", "pbs-c"]);
}
