//! `proxsave list` over the sources of a `backup.env`: each source with its backups, or why it
//! could not be read; exit 1 only when no source could be read.

mod common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use common::{code, proxsave, run, stderr, stdout};
use proxsave_testkit::require_tools;

const EXAMPLE: &str = "pve1.example.lan-backup-20260724-023000.tar.xz.age.bundle.tar";

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(EXAMPLE)
}

#[test]
fn list_reports_every_source_and_reads_what_it_can() {
    let lab = tempfile::tempdir().expect("tempdir");
    let primary = lab.path().join("local");
    let secondary = lab.path().join("secondary");
    std::fs::create_dir_all(&primary).expect("mkdir");
    std::fs::create_dir_all(&secondary).expect("mkdir");
    std::fs::copy(example(), primary.join(EXAMPLE)).expect("copy example");
    let env = lab.path().join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BACKUP_PATH={}\nSECONDARY_ENABLED=true\nSECONDARY_PATH={}\nCLOUD_REMOTE={}/gone\n",
            primary.display(),
            secondary.display(),
            lab.path().display()
        ),
    )
    .expect("write backup.env");
    let out = run(["list".as_ref(), "--config".as_ref(), env.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("Primary backup path: {}", primary.display()),
        "{text}"
    );
    assert_eq!(
        lines[1], "  [1] pve1.example.lan-backup-20260724-023000.tar.xz.age",
        "{text}"
    );
    assert!(lines[2].contains("pve1.example.lan"), "{text}");
    assert!(lines[2].contains("ENCRYPTED"), "{text}");
    assert!(
        lines[2].ends_with(" KiB") || lines[2].ends_with(" MiB"),
        "{text}"
    );
    assert_eq!(
        lines[3],
        format!(
            "Secondary backup path: {} — no backups",
            secondary.display()
        ),
        "{text}"
    );
    assert_eq!(
        lines[4],
        format!(
            "Cloud/local path: {}/gone — missing (no such folder)",
            lab.path().display()
        ),
        "{text}"
    );

    let out = run([
        "list".as_ref(),
        "--config".as_ref(),
        env.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let statuses: Vec<&str> = v["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["read", "read", "missing"]);
    assert_eq!(v["backups"].as_array().expect("backups").len(), 1);
    assert_eq!(v["backups"][0]["encrypted"], true);
}

#[test]
fn list_exits_1_when_no_source_can_be_read_and_0_for_an_empty_folder() {
    let lab = tempfile::tempdir().expect("tempdir");
    let env = lab.path().join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BACKUP_PATH={0}/nothere\nSECONDARY_ENABLED=true\nSECONDARY_PATH={0}/backup.env\n",
            lab.path().display()
        ),
    )
    .expect("write backup.env");
    let out = run(["list".as_ref(), "--config".as_ref(), env.as_os_str()]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("nothere — missing (no such folder)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("backup.env — cannot be read: not a folder"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stderr(&out),
        "proxsave: error: none of the 2 backup sources could be read\n"
    );

    let out = run([
        "list".as_ref(),
        "--dir".as_ref(),
        lab.path().join("nothere").as_os_str(),
    ]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "proxsave: error: the backup source could not be read\n"
    );

    let empty = lab.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = run(["list".as_ref(), "--dir".as_ref(), empty.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Folder: {} — no backups\n", empty.display())
    );
}

/// `rclone serve webdav` on 127.0.0.1 over a folder; killed on drop.
struct WebDav {
    child: Child,
    url: String,
}

impl WebDav {
    fn start(dir: &std::path::Path) -> WebDav {
        let mut child = Command::new("rclone")
            .args(["serve", "webdav", "--addr", "127.0.0.1:0"])
            .arg(dir)
            .env("RCLONE_CONFIG", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rclone serve webdav");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        // rclone announces the address once it listens: reading that line is the wait.
        let url = loop {
            let line = lines
                .next()
                .expect("rclone serve ended before listening")
                .expect("read rclone's stderr");
            if let Some(at) = line.find("started on http://127.0.0.1:") {
                break line[at + "started on ".len()..].trim().to_string();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        WebDav { child, url }
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn list_reads_an_rclone_webdav_remote_and_reports_rclones_errors() {
    require_tools!("rclone");
    let lab = tempfile::tempdir().expect("tempdir");
    let served = lab.path().join("served");
    std::fs::create_dir(&served).expect("mkdir");
    std::fs::copy(example(), served.join(EXAMPLE)).expect("copy example");
    let corrupt = "pve2.example.lan-backup-20260801-010000.tar.xz.bundle.tar";
    std::fs::write(served.join(corrupt), vec![0x5a; 3000]).expect("write corrupt bundle");
    // In lab:raw, a raw archive with its .metadata and .sha256 beside it, as upstream uploads
    // them (created before the server starts: it caches folder listings).
    let raw = served.join("raw");
    std::fs::create_dir(&raw).expect("mkdir");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(example())
        .arg("-C")
        .arg(&raw)
        .status()
        .expect("run tar");
    assert!(untar.success());
    let dav = WebDav::start(&served);
    let env = lab.path().join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BACKUP_PATH={}/nothere\nCLOUD_REMOTE=lab:\nCLOUD_REMOTE_PATH=\n",
            lab.path().display()
        ),
    )
    .expect("write backup.env");
    let list = |json: bool| {
        let mut cmd = proxsave();
        cmd.arg("list").arg("--config").arg(&env);
        if json {
            cmd.arg("--json");
        }
        cmd.env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_LAB_TYPE", "webdav")
            .env("RCLONE_CONFIG_LAB_URL", &dav.url)
            .output()
            .expect("run proxsave list")
    };
    let out = list(false);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "Cloud backups (rclone): lab:", "{text}");
    assert_eq!(
        lines[2], "  [1] pve1.example.lan-backup-20260724-023000.tar.xz.age",
        "{text}"
    );
    assert!(
        lines[3].contains("Host pve1.example.lan • ENCRYPTED"),
        "{text}"
    );
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        stderr(&out),
        format!("warning: skipped lab:{corrupt}: not a bundle: bad tar header\n")
    );

    let out = list(true);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["sources"][1]["status"], "read");
    assert_eq!(v["backups"][0]["path"], format!("lab:{EXAMPLE}"));
    assert_eq!(v["backups"][0]["encrypted"], true);
    assert_eq!(
        v["backups"][0]["size"],
        std::fs::metadata(example()).expect("size").len()
    );

    // A raw archive with its .metadata and .sha256 beside it, as upstream uploads them.
    std::fs::write(
        &env,
        "BACKUP_PATH=/nonexistent\nCLOUD_REMOTE=lab:\nCLOUD_REMOTE_PATH=raw\n",
    )
    .expect("write backup.env");
    let out = list(true);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let backups = v["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), 1, "{v}");
    assert_eq!(
        backups[0]["path"],
        "lab:raw/pve1.example.lan-backup-20260724-023000.tar.xz.age"
    );
    assert_eq!(backups[0]["hostname"], "pve1.example.lan");
    assert_eq!(backups[0]["encrypted"], true);

    // A remote rclone does not know: rclone's message, exit 1 (no other source readable).
    std::fs::write(
        &env,
        "BACKUP_PATH=/nonexistent\nCLOUD_REMOTE=nosuch:backups\n",
    )
    .expect("write backup.env");
    let out = list(false);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "Cloud backups (rclone): nosuch:backups — cannot be read: Failed to create file system for \"nosuch:backups\": didn't find section in config file"
        ),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_backup_on_an_rclone_remote_is_fetched_verified_and_restored() {
    require_tools!("rclone");
    let lab = tempfile::tempdir().expect("tempdir");
    let served = lab.path().join("served");
    std::fs::create_dir(&served).expect("mkdir");
    std::fs::copy(example(), served.join(EXAMPLE)).expect("copy example");
    let tmp = lab.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let dav = WebDav::start(&served);
    let passphrase = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/example-passphrase.txt");
    let with_remote = |args: &[&std::ffi::OsStr]| {
        proxsave()
            .args(args)
            .env("TMPDIR", &tmp)
            .env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_LAB_TYPE", "webdav")
            .env("RCLONE_CONFIG_LAB_URL", &dav.url)
            .output()
            .expect("run proxsave")
    };
    let spec = format!("lab:{EXAMPLE}");
    let out = with_remote(&[
        "verify".as_ref(),
        "--backup".as_ref(),
        spec.as_ref(),
        "--passphrase-file".as_ref(),
        passphrase.as_os_str(),
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(&format!("Fetching {spec} with rclone")),
        "{}",
        stderr(&out)
    );
    // The private copy is gone when the command ends.
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);

    let root = lab.path().join("root");
    let out = with_remote(&[
        "restore".as_ref(),
        "--backup".as_ref(),
        spec.as_ref(),
        "--passphrase-file".as_ref(),
        passphrase.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--create-root".as_ref(),
        "--work-dir".as_ref(),
        lab.path().join("work").as_os_str(),
        "--export-dir".as_ref(),
        lab.path().join("export").as_os_str(),
        "--yes".as_ref(),
        "--mode".as_ref(),
        "full".as_ref(),
        "--continue-incompatible".as_ref(),
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(root.join("etc/ssh/sshd_config").is_file());
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);

    // A backup the remote lacks: rclone's message, exit 1.
    let out = with_remote(&[
        "inspect".as_ref(),
        "--backup".as_ref(),
        "lab:nothere.bundle.tar".as_ref(),
    ]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("rclone cat lab:nothere.bundle.tar:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

/// The rclone environment of a `lab:` webdav remote (nothing read from the user's config).
fn lab_remote(cmd: &mut Command, dav: &WebDav, tmp: &std::path::Path) {
    cmd.env("TMPDIR", tmp)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_LAB_TYPE", "webdav")
        .env("RCLONE_CONFIG_LAB_URL", &dav.url);
}

fn sha256_hex(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

#[test]
fn a_remote_backup_is_checked_against_its_sidecar_as_it_arrives() {
    require_tools!("rclone", "sha256sum");
    let lab = tempfile::tempdir().expect("tempdir");
    let served = lab.path().join("served");
    std::fs::create_dir_all(served.join("bad")).expect("mkdir");
    std::fs::create_dir_all(served.join("good")).expect("mkdir");
    std::fs::copy(example(), served.join("bad").join(EXAMPLE)).expect("copy example");
    std::fs::copy(example(), served.join("good").join(EXAMPLE)).expect("copy example");
    let digest = sha256_hex(&example());
    std::fs::write(
        served.join("good").join(format!("{EXAMPLE}.sha256")),
        format!("{digest}  {EXAMPLE}\n"),
    )
    .expect("write sidecar");
    let wrong = "0".repeat(64);
    std::fs::write(
        served.join("bad").join(format!("{EXAMPLE}.sha256")),
        format!("{wrong}  {EXAMPLE}\n"),
    )
    .expect("write sidecar");
    let tmp = lab.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let dav = WebDav::start(&served);
    let passphrase = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/example-passphrase.txt");

    // A mismatch fails right after the download, naming the remote path, before any
    // decryption: no passphrase is given and none is asked for.
    let bad = format!("lab:bad/{EXAMPLE}");
    let mut cmd = proxsave();
    cmd.args(["verify", "--backup", &bad]).stdin(Stdio::null());
    lab_remote(&mut cmd, &dav, &tmp);
    let out = cmd.output().expect("run proxsave");
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{bad}: SHA-256 mismatch after download ({} bytes): expected {wrong} (from {bad}.sha256), got {digest}",
            std::fs::metadata(example()).expect("size").len()
        )),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("passphrase"), "{err}");
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);

    // The matching sidecar: the backup is read and verified as a local one.
    let good = format!("lab:good/{EXAMPLE}");
    let mut cmd = proxsave();
    cmd.args(["verify", "--backup", &good, "--passphrase-file"])
        .arg(&passphrase);
    lab_remote(&mut cmd, &dav, &tmp);
    let out = cmd.output().expect("run proxsave");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);

    // A remote nobody answers on: rclone's message, exit 1, nothing left behind.
    let mut cmd = proxsave();
    cmd.args(["inspect", "--backup", &format!("dead:{EXAMPLE}")])
        .env("TMPDIR", &tmp)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_DEAD_TYPE", "webdav")
        .env("RCLONE_CONFIG_DEAD_URL", "http://127.0.0.1:1");
    let out = cmd.output().expect("run proxsave");
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("rclone cat dead:{EXAMPLE}: ")),
        "{err}"
    );
    assert!(err.contains("connection refused"), "{err}");
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
}

/// Reads a menu up to `prompt` and returns the number in front of `label`.
fn number_of(p: &mut rexpect::session::PtySession, label: &str, prompt: &str) -> (String, String) {
    let menu = p.exp_string(prompt).expect("menu");
    let n = menu
        .lines()
        .find(|l| l.contains(label))
        .and_then(|l| {
            let start = l.find('[')? + 1;
            let end = l[start..].find(']')? + start;
            Some(l[start..end].to_string())
        })
        .unwrap_or_else(|| panic!("{label:?} not in menu:\n{menu}"));
    (n, menu)
}

#[test]
fn the_restore_menu_lists_the_remote_newest_first_and_fetches_the_chosen_backup() {
    use proxsave_testkit::fixture::{BackupSpec, HostTree, gnu_tar_pax, make_backup};
    use std::os::unix::fs::PermissionsExt;
    require_tools!("rclone", "tar", "xz");
    let lab = tempfile::tempdir().expect("tempdir");
    let base = lab.path();
    let tree = base.join("source-host");
    HostTree::pve_node(&tree);
    let served = base.join("served");
    std::fs::create_dir(&served).expect("mkdir");
    let tar = gnu_tar_pax(&tree);
    // The older one has the name that sorts first: the menu must order by creation time.
    for (stamp, created) in [
        ("20260701-010000", "2026-07-01T01:00:00"),
        ("20260801-010000", "2026-08-01T01:00:00"),
    ] {
        let mut made = make_backup(
            &tar,
            &BackupSpec {
                stamp: stamp.into(),
                ..BackupSpec::default()
            },
        );
        made.manifest = made.manifest.replace("2026-07-24T02:30:00", created);
        made.write_bundle(&served);
    }
    let root = base.join("target");
    for d in ["etc/pve", "usr/sbin", "etc/ssh"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("usr/sbin/qm"), "#!/bin/sh\n").expect("write");
    std::fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin yes\n").expect("write");
    let tmp = base.join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let env = base.join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BASE_DIR={0}\nBACKUP_PATH={0}/nothere\nCLOUD_ENABLED=true\nCLOUD_REMOTE=lab:\n",
            base.display()
        ),
    )
    .expect("write backup.env");
    let dav = WebDav::start(&served);

    let mut cmd = Command::new(common::bin());
    cmd.arg("restore")
        .arg("--config")
        .arg(&env)
        .arg("--root")
        .arg(&root)
        .arg("--work-dir")
        .arg(base.join("work"))
        .arg("--export-dir")
        .arg(base.join("export"))
        .env("TZ", "UTC")
        .env("TERM", "dumb");
    lab_remote(&mut cmd, &dav, &tmp);
    let mut p = rexpect::session::spawn_with_options(
        cmd,
        rexpect::session::Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty");

    // The source menu names the remote; choosing it lists its backups, newest first.
    let (n, _) = number_of(&mut p, "lab:", "Choice: ");
    p.send_line(&n).expect("send");
    let listing = p.exp_string("Choice: ").expect("backup menu");
    let newer = listing
        .find("[1] pve1.example.lan-backup-20260801-010000.tar.xz")
        .unwrap_or_else(|| panic!("newest not first:\n{listing}"));
    let older = listing
        .find("[2] pve1.example.lan-backup-20260701-010000.tar.xz")
        .unwrap_or_else(|| panic!("older not second:\n{listing}"));
    assert!(newer < older, "{listing}");
    assert!(listing.contains("Encrypted: No"), "{listing}");
    assert!(listing.contains("System: PVE"), "{listing}");
    p.send_line("1").expect("send");
    let fetched = "lab:pve1.example.lan-backup-20260801-010000.tar.xz.bundle.tar";
    p.exp_string(&format!("Fetching {fetched} with rclone"))
        .expect("fetching");

    // At the mode menu the chosen bundle sits in a private folder (0700, the file 0600).
    let (n, _) = number_of(&mut p, "CUSTOM selection", "Choice: ");
    let dirs: Vec<_> = std::fs::read_dir(&tmp)
        .expect("tmp")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dirs[0]), 0o700);
    let file = dirs[0].join("pve1.example.lan-backup-20260801-010000.tar.xz.bundle.tar");
    assert_eq!(mode(&file), 0o600);
    p.send_line(&n).expect("send");
    let (n, _) = number_of(&mut p, "SSH Configuration", "Your selection: ");
    p.send_line(&n).expect("send");
    p.exp_string("Your selection: ").expect("categories");
    p.send_line("c").expect("send");
    p.exp_string("to abort: ").expect("confirmation");
    p.send_line("RESTORE").expect("send");
    p.exp_string("RESTORE COMPLETED").expect("completed");
    p.exp_eof().expect("eof");
    match p.process().wait().expect("wait") {
        rexpect::process::WaitStatus::Exited(_, 0) => {}
        other => panic!("proxsave did not exit 0: {other:?}"),
    }
    assert_eq!(
        std::fs::read(root.join("etc/ssh/sshd_config")).expect("sshd_config"),
        b"PermitRootLogin prohibit-password\n"
    );
    // The private folder is gone with the command.
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
}

#[test]
fn the_decrypt_menu_offers_the_encrypted_backups_of_a_remote() {
    require_tools!("rclone");
    let lab = tempfile::tempdir().expect("tempdir");
    let served = lab.path().join("served");
    std::fs::create_dir(&served).expect("mkdir");
    std::fs::copy(example(), served.join(EXAMPLE)).expect("copy example");
    let tmp = lab.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let env = lab.path().join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BACKUP_PATH={}/nothere\nCLOUD_REMOTE=lab:\n",
            lab.path().display()
        ),
    )
    .expect("write backup.env");
    let out_dir = lab.path().join("out");
    let passphrase = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/example-passphrase.txt");
    let dav = WebDav::start(&served);
    let mut cmd = Command::new(common::bin());
    cmd.arg("decrypt")
        .arg("--config")
        .arg(&env)
        .arg("--out")
        .arg(&out_dir)
        .arg("--passphrase-file")
        .arg(&passphrase)
        .env("TZ", "UTC")
        .env("TERM", "dumb");
    lab_remote(&mut cmd, &dav, &tmp);
    let mut p = rexpect::session::spawn_with_options(
        cmd,
        rexpect::session::Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty");
    let (n, menu) = number_of(&mut p, &format!("lab:{EXAMPLE}"), "Choice: ");
    // (rexpect reads the pty byte-wise: the "•" separators are not compared.)
    assert!(menu.contains("Host pve1.example.lan"), "{menu}");
    assert!(menu.contains("ENCRYPTED"), "{menu}");
    p.send_line(&n).expect("send");
    p.exp_string(&format!("Fetching lab:{EXAMPLE} with rclone"))
        .expect("fetching");
    p.exp_eof().expect("eof");
    match p.process().wait().expect("wait") {
        rexpect::process::WaitStatus::Exited(_, 0) => {}
        other => panic!("proxsave did not exit 0: {other:?}"),
    }
    assert!(
        out_dir
            .join("pve1.example.lan-backup-20260724-023000.tar.xz.decrypted.bundle.tar")
            .is_file()
    );
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
}

#[test]
fn a_remote_download_shows_its_progress_in_a_terminal() {
    require_tools!("rclone");
    let lab = tempfile::tempdir().expect("tempdir");
    let served = lab.path().join("served");
    std::fs::create_dir(&served).expect("mkdir");
    // 24 MiB that are no backup, with a sidecar that does not match: the download is shown
    // with its size, then the mismatch ends the command.
    let name = "pve9.example.lan-backup-20260801-010000.tar.xz.bundle.tar";
    std::fs::write(served.join(name), vec![0x42; 24 << 20]).expect("write");
    std::fs::write(
        served.join(format!("{name}.sha256")),
        format!("{}  {name}\n", "0".repeat(64)),
    )
    .expect("write sidecar");
    let tmp = lab.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let dav = WebDav::start(&served);
    let mut cmd = Command::new(common::bin());
    cmd.args(["verify", "--backup", &format!("lab:{name}")])
        .env("TERM", "xterm");
    lab_remote(&mut cmd, &dav, &tmp);
    let mut p = rexpect::session::spawn_with_options(
        cmd,
        rexpect::session::Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty");
    let transcript = p.exp_eof().expect("eof");
    match p.process().wait().expect("wait") {
        rexpect::process::WaitStatus::Exited(_, 1) => {}
        other => panic!("proxsave did not exit 1: {other:?}\n{transcript}"),
    }
    assert!(transcript.contains("/24.00 MiB"), "{transcript}");
    // The bar is cleared before the error: the error line holds no bar text.
    let error_line = transcript
        .split(['\r', '\n'])
        .find(|l| l.contains("SHA-256 mismatch"))
        .expect("error line");
    assert!(
        error_line.starts_with("proxsave: error: "),
        "{error_line:?}"
    );
    assert!(
        transcript.contains(&format!("lab:{name}: SHA-256 mismatch after download")),
        "{transcript}"
    );
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
}

#[test]
fn a_remote_chosen_in_the_restore_menu_that_rclone_cannot_read_gives_its_message_and_exit_1() {
    require_tools!("rclone");
    let lab = tempfile::tempdir().expect("tempdir");
    let env = lab.path().join("backup.env");
    std::fs::write(
        &env,
        format!(
            "BACKUP_PATH={}/nothere\nCLOUD_REMOTE=nosuch:backups\n",
            lab.path().display()
        ),
    )
    .expect("write backup.env");
    let mut cmd = Command::new(common::bin());
    cmd.arg("restore")
        .arg("--config")
        .arg(&env)
        .arg("--root")
        .arg(lab.path().join("root"))
        .env("TERM", "dumb")
        .env("RCLONE_CONFIG", "/dev/null");
    let mut p = rexpect::session::spawn_with_options(
        cmd,
        rexpect::session::Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty");
    let (n, _) = number_of(&mut p, "nosuch:backups", "Choice: ");
    p.send_line(&n).expect("send");
    let rest = p.exp_eof().expect("eof");
    match p.process().wait().expect("wait") {
        rexpect::process::WaitStatus::Exited(_, 1) => {}
        other => panic!("proxsave did not exit 1: {other:?}\n{rest}"),
    }
    assert!(
        rest.contains(
            "nosuch:backups: Failed to create file system for \"nosuch:backups\": didn't find section in config file"
        ),
        "{rest}"
    );
}
