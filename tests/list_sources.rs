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
        stderr(&out).contains("rclone copyto lab:nothere.bundle.tar:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}
