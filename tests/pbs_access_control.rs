//! The `pbs_access_control` applier end to end: the real binary restores the users, tokens,
//! ACLs, realms, password hashes and second factors of a PBS backup onto a PBS root that has
//! its own `root@pam` (with a token, a hash and TOTP) and a user of its own.
//!
//! * merge: this host's `root@pam`, its token and second factor stay; the backup's
//!   `root@pam` section (disabled), token and second factor are dropped; this host's other
//!   user stays; the backup's users, tokens, hashes and second factors come back;
//! * clean: the same, but this host's other user and its token are removed;
//! * the question defaults to `no`: `--yes` alone changes nothing;
//! * the files have PBS's owners and modes, with `backup`'s ids from the root's own
//!   `etc/passwd`/`etc/group` (deliberately not 34);
//! * the PBS services are stopped proxy first, started daemon first, and checked (is-active,
//!   the API answering);
//! * no hash, token secret or TOTP secret appears in the output, the JSON report or the log.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use proxsave_testkit::fakes::{FakeBin, Response};
use proxsave_testkit::fixture::{BackupSpec, Compressor, HostTree};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};

const BACKUP_UID: u32 = 4242;
const BACKUP_GID: u32 = 4343;
const ROOT_BACKUP: (u32, u32) = (0, 34);

const BACKUP_USER_CFG: &str = "user: root@pam\n\tcomment Superuser\n\tenable false\n\n\
token: root@pam!old\n\tcomment old CI\n\n\
user: alice@pbs\n\tcomment Alice\n\temail alice@example.lan\n\tenable true\n\n\
token: alice@pbs!ci\n\tcomment CI uploads\n\n\
user: sync@pbs\n\tcomment Pull from pbs-b\n\n\
token: sync@pbs!pull\n\tcomment pull token\n\texpire 0\n";
const BACKUP_ACL: &str = "acl:1:/:alice@pbs:Admin\nacl:1:/:root@pam!old:Admin\n\
acl:1:/datastore/store1:sync@pbs,sync@pbs!pull:DatastoreBackup\n\
acl:0:/datastore/store1:alice@pbs!ci:DatastoreReader\n";
const BACKUP_DOMAINS: &str = "pam: pam\n\tcomment Linux PAM standard authentication\n\n\
pbs: pbs\n\tcomment Proxmox Backup authentication server\n\n\
openid: corp\n\tclient-id pbs\n\tissuer-url https://sso.example.lan/realms/corp\n";

const ALICE_HASH: &str = "$5$aliceSALT$ALICEPASSWORDHASH0123456789";
const SYNC_HASH: &str = "$5$syncSALT$SYNCPASSWORDHASH0123456789";
const ALICE_TOKEN: &str = "$5$tokSALT$ALICETOKENSECRETHASH";
const SYNC_TOKEN: &str = "$5$tokSALT$SYNCTOKENSECRETHASH";
const OLD_ROOT_TOKEN: &str = "$5$tokSALT$OLDROOTTOKENHASH";
const ALICE_TOTP: &str = "ALICETOTPSECRETBASE32";
const BACKUP_ROOT_TOTP: &str = "BACKUPROOTTOTPSECRET";

const LIVE_USER_CFG: &str = "user: root@pam\n\tcomment Superuser\n\temail root@pbs9.example.lan\n\tenable true\n\n\
token: root@pam!monitor\n\tcomment live monitoring\n\n\
user: carol@pbs\n\tcomment Carol\n\n\
token: carol@pbs!x\n";
const LIVE_ACL: &str =
    "acl:1:/:root@pam!monitor:Audit\nacl:1:/datastore:carol@pbs:DatastoreAudit\n";
const LIVE_ROOT_TOKEN: &str = "$5$tokSALT$LIVEROOTMONITORHASH";
const CAROL_TOKEN: &str = "$5$tokSALT$CAROLTOKENHASH";
const CAROL_HASH: &str = "$5$carolSALT$CAROLPASSWORDHASH";
const LIVE_ROOT_TOTP: &str = "LIVEROOTTOTPSECRET";

const SECRETS: [&str; 11] = [
    ALICE_HASH,
    SYNC_HASH,
    ALICE_TOKEN,
    SYNC_TOKEN,
    OLD_ROOT_TOKEN,
    ALICE_TOTP,
    BACKUP_ROOT_TOTP,
    LIVE_ROOT_TOKEN,
    CAROL_TOKEN,
    CAROL_HASH,
    LIVE_ROOT_TOTP,
];

fn backup_token_shadow() -> String {
    format!(
        r#"{{"alice@pbs!ci":"{ALICE_TOKEN}","root@pam!old":"{OLD_ROOT_TOKEN}","sync@pbs!pull":"{SYNC_TOKEN}"}}"#
    )
}

fn backup_tfa() -> String {
    format!(
        r#"{{"users":{{"alice@pbs":{{"totp":[{{"info":{{"id":"a1","description":"phone","created":1700000000,"enable":true}},"entry":"otpauth://totp/alice?secret={ALICE_TOTP}"}}]}},"root@pam":{{"totp":[{{"info":{{"id":"r1"}},"entry":"otpauth://totp/root?secret={BACKUP_ROOT_TOTP}"}}]}}}},"webauthn":{{"rp":"pbs1.example.lan","origin":"https://pbs1.example.lan:8007","id":"pbs1.example.lan"}}}}"#
    )
}

fn live_tfa() -> String {
    format!(
        r#"{{"users":{{"root@pam":{{"totp":[{{"info":{{"id":"live"}},"entry":"otpauth://totp/root?secret={LIVE_ROOT_TOTP}"}}]}}}}}}"#
    )
}

struct Lab {
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
    dir: tempfile::TempDir,
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective uid.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Lab {
    /// `None` (after a message) when not root: the files get owners other than ours.
    fn new() -> Option<Lab> {
        if !is_root() {
            if proxsave_testkit::tools_required() {
                panic!("the PBS access-control tests must run as root (file owners)");
            }
            eprintln!("SKIP: not root (the restored files get PBS's owners)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        fake.respond(
            "proxmox-backup-manager",
            &["task", "list"],
            Response::ok("[]"),
        );
        let mut source = HostTree::pbs_node(dir.path().join("source"));
        let cfg = |t: &mut HostTree, name: &str, text: &str, mode: u32, owner: (u32, u32)| {
            t.file(
                &format!("etc/proxmox-backup/{name}"),
                text.as_bytes(),
                mode,
                owner,
            );
        };
        cfg(&mut source, "user.cfg", BACKUP_USER_CFG, 0o640, ROOT_BACKUP);
        cfg(&mut source, "acl.cfg", BACKUP_ACL, 0o640, ROOT_BACKUP);
        cfg(
            &mut source,
            "domains.cfg",
            BACKUP_DOMAINS,
            0o640,
            ROOT_BACKUP,
        );
        cfg(
            &mut source,
            "token.shadow",
            &backup_token_shadow(),
            0o640,
            (34, 34),
        );
        cfg(
            &mut source,
            "shadow.json",
            &format!("{{\n  \"alice@pbs\": \"{ALICE_HASH}\",\n  \"sync@pbs\": \"{SYNC_HASH}\"\n}}"),
            0o600,
            (0, 0),
        );
        cfg(&mut source, "tfa.json", &backup_tfa(), 0o600, (0, 0));
        source.settle_dirs();
        let spec = BackupSpec {
            compressor: Compressor::None,
            ..host_spec(&source)
        };
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &spec, &bundles);
        let target = HostRoot::pbs(dir.path().join("root"));
        let root = target.root().to_path_buf();
        for (file, from, to) in [
            ("etc/passwd", "backup:x:34:34:", "backup:x:4242:4343:"),
            ("etc/group", "backup:x:34:", "backup:x:4343:"),
        ] {
            let text = fs::read_to_string(root.join(file)).unwrap();
            assert!(text.contains(from), "{file}: {text}");
            fs::write(root.join(file), text.replace(from, to)).unwrap();
        }
        let lab = Lab {
            fake,
            target,
            bundle,
            dir,
        };
        let write = |name: &str, text: &str, mode: u32, owner: (u32, u32)| {
            let p = lab.path(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
        };
        write("user.cfg", LIVE_USER_CFG, 0o640, (0, BACKUP_GID));
        write("acl.cfg", LIVE_ACL, 0o640, (0, BACKUP_GID));
        write(
            "token.shadow",
            &format!(r#"{{"carol@pbs!x":"{CAROL_TOKEN}","root@pam!monitor":"{LIVE_ROOT_TOKEN}"}}"#),
            0o640,
            (BACKUP_UID, BACKUP_GID),
        );
        write(
            "shadow.json",
            &format!("{{\n  \"carol@pbs\": \"{CAROL_HASH}\"\n}}"),
            0o600,
            (0, 0),
        );
        write("tfa.json", &live_tfa(), 0o600, (0, 0));
        Some(lab)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.target.root().join("etc/proxmox-backup").join(name)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn meta(&self, name: &str) -> (u32, u32, u32) {
        let m = fs::metadata(self.path(name)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    }

    fn restore(&self, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.target.root())
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
                "pbs_access_control",
            ])
            .args(extra);
        cmd.output().unwrap()
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

fn outcome(r: &serde_json::Value) -> &serde_json::Value {
    r["applied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == "pbs_access_control")
        .unwrap_or_else(|| panic!("no pbs_access_control outcome in {:#}", r["applied"]))
}

/// No secret in the output, the report or the log (nor in the stage-free work folder's
/// other texts the run leaves).
fn assert_no_secret(out: &Output, r: &serde_json::Value) {
    let mut texts = vec![common::stdout(out), common::stderr(out), r.to_string()];
    if let Some(log) = r["log"].as_str() {
        texts.push(fs::read_to_string(log).unwrap_or_default());
    }
    for t in &texts {
        for s in SECRETS {
            assert!(!t.contains(s), "secret {s} shown:\n{t}");
        }
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn assert_modes(lab: &Lab) {
    for name in ["user.cfg", "acl.cfg", "domains.cfg"] {
        assert_eq!(lab.meta(name), (0o640, 0, BACKUP_GID), "{name}");
    }
    assert_eq!(
        lab.meta("token.shadow"),
        (0o640, BACKUP_UID, BACKUP_GID),
        "token.shadow"
    );
    assert_eq!(lab.meta("shadow.json"), (0o600, 0, 0), "shadow.json");
    assert_eq!(lab.meta("tfa.json"), (0o600, 0, 0), "tfa.json");
}

/// The PBS services: stopped proxy first (with the escalation's first step), started
/// daemon first, then checked; no `proxmox-backup-manager` change call (files only).
fn assert_services(lab: &Lab, r: &serde_json::Value) {
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
    let api = pos("proxmox-backup-manager task list --limit 1 --output-format json");
    assert!(stop_proxy < stop_daemon && stop_daemon < start_daemon);
    assert!(
        start_daemon < start_proxy && start_proxy < api,
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("proxmox-backup-manager")
            && !l.starts_with("proxmox-backup-manager task list")),
        "{lines:#?}"
    );
    let checks: Vec<(String, String)> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "check")
        .map(|a| {
            (
                a["target"].as_str().unwrap().to_string(),
                a["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("proxmox-backup".to_string(), "ok".to_string()),
            ("proxmox-backup-proxy".to_string(), "ok".to_string())
        ]
    );
}

#[test]
fn merge_keeps_this_hosts_root_and_user_and_brings_the_backups_back() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.access-control.apply=yes",
    ]);
    let r = report(&out);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    assert_eq!(outcome(&r)["status"], "applied", "{:#}", outcome(&r));
    assert_no_secret(&out, &r);
    assert_eq!(
        lab.read("user.cfg"),
        "user: root@pam\n\tcomment Superuser\n\temail root@pbs9.example.lan\n\tenable true\n\n\
token: root@pam!monitor\n\tcomment live monitoring\n\n\
user: carol@pbs\n\tcomment Carol\n\n\
token: carol@pbs!x\n\n\
user: alice@pbs\n\tcomment Alice\n\temail alice@example.lan\n\tenable true\n\n\
token: alice@pbs!ci\n\tcomment CI uploads\n\n\
user: sync@pbs\n\tcomment Pull from pbs-b\n\n\
token: sync@pbs!pull\n\tcomment pull token\n\texpire 0\n"
    );
    assert_eq!(
        lab.read("acl.cfg"),
        "acl:1:/:root@pam!monitor:Audit\nacl:1:/datastore:carol@pbs:DatastoreAudit\n\
acl:1:/:alice@pbs:Admin\n\
acl:1:/datastore/store1:sync@pbs,sync@pbs!pull:DatastoreBackup\n\
acl:0:/datastore/store1:alice@pbs!ci:DatastoreReader\n"
    );
    let domains = lab.read("domains.cfg");
    assert!(
        domains.contains(
            "openid: corp\n\tclient-id pbs\n\tissuer-url https://sso.example.lan/realms/corp"
        ),
        "{domains}"
    );
    assert!(!domains.contains('#'));
    let tokens = json(&lab.read("token.shadow"));
    assert_eq!(
        tokens,
        json(&format!(
            r#"{{"alice@pbs!ci":"{ALICE_TOKEN}","carol@pbs!x":"{CAROL_TOKEN}","root@pam!monitor":"{LIVE_ROOT_TOKEN}","sync@pbs!pull":"{SYNC_TOKEN}"}}"#
        ))
    );
    assert_eq!(
        json(&lab.read("shadow.json")),
        json(&format!(
            r#"{{"alice@pbs":"{ALICE_HASH}","carol@pbs":"{CAROL_HASH}","sync@pbs":"{SYNC_HASH}"}}"#
        ))
    );
    let tfa = json(&lab.read("tfa.json"));
    let users: Vec<&String> = tfa["users"].as_object().unwrap().keys().collect();
    assert_eq!(users, ["alice@pbs", "root@pam"]);
    assert!(
        tfa["users"]["root@pam"]
            .to_string()
            .contains(LIVE_ROOT_TOTP)
    );
    assert!(!tfa.to_string().contains(BACKUP_ROOT_TOTP));
    assert_eq!(tfa["webauthn"]["rp"], "pbs1.example.lan");
    assert_modes(&lab);
    assert_services(&lab, &r);
}

#[test]
fn clean_removes_this_hosts_other_user_but_never_root() {
    let Some(lab) = Lab::new() else { return };
    let out = lab.restore(&[
        "--pbs-behavior",
        "clean",
        "--answer",
        "pbs.access-control.apply=yes",
    ]);
    let r = report(&out);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    assert_eq!(outcome(&r)["status"], "applied", "{:#}", outcome(&r));
    assert_no_secret(&out, &r);
    assert_eq!(
        lab.read("user.cfg"),
        "user: root@pam\n\tcomment Superuser\n\temail root@pbs9.example.lan\n\tenable true\n\n\
token: root@pam!monitor\n\tcomment live monitoring\n\n\
user: alice@pbs\n\tcomment Alice\n\temail alice@example.lan\n\tenable true\n\n\
token: alice@pbs!ci\n\tcomment CI uploads\n\n\
user: sync@pbs\n\tcomment Pull from pbs-b\n\n\
token: sync@pbs!pull\n\tcomment pull token\n\texpire 0\n"
    );
    assert_eq!(
        lab.read("acl.cfg"),
        "acl:1:/:root@pam!monitor:Audit\n\
acl:1:/:alice@pbs:Admin\n\
acl:1:/datastore/store1:sync@pbs,sync@pbs!pull:DatastoreBackup\n\
acl:0:/datastore/store1:alice@pbs!ci:DatastoreReader\n"
    );
    assert_eq!(
        json(&lab.read("token.shadow")),
        json(&format!(
            r#"{{"alice@pbs!ci":"{ALICE_TOKEN}","root@pam!monitor":"{LIVE_ROOT_TOKEN}","sync@pbs!pull":"{SYNC_TOKEN}"}}"#
        ))
    );
    assert_eq!(
        json(&lab.read("shadow.json")),
        json(&format!(
            r#"{{"alice@pbs":"{ALICE_HASH}","sync@pbs":"{SYNC_HASH}"}}"#
        ))
    );
    let detail = outcome(&r)["detail"].as_str().unwrap();
    assert!(
        detail.contains("users of this host not in the backup removed (clean): carol@pbs"),
        "{detail}"
    );
    assert_modes(&lab);
    assert_services(&lab, &r);
}

#[test]
fn the_question_defaults_to_no() {
    let Some(lab) = Lab::new() else { return };
    let before: Vec<String> = [
        "user.cfg",
        "acl.cfg",
        "token.shadow",
        "shadow.json",
        "tfa.json",
    ]
    .iter()
    .map(|n| lab.read(n))
    .collect();
    let out = lab.restore(&["--pbs-behavior", "merge"]);
    let r = report(&out);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o:#}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .starts_with("pbs.access-control.apply = no"),
        "{o:#}"
    );
    let after: Vec<String> = [
        "user.cfg",
        "acl.cfg",
        "token.shadow",
        "shadow.json",
        "tfa.json",
    ]
    .iter()
    .map(|n| lab.read(n))
    .collect();
    assert_eq!(before, after);
    assert!(!lab.path("domains.cfg").exists() || !lab.read("domains.cfg").contains("corp"));
    let q = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == "pbs.access-control.apply")
        .expect("question in the report");
    assert_eq!(q["default"], "no");
    assert_no_secret(&out, &r);
}

/// `proxmox-backup-proxy` refuses every step of the stop escalation (it stays active).
fn refuse_to_stop(lab: &Lab) {
    let unit = "proxmox-backup-proxy";
    for prefix in [
        vec!["stop", "--no-block", unit],
        vec!["stop", unit],
        vec!["kill", "--signal=SIGTERM", "--kill-who=all", unit],
        vec!["kill", "--signal=SIGKILL", "--kill-who=all", unit],
    ] {
        lab.fake.respond(
            "systemctl",
            &prefix,
            Response::fail(
                1,
                "Failed to stop proxmox-backup-proxy.service: Access denied\n",
            ),
        );
    }
    lab.fake
        .respond("systemctl", &["is-active", unit], Response::ok("active\n"));
}

#[test]
fn a_proxy_that_will_not_stop_asks_and_no_stops_before_anything_is_written() {
    let Some(lab) = Lab::new() else { return };
    refuse_to_stop(&lab);
    let before: Vec<String> = [
        "user.cfg",
        "acl.cfg",
        "token.shadow",
        "shadow.json",
        "tfa.json",
    ]
    .iter()
    .map(|n| lab.read(n))
    .collect();
    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.access-control.apply=yes",
        "--answer",
        "continue_with_pbs_services_running=no",
    ]);
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    let after: Vec<String> = [
        "user.cfg",
        "acl.cfg",
        "token.shadow",
        "shadow.json",
        "tfa.json",
    ]
    .iter()
    .map(|n| lab.read(n))
    .collect();
    assert_eq!(before, after);
    let lines = lab.fake.call_lines();
    // The whole escalation was tried, then nothing else was stopped.
    for step in [
        "systemctl stop --no-block proxmox-backup-proxy",
        "systemctl stop proxmox-backup-proxy",
        "systemctl kill --signal=SIGTERM --kill-who=all proxmox-backup-proxy",
        "systemctl kill --signal=SIGKILL --kill-who=all proxmox-backup-proxy",
    ] {
        assert!(lines.iter().any(|l| l == step), "{step}: {lines:#?}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l == "systemctl stop --no-block proxmox-backup"),
        "{lines:#?}"
    );
    // Still running: not started again.
    assert!(
        !lines
            .iter()
            .any(|l| l == "systemctl start proxmox-backup-proxy"),
        "{lines:#?}"
    );
    let text = format!("{}{}", common::stdout(&out), common::stderr(&out));
    for s in SECRETS {
        assert!(!text.contains(s), "secret {s} shown:\n{text}");
    }
}

#[test]
fn a_proxy_that_will_not_stop_asks_and_yes_goes_on() {
    let Some(lab) = Lab::new() else { return };
    refuse_to_stop(&lab);
    let out = lab.restore(&[
        "--pbs-behavior",
        "merge",
        "--answer",
        "pbs.access-control.apply=yes",
        "--answer",
        "continue_with_pbs_services_running=yes",
    ]);
    let r = report(&out);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    assert_eq!(outcome(&r)["status"], "applied", "{:#}", outcome(&r));
    assert!(lab.read("user.cfg").contains("user: alice@pbs"));
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("proxmox-backup-proxy could not be stopped"),
        "{warnings}"
    );
    let lines = lab.fake.call_lines();
    assert!(
        lines
            .iter()
            .any(|l| l == "systemctl stop --no-block proxmox-backup")
    );
    assert!(lines.iter().any(|l| l == "systemctl start proxmox-backup"));
    assert!(
        !lines
            .iter()
            .any(|l| l == "systemctl start proxmox-backup-proxy"),
        "{lines:#?}"
    );
    let start = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "start" && a["target"] == "proxmox-backup-proxy")
        .expect("the proxy's start action");
    assert_eq!(start["result"], "already active");
    assert_no_secret(&out, &r);
}
