//! The `pve_access_control` applier end to end: the real binary restores the access control
//! of a PVE cluster node's backup onto a PVE root whose `etc/pve` is a real mount (a tmpfs,
//! standing in for the cluster filesystem; the tests run as root). This host's `root@pam`
//! (enabled, with its e-mail, its own API token, password hash and TFA entry) must stay; the
//! backup's users, tokens, hashes and TFA entries come back; every file parses with PVE's
//! grammar and has the mode pmxcfs accepts.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxsave_pve::formats::{shadow, tfa, token, user_cfg};
use proxsave_restore::commit::{State, Timer, WindowRecord};
use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::paused::{Paused, Reached, wait_pid_exit};
use proxsave_testkit::require_tools;

const PVE: (u32, u32) = (0, 33);

// The backup's files (a cluster node `pve1` whose admin set up alice and a CI token).
const BACKUP_USER: &str = "user:root@pam:0:0::::::
user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::
token:alice@pve!ci:0:1:CI token:
token:root@pam!old:0:1::
user:bob@ldap1:1:0::::::

group:admins:alice@pve:Administrators:

pool:dev:Dev pool:100,101:local:

role:VMOperator:VM.Audit,VM.Console:

acl:1:/:@admins:Administrator:
acl:1:/vms/100:alice@pve!ci,root@pam!old:PVEVMUser:
";
const BACKUP_DOMAINS: &str = "pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\nldap: ldap1\n\tbase_dn dc=example,dc=lan\n\tserver1 ldap.example.lan\n\tuser_attr uid\n\n";
const ALICE_HASH: &str = "$5$aliceSALT$9vS1lY5u8yQ0mW0mZQvT0y1m1b2c3d4e5f6g7h8i9j0";
const BACKUP_ROOT_HASH: &str = "$5$bogus$BACKUPROOTHASH";
const ALICE_SECRET: &str = "11111111-1111-1111-1111-111111111111";
const BACKUP_ROOT_SECRET: &str = "22222222-2222-2222-2222-222222222222";
const BACKUP_TFA: &str = r#"{"users":{"alice@pve":{"totp":[{"info":{"id":"a1","description":"phone","created":1700000000,"enable":true},"entry":"otpauth://totp/alice?secret=ALICETOTPSECRET"}]},"root@pam":{"totp":[{"info":{"id":"r1"},"entry":"otpauth://totp/root?secret=BACKUPROOTTOTP"}]}}}"#;

// This host's files.
const LIVE_USER: &str = "user:root@pam:1:0:::root@pve9.example.lan:::
token:root@pam!monitor:0:1:live monitoring:

acl:1:/:root@pam!monitor:PVEAuditor:
";
const LIVE_DOMAINS: &str = "pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\n";
const LIVE_ROOT_SECRET: &str = "33333333-3333-3333-3333-333333333333";
const LIVE_SHADOW: &str = "root@pam:$5$live$LIVEROOTHASH:\n";
const LIVE_TFA: &str = r#"{"users":{"root@pam":{"totp":[{"info":{"id":"live"},"entry":"otpauth://totp/root?secret=LIVEROOTTOTP"}]}}}"#;

const FILES: [&str; 5] = [
    "etc/pve/user.cfg",
    "etc/pve/domains.cfg",
    "etc/pve/priv/shadow.cfg",
    "etc/pve/priv/token.cfg",
    "etc/pve/priv/tfa.cfg",
];

/// A tmpfs mounted on a folder, unmounted on drop (every exit path of a test).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs on `dir`; `None` (after a message) when mounting is not possible here
    /// (not root, no CAP_SYS_ADMIN), which fails under CI.
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "proxsave-test-pve"])
            .arg(dir)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if proxsave_testkit::tools_required() {
                    panic!("cannot mount a tmpfs on {}: {why}", dir.display());
                }
                eprintln!("SKIP: cannot mount a tmpfs on {}: {why}", dir.display());
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stdin(Stdio::null())
            .output();
    }
}

struct Lab {
    /// Dropped first: the mount goes before its folder.
    mount: Option<Tmpfs>,
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
}

fn source(dir: &Path) -> HostTree {
    let mut t = HostTree::pve_cluster_node(dir.join("source"));
    t.file("etc/pve/user.cfg", BACKUP_USER.as_bytes(), 0o640, PVE)
        .file("etc/pve/domains.cfg", BACKUP_DOMAINS.as_bytes(), 0o640, PVE)
        .file(
            "etc/pve/priv/shadow.cfg",
            format!("alice@pve:{ALICE_HASH}:\nroot@pam:{BACKUP_ROOT_HASH}:\n").as_bytes(),
            0o600,
            PVE,
        )
        .file(
            "etc/pve/priv/token.cfg",
            format!("alice@pve!ci {ALICE_SECRET}\nroot@pam!old {BACKUP_ROOT_SECRET}\n").as_bytes(),
            0o600,
            PVE,
        )
        .file("etc/pve/priv/tfa.cfg", BACKUP_TFA.as_bytes(), 0o600, PVE)
        .settle_dirs();
    t
}

impl Lab {
    /// A PVE root; with `mounted`, its `etc/pve` is a tmpfs holding this host's files.
    /// `None` when a mount was asked for and is not possible here.
    fn new(mounted: bool) -> Option<Lab> {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let src = source(dir.path());
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&src, &host_spec(&src), &bundles);
        let target = HostRoot::pve(dir.path().join("root"));
        let mut lab = Lab {
            mount: None,
            dir,
            fake,
            target,
            bundle,
        };
        let etc_pve = lab.target.path("etc/pve");
        if mounted {
            lab.mount = Some(Tmpfs::mount(&etc_pve)?);
        }
        let write = |rel: &str, text: &str, mode: u32| {
            let p = lab.target.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(PVE.0), Some(PVE.1)).unwrap();
        };
        fs::create_dir_all(etc_pve.join("priv")).unwrap();
        fs::set_permissions(etc_pve.join("priv"), fs::Permissions::from_mode(0o700)).unwrap();
        write("etc/pve/user.cfg", LIVE_USER, 0o640);
        write("etc/pve/domains.cfg", LIVE_DOMAINS, 0o640);
        write("etc/pve/priv/shadow.cfg", LIVE_SHADOW, 0o600);
        write(
            "etc/pve/priv/token.cfg",
            &format!("root@pam!monitor {LIVE_ROOT_SECRET}\n"),
            0o600,
        );
        write("etc/pve/priv/tfa.cfg", LIVE_TFA, 0o600);
        Some(lab)
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.target.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn files(&self) -> Vec<(String, String, u32, u32, u32)> {
        FILES
            .iter()
            .map(|rel| {
                let m = fs::metadata(self.target.path(rel)).unwrap();
                (
                    (*rel).to_owned(),
                    self.read(rel),
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                )
            })
            .collect()
    }

    fn restore(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run proxsave")
    }

    /// The restore command (a detached COMMIT-window timer when host actions run).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("PROXSAVE_TEST_COMMIT_TIMER", "detached")
            .env("LC_ALL", "C")
            .arg("restore")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args(args);
        cmd
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The COMMIT windows armed so far, oldest first.
    fn windows(&self) -> Vec<WindowRecord> {
        let mut out: Vec<WindowRecord> = fs::read_dir(self.work().join("commit"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| fs::read(e.path().join("window.json")).ok())
                    .map(|b| serde_json::from_slice(&b).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|w: &WindowRecord| w.armed_unix_ms);
        out
    }
}

fn timer_pid(w: &WindowRecord) -> u32 {
    match &w.timer {
        Timer::Detached { pid } => *pid,
        other => panic!(
            "window {} is not timed by a detached process: {other}",
            w.id
        ),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}):\nstdout:\n{}\nstderr:\n{}",
            common::stdout(out),
            common::stderr(out)
        )
    })
}

fn outcome(r: &serde_json::Value) -> &serde_json::Value {
    r["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .find(|a| a["category"] == "pve_access_control")
        .unwrap_or_else(|| panic!("no pve_access_control outcome: {}", r["applied"]))
}

/// The files as the merge must leave them: checked with PVE's grammar, field by field.
fn assert_merged(lab: &Lab) {
    // user.cfg: this host's root line and token, the backup's others, no ACL for root@pam.
    let text = lab.read("etc/pve/user.cfg");
    let (cfg, diags) = user_cfg::parse(&text);
    assert!(diags.is_empty(), "{diags:?}\n{text}");
    let roots: Vec<_> = cfg
        .users
        .iter()
        .filter(|u| u.userid == "root@pam")
        .collect();
    assert_eq!(roots.len(), 1, "{text}");
    assert!(roots[0].enable, "root@pam disabled:\n{text}");
    assert_eq!(roots[0].email, "root@pve9.example.lan");
    let alice = cfg.user("alice@pve").expect("alice");
    assert!(alice.enable);
    assert_eq!(alice.comment, "Ops: oncall");
    assert!(cfg.user("bob@ldap1").is_some());
    let tokens: Vec<&str> = cfg.tokens.iter().map(|t| t.tokenid.as_str()).collect();
    assert_eq!(tokens, ["alice@pve!ci", "root@pam!monitor"], "{text}");
    for acl in &cfg.acls {
        assert!(
            !acl.members
                .iter()
                .any(|m| m == "root@pam" || m == "root@pam!old"),
            "{text}"
        );
    }
    assert!(text.contains("acl:1:/:@admins:Administrator:\n"), "{text}");
    assert!(
        text.contains("acl:1:/:root@pam!monitor:PVEAuditor:\n"),
        "{text}"
    );
    assert_eq!(cfg.groups[0].users, ["alice@pve"]);
    assert_eq!(cfg.pools[0].vms, ["100", "101"]);
    // domains.cfg: the backup's LDAP realm, this host's pam and pve.
    let domains = lab.read("etc/pve/domains.cfg");
    assert!(
        domains.contains("ldap: ldap1\n\tbase_dn dc=example,dc=lan\n"),
        "{domains}"
    );
    assert!(
        domains.contains("pve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n"),
        "{domains}"
    );
    // shadow.cfg: alice's hash, this host's root hash, never the backup's root hash.
    let (sh, d) = shadow::parse(&lab.read("etc/pve/priv/shadow.cfg"));
    assert!(d.is_empty());
    assert_eq!(sh.get("alice@pve").unwrap().hash, ALICE_HASH);
    assert_eq!(sh.get("root@pam").unwrap().hash, "$5$live$LIVEROOTHASH");
    // token.cfg: alice's secret, this host's root token, not the backup's root token.
    let tk_text = lab.read("etc/pve/priv/token.cfg");
    let (tk, d) = token::parse(&tk_text);
    assert!(d.is_empty());
    assert_eq!(
        tk_text,
        format!("alice@pve!ci {ALICE_SECRET}\nroot@pam!monitor {LIVE_ROOT_SECRET}\n")
    );
    assert_eq!(tk.entries.len(), 2);
    // tfa.cfg: alice's factors from the backup, root's from this host.
    let (t, d) = tfa::parse(&lab.read("etc/pve/priv/tfa.cfg")).expect("tfa json");
    assert!(d.is_empty());
    assert_eq!(t.users(), ["alice@pve", "root@pam"]);
    assert!(
        t.user_json("alice@pve")
            .unwrap()
            .to_string()
            .contains("ALICETOTPSECRET")
    );
    assert!(
        t.user_json("root@pam")
            .unwrap()
            .to_string()
            .contains("LIVEROOTTOTP")
    );
    // Nothing else in /etc/pve: no temporary file, no link to an old copy.
    let names = |rel: &str| {
        let mut v: Vec<String> = fs::read_dir(lab.target.path(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("etc/pve"), ["domains.cfg", "priv", "user.cfg"]);
    assert_eq!(
        names("etc/pve/priv"),
        ["shadow.cfg", "tfa.cfg", "token.cfg"]
    );
    // Modes and owners as pmxcfs reports them.
    for (rel, _, mode, uid, gid) in lab.files() {
        let want = if rel.contains("/priv/") { 0o600 } else { 0o640 };
        assert_eq!((mode, uid, gid), (want, 0, 33), "{rel}");
    }
}

#[test]
fn full_restore_brings_access_control_back_and_keeps_this_hosts_root() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let before = lab.files();

    // A dry run lists the per-file changes, never a secret, and writes nothing.
    let out = lab.restore(&[
        "--dry-run",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
    ]);
    common::assert_ok(&out);
    let all = common::stdout(&out);
    for secret in [
        ALICE_HASH,
        ALICE_SECRET,
        BACKUP_ROOT_SECRET,
        "ALICETOTPSECRET",
        LIVE_ROOT_SECRET,
    ] {
        assert!(
            !all.contains(secret),
            "the dry run shows a secret: {secret}"
        );
    }
    let r = report(&out);
    let a = r["appliers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "pve-access-control")
        .expect("the applier plans");
    assert_eq!(
        a["files"],
        serde_json::json!([
            "etc/pve/domains.cfg",
            "etc/pve/user.cfg",
            "etc/pve/priv/shadow.cfg",
            "etc/pve/priv/token.cfg",
            "etc/pve/priv/tfa.cfg"
        ])
    );
    let actions: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let user_line = actions
        .iter()
        .find(|l| l.starts_with("/etc/pve/user.cfg: write (0640 root:www-data)"))
        .unwrap_or_else(|| panic!("{actions:#?}"));
    assert!(
        user_line.contains("root@pam: this host's user line kept (enabled)"),
        "{user_line}"
    );
    assert!(
        user_line.contains("users added from the backup: alice@pve, bob@ldap1"),
        "{user_line}"
    );
    assert!(
        user_line.contains("root@pam tokens of this host kept: root@pam!monitor"),
        "{user_line}"
    );
    let q = &a["questions"][0];
    assert_eq!(q["spec"]["id"], "pve.access-control.apply");
    assert_eq!(q["default"], "no");
    assert_eq!(q["timeout"], 90);
    let changes: Vec<&str> = a["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(changes.len(), 5, "{changes:?}");
    assert_eq!(lab.files(), before, "the dry run changed a file");

    // `diff` shows the planned changes as unified diffs, the priv files as ids only.
    let diff = lab
        .fake
        .command(common::bin())
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .args(["diff", "--backup"])
        .arg(&lab.bundle)
        .arg("--root")
        .arg(lab.root())
        .args(["--mode", "custom", "--categories", "pve_access_control"])
        .output()
        .unwrap();
    common::assert_ok(&diff);
    let shown = common::stdout(&diff);
    for secret in [
        ALICE_HASH,
        ALICE_SECRET,
        BACKUP_ROOT_SECRET,
        LIVE_ROOT_SECRET,
        "ALICETOTPSECRET",
        "LIVEROOTTOTP",
        "LIVEROOTHASH",
    ] {
        assert!(
            !shown.contains(secret),
            "diff shows a secret: {secret}\n{shown}"
        );
    }
    assert!(
        shown.contains("--- /etc/pve/user.cfg (current)\n+++ /etc/pve/user.cfg (backup)\n"),
        "{shown}"
    );
    assert!(
        shown.contains("+user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::\n"),
        "{shown}"
    );
    assert!(shown.contains("+alice@pve:<redacted>:\n"), "{shown}");
    assert!(shown.contains("+alice@pve!ci <redacted>\n"), "{shown}");
    assert!(
        shown.contains("+alice@pve: <second factors redacted>\n"),
        "{shown}"
    );
    assert_eq!(lab.files(), before, "diff changed a file");

    // Under --yes the question's default (no) leaves the files.
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .contains("pve.access-control.apply = no"),
        "{o}"
    );
    assert_eq!(lab.files(), before);

    // Answered yes: applied.
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(
        o["status"],
        "applied",
        "{o}\nstderr:\n{}",
        common::stderr(&out)
    );
    assert_merged(&lab);
    // Neither the output nor the restore logs show a secret.
    let mut seen = format!("{}{}", common::stdout(&out), common::stderr(&out));
    for e in fs::read_dir(lab.work()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("restore_") && name.ends_with(".log") {
            seen.push_str(&fs::read_to_string(e.path()).unwrap());
        }
    }
    assert!(seen.contains("pve-access-control"), "no log of the applier");
    for secret in [
        ALICE_HASH,
        ALICE_SECRET,
        LIVE_ROOT_SECRET,
        "ALICETOTPSECRET",
        "LIVEROOTTOTP",
    ] {
        assert!(
            !seen.contains(secret),
            "a secret is shown or logged: {secret}"
        );
    }
    // The safety backup covers the five files.
    let sb = r["safety_backup"]["path"].as_str().expect("safety backup");
    let listing = Command::new("tar").arg("-tf").arg(sb).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for f in FILES {
        assert!(
            listing.lines().any(|l| l.trim_start_matches("./") == f),
            "{f} not in {listing}"
        );
    }

    // A second identical restore writes nothing.
    let after = lab.files();
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "applied");
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .starts_with("nothing to change"),
        "{o}"
    );
    assert_eq!(lab.files(), after);
}

#[test]
fn an_unmounted_etc_pve_is_refused_and_left_alone() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = Lab::new(false).expect("no mount needed");
    let before = lab.files();
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "custom",
        "--categories",
        "pve_access_control",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    let reason = o["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("refused: ")
            && reason.contains(&format!(
                "{}/etc/pve is not a mount point",
                lab.root().display()
            )),
        "{reason}"
    );
    assert_eq!(lab.files(), before);
}

#[test]
fn a_result_without_an_enabled_administrator_is_refused() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    // This host's root@pam is disabled; the backup has no other administrator once its
    // admins group is emptied.
    let p = lab.target.path("etc/pve/user.cfg");
    fs::write(&p, "user:root@pam:0:0::::::\n").unwrap();
    let before = lab.files();
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "custom",
        "--categories",
        "pve_access_control",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    // The backup's admins group holds alice, who is enabled: accepted.
    assert_eq!(o["status"], "applied", "{o}");
    let _ = before;
    // Now without an administrator in the backup either.
    let lab2 = Lab::new(true).expect("mount");
    fs::write(
        lab2.target.path("etc/pve/user.cfg"),
        "user:root@pam:0:0::::::\n",
    )
    .unwrap();
    let src_user = BACKUP_USER.replace("acl:1:/:@admins:Administrator:\n", "");
    let dir = lab2.dir.path().join("src2");
    let mut t = source(&dir);
    t.file("etc/pve/user.cfg", src_user.as_bytes(), 0o640, PVE)
        .settle_dirs();
    let bundles = dir.join("backups");
    fs::create_dir_all(&bundles).unwrap();
    let bundle = make_host_backup_in(&t, &host_spec(&t), &bundles);
    let lab2 = Lab { bundle, ..lab2 };
    let before = lab2.files();
    let out = lab2.restore(&[
        "--yes",
        "--json",
        "--mode",
        "custom",
        "--categories",
        "pve_access_control",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    assert!(
        o["reason"].as_str().unwrap().starts_with(
            "etc/pve/user.cfg: refused: the merged file would leave no enabled administrator"
        ),
        "{o}"
    );
    assert_eq!(lab2.files(), before);
}

/// The arguments of a restore of the access control alone, host actions run (so a COMMIT
/// window is armed), the apply question answered yes.
const APPLY: [&str; 12] = [
    "--mode",
    "custom",
    "--categories",
    "pve_access_control",
    "--host-actions",
    "run",
    "--commit-window",
    "2",
    "--answer",
    "pve.access-control.apply=yes",
    "--json",
    "--yes",
];

#[test]
fn full_restore_under_a_commit_window_keeps_the_files_when_committed() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
        "--host-actions",
        "run",
        "--commit-window",
        "30",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(
        o["status"],
        "applied",
        "{o}\nstderr:\n{}",
        common::stderr(&out)
    );
    assert!(
        o["detail"]
            .as_str()
            .unwrap()
            .contains("committed (default)"),
        "{o}"
    );
    assert_merged(&lab);
    let w = lab
        .windows()
        .into_iter()
        .find(|w| w.area == "access-control")
        .expect("an access-control window");
    assert_eq!(w.state, State::Committed, "{w:?}");
    assert_eq!(w.seconds, 30);
    // Exactly the five files are covered; the timer is stopped.
    let mut paths: Vec<String> = w.paths.iter().map(|p| p.path.clone()).collect();
    paths.sort();
    let mut want: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(paths, want);
    assert!(wait_pid_exit(timer_pid(&w), Duration::from_secs(10)));
    assert_merged(&lab);
}

#[test]
fn answer_rollback_puts_the_previous_files_back() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let before = lab.files();
    let mut args = APPLY.to_vec();
    args.extend(["--answer", "pve.commit=rollback"]);
    let out = lab.restore(&args);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap()
            .starts_with("rolled back (flag)"),
        "{o}"
    );
    assert_eq!(lab.files(), before);
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack);
    assert!(wait_pid_exit(timer_pid(&w), Duration::from_secs(10)));
}

/// `kill -9` of proxsave once the files are written, inside the window: the detached timer
/// still puts the previous files back, on time.
#[test]
fn kill_9_inside_the_window_still_restores_the_previous_files_on_time() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let before = lab.files();
    let mut cmd = lab.command(&APPLY);
    // The window's second checkpoint: after the files were written, before the question.
    let mut p = Paused::spawn(&mut cmd, "commit-window:2", lab.dir.path(), "killed");
    match p.wait_stopped() {
        Reached::Stopped => {}
        Reached::Ended(st) => panic!(
            "ended before the window ({st:?}):\n{}\n{}",
            p.stdout_text(),
            p.stderr_text()
        ),
    }
    // The merged files are in place while the window is open.
    assert_merged(&lab);
    p.signal(rustix::process::Signal::KILL);
    p.resume();
    assert!(!p.finish().success());
    let w = lab.windows().remove(0);
    assert_eq!(w.seconds, 2);
    let pid = timer_pid(&w);
    assert!(
        wait_pid_exit(pid, Duration::from_secs(15)),
        "the rollback timer {pid} did not end"
    );
    let seen = now_ms();
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack, "{w:?}");
    assert_eq!(w.settled_by.as_deref(), Some("timer"));
    let settled = w.settled_unix_ms.unwrap();
    assert!(
        settled >= w.deadline_unix_ms,
        "rolled back before the deadline"
    );
    assert!(
        settled <= w.deadline_unix_ms + 2000 && seen <= w.deadline_unix_ms + 4000,
        "rolled back {} ms after the deadline",
        settled - w.deadline_unix_ms
    );
    assert!(w.problems.is_empty(), "{:?}", w.problems);
    // Byte for byte, with their modes and owners.
    assert_eq!(lab.files(), before);
}

#[test]
fn no_answer_at_the_console_within_the_window_restores_the_previous_files() {
    use rexpect::session::{Options, spawn_with_options};
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let before = lab.files();
    let mut cmd = lab.command(&[
        "--mode",
        "custom",
        "--categories",
        "pve_access_control",
        "--host-actions",
        "run",
        "--commit-window",
        "2",
    ]);
    cmd.env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty");
    p.exp_string("to proceed, or").unwrap();
    p.send_line("RESTORE").unwrap();
    p.exp_string("Apply the backup's PVE users").unwrap();
    p.exp_string("[no]").unwrap();
    p.send_line("yes").unwrap();
    p.exp_string("Type COMMIT within").unwrap();
    // Nothing typed: the countdown ends (or the timer fires) and the files come back.
    p.exp_regex("changes rolled back|timer already rolled the changes back")
        .unwrap();
    p.exp_eof().unwrap();
    assert_eq!(lab.files(), before);
    let w = lab.windows().remove(0);
    assert_eq!(w.state, State::RolledBack);
    assert!(
        matches!(w.settled_by.as_deref(), Some("countdown") | Some("timer")),
        "{:?}",
        w.settled_by
    );
    assert!(wait_pid_exit(timer_pid(&w), Duration::from_secs(10)));
}

#[test]
fn recovery_leaves_etc_pve_untouched() {
    require_tools!("tar", "xz", "sha256sum", "mount", "umount");
    let Some(lab) = Lab::new(true) else { return };
    let before = lab.files();
    let out = lab.restore(&[
        "--yes",
        "--json",
        "--mode",
        "custom",
        "--categories",
        "pve_cluster,pve_access_control",
        "--cluster-mode",
        "recovery",
        "--host-actions",
        "run",
        "--answer",
        "pve.access-control.apply=yes",
    ]);
    let r = report(&out);
    let o = outcome(&r);
    assert_eq!(o["status"], "skipped", "{o}");
    assert!(o["reason"].as_str().unwrap().contains("RECOVERY"), "{o}");
    assert_eq!(lab.files(), before);
    assert!(lab.windows().is_empty());
}
