//! Rollback bound to its root, with the real binary: a restore into scratch root A, then
//! rollbacks aimed at another root B, at a replaced folder at A's path, without `--root`,
//! through a planted symlink, without confirmation; the default export folder inside the
//! root; `decrypt` writing into the current folder.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rexpect::process::WaitStatus;
use rexpect::session::{Options, spawn_with_options};

use proxsave_archive::key::derive_identity;
use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{
    BackupSpec, Encryption, HostTree, gnu_tar_pax, make_backup, snapshot,
};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::{require_tools, sh};

/// A PVE cluster backup restored (full, RECOVERY, host actions deferred, no `--export-dir`)
/// into scratch root A; B is a byte-identical copy of A taken before the restore.
struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    a: PathBuf,
    b: PathBuf,
    /// A before the restore.
    before_a: Vec<String>,
    /// B (never restored into).
    before_b: Vec<String>,
    /// The safety backup.
    sb: PathBuf,
    /// The restore's JSON report.
    report: serde_json::Value,
    /// Mode and mtime of A's root folder before the restore.
    root_meta: (i64, i64, u32),
}

impl Lab {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `proxsave restore --rollback SB extra…`, run from the lab folder (not from A).
    fn rollback(&self, extra: &[&str]) -> Output {
        self.fake
            .command(common::bin())
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .arg("restore")
            .arg("--rollback")
            .arg(&self.sb)
            .args(extra)
            .output()
            .expect("run proxsave")
    }
}

fn restored_lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeBin::new(dir.path().join("fake"));
    let source = HostTree::pve_cluster_node(dir.path().join("source"));
    let bundles = dir.path().join("backups");
    fs::create_dir(&bundles).unwrap();
    let bundle = make_host_backup_in(&source, &host_spec(&source), &bundles);
    let target = HostRoot::pve(dir.path().join("a"));
    let a = target.root().to_path_buf();
    let b = dir.path().join("b");
    sh(dir.path(), "cp -a a b");
    let before_a = snapshot(&a);
    let before_b = snapshot(&b);
    let root_meta = mtime(&a);
    assert_eq!(before_a, before_b, "B is not a copy of A");
    let config = dir.path().join("backup.env");
    fs::write(&config, "BASE_DIR=/opt/proxsave\n").unwrap();
    let out = fake
        .command(common::bin())
        .env("TZ", "UTC")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .arg("restore")
        .arg("--backup")
        .arg(&bundle)
        .arg("--root")
        .arg(&a)
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--config")
        .arg(&config)
        .args([
            "--yes",
            "--host-actions",
            "defer",
            "--json",
            "--mode",
            "full",
            "--cluster-mode",
            "recovery",
        ])
        .output()
        .expect("run proxsave");
    common::assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sb = PathBuf::from(
        report["safety_backup"]["path"]
            .as_str()
            .expect("a safety backup"),
    );
    assert_ne!(snapshot(&a), before_a, "the restore changed nothing");
    // The summary's command needs no --root and says how to skip the question.
    let human = common::stderr(&out);
    let cmd = format!("proxsave restore --rollback {}", sb.display());
    assert_eq!(report["rollback_command"], cmd.as_str());
    assert!(
        human.contains(&format!("Roll back with: {cmd}\n")),
        "{human}"
    );
    assert!(human.contains("--yes skips the question"), "{human}");
    Lab {
        dir,
        fake,
        a,
        b,
        before_a,
        before_b,
        sb,
        report,
        root_meta,
    }
}

/// The snapshot without `rel` and what lies below it.
fn without(snap: &[String], rel: &str) -> Vec<String> {
    let p = format!(" ./{rel}");
    snap.iter()
        .filter(|l| !(l.contains(&format!("{p} ")) || l.contains(&format!("{p}/"))))
        .cloned()
        .collect()
}

fn mtime(p: &Path) -> (i64, i64, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec(), m.mode())
}

fn canon(p: &Path) -> String {
    fs::canonicalize(p).unwrap().display().to_string()
}

#[test]
fn another_root_is_refused_naming_both_and_changing_nothing() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    let after_a = snapshot(&lab.a);
    let out = lab.rollback(&["--root", lab.b.to_str().unwrap(), "--yes"]);
    assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(err.contains(&canon(&lab.a)), "{err}");
    assert!(err.contains(&canon(&lab.b)), "{err}");
    assert!(
        err.contains("the path and the device/inode differ"),
        "{err}"
    );
    assert!(err.contains("Nothing was changed"), "{err}");
    assert!(err.contains("--force-root"), "{err}");
    assert_eq!(snapshot(&lab.a), after_a);
    assert_eq!(snapshot(&lab.b), lab.before_b);

    // Forced, B (a copy of A before the restore) is "rolled back" to what it already is.
    let out = lab.rollback(&["--root", lab.b.to_str().unwrap(), "--force-root", "--yes"]);
    common::assert_ok(&out);
    assert!(common::stdout(&out).contains("WARNING: --force-root"));
    assert_eq!(snapshot(&lab.b), lab.before_b);
    assert_eq!(snapshot(&lab.a), after_a);
}

#[test]
fn the_same_path_holding_another_folder_is_refused() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    sh(lab.dir.path(), "mv a a.old && cp -a a.old a");
    let after = snapshot(&lab.a);
    assert_eq!(snapshot(&lab.path("a.old")), after);
    for extra in [
        &["--yes"][..],
        &["--root", lab.a.to_str().unwrap(), "--yes"][..],
    ] {
        let out = lab.rollback(extra);
        assert_eq!(common::code(&out), 2, "{extra:?}: {}", common::stderr(&out));
        let err = common::stderr(&out);
        assert!(err.contains("the device/inode differs"), "{err}");
        assert!(!err.contains("the path and"), "{err}");
        assert!(err.contains(&canon(&lab.a)), "{err}");
        assert_eq!(snapshot(&lab.a), after);
        assert_eq!(snapshot(&lab.path("a.old")), after);
    }
}

#[test]
fn without_root_the_recorded_root_is_put_back_exactly_and_nothing_else() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    let out = lab.rollback(&["--yes"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!("Root checked: {} is the folder", canon(&lab.a))),
        "{text}"
    );
    assert_eq!(snapshot(&lab.a), lab.before_a, "rollback is not exact");
    assert_eq!(mtime(&lab.a), lab.root_meta, "root folder metadata");
    assert_eq!(snapshot(&lab.b), lab.before_b);
    // The lab folder holds what it held (a, b, the backups, work, …) and nothing new.
    let mut names: Vec<String> = fs::read_dir(lab.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a", "b", "backup.env", "backups", "fake", "source", "work"]
    );
}

#[test]
fn the_default_export_goes_inside_the_root_and_its_rollback_removes_it() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    let export = PathBuf::from(lab.report["export_dir"].as_str().expect("an export"));
    let name = export.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("proxmox-config-export-"), "{name}");
    assert_eq!(export, lab.a.join("opt/proxsave").join(&name));
    assert_eq!(
        fs::metadata(&export).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert!(
        fs::read_dir(&export).unwrap().next().is_some(),
        "empty export"
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{}.created", lab.sb.display())).unwrap())
            .unwrap();
    assert_eq!(
        sidecar["export"]["dir"],
        format!("opt/proxsave/{name}").as_str()
    );
    // The preview names the export folder as removed with everything in it.
    let out = lab.rollback(&[]);
    assert_eq!(common::code(&out), 2);
    assert!(
        common::stdout(&out).contains(&format!(
            "/opt/proxsave/{name}  (export folder, with everything in it)"
        )),
        "{}",
        common::stdout(&out)
    );
    let out = lab.rollback(&["--yes"]);
    common::assert_ok(&out);
    assert!(!lab.a.join("opt").exists());
    assert_eq!(snapshot(&lab.a), lab.before_a);
}

#[test]
fn a_symlinked_parent_or_an_escaping_name_is_refused_by_name_and_the_rest_rolled_back() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    // etc/ssh (saved: sshd_config, a host key) becomes a link to a folder outside the root.
    let outside = lab.path("outside-ssh");
    sh(
        lab.dir.path(),
        format!(
            "cp -a a/etc/ssh outside-ssh && rm -r a/etc/ssh && ln -s {} a/etc/ssh",
            outside.display()
        ),
    );
    let outside_before = snapshot(&outside);
    // A tampered sidecar names a path above the root.
    fs::write(lab.path("escape-me"), "keep").unwrap();
    let sidecar = PathBuf::from(format!("{}.created", lab.sb.display()));
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&sidecar).unwrap()).unwrap();
    doc["created"]
        .as_array_mut()
        .unwrap()
        .push("../escape-me".into());
    fs::write(&sidecar, serde_json::to_vec(&doc).unwrap()).unwrap();

    let out = lab.rollback(&["--yes"]);
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    let text = common::stdout(&out);
    for refused in [
        "refused /etc/ssh/sshd_config: ",
        "refused /etc/ssh/ssh_host_ed25519_key: ",
        "refused /etc/ssh: ",
        "refused ../escape-me: ",
    ] {
        assert!(text.contains(refused), "{refused:?} not in:\n{text}");
    }
    assert!(text.contains("Rollback incomplete"), "{text}");
    // Nothing written through the link, nothing removed above the root.
    assert_eq!(snapshot(&outside), outside_before);
    assert_eq!(fs::read_to_string(lab.path("escape-me")).unwrap(), "keep");
    assert_eq!(
        fs::read_link(lab.a.join("etc/ssh")).unwrap(),
        outside,
        "the planted link itself is left alone"
    );
    // Everything else is back as it was.
    assert_eq!(
        without(&snapshot(&lab.a), "etc/ssh"),
        without(&lab.before_a, "etc/ssh")
    );
}

#[test]
fn without_confirmation_nothing_changes() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    let after = snapshot(&lab.a);
    let out = lab.rollback(&[]);
    assert_eq!(common::code(&out), 2);
    assert!(common::stderr(&out).contains("needs confirmation: add --yes"));
    // The preview was shown first.
    let text = common::stdout(&out);
    assert!(text.contains("Will restore "), "{text}");
    assert!(text.contains("  /etc/ssh/sshd_config\n"), "{text}");
    assert!(text.contains("Will remove "), "{text}");
    assert!(text.contains("  /etc/corosync/corosync.conf\n"), "{text}");
    assert_eq!(snapshot(&lab.a), after);
    // --json: the whole preview as a document, still exit 2 and no change.
    let out = lab.rollback(&["--json"]);
    assert_eq!(common::code(&out), 2);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["schema"], "proxsave/rollback-plan/v1");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&fs::read(format!("{}.created", lab.sb.display())).unwrap())
            .unwrap();
    // Every created path outside the export folder that exists now is listed (the export
    // goes as one tree). Planned paths the restore did not make (RECOVERY lists the
    // database's `-wal`/`-shm` so a log of the restored database is removed on rollback)
    // are recorded but have nothing to remove.
    let remove: Vec<&str> = plan["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for c in sidecar["created"].as_array().unwrap() {
        let rel = c.as_str().unwrap();
        if fs::symlink_metadata(lab.a.join(rel)).is_err() {
            continue;
        }
        let c = format!("/{rel}");
        assert!(remove.contains(&c.as_str()), "{c} not in {remove:?}");
    }
    assert_eq!(plan["remove_trees"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot(&lab.a), after);
}

#[test]
fn the_summary_command_pasted_at_a_terminal_previews_and_asks() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = restored_lab();
    // `proxsave` on PATH, as on a host.
    let bin = lab.path("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(common::bin(), bin.join("proxsave")).unwrap();
    let cmd_line = lab.report["rollback_command"].as_str().unwrap().to_string();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&cmd_line)
        .current_dir(lab.dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    let shown = p
        .exp_string(&format!("Roll back {} now? (yes/no): ", canon(&lab.a)))
        .unwrap();
    assert!(shown.contains("Will restore "), "{shown}");
    assert!(shown.contains("Will remove "), "{shown}");
    p.send_line("yes").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Rolled back "), "{rest}");
    match p.process().wait().unwrap() {
        WaitStatus::Exited(_, 0) => {}
        other => panic!("{other:?}: {rest}"),
    }
    assert_eq!(snapshot(&lab.a), lab.before_a);
}

const PASSPHRASE: &str = "Correct-Horse-Battery-9";
const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";

#[test]
fn decrypt_without_out_writes_a_0600_bundle_into_the_current_folder() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("host");
    HostTree::pve_node(&tree);
    let recipient = derive_identity(PASSPHRASE, SALT_V2).to_public().to_string();
    let made = make_backup(
        &gnu_tar_pax(&tree),
        &BackupSpec {
            encryption: Encryption::Recipients(vec![recipient]),
            passphrase_salt: Some(SALT_V2.into()),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(dir.path());
    let pass = dir.path().join("pass");
    fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let base = dir.path().join("base");
    let config = dir.path().join("backup.env");
    fs::write(&config, format!("BASE_DIR={}\n", base.display())).unwrap();
    let cwd = dir.path().join("here");
    fs::create_dir(&cwd).unwrap();
    // A permissive umask must not widen the plaintext's mode.
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(common::bin())
        .args(["decrypt", "--backup"])
        .arg(&bundle)
        .arg("--config")
        .arg(&config)
        .arg("--passphrase-file")
        .arg(&pass)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    common::assert_ok(&out);
    let plain = made.archive_name.trim_end_matches(".age").to_string();
    let written = cwd.join(format!("{plain}.decrypted.bundle.tar"));
    assert_eq!(common::stdout(&out).trim(), written.to_str().unwrap());
    assert_eq!(
        fs::metadata(&written).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let left: Vec<_> = fs::read_dir(&cwd).unwrap().collect();
    assert_eq!(left.len(), 1, "only the bundle");
    assert!(!base.exists(), "nothing written under BASE_DIR");
    // The plaintext member inside is owner-only too.
    let listing = Command::new("tar")
        .arg("-tvf")
        .arg(&written)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let member = listing
        .lines()
        .find(|l| l.ends_with(&format!(" {plain}")))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(member.starts_with("-rw-------"), "{member}");
}
