//! The `accounts` applier end to end: the real binary restores the `accounts` category of an
//! older PVE host's backup onto a realistic fresh PVE root. Fake host commands (`systemctl`,
//! …) are first on `PATH`, but not `visudo`: the real one from the `sudo` package checks every
//! sudoers file. The merged files are checked byte for byte and with the real `pwck -r` and
//! `grpck -r`; the safety backup and `--rollback` cover them; a second identical restore
//! changes nothing; `--dry-run --json` describes the applier.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proxsave_testkit::fakes::{DEFAULT_COMMANDS, FakeBin};
use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, SHADOW_GID, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

/// The account files of both sides (shared with the merge core's tests).
fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proxsave-restore/tests/data/accounts")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const ACCOUNT_FILES: [&str; 6] = ["passwd", "group", "shadow", "gshadow", "subuid", "subgid"];

const ROOT: (u32, u32) = (0, 0);

/// Debian's `etc/sudoers.d/README` (the same on both sides).
const SUDOERS_README: &str = "#\n# Files in /etc/sudoers.d are read by sudo when /etc/sudoers contains\n# \"@includedir /etc/sudoers.d\". Files whose name ends in ~ or contains a .\n# are skipped.\n#\n";

/// The backup's main sudoers file (differs from this host's: `use_pty`, a `secure_path`).
const SUDOERS_BACKUP: &str = "Defaults\tenv_reset\nDefaults\tmail_badpass\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nDefaults\tuse_pty\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";

/// A valid drop-in: the two admins' rights.
const DROP_IN_ADMINS: &str =
    "alice\tALL=(ALL) NOPASSWD: /usr/sbin/qm, /usr/sbin/pct\nbob\tALL=(ALL:ALL) ALL\n";

/// A broken drop-in (`NOPASSWD ALL`: the `:` is missing).
const DROP_IN_BROKEN: &str = "dave\tALL=(ALL) NOPASSWD ALL\n";

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    bundle: PathBuf,
}

impl Lab {
    fn root(&self) -> &Path {
        self.target.root()
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.target.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn restore(&self, extra: &[&str]) -> Output {
        self.fake
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
            .arg(self.work())
            .arg("--export-dir")
            .arg(self.dir.path().join("export"))
            .args(["--mode", "custom", "--categories", "accounts"])
            .args(extra)
            .output()
            .expect("run proxsave")
    }

    fn rollback(&self, safety_backup: &str) -> Output {
        self.fake
            .command(common::bin())
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .args(["restore", "--rollback", safety_backup, "--root"])
            .arg(self.root())
            .arg("--yes")
            .output()
            .expect("run proxsave")
    }

    /// Names in the root folder `rel`, sorted.
    fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.target.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
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

/// A fresh PVE root with the account files of a realistic install (`root`, `www-data`,
/// `backup`, the systemd and Debian system accounts, and two local users: `carol` 1002 and
/// `erin` 1003), `login.defs`, Debian's `sudoers` and `sudoers.d/README`.
fn target(dir: &Path) -> HostRoot {
    let mut root = HostRoot::pve(dir.join("root"));
    let t = root.tree_mut();
    for name in ["passwd", "group", "subuid", "subgid"] {
        t.file(
            &format!("etc/{name}"),
            data(&format!("host_{name}")).as_bytes(),
            0o644,
            ROOT,
        );
    }
    for name in ["shadow", "gshadow"] {
        t.file(
            &format!("etc/{name}"),
            data(&format!("host_{name}")).as_bytes(),
            0o640,
            (0, SHADOW_GID),
        );
    }
    t.file("etc/login.defs", data("login.defs").as_bytes(), 0o644, ROOT)
        .dir("etc/sudoers.d", 0o755, ROOT)
        .file(
            "etc/sudoers.d/README",
            SUDOERS_README.as_bytes(),
            0o440,
            ROOT,
        )
        .settle_dirs();
    root
}

/// An older standalone PVE node whose accounts are the backup side of the merge core's
/// data (admins `alice` and `bob` in `sudo`, `dave` 1002, an updated `erin`, …), with
/// subordinate ids, a changed `sudoers`, a valid and a broken drop-in, and the README.
fn source(dir: &Path) -> HostTree {
    let mut t = HostTree::pve_standalone_node(dir.join("source"));
    for name in ["passwd", "group", "subuid", "subgid"] {
        t.file(
            &format!("etc/{name}"),
            data(&format!("backup_{name}")).as_bytes(),
            0o644,
            ROOT,
        );
    }
    for name in ["shadow", "gshadow"] {
        t.file(
            &format!("etc/{name}"),
            data(&format!("backup_{name}")).as_bytes(),
            0o640,
            (0, SHADOW_GID),
        );
    }
    t.file("etc/sudoers", SUDOERS_BACKUP.as_bytes(), 0o440, ROOT)
        .dir("etc/sudoers.d", 0o755, ROOT)
        .file(
            "etc/sudoers.d/README",
            SUDOERS_README.as_bytes(),
            0o440,
            ROOT,
        )
        .file(
            "etc/sudoers.d/admins",
            DROP_IN_ADMINS.as_bytes(),
            0o440,
            ROOT,
        )
        .file("etc/sudoers.d/typo", DROP_IN_BROKEN.as_bytes(), 0o440, ROOT)
        .settle_dirs();
    t
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    // Every host command is faked except visudo: the real one must run.
    let commands: Vec<&str> = DEFAULT_COMMANDS
        .iter()
        .copied()
        .filter(|c| *c != "visudo")
        .collect();
    let fake = FakeBin::with_commands(dir.path().join("fake"), &commands);
    let src = source(dir.path());
    let bundles = dir.path().join("backups");
    fs::create_dir(&bundles).unwrap();
    let bundle = make_host_backup_in(&src, &host_spec(&src), &bundles);
    let target = target(dir.path());
    Lab {
        dir,
        fake,
        target,
        bundle,
    }
}

/// The current file with `replace` applied (line → new line) and `append` at the end.
fn edited(current: &str, replace: &[(&str, &str)], append: &[&str]) -> String {
    let mut lines: Vec<String> = current.lines().map(str::to_owned).collect();
    for (old, new) in replace {
        let line = lines
            .iter_mut()
            .find(|l| l == old)
            .unwrap_or_else(|| panic!("no line {old:?}"));
        *line = (*new).to_owned();
    }
    lines.extend(append.iter().map(|l| (*l).to_owned()));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The merged account files, as the merge rules say.
fn expected() -> HashMap<&'static str, String> {
    let subids = edited(
        &data("host_subuid"),
        &[],
        &["alice:231072:65536", "bob:296608:65536"],
    );
    HashMap::from([
        (
            "passwd",
            edited(
                &data("host_passwd"),
                &[(
                    "erin:x:1003:1003:Erin,,,:/home/erin:/bin/sh",
                    "erin:x:1003:1003:Erin Example,,,:/home/erin:/bin/bash",
                )],
                &[
                    "alice:x:1000:1000:Alice Admin,,,:/home/alice:/bin/bash",
                    "bob:x:1001:1001:Bob Admin,,,:/home/bob:/bin/bash",
                    "frank:x:1004:1004::/home/frank:/bin/bash",
                ],
            ),
        ),
        (
            "shadow",
            edited(
                &data("host_shadow"),
                &[(
                    "erin:$y$j9T$erinold$OldOldOldOldOld:19811:0:99999:7:::",
                    "erin:$y$j9T$erinnew$NewNewNewNewNew:19200:0:99999:7:::",
                )],
                &[
                    "alice:$y$j9T$alicesalt$AaAaAaAaAaAaAaAa:19100:0:99999:7:::",
                    "bob:$y$j9T$bobsalt$BbBbBbBbBbBbBbBb:19101:0:99999:7:::",
                    "frank:!::0:99999:7:::",
                ],
            ),
        ),
        (
            "group",
            edited(
                &data("host_group"),
                &[
                    ("adm:x:4:", "adm:x:4:alice"),
                    ("sudo:x:27:", "sudo:x:27:alice,bob"),
                ],
                &[
                    "alice:x:1000:",
                    "bob:x:1001:",
                    "frank:x:1004:",
                    "devs:x:1010:alice,bob",
                ],
            ),
        ),
        (
            "gshadow",
            edited(
                &data("host_gshadow"),
                &[
                    ("adm:*::", "adm:*::alice"),
                    ("sudo:*::", "sudo:*::alice,bob"),
                ],
                &[
                    "alice:!::",
                    "bob:!::",
                    "frank:!::",
                    "devs:!:alice:alice,bob",
                ],
            ),
        ),
        ("subuid", subids.clone()),
        ("subgid", subids),
    ])
}

// ------------------------------------------------------------------------------------------
// pwck / grpck, as the merge core's tests run them
// ------------------------------------------------------------------------------------------

/// A root with `files` (name → content) in `etc/`, and every home directory and shell that
/// any of `passwds` names (so pwck reports account database findings only).
fn lay_root(root: &Path, files: &HashMap<String, Vec<u8>>, passwds: &[&str]) {
    fs::create_dir_all(root.join("etc")).unwrap();
    for (name, bytes) in files {
        fs::write(root.join("etc").join(name), bytes).unwrap();
    }
    for passwd in passwds {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() != 7 {
                continue;
            }
            fs::create_dir_all(root.join(fields[5].trim_start_matches('/'))).unwrap();
            let shell = root.join(fields[6].trim_start_matches('/'));
            fs::create_dir_all(shell.parent().unwrap()).unwrap();
            if !shell.exists() {
                fs::write(&shell, "").unwrap();
                fs::set_permissions(&shell, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }
}

/// The findings of `tool -r -R root`, one per output line, counted.
fn findings(tool: &str, root: &Path) -> HashMap<String, usize> {
    let out = Command::new(tool)
        .arg("-r")
        .arg("-R")
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 2)),
        "{tool} -r -R {}: exit {code:?}\n{}{}",
        root.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = HashMap::new();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text.lines() {
        if line.ends_with(": no changes") || line.trim().is_empty() {
            continue;
        }
        *counts.entry(line.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// The findings of `pwck -r` and `grpck -r` that the `after` files have and `before` not.
fn new_findings(
    before: &HashMap<String, Vec<u8>>,
    after: &HashMap<String, Vec<u8>>,
) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let passwds = [
        String::from_utf8_lossy(&before["passwd"]).into_owned(),
        String::from_utf8_lossy(&after["passwd"]).into_owned(),
    ];
    let all: Vec<&str> = passwds.iter().map(String::as_str).collect();
    let (b, a) = (tmp.path().join("before"), tmp.path().join("after"));
    lay_root(&b, before, &all);
    lay_root(&a, after, &all);
    let mut new = Vec::new();
    for tool in ["pwck", "grpck"] {
        let (fb, fa) = (findings(tool, &b), findings(tool, &a));
        for (line, n) in &fa {
            if *n > fb.get(line).copied().unwrap_or(0) {
                new.push(format!("{tool}: {line}"));
            }
        }
    }
    new.sort();
    new
}

/// The account files and `login.defs` of the lab's root.
fn account_files(lab: &Lab) -> HashMap<String, Vec<u8>> {
    ACCOUNT_FILES
        .iter()
        .chain(["login.defs"].iter())
        .map(|n| ((*n).to_owned(), lab.read(&format!("etc/{n}"))))
        .collect()
}

fn mode_owner(lab: &Lab, rel: &str) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(lab.target.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn visudo_passes(file: &Path) -> bool {
    Command::new("visudo")
        .args(["-c", "-f"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run visudo")
        .status
        .success()
}

/// The names a `tar -tzf` listing of `archive` holds.
fn tar_listing(archive: &str) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_owned())
        .collect()
}

/// Running as root: owners (root:shadow) are set, and `pwck -R` chroots.
fn require_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        !proxsave_testkit::tools_required(),
        "the accounts applier sets owners and pwck -R chroots: CI runs as root"
    );
    eprintln!("SKIP: the accounts applier sets owners and pwck -R chroots (needs root)");
    false
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[test]
fn accounts_of_an_older_host_are_merged_into_a_fresh_pve_root() {
    require_tools!("tar", "xz", "sha256sum", "visudo", "pwck", "grpck");
    if !require_root() {
        return;
    }
    let lab = lab();
    let before_snapshot = lab.target.snapshot();
    let before = account_files(&lab);
    let sudoers_before = lab.read("etc/sudoers");

    let out = lab.restore(&["--yes", "--host-actions", "run", "--json"]);
    // The broken drop-in is not installed: the category is partly applied (exit 1).
    assert_eq!(
        common::code(&out),
        1,
        "{}\n{}",
        common::stdout(&out),
        common::stderr(&out)
    );
    let r = report(&out);
    assert_eq!(r["outcome"], "completed_with_errors");
    let applied = r["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 1, "{applied:#?}");
    let a = &applied[0];
    assert_eq!(a["category"], "accounts");
    assert_eq!(a["applier"], "accounts-merge");
    assert_eq!(a["status"], "partly_applied");
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "etc/sudoers.d/typo not installed (the current one stays): visudo -c -f: exit code 1: etc/sudoers.d/typo:1:"
        ),
        "{detail}"
    );
    for expected in [
        "written: etc/passwd, etc/group, etc/shadow, etc/gshadow, etc/subuid, etc/subgid",
        "installed after visudo -c -f passed (0440 root:root): etc/sudoers (old file kept as etc/sudoers.bak-",
        "etc/sudoers.d/admins",
        "users added: alice (1000), bob (1001), frank (1004)",
        "users updated: erin (1003: passwd, shadow)",
        "memberships added: alice in adm, alice in sudo, bob in sudo",
        // Conflicts are reported and left as on this host.
        "uid 1002: this host has carol (uid 1002), the backup has dave (uid 1002)",
        "gid 1020: this host has group storage (gid 1020), the backup has group media (gid 1020)",
        "etc/sudoers.d/README: unchanged",
    ] {
        assert!(detail.contains(expected), "{expected:?} not in:\n{detail}");
    }
    assert!(!detail.contains("$y$"), "no hash in the detail");
    // The run's errors name the file that was not installed, in one line.
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0].as_str().unwrap();
    assert!(
        error.starts_with(
            "applying accounts (accounts-merge) partly applied: etc/sudoers.d/typo not installed (the current one stays): visudo -c -f: exit code 1: etc/sudoers.d/typo:1:"
        ) && error.ends_with("syntax error"),
        "{error}"
    );
    // The questions were answered by their defaults (--yes).
    let questions: Vec<(&str, &str, &str)> = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["id"].as_str().unwrap(),
                q["answer"].as_str().unwrap(),
                q["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        questions,
        [
            ("accounts.merge", "yes", "default"),
            ("sudoers.apply", "yes", "default")
        ]
    );
    // The conflicts are in the report's applier details too, never a hash.
    let appliers = r["appliers"].as_array().unwrap();
    let details = &appliers[0]["details"];
    assert_eq!(
        details["merge"]["report"]["conflicts"][0]["kind"],
        "same_uid_other_name"
    );
    assert!(!r.to_string().contains("$y$"), "the report holds no hash");

    // Exactly the merged files, with Debian's modes and owners.
    let want = expected();
    for name in ACCOUNT_FILES {
        assert_eq!(
            String::from_utf8(lab.read(&format!("etc/{name}"))).unwrap(),
            want[name],
            "etc/{name}"
        );
    }
    for (rel, mode, gid) in [
        ("etc/passwd", 0o644, 0),
        ("etc/group", 0o644, 0),
        ("etc/shadow", 0o640, SHADOW_GID),
        ("etc/gshadow", 0o640, SHADOW_GID),
        ("etc/subuid", 0o644, 0),
        ("etc/subgid", 0o644, 0),
        ("etc/sudoers", 0o440, 0),
        ("etc/sudoers.d", 0o755, 0),
        ("etc/sudoers.d/admins", 0o440, 0),
        ("etc/sudoers.d/README", 0o440, 0),
    ] {
        assert_eq!(mode_owner(&lab, rel), (mode, 0, gid), "{rel}");
    }
    // The old files are kept as .bak-YYYYMMDD-HHMMSS copies (same stamp for all).
    let baks: Vec<String> = lab
        .names("etc")
        .into_iter()
        .filter(|n| n.contains(".bak-"))
        .collect();
    assert_eq!(baks.len(), 7, "{baks:?}");
    let stamp = baks[0].split_once(".bak-").unwrap().1.to_owned();
    assert_eq!(stamp.len(), "YYYYMMDD-HHMMSS".len(), "{stamp}");
    for name in ACCOUNT_FILES {
        assert_eq!(
            lab.read(&format!("etc/{name}.bak-{stamp}")),
            before[name],
            "{name}"
        );
    }
    assert_eq!(
        lab.read(&format!("etc/sudoers.bak-{stamp}")),
        sudoers_before
    );

    // pwck -r and grpck -r find nothing new.
    let after = account_files(&lab);
    let new = new_findings(&before, &after);
    assert!(new.is_empty(), "new pwck/grpck findings: {new:#?}");

    // The sudoers files: the valid ones installed (and visudo accepts them where they are),
    // the broken one not installed, the README untouched.
    assert_eq!(lab.read("etc/sudoers"), SUDOERS_BACKUP.as_bytes());
    assert_eq!(lab.read("etc/sudoers.d/admins"), DROP_IN_ADMINS.as_bytes());
    assert_eq!(lab.names("etc/sudoers.d"), ["README", "admins"]);
    assert!(visudo_passes(&lab.target.path("etc/sudoers")));
    assert!(visudo_passes(&lab.target.path("etc/sudoers.d/admins")));
    let readme = |snap: &[String]| {
        snap.iter()
            .find(|l| l.contains(" ./etc/sudoers.d/README "))
            .cloned()
    };
    assert_eq!(readme(&lab.target.snapshot()), readme(&before_snapshot));
    // No host command but the real visudo ran (nothing recorded by the fakes).
    assert!(lab.fake.calls().is_empty(), "{:?}", lab.fake.call_lines());

    // The safety backup holds every account file it replaced.
    let sb = r["safety_backup"]["path"].as_str().unwrap().to_owned();
    let listing = tar_listing(&sb);
    for f in [
        "etc/passwd",
        "etc/shadow",
        "etc/group",
        "etc/gshadow",
        "etc/subuid",
        "etc/subgid",
        "etc/sudoers",
    ] {
        assert!(listing.contains(&f.to_owned()), "{f} not in {listing:?}");
    }

    // A second identical restore changes nothing (no rewrite, no new copy); the broken
    // drop-in is refused again.
    let after_first = lab.target.snapshot();
    let again = lab.restore(&["--yes", "--host-actions", "run", "--json"]);
    assert_eq!(common::code(&again), 1, "{}", common::stderr(&again));
    let r2 = report(&again);
    assert_eq!(r2["applied"][0]["status"], "failed");
    assert!(
        r2["applied"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("etc/sudoers.d/typo not installed"),
        "{}",
        r2["applied"][0]
    );
    assert!(
        r2["applied"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("accounts: nothing to change")
    );
    assert_eq!(
        lab.target.snapshot(),
        after_first,
        "the second restore changed the root"
    );

    // Rolling back the first restore puts every file back, byte for byte.
    let out = lab.rollback(&sb);
    common::assert_ok(&out);
    for name in ACCOUNT_FILES {
        assert_eq!(lab.read(&format!("etc/{name}")), before[name], "{name}");
    }
    assert_eq!(lab.read("etc/sudoers"), sudoers_before);
    assert_eq!(
        lab.target.snapshot(),
        before_snapshot,
        "rollback is not exact"
    );
}

#[test]
fn dry_run_json_describes_the_applier_and_writes_nothing() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let before = lab.target.snapshot();
    let out = lab.restore(&["--dry-run", "--json", "--host-actions", "run"]);
    common::assert_ok(&out);
    let plan = report(&out);
    assert_eq!(plan["outcome"], "dry_run");
    assert_eq!(lab.target.snapshot(), before, "a dry run changed the root");
    assert!(lab.fake.calls().is_empty());
    let appliers = plan["appliers"].as_array().unwrap();
    let a = appliers
        .iter()
        .find(|a| a["name"] == "accounts-merge")
        .unwrap_or_else(|| panic!("{appliers:#?}"));
    assert_eq!(a["categories"], serde_json::json!(["accounts"]));
    let files: Vec<&str> = a["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "etc/gshadow",
        "etc/subuid",
        "etc/subgid",
        "etc/sudoers",
        "etc/sudoers.d/admins",
        "etc/sudoers.d/typo",
    ] {
        assert!(files.contains(&f), "{f} not in {files:?}");
    }
    assert!(!files.contains(&"etc/sudoers.d/README"), "{files:?}");
    let actions: Vec<&str> = a["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    for expected in [
        "users added: alice (1000), bob (1001), frank (1004)",
        "  - uid 1002: this host has carol (uid 1002), the backup has dave (uid 1002)",
        "sudoers: etc/sudoers.d/typo: install after visudo -c -f passes (0440 root:root)",
        "sudoers: etc/sudoers.d/README: unchanged",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} not in {actions:#?}"
        );
    }
    let questions: Vec<(&str, &str)> = a["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["spec"]["id"].as_str().unwrap(),
                q["default"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        questions,
        [("accounts.merge", "yes"), ("sudoers.apply", "yes")]
    );
    let listed: Vec<&str> = plan["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["accounts.merge", "sudoers.apply"]);
    assert!(!plan.to_string().contains("$y$"), "the plan holds no hash");
}

#[test]
fn with_host_actions_deferred_no_sudoers_file_is_installed() {
    require_tools!("tar", "xz", "sha256sum");
    if !require_root() {
        return;
    }
    let lab = lab();
    let sudoers_before = lab.read("etc/sudoers");
    let out = lab.restore(&["--yes", "--host-actions", "defer", "--json"]);
    common::assert_ok(&out);
    let r = report(&out);
    let a = &r["applied"][0];
    assert_eq!(a["status"], "applied", "{a}");
    assert!(
        a["detail"].as_str().unwrap().contains(
            "sudoers not installed: host actions are deferred, so visudo cannot check etc/sudoers, etc/sudoers.d/admins, etc/sudoers.d/typo"
        ),
        "{a}"
    );
    assert_eq!(lab.read("etc/sudoers"), sudoers_before);
    assert_eq!(lab.names("etc/sudoers.d"), ["README"]);
    assert_eq!(
        String::from_utf8(lab.read("etc/passwd")).unwrap(),
        expected()["passwd"]
    );
    assert!(lab.fake.calls().is_empty());
}

#[test]
fn answers_given_up_front_decide_and_a_bad_one_is_exit_2_before_any_write() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab();
    let before = lab.target.snapshot();

    // Not one of yes/no: exit 2 naming the question, nothing written.
    let out = lab.restore(&[
        "--yes",
        "--host-actions",
        "run",
        "--answer",
        "sudoers.apply=maybe",
    ]);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("sudoers.apply"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(lab.target.snapshot(), before);

    // Both declined: the category is skipped, nothing of the root changes.
    let out = lab.restore(&[
        "--yes",
        "--host-actions",
        "run",
        "--json",
        "--answer",
        "accounts.merge=no",
        "--answer",
        "sudoers.apply=no",
    ]);
    common::assert_ok(&out);
    let r = report(&out);
    let a = &r["applied"][0];
    assert_eq!(a["status"], "skipped", "{a}");
    assert_eq!(
        a["reason"],
        "account files left as they are (accounts.merge = no); sudoers files left as they are (sudoers.apply = no)"
    );
    let sources: Vec<(&str, &str, &str)> = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["id"].as_str().unwrap(),
                q["answer"].as_str().unwrap(),
                q["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("accounts.merge", "no", "flag"),
            ("sudoers.apply", "no", "flag")
        ]
    );
    assert_eq!(lab.target.snapshot(), before);
}
