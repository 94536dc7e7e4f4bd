//! What a restore says before it does anything (issue 12): the plan's three path lists, the
//! warnings that apply and only those, `--categories` that match nothing, unknown ids caught
//! before the backup is read, `proxsave categories`, and `diff` masking only secrets.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use proxsave_testkit::fixture::HostTree;
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

struct Lab {
    dir: tempfile::TempDir,
    target: HostRoot,
    bundle: PathBuf,
}

fn lab(target: fn(PathBuf) -> HostRoot, source: fn(PathBuf) -> HostTree) -> Lab {
    lab_edited(target, source, |_| {})
}

/// A target root, and a backup of `source` after `edit` changed its files.
fn lab_edited(
    target: fn(PathBuf) -> HostRoot,
    source: fn(PathBuf) -> HostTree,
    edit: impl FnOnce(&Path),
) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path().join("source"));
    edit(&src.root);
    let bundles = dir.path().join("backups");
    fs::create_dir(&bundles).unwrap();
    let bundle = make_host_backup_in(&src, &host_spec(&src), &bundles);
    let target = target(dir.path().join("root"));
    Lab {
        dir,
        target,
        bundle,
    }
}

impl Lab {
    fn restore(&self, extra: &[&str]) -> Output {
        Command::new(common::bin())
            .env("TZ", "UTC")
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
            .args(extra)
            .output()
            .expect("run proxsave")
    }
}

/// The lines of the section of `text` that starts with the line beginning with `title`, up
/// to the next blank line.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

fn pve_root(p: PathBuf) -> HostRoot {
    HostRoot::pve(p)
}
fn pve_standalone(p: PathBuf) -> HostTree {
    HostTree::pve_standalone_node(p)
}
fn pbs_node(p: PathBuf) -> HostTree {
    HostTree::pbs_node(p)
}

#[test]
fn the_plan_lists_what_is_written_exported_and_staged_with_only_the_warnings_that_apply() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(pve_root, pve_standalone);
    // The root already holds the backup's sshd_config (unchanged) and another hostid
    // (replaced).
    let src = lab.dir.path().join("source");
    let root = lab.target.root().to_path_buf();
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    fs::copy(
        src.join("etc/ssh/sshd_config"),
        root.join("etc/ssh/sshd_config"),
    )
    .unwrap();
    fs::write(root.join("etc/hostid"), "not the backup's").unwrap();

    let out = lab.restore(&["--mode", "full", "--dry-run"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);

    let written = section(&text, "Written into the root ");
    let exported = section(&text, "Exported to ");
    let staged = section(&text, "Staged for an applier");
    assert!(
        !written.is_empty() && !exported.is_empty() && !staged.is_empty(),
        "{text}"
    );
    // Written: with what is there now.
    let ssh = written
        .iter()
        .find(|l| l.starts_with("  • /etc/ssh/  ("))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(ssh.contains("1 unchanged"), "{ssh}");
    assert!(
        written.contains(&"  • /etc/hostid  (replaced)"),
        "{written:#?}"
    );
    assert!(written.contains(&"  • /home/  (new)"), "{written:#?}");
    // Never listed as written: /etc/pve is exported, the network staged.
    assert!(
        !written
            .iter()
            .any(|l| l.contains("/etc/pve") || l.contains("/etc/network")),
        "{written:#?}"
    );
    assert!(
        exported.iter().any(|l| l.starts_with("  • /etc/pve/  (")),
        "{exported:#?}"
    );
    assert!(
        staged.contains(&"  • /etc/pve/storage.cfg  (applier: storage-pve)"),
        "{staged:#?}"
    );
    let net = staged
        .iter()
        .find(|l| l.starts_with("  • /etc/network/  ("))
        .unwrap_or_else(|| panic!("{staged:#?}"));
    assert!(net.contains("applier: "), "{net}");

    let warnings = section(&text, "⚠ WARNING:");
    let overwrite = warnings
        .iter()
        .find(|l| l.contains("OVERWRITTEN"))
        .unwrap_or_else(|| panic!("{warnings:#?}"));
    assert!(
        overwrite
            .contains(" existing files in the root will be OVERWRITTEN (listed as replaced above)"),
        "{overwrite}"
    );
    // A scratch root: no restart or reboot advice, before or after.
    assert!(
        !text.contains("Services may need to be restarted"),
        "{text}"
    );
    assert!(!text.contains("REBOOT"), "{text}");
    // FULL restores the network and SSL the backup holds: no TFA hint.
    assert!(!text.contains("TFA/WebAuthn"), "{text}");

    // One file replaced: singular.
    let out = lab.restore(&["--categories", "zfs", "--dry-run"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(
        text.contains(
            "  • 1 existing file in the root will be OVERWRITTEN (listed as replaced above)"
        ),
        "{text}"
    );

    // Access control alone: the hint names what the backup holds and the plan leaves out.
    let out = lab.restore(&["--categories", "pve_access_control", "--dry-run"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    let tfa = text
        .lines()
        .find(|l| l.contains("TFA/WebAuthn"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        tfa.contains("access control is restored without the backup's network"),
        "{tfa}"
    );
    // Nothing is written into the root: no overwrite or safety-backup warning.
    assert!(!text.contains("Written into the root"), "{text}");
    assert!(!text.contains("OVERWRITTEN"), "{text}");
}

#[test]
fn export_only_access_control_gets_no_tfa_hint() {
    require_tools!("tar", "xz", "sha256sum");
    // A PBS backup on a PVE host: every PBS category (access control too) is exported only.
    let lab = lab(pve_root, pbs_node);
    let out = lab.restore(&["--mode", "full", "--dry-run", "--continue-incompatible"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(
        text.contains("exported only: a PBS category on a PVE host"),
        "{text}"
    );
    assert!(!text.contains("TFA/WebAuthn"), "{text}");
    let exported = section(&text, "Exported to ");
    assert!(
        exported
            .iter()
            .any(|l| l.starts_with("  • /etc/proxmox-backup/")),
        "{text}"
    );
}

#[test]
fn categories_that_match_nothing_are_errors() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(pve_root, pve_standalone);
    let before = proxsave_testkit::fixture::snapshot(lab.target.root());

    // A path: exit 1 with the words of `ls` for the same selection.
    let out = lab.restore(&["--categories", "/etc/nothere", "--yes"]);
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    let ls = Command::new(common::bin())
        .arg("ls")
        .arg("--backup")
        .arg(&lab.bundle)
        .arg("/etc/nothere")
        .output()
        .unwrap();
    assert_eq!(common::code(&ls), 1);
    let ls_line = common::stderr(&ls);
    let ls_line = ls_line.lines().last().unwrap();
    assert!(
        ls_line.starts_with("proxsave: no entry matches"),
        "{ls_line}"
    );
    assert!(
        common::stderr(&out).lines().any(|l| l == ls_line),
        "{}",
        common::stderr(&out)
    );

    // A known id the backup lacks: exit 1.
    let out = lab.restore(&["--categories", "pbs_tape", "--yes"]);
    assert_eq!(common::code(&out), 1, "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("category pbs_tape is not in this backup"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(
        proxsave_testkit::fixture::snapshot(lab.target.root()),
        before
    );
    assert!(!lab.dir.path().join("export").exists());
}

#[test]
fn an_unknown_id_is_exit_2_with_a_suggestion_before_the_backup_is_read() {
    // No backup at all, and a corrupt one: the id is checked first, within a second.
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("x.tar.xz.bundle.tar");
    fs::write(&corrupt, vec![0x5a; 4 << 20]).unwrap();
    for backup in [dir.path().join("missing.bundle.tar"), corrupt] {
        let started = Instant::now();
        let out = Command::new(common::bin())
            .stdin(Stdio::null())
            .args(["restore", "--yes", "--categories", "sshh", "--root"])
            .arg(dir.path())
            .arg("--backup")
            .arg(&backup)
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(common::code(&out), 2, "{}", common::stderr(&out));
        let err = common::stderr(&out);
        assert!(
            err.contains("`sshh` is neither a category id nor a path"),
            "{err}"
        );
        assert!(err.contains("did you mean `ssh`?"), "{err}");
        assert!(
            !err.contains("checksum") && !err.contains("cannot open"),
            "{err}"
        );
    }
    // The nearest id by words too.
    let out = Command::new(common::bin())
        .stdin(Stdio::null())
        .args([
            "restore",
            "--yes",
            "--categories",
            "storage-pve",
            "--backup",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(common::code(&out), 2);
    assert!(common::stderr(&out).contains("did you mean `storage_pve`?"));
}

#[test]
fn categories_lists_ids_handling_paths_and_modes() {
    let out = common::run(["categories", "--json"]);
    common::assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "proxsave/categories/v1");
    let all = v["categories"].as_array().unwrap();
    assert_eq!(all.len(), 32);
    let get = |id: &str| {
        all.iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
            .clone()
    };
    let ssh = get("ssh");
    assert_eq!(ssh["name"], "SSH Configuration");
    assert_eq!(ssh["handling"], "normal");
    assert_eq!(
        ssh["paths"],
        serde_json::json!(["/root/.ssh/", "/etc/ssh/"])
    );
    assert_eq!(ssh["modes"], serde_json::json!(["full", "base", "custom"]));
    assert_eq!(get("network")["handling"], "staged");
    assert_eq!(get("filesystem")["handling"], "staged");
    let export = get("pve_config_export");
    assert_eq!(export["handling"], "export");
    assert_eq!(export["modes"], serde_json::json!(["full", "custom"]));
    assert_eq!(
        get("storage_pve")["modes"],
        serde_json::json!(["full", "storage", "custom"])
    );
    // The human listing names every id.
    let out = common::run(["categories"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    for c in all {
        let id = c["id"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{id}"
        );
    }
    // docs/cli.md lists them all too.
    let doc =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md")).unwrap();
    for c in all {
        let id = c["id"].as_str().unwrap();
        assert!(
            doc.contains(&format!("| `{id}` |")),
            "docs/cli.md lacks {id}"
        );
    }
}

#[test]
fn diff_masks_only_secrets_unless_asked() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab_edited(pve_root, pve_standalone, |src| {
        fs::create_dir_all(src.join("etc/ssh")).unwrap();
        fs::write(
            src.join("etc/ssh/sshd_config"),
            "PasswordAuthentication no\nPermitRootLogin prohibit-password\n",
        )
        .unwrap();
        fs::write(
            src.join("etc/fstab"),
            "//nas/share /mnt/s cifs username=u,password=hunter2 0 0\n",
        )
        .unwrap();
    });
    let root = lab.target.root();
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin yes\n").unwrap();
    fs::write(root.join("etc/fstab"), "# empty\n").unwrap();
    let diff = |extra: &[&str]| {
        Command::new(common::bin())
            .stdin(Stdio::null())
            .args(["diff", "--categories", "ssh,filesystem", "--backup"])
            .arg(&lab.bundle)
            .arg("--root")
            .arg(root)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = diff(&[]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(text.contains("+PasswordAuthentication no"), "{text}");
    assert!(text.contains("username=u,password=********"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let out = diff(&["--show-secrets"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(text.contains("password=hunter2"), "{text}");
}

/// The number in `text` right before `word` on the line holding `marker`.
fn number_before(text: &str, marker: &str, word: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    let head = &line[..line.find(word).unwrap_or_else(|| panic!("{line}"))];
    head.split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn counts_agree_across_inspect_verify_extract_and_labels_are_words() {
    require_tools!("tar", "xz", "sha256sum");
    let lab = lab(pve_root, pve_standalone);
    let run = |args: &[&str]| {
        let out = Command::new(common::bin())
            .args(args)
            .arg("--backup")
            .arg(&lab.bundle)
            .output()
            .unwrap();
        common::assert_ok(&out);
        format!("{}{}", common::stdout(&out), common::stderr(&out))
    };
    let inspect = run(&["inspect", "--categories"]);
    let verify = run(&["verify"]);
    let to = lab.dir.path().join("x");
    let extract = run(&["extract", "--to", to.to_str().unwrap()]);
    let i = number_before(&inspect, "Contents:", " entries");
    let v = number_before(&verify, "Archive:", " entries");
    let e = number_before(&extract, "Extracted", " entries");
    assert_eq!((i, v), (v, e), "{inspect}\n{verify}\n{extract}");
    assert!(inspect.contains("backup type PVE"), "{inspect}");
    assert!(
        !inspect.contains("Pve") && !verify.contains("Pve"),
        "{inspect}"
    );
}
