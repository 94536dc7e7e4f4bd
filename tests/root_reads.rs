//! Every read of the target root goes through a descriptor of the root, and nothing outside
//! it is ever read: the host name check, role detection, the comparisons of `restore
//! --dry-run`, `diff` and the report, and dedup targets, each with symbolic links planted in
//! the root pointing at recognisable content outside it (and FIFOs where files are expected).
//! Plus the exit codes a user sees: 0 only when everything asked for happened, 1 when entries
//! were refused or failed (the summary lists them).
//!
//! Probes of the system (host name, role) resolve links *inside* the root, as the restored
//! system itself would once booted; comparisons never follow a link (the restore replaces a
//! link, it never writes through one).

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use proxsave_testkit::fakes::FakeBin;
use proxsave_testkit::fixture::{HostTree, snapshot};
use proxsave_testkit::hosts::{HostRoot, host_spec, make_host_backup_in};
use proxsave_testkit::require_tools;

struct Lab {
    dir: tempfile::TempDir,
    fake: FakeBin,
    target: HostRoot,
    source: HostTree,
    bundle: PathBuf,
}

impl Lab {
    /// A standalone PVE node's backup, restored into `target`.
    fn new(target: fn(PathBuf) -> HostRoot) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeBin::new(dir.path().join("fake"));
        let source = HostTree::pve_standalone_node(dir.path().join("source"));
        let bundles = dir.path().join("backups");
        fs::create_dir(&bundles).unwrap();
        let bundle = make_host_backup_in(&source, &host_spec(&source), &bundles);
        let target = target(dir.path().join("root"));
        fs::create_dir(dir.path().join("outside")).unwrap();
        Lab {
            dir,
            fake,
            target,
            source,
            bundle,
        }
    }

    fn root(&self) -> &Path {
        self.target.root()
    }

    /// A folder beside the root (never inside it).
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Removes whatever is at `rel` in the root (and creates its parent folders).
    fn clear(&self, rel: &str) -> PathBuf {
        let p = self.target.path(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
            Ok(_) => fs::remove_file(&p).unwrap(),
            Err(_) => fs::create_dir_all(p.parent().unwrap()).unwrap(),
        }
        p
    }

    /// Replaces `rel` in the root by a symbolic link to `target`.
    fn plant(&self, rel: &str, target: impl AsRef<Path>) {
        symlink(target, self.clear(rel)).unwrap();
    }

    /// Replaces `rel` in the root by a FIFO.
    fn fifo(&self, rel: &str) {
        let p = self.clear(rel);
        proxsave_testkit::run(Command::new("mkfifo").arg(&p));
    }

    /// Copies `rel` of the backed-up host to `to`, metadata and all (`cp -a`).
    fn copy_source(&self, rel: &str, to: &Path) {
        proxsave_testkit::run(
            Command::new("cp")
                .arg("-a")
                .arg(self.source.root.join(rel))
                .arg(to),
        );
    }

    fn restore_cmd(&self, extra: &[&str]) -> Command {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
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
            .args(extra);
        cmd
    }

    fn restore(&self, extra: &[&str]) -> Output {
        bounded(self.restore_cmd(extra))
    }

    fn diff(&self, extra: &[&str]) -> Output {
        let mut cmd = self.fake.command(common::bin());
        cmd.env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .arg("diff")
            .arg("--backup")
            .arg(&self.bundle)
            .arg("--root")
            .arg(self.root())
            .args(extra);
        bounded(cmd)
    }
}

/// Runs `cmd` to its end. A FIFO planted in the root must never block proxsave: if it hangs
/// anyway, the child is killed and the test fails instead of hanging (a failure guard, not
/// synchronisation).
fn bounded(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run proxsave");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(300)) {
        Ok(out) => out.expect("wait for proxsave"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("proxsave hung (blocked on something planted in the root?)");
        }
    }
}

/// Everything the user saw.
fn seen(out: &Output) -> String {
    format!("{}{}", common::stdout(out), common::stderr(out))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON document ({e}):\n{}", seen(out)))
}

/// `change` of the root-tier entry `path` in a dry-run plan or a report.
fn change_of(r: &serde_json::Value, path: &str) -> String {
    r["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path && f["tier"] == "normal")
        .and_then(|f| f["change"].as_str())
        .unwrap_or_else(|| panic!("{path} not in {:#}", r["files"]))
        .to_string()
}

fn status_of(r: &serde_json::Value, path: &str) -> String {
    r["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .and_then(|f| f["status"].as_str())
        .unwrap_or_else(|| panic!("{path} not in {:#}", r["files"]))
        .to_string()
}

fn plan_warnings(r: &serde_json::Value) -> Vec<String> {
    r["plan"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

const ACCESS: &[&str] = &[
    "--dry-run",
    "--json",
    "--categories",
    "pve_access_control,network,ssl",
];

#[test]
fn the_host_name_is_read_inside_the_root_only() {
    require_tools!("tar", "xz", "sha256sum", "mkfifo");
    let lab = Lab::new(HostRoot::pve);
    let secret = lab.outside().join("hostname");
    fs::write(&secret, "OUTSIDE-SECRET\n").unwrap();
    let outside_before = snapshot(&lab.outside());

    // Sanity: a host name that differs is warned about (the backup comes from pve1).
    fs::write(lab.target.path("etc/hostname"), "pve9\n").unwrap();
    let out = lab.restore(ACCESS);
    common::assert_ok(&out);
    assert!(
        plan_warnings(&json(&out))
            .iter()
            .any(|w| w.contains("but this host is pve9")),
        "{}",
        seen(&out)
    );

    // Links out of the root, absolute and relative, and a FIFO: never read.
    type Plant<'a> = Box<dyn Fn() + 'a>;
    let variants: [(&str, Plant); 4] = [
        (
            "absolute link",
            Box::new(|| lab.plant("etc/hostname", &secret)),
        ),
        (
            "relative link climbing out",
            Box::new(|| lab.plant("etc/hostname", "../../../../../../outside/hostname")),
        ),
        (
            "link through a linked folder",
            Box::new(|| {
                lab.plant("etc/hostname", "/etc/hn/hostname");
                lab.plant("etc/hn", lab.outside());
            }),
        ),
        ("FIFO", Box::new(|| lab.fifo("etc/hostname"))),
    ];
    for (what, plant) in &variants {
        plant();
        let out = lab.restore(ACCESS);
        common::assert_ok(&out);
        let text = seen(&out).to_ascii_lowercase();
        assert!(!text.contains("outside-secret"), "{what}: {text}");
        let warnings = plan_warnings(&json(&out));
        assert!(
            !warnings.iter().any(|w| w.contains("this host is")),
            "{what}: {warnings:?}"
        );
    }

    // A link resolved inside the root is what the booted system would read.
    fs::write(lab.target.path("etc/hostname.real"), "pve7\n").unwrap();
    lab.plant("etc/hostname", "/etc/hostname.real");
    let out = lab.restore(ACCESS);
    common::assert_ok(&out);
    assert!(
        plan_warnings(&json(&out))
            .iter()
            .any(|w| w.contains("but this host is pve7")),
        "{}",
        seen(&out)
    );
    assert_eq!(snapshot(&lab.outside()), outside_before);
}

#[test]
fn role_detection_is_not_fooled_by_links_out_of_the_root() {
    require_tools!("tar", "xz", "sha256sum");
    // Plain Debian: no PVE or PBS marker of its own.
    let lab = Lab::new(HostRoot::plain);
    // Outside: what a PVE and a PBS host look like.
    let o = lab.outside();
    fs::create_dir_all(o.join("pve/nodes/pve1")).unwrap();
    fs::write(
        o.join("pve/storage.cfg"),
        "dir: local\n\tpath /var/lib/vz\n",
    )
    .unwrap();
    fs::write(o.join("qm"), "#!/usr/bin/perl\n").unwrap();
    fs::create_dir_all(o.join("proxmox-backup")).unwrap();
    let outside_before = snapshot(&o);
    lab.plant("etc/pve", o.join("pve"));
    lab.plant("usr/sbin/qm", "../../../../../../outside/qm");
    lab.plant("usr/bin/pct", o.join("qm"));
    lab.plant("etc/proxmox-backup", "../../outside/proxmox-backup");
    let args = [
        "--dry-run",
        "--json",
        "--mode",
        "full",
        "--cluster-mode",
        "safe",
        "--pbs-behavior",
        "merge",
        "--continue-incompatible",
    ];
    let out = lab.restore(&args);
    common::assert_ok(&out);
    let r = json(&out);
    assert_eq!(r["plan"]["host_role"], "unknown", "{}", seen(&out));
    assert!(seen(&out).contains("Current system type: Unknown system"));

    // A link whose target exists inside the root counts (as on PBS, whose binaries are links
    // into /usr/lib): the system is a PBS, and the PVE links above still do not count.
    fs::create_dir_all(lab.target.path("usr/lib/x86_64-linux-gnu/proxmox-backup")).unwrap();
    fs::write(
        lab.target
            .path("usr/lib/x86_64-linux-gnu/proxmox-backup/proxmox-backup-proxy"),
        "ELF",
    )
    .unwrap();
    lab.plant(
        "usr/sbin/proxmox-backup-proxy",
        "/usr/lib/x86_64-linux-gnu/proxmox-backup/proxmox-backup-proxy",
    );
    let out = lab.restore(&args);
    common::assert_ok(&out);
    assert_eq!(json(&out)["plan"]["host_role"], "pbs", "{}", seen(&out));
    assert_eq!(snapshot(&o), outside_before);
}

/// `etc/ssh/sshd_config` and the dedup target `usr/local/sbin/x` are links to outside files
/// with exactly the backup's bytes and metadata: following them would say "unchanged".
#[test]
fn compared_files_and_dedup_targets_are_never_read_through_links() {
    require_tools!("tar", "xz", "sha256sum", "cp");
    let lab = Lab::new(HostRoot::pve);
    let o = lab.outside();
    lab.copy_source("etc/ssh/sshd_config", &o.join("sshd_config"));
    lab.copy_source("usr/local/bin/x", &o.join("x"));
    fs::set_permissions(o.join("x"), fs::Permissions::from_mode(0o755)).unwrap();
    let outside_before = snapshot(&o);
    lab.plant("etc/ssh/sshd_config", o.join("sshd_config"));
    lab.plant("usr/local/sbin/x", o.join("x"));
    let cats = ["--categories", "ssh,scripts"];

    let plan = json(&lab.restore(&[&["--dry-run", "--json"][..], &cats[..]].concat()));
    assert_eq!(change_of(&plan, "/etc/ssh/sshd_config"), "changed");
    assert_eq!(change_of(&plan, "/usr/local/sbin/x"), "changed");

    let out = lab.diff(&[&cats[..], &["--json"][..]].concat());
    common::assert_ok(&out);
    let d = json(&out);
    let diff_of = |p: &str| {
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .map(|f| f["change"].as_str().unwrap().to_string())
    };
    assert_eq!(diff_of("/etc/ssh/sshd_config").as_deref(), Some("changed"));
    assert_ne!(diff_of("/usr/local/sbin/x").as_deref(), Some("unchanged"));

    // The restore replaces the links (never writes through them).
    let out = lab.restore(&[&["--yes", "--json"][..], &cats[..]].concat());
    common::assert_ok(&out);
    let r = json(&out);
    assert_eq!(change_of(&r, "/etc/ssh/sshd_config"), "changed");
    assert_eq!(change_of(&r, "/usr/local/sbin/x"), "changed");
    for (rel, from) in [
        ("etc/ssh/sshd_config", "etc/ssh/sshd_config"),
        ("usr/local/sbin/x", "usr/local/bin/x"),
    ] {
        let m = fs::symlink_metadata(lab.target.path(rel)).unwrap();
        assert!(m.file_type().is_file(), "{rel}");
        assert_eq!(
            fs::read(lab.target.path(rel)).unwrap(),
            fs::read(lab.source.root.join(from)).unwrap()
        );
    }
    assert_eq!(
        snapshot(&o),
        outside_before,
        "a file outside the root changed"
    );

    // Control: the same bytes really *inside* the root are found unchanged.
    let plan = json(&lab.restore(&[&["--dry-run", "--json"][..], &cats[..]].concat()));
    assert_eq!(change_of(&plan, "/etc/ssh/sshd_config"), "unchanged");
    assert_eq!(change_of(&plan, "/usr/local/sbin/x"), "unchanged");
}

/// `etc/ssh` and `usr/local/sbin` are links to outside copies of the backup's folders: the
/// entries below them are "changed" (not "new", not "unchanged"), a restore refuses them,
/// says so, and exits 1.
#[test]
fn links_in_place_of_folders_are_changed_refused_and_exit_1() {
    require_tools!("tar", "xz", "sha256sum", "cp");
    let lab = Lab::new(HostRoot::pve);
    let o = lab.outside();
    lab.copy_source("etc/ssh", &o.join("ssh"));
    fs::create_dir(o.join("sbin")).unwrap();
    lab.copy_source("usr/local/bin/x", &o.join("sbin/x"));
    fs::set_permissions(o.join("sbin/x"), fs::Permissions::from_mode(0o755)).unwrap();
    let outside_before = snapshot(&o);
    lab.plant("etc/ssh", o.join("ssh"));
    lab.plant("usr/local/sbin", o.join("sbin"));
    let cats = ["--categories", "ssh,scripts"];

    let plan = json(&lab.restore(&[&["--dry-run", "--json"][..], &cats[..]].concat()));
    assert_eq!(change_of(&plan, "/etc/ssh/sshd_config"), "changed");
    assert_eq!(change_of(&plan, "/usr/local/sbin/x"), "changed");

    let out = lab.restore(&[&["--yes", "--json"][..], &cats[..]].concat());
    assert_eq!(common::code(&out), 1, "{}", seen(&out));
    let r = json(&out);
    assert_eq!(r["outcome"], "completed_with_errors");
    assert_eq!(status_of(&r, "/etc/ssh/sshd_config"), "refused");
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(errors.iter().any(|e| e.contains("refused")), "{errors:?}");
    assert_eq!(snapshot(&o), outside_before, "written through a link");

    // Without --json, the summary says so and lists the entries.
    let out = lab.restore(&[&["--yes"][..], &cats[..]].concat());
    assert_eq!(common::code(&out), 1, "{}", seen(&out));
    let text = common::stdout(&out);
    assert!(text.contains("RESTORE COMPLETED WITH ERRORS"), "{text}");
    assert!(
        text.contains("Restore completed with errors; not everything asked for happened:"),
        "{text}"
    );
    assert!(text.contains("  refused /etc/ssh/sshd_config: "), "{text}");
    assert!(text.contains("  refused /usr/local/sbin/x: "), "{text}");
    assert_eq!(snapshot(&o), outside_before, "written through a link");
}

/// FIFOs where the host name, a compared file and a dedup target are expected.
#[test]
fn fifos_where_files_are_expected_never_block() {
    require_tools!("tar", "xz", "sha256sum", "mkfifo");
    let lab = Lab::new(HostRoot::pve);
    lab.fifo("etc/hostname");
    lab.fifo("etc/ssh/sshd_config");
    lab.fifo("usr/local/sbin/x");
    let out = lab.diff(&["--categories", "ssh,scripts"]);
    common::assert_ok(&out);
    assert!(
        common::stdout(&out).contains("+++ /etc/ssh/sshd_config (backup)"),
        "{}",
        seen(&out)
    );
    let plan = json(&lab.restore(&["--dry-run", "--json", "--categories", "ssh,scripts"]));
    assert_eq!(change_of(&plan, "/etc/ssh/sshd_config"), "changed");
    assert_eq!(change_of(&plan, "/usr/local/sbin/x"), "changed");
    // A FIFO is never replaced: refused, listed, exit 1.
    let out = lab.restore(&["--yes", "--categories", "ssh,scripts"]);
    assert_eq!(common::code(&out), 1, "{}", seen(&out));
    let text = common::stdout(&out);
    assert!(text.contains("RESTORE COMPLETED WITH ERRORS"), "{text}");
    assert!(text.contains("  refused /etc/ssh/sshd_config: "), "{text}");
    assert!(text.contains("  refused /usr/local/sbin/x: "), "{text}");
    assert!(
        fs::symlink_metadata(lab.target.path("etc/ssh/sshd_config"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn exit_0_only_when_everything_asked_for_happened() {
    require_tools!("tar", "xz", "sha256sum");
    // Clean: 0, success.
    let lab = Lab::new(HostRoot::pve);
    let out = lab.restore(&["--yes", "--categories", "ssh"]);
    common::assert_ok(&out);
    let text = common::stdout(&out);
    assert!(text.contains("RESTORE COMPLETED\n"), "{text}");
    assert!(text.contains("Restore completed successfully."), "{text}");
    let r = json(&lab.restore(&["--yes", "--json", "--categories", "ssh"]));
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["errors"], serde_json::json!([]));

    // Warnings only (access control restored without network and SSL): still 0.
    let out = lab.restore(&["--yes", "--json", "--categories", "pve_access_control"]);
    common::assert_ok(&out);
    let r = json(&out);
    assert_eq!(r["outcome"], "warnings", "{}", seen(&out));
    assert_eq!(r["errors"], serde_json::json!([]));

    // A folder where the backup has a file (a folder is never replaced by a file): 1, listed.
    let lab = Lab::new(HostRoot::pve);
    let p = lab.clear("etc/ssh/sshd_config");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("keep"), "mine\n").unwrap();
    let out = lab.restore(&["--yes", "--categories", "ssh"]);
    assert_eq!(common::code(&out), 1, "{}", seen(&out));
    let text = common::stdout(&out);
    assert!(text.contains("RESTORE COMPLETED WITH ERRORS"), "{text}");
    assert!(text.contains("  - 1 entry "), "{text}");
    assert!(
        text.contains(" /etc/ssh/sshd_config: "),
        "the entry is not listed: {text}"
    );
    assert_eq!(fs::read_to_string(p.join("keep")).unwrap(), "mine\n");
    // The rest was restored.
    assert_eq!(
        fs::read(lab.target.path("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        fs::read(lab.source.root.join("etc/ssh/ssh_host_ed25519_key")).unwrap()
    );
}
