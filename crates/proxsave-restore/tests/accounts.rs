//! The accounts merge on a realistic case (a fresh PVE root and an older host's backup), its
//! result checked with the real `pwck -r` and `grpck -r`, and the sudoers plan checked with
//! the real `visudo -c -f`.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proxsave_restore::system::accounts::{
    AccountFile, AccountFiles, ConflictKind, LoginDefs, MergeOutcome, Merged, StagedKind,
    StagedSudoers, SudoersAction, gid_of, merge, plan_sudoers, visudo_check_command,
};
use proxsave_testkit::require_tools;

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/accounts")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn side(prefix: &str) -> AccountFiles {
    let texts: Vec<(AccountFile, String)> = AccountFile::ALL
        .iter()
        .map(|&f| (f, data(&format!("{prefix}_{}", f.name()))))
        .collect();
    AccountFiles::from_texts(texts.iter().map(|(f, t)| (*f, t.as_str())))
}

fn done(merged: Merged) -> MergeOutcome {
    match merged {
        Merged::Done(outcome) => *outcome,
        Merged::Skipped(reason) => panic!("merge skipped: {reason}"),
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

fn merged_side(current: &AccountFiles, outcome: &MergeOutcome) -> AccountFiles {
    let texts: Vec<(AccountFile, String)> = AccountFile::ALL
        .iter()
        .filter_map(|&f| {
            let text = outcome
                .file(f)
                .map(str::to_owned)
                .or_else(|| current.text(f))?;
            Some((f, text))
        })
        .collect();
    AccountFiles::from_texts(texts.iter().map(|(f, t)| (*f, t.as_str())))
}

#[test]
fn older_hosts_admins_are_merged_into_a_fresh_pve_root() {
    let host = side("host");
    let backup = side("backup");
    let defs = LoginDefs::parse(&data("login.defs"));
    let outcome = done(merge(&host, &backup, &defs));

    let passwd = edited(
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
    );
    let shadow = edited(
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
    );
    let group = edited(
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
    );
    let gshadow = edited(
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
    );
    let subids = edited(
        &data("host_subuid"),
        &[],
        &["alice:231072:65536", "bob:296608:65536"],
    );

    assert_eq!(outcome.file(AccountFile::Passwd), Some(passwd.as_str()));
    assert_eq!(outcome.file(AccountFile::Shadow), Some(shadow.as_str()));
    assert_eq!(outcome.file(AccountFile::Group), Some(group.as_str()));
    assert_eq!(outcome.file(AccountFile::Gshadow), Some(gshadow.as_str()));
    assert_eq!(outcome.file(AccountFile::Subuid), Some(subids.as_str()));
    assert_eq!(outcome.file(AccountFile::Subgid), Some(subids.as_str()));

    let report = &outcome.report;
    let names = |v: Vec<&str>| v.join(" ");
    assert_eq!(
        names(report.users_added.iter().map(|u| u.name.as_str()).collect()),
        "alice bob frank"
    );
    assert_eq!(report.users_locked, ["frank"]);
    assert_eq!(report.users_updated.len(), 1);
    assert_eq!(report.users_updated[0].name, "erin");
    assert_eq!(
        report.users_updated[0].files,
        [AccountFile::Passwd, AccountFile::Shadow]
    );
    let kinds: Vec<(ConflictKind, &str)> = report
        .conflicts
        .iter()
        .map(|c| (c.kind, c.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ConflictKind::SameUidOtherName, "uid 1002"),
            (ConflictKind::GroupGidClash, "gid 1020"),
        ]
    );
    assert_eq!(report.conflicts[0].host, "carol (uid 1002)");
    assert_eq!(report.conflicts[0].backup, "dave (uid 1002)");
    assert_eq!(report.conflicts[1].host, "group storage (gid 1020)");
    assert_eq!(report.conflicts[1].backup, "group media (gid 1020)");
    assert_eq!(report.refused.len(), 1, "{:?}", report.refused);
    assert!(report.refused[0].subject.contains("docker"));
    assert_eq!(report.system_users_ignored, 13);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let summary = report.summary();
    for expected in [
        "users added: alice (1000), bob (1001), frank (1004)",
        "locked (no password in the backup): frank",
        "users updated: erin (1003: passwd, shadow)",
        "groups added: alice (1000), bob (1001), frank (1004), devs (1010: alice, bob)",
        "memberships added: alice in adm, alice in sudo, bob in sudo",
        "uid 1002: this host has carol (uid 1002), the backup has dave (uid 1002)",
        "gid 1020: this host has group storage (gid 1020), the backup has group media (gid 1020)",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} not in:\n{summary}"
        );
    }
    let json = serde_json::to_value(report).expect("report serialises");
    assert_eq!(json["conflicts"][0]["kind"], "same_uid_other_name");
    assert_eq!(json["users_added"][2]["uid"], 1004);
    assert_eq!(json["files_changed"].as_array().map(Vec::len), Some(6));
    let text = json.to_string();
    assert!(
        !text.contains("$y$"),
        "the report must not hold password hashes"
    );

    // The applier resolves `shadow` in the merged group file.
    let merged = merged_side(&host, &outcome);
    assert_eq!(
        merged.group.as_ref().and_then(|g| gid_of(g, "shadow")),
        Some(42)
    );

    // A second merge with the same backup changes nothing.
    let again = done(merge(&merged, &backup, &defs));
    assert!(again.files.is_empty(), "{:?}", again.report.files_changed);
    assert!(again.report.is_noop());
    assert!(again.report.users_added.is_empty() && again.report.memberships_added.is_empty());
}

#[test]
fn an_empty_or_missing_backup_passwd_skips_the_merge() {
    let host = side("host");
    let defs = LoginDefs::default();
    let mut backup = side("backup");
    backup.passwd = None;
    let Merged::Skipped(reason) = merge(&host, &backup, &defs) else {
        panic!("not skipped")
    };
    assert!(reason.contains("no etc/passwd"), "{reason}");
    backup.set(AccountFile::Passwd, "\n  \n");
    let Merged::Skipped(reason) = merge(&host, &backup, &defs) else {
        panic!("not skipped")
    };
    assert!(reason.contains("etc/passwd is empty"), "{reason}");
}

// ------------------------------------------------------------------------------------------
// Real tools
// ------------------------------------------------------------------------------------------

/// `pwck -R`/`grpck -R` chroot into the root, which needs root privileges.
fn require_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if proxsave_testkit::tools_required() {
        panic!("pwck -R and grpck -R need root (they chroot); CI runs as root");
    }
    eprintln!("SKIP: pwck -R and grpck -R need root (they chroot)");
    false
}

/// A root with the account files of `files`, `etc/login.defs`, and every home directory and
/// shell any of `all_passwd` names (so that pwck reports account database findings only).
fn lay_root(dir: &Path, files: &AccountFiles, all_passwd: &[&str]) -> PathBuf {
    let root = dir.to_path_buf();
    fs::create_dir_all(root.join("etc")).expect("etc");
    for file in AccountFile::ALL {
        if let Some(text) = files.text(file) {
            fs::write(root.join(file.path()), text).expect("write account file");
        }
    }
    fs::write(root.join("etc/login.defs"), data("login.defs")).expect("login.defs");
    for passwd in all_passwd {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() != 7 {
                continue;
            }
            let home = root.join(fields[5].trim_start_matches('/'));
            fs::create_dir_all(&home).expect("home");
            let shell = root.join(fields[6].trim_start_matches('/'));
            if let Some(parent) = shell.parent() {
                fs::create_dir_all(parent).expect("shell dir");
            }
            if !shell.exists() {
                fs::write(&shell, "").expect("shell");
                fs::set_permissions(&shell, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
        }
    }
    root
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

/// The findings `after` has more of than `before`.
fn new_findings(before: &HashMap<String, usize>, after: &HashMap<String, usize>) -> Vec<String> {
    let mut new: Vec<String> = after
        .iter()
        .filter(|(line, n)| **n > before.get(*line).copied().unwrap_or(0))
        .map(|(line, _)| line.clone())
        .collect();
    new.sort();
    new
}

fn check_roots(host: &AccountFiles, merged: &AccountFiles) -> (Vec<String>, Vec<String>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let passwds = [
        host.text(AccountFile::Passwd).unwrap_or_default(),
        merged.text(AccountFile::Passwd).unwrap_or_default(),
    ];
    let all: Vec<&str> = passwds.iter().map(String::as_str).collect();
    let before = lay_root(&tmp.path().join("before"), host, &all);
    let after = lay_root(&tmp.path().join("after"), merged, &all);
    let pw = new_findings(&findings("pwck", &before), &findings("pwck", &after));
    let gr = new_findings(&findings("grpck", &before), &findings("grpck", &after));
    (pw, gr)
}

#[test]
fn pwck_and_grpck_find_nothing_new_after_the_merge() {
    require_tools!("pwck", "grpck");
    if !require_root() {
        return;
    }
    let host = side("host");
    let backup = side("backup");
    let defs = LoginDefs::parse(&data("login.defs"));
    let outcome = done(merge(&host, &backup, &defs));
    let merged = merged_side(&host, &outcome);

    let (pw, gr) = check_roots(&host, &merged);
    assert!(pw.is_empty(), "pwck -r finds new problems: {pw:#?}");
    assert!(gr.is_empty(), "grpck -r finds new problems: {gr:#?}");

    // The check is not vacuous: a merge that forgot gshadow, or doubled a user, is caught.
    let mut broken = merged.clone();
    broken.set(
        AccountFile::Gshadow,
        &host.text(AccountFile::Gshadow).unwrap_or_default(),
    );
    let mut passwd = merged.text(AccountFile::Passwd).unwrap_or_default();
    passwd.push_str("alice:x:1000:1000:Alice Admin,,,:/home/alice:/bin/bash\n");
    broken.set(AccountFile::Passwd, &passwd);
    let (pw, gr) = check_roots(&host, &broken);
    assert!(!pw.is_empty(), "pwck should flag the doubled user");
    assert!(
        !gr.is_empty(),
        "grpck should flag the missing gshadow lines"
    );
}

fn visudo_passes(file: &Path) -> bool {
    let check = visudo_check_command(&file.to_string_lossy());
    Command::new(&check.program)
        .args(&check.args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run visudo: {e}"))
        .status
        .success()
}

#[test]
fn sudoers_plan_and_visudo_check_each_staged_file() {
    require_tools!("visudo");
    let valid_main = b"Defaults\tenv_reset\nDefaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n".as_slice();
    let valid_drop_in = b"alice ALL=(ALL) NOPASSWD: /usr/sbin/qm, /usr/sbin/pct\n".as_slice();
    let broken_drop_in = b"bob ALL=(ALL) NOPASSWD ALL\n".as_slice();
    let staged = [
        StagedSudoers {
            path: "etc/sudoers.d/alice",
            kind: StagedKind::Regular,
            content: valid_drop_in,
            current: None,
        },
        StagedSudoers {
            path: "etc/sudoers",
            kind: StagedKind::Regular,
            content: valid_main,
            current: Some(b"root ALL=(ALL:ALL) ALL\n"),
        },
        StagedSudoers {
            path: "etc/sudoers.d/bob",
            kind: StagedKind::Regular,
            content: broken_drop_in,
            current: None,
        },
        StagedSudoers {
            path: "etc/sudoers.d/README",
            kind: StagedKind::Regular,
            content: b"# comments only\n",
            current: Some(b"# comments only\n"),
        },
        StagedSudoers {
            path: "etc/sudoers.d/alice.dpkg-old",
            kind: StagedKind::Regular,
            content: valid_drop_in,
            current: None,
        },
        StagedSudoers {
            path: "etc/sudoers.d/alice~",
            kind: StagedKind::Regular,
            content: valid_drop_in,
            current: None,
        },
        StagedSudoers {
            path: "etc/sudoers.d/link",
            kind: StagedKind::Symlink,
            content: b"",
            current: None,
        },
        StagedSudoers {
            path: "etc/sudoers.d/empty",
            kind: StagedKind::Regular,
            content: b"",
            current: None,
        },
    ];
    let plan = plan_sudoers(&staged);
    let actions: Vec<(&str, &str)> = plan
        .items
        .iter()
        .map(|i| {
            let what = match &i.action {
                SudoersAction::Install => "install",
                SudoersAction::Unchanged => "unchanged",
                SudoersAction::Skip { .. } => "skip",
            };
            (i.path.as_str(), what)
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("etc/sudoers", "install"),
            ("etc/sudoers.d/README", "unchanged"),
            ("etc/sudoers.d/alice", "install"),
            ("etc/sudoers.d/alice.dpkg-old", "skip"),
            ("etc/sudoers.d/alice~", "skip"),
            ("etc/sudoers.d/bob", "install"),
            ("etc/sudoers.d/empty", "skip"),
            ("etc/sudoers.d/link", "skip"),
        ]
    );

    // The applier's part, with the real visudo on each staged file separately.
    let stage = tempfile::tempdir().expect("stage");
    fs::create_dir_all(stage.path().join("etc/sudoers.d")).expect("sudoers.d");
    let content: HashMap<&str, &[u8]> = staged.iter().map(|s| (s.path, s.content)).collect();
    let mut verdicts = Vec::new();
    for item in plan.to_install() {
        let file = stage.path().join(&item.path);
        fs::write(&file, content[item.path.as_str()]).expect("stage file");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).expect("chmod");
        verdicts.push((item.path.as_str(), visudo_passes(&file)));
    }
    assert_eq!(
        verdicts,
        [
            ("etc/sudoers", true),
            ("etc/sudoers.d/alice", true),
            ("etc/sudoers.d/bob", false),
        ]
    );
}
