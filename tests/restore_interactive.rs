//! The guide's Quick Start, walked through a real pseudo-terminal as a person would:
//! source, backup, passphrase, mode, categories, SAFE/RECOVERY, plan, RESTORE, summary.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use proxsave_archive::key::derive_identity;
use proxsave_testkit::fixture::{BackupSpec, Encryption, HostTree, gnu_tar_pax, make_backup};
use proxsave_testkit::require_tools;
use rexpect::process::WaitStatus;
use rexpect::session::{Options, PtySession, spawn_with_options};

const PASSPHRASE: &str = "Correct-Horse-Battery-9";
const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";

struct Lab {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    config: PathBuf,
}

/// A PVE-like target root, a backup folder with one encrypted bundle, and a backup.env.
fn lab() -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    let tree = base.join("source-host");
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
    let backups = base.join("backup");
    fs::create_dir(&backups).unwrap();
    made.write_bundle(&backups);
    let root = base.join("target");
    for d in ["etc/pve", "usr/sbin", "etc/ssh"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("usr/sbin/qm"), "#!/bin/sh\n").unwrap();
    fs::write(root.join("etc/ssh/sshd_config"), "PermitRootLogin yes\n").unwrap();
    let config = base.join("backup.env");
    fs::write(
        &config,
        format!(
            "BASE_DIR={}\nBACKUP_PATH={}\n",
            base.display(),
            backups.display()
        ),
    )
    .unwrap();
    Lab {
        _dir: dir,
        base,
        root,
        config,
    }
}

fn spawn(args: &[&str]) -> PtySession {
    spawn_term(args, "dumb")
}

fn spawn_term(args: &[&str], term: &str) -> PtySession {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).env("TZ", "UTC").env("TERM", term);
    spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty")
}

fn exit_code(p: &mut PtySession) -> i32 {
    match p.process().wait().expect("wait") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("proxsave did not exit normally: {other:?}"),
    }
}

/// Reads the menu up to `prompt` and returns the number in front of `label`.
fn number_of(p: &mut PtySession, label: &str, prompt: &str, transcript: &mut String) -> String {
    let menu = p.exp_string(prompt).unwrap();
    transcript.push_str(&menu);
    transcript.push_str(prompt);
    menu.lines()
        .find(|l| l.contains(label))
        .and_then(|l| {
            let start = l.find('[')? + 1;
            let end = l[start..].find(']')? + start;
            Some(l[start..end].to_string())
        })
        .unwrap_or_else(|| panic!("{label:?} not in menu:\n{menu}"))
}

fn args<'a>(lab: &'a Lab, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "restore".into(),
        "--config".into(),
        lab.config.display().to_string(),
        "--root".into(),
        lab.root.display().to_string(),
        "--work-dir".into(),
        lab.base.join("work").display().to_string(),
        "--export-dir".into(),
        lab.base.join("export").display().to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn quick_start_custom_restore_with_safe_cluster_mode() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let lab = lab();
    let a = args(&lab, &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut p = spawn(&a);
    let mut t = String::new();

    // 1. Source and backup.
    let n = number_of(&mut p, "Primary backup path", "Choice: ", &mut t);
    p.send_line(&n).unwrap();
    t += &p.exp_string("Available backups:").unwrap();
    t += &p.exp_string("Encrypted: Yes (AGE)").unwrap();
    t += &p.exp_string("System: PVE v8.4.1 (cluster)").unwrap();
    t += &p.exp_string("Choice: ").unwrap();
    p.send_line("1").unwrap();
    // 2. Passphrase (no echo).
    t += &p.exp_string("(input hidden, 0 to cancel): ").unwrap();
    p.send_line(PASSPHRASE).unwrap();
    t += &p.exp_string("Checksum verified").unwrap();
    // 3. Compatibility.
    t += &p.exp_string("Systems are compatible").unwrap();
    // 4. Mode and categories.
    let n = number_of(&mut p, "CUSTOM selection", "Choice: ", &mut t);
    p.send_line(&n).unwrap();
    let n = number_of(
        &mut p,
        "PVE Cluster Configuration",
        "Your selection: ",
        &mut t,
    );
    p.send_line(&n).unwrap();
    let n = number_of(&mut p, "SSH Configuration", "Your selection: ", &mut t);
    p.send_line(&n).unwrap();
    let menu = p.exp_string("Your selection: ").unwrap();
    assert!(menu.contains("[X] PVE Cluster Configuration"), "{menu}");
    assert!(menu.contains("[X] SSH Configuration"), "{menu}");
    p.send_line("c").unwrap();
    // 5. SAFE / RECOVERY (a cluster backup with the cluster database selected).
    let n = number_of(&mut p, "SAFE: Do NOT write", "Choice: ", &mut t);
    // RECOVERY's choice says what it stops and the HA watchdog's risk.
    assert!(
        t.contains("Stops pve-cluster, pvedaemon, pveproxy and pvestatd; on a node with active HA resources the watchdog may fence (hard-reset) it while they are down"),
        "{t}"
    );
    p.send_line(&n).unwrap();
    // 6. Plan and confirmation.
    t += &p.exp_string("RESTORE PLAN").unwrap();
    t += &p
        .exp_string("Restore mode: CUSTOM selection (2 categories)")
        .unwrap();
    t += &p.exp_string("Cluster mode: SAFE").unwrap();
    t += &p
        .exp_string("Type \"RESTORE\" (exact case) to proceed, or \"cancel\"/\"0\" to abort: ")
        .unwrap();
    p.send_line("restore").unwrap();
    t += &p.exp_string("Please type RESTORE to proceed").unwrap();
    t += &p.exp_string("to abort: ").unwrap();
    p.send_line("RESTORE").unwrap();
    // 7. Execution and summary.
    t += &p.exp_string("Safety backup created: ").unwrap();
    t += &p.exp_string("RESTORE COMPLETED").unwrap();
    t += &p.exp_string("Export directory: ").unwrap();
    t += &p.exp_string("Safety backup preserved at: ").unwrap();
    t += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{t}");
    assert!(!t.contains(PASSPHRASE), "passphrase echoed");

    // SSH restored into the root; the cluster database exported, not written (SAFE).
    let sshd = fs::read(lab.root.join("etc/ssh/sshd_config")).unwrap();
    assert_eq!(sshd, b"PermitRootLogin prohibit-password\n");
    assert!(lab.root.join("root/.ssh/authorized_keys").exists());
    assert!(!lab.root.join("var/lib/pve-cluster").exists());
    assert!(
        lab.base
            .join("export/var/lib/pve-cluster/config.db")
            .exists()
    );
    // The safety backup holds the sshd_config that was overwritten.
    let work = lab.base.join("work");
    let sb = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("safety backup");
    let listing = Command::new("tar").arg("-tzf").arg(&sb).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.lines().any(|l| l == "etc/ssh/sshd_config"),
        "{listing}"
    );
}

#[test]
fn cancel_at_the_mode_menu_and_at_the_plan_exit_130_and_write_nothing() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let lab = lab();
    let before = proxsave_testkit::fixture::snapshot(&lab.root);
    let backup = fs::read_dir(lab.base.join("backup"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bs = backup.display().to_string();
    for at_plan in [false, true] {
        let mut extra = vec!["--backup", bs.as_str()];
        if at_plan {
            extra.extend(["--mode", "base"]);
        }
        let a = args(&lab, &extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut p = spawn(&a);
        p.exp_string("(input hidden, 0 to cancel): ").unwrap();
        p.send_line(PASSPHRASE).unwrap();
        if at_plan {
            p.exp_string("to abort: ").unwrap();
            p.send_line("cancel").unwrap();
            p.exp_string("Restore operation cancelled by user").unwrap();
        } else {
            p.exp_string("Select restore mode:").unwrap();
            p.exp_string("Choice: ").unwrap();
            p.send_line("0").unwrap();
        }
        p.exp_eof().unwrap();
        assert_eq!(exit_code(&mut p), 130);
        assert_eq!(proxsave_testkit::fixture::snapshot(&lab.root), before);
        assert!(!lab.base.join("export").exists());
    }
}

/// rexpect hands over each byte as a `char`; turn that back into UTF-8 text.
fn utf8(s: &str) -> String {
    if s.chars().all(|c| (c as u32) < 256) {
        let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        s.to_string()
    }
}

/// Replaces what changes from run to run (temporary folders, timestamps, checksums).
fn normalise(text: &str, lab: &Lab) -> String {
    normalise_as(text, &lab.base.display().to_string(), "<LAB>")
}

/// [`normalise`] with `folder` shown as `shown`.
fn normalise_as(text: &str, folder: &str, shown: &str) -> String {
    let mut t = utf8(text).replace("\r\n", "\n");
    t = t.replace(folder, shown);
    let mut out = String::new();
    for line in t.lines() {
        let mut l = line.to_string();
        // 20261126_211107 and 20261126-211107 stamps.
        let bytes: Vec<char> = l.chars().collect();
        let mut i = 0;
        let mut norm = String::new();
        while i < bytes.len() {
            if i + 15 <= bytes.len()
                && bytes[i..i + 8].iter().all(|c| c.is_ascii_digit())
                && (bytes[i + 8] == '_' || bytes[i + 8] == '-')
                && bytes[i + 9..i + 15].iter().all(|c| c.is_ascii_digit())
            {
                norm.push_str("<STAMP>");
                i += 15;
            } else {
                norm.push(bytes[i]);
                i += 1;
            }
        }
        l = norm;
        if let Some(pos) = l.find("Checksum verified: ") {
            l = format!("{}Checksum verified: <SHA256>", &l[..pos]);
        }
        if l.contains("MB)") && l.contains("Safety backup created") {
            if let Some(p) = l.find(" (") {
                l = format!("{} (<N> entries, <SIZE> MB)", &l[..p]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn docs_walkthrough_matches_what_the_binary_prints() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let lab = lab();
    let a = args(&lab, &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut p = spawn(&a);
    let mut t = String::new();
    // (prompt, what the person types, whether the terminal echoes it)
    // No SAFE guests question: host actions are deferred in a scratch root.
    let steps: [(&str, &str, bool); 6] = [
        ("Choice: ", "1", true),
        ("Choice: ", "1", true),
        ("(input hidden, 0 to cancel): ", PASSPHRASE, false),
        ("Choice: ", "1", true),
        ("Choice: ", "1", true),
        ("to abort: ", "RESTORE", true),
    ];
    for (prompt, answer, echoed) in steps {
        t += &p.exp_string(prompt).unwrap();
        t += prompt;
        p.send_line(answer).unwrap();
        if echoed {
            t += answer;
        }
        t += "\n";
    }
    t += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0);
    let got = normalise(&t, &lab);
    if std::env::var_os("PRINT_WALKTHROUGH").is_some() {
        eprintln!("{got}");
    }
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/restore-walkthrough.md"
    ))
    .expect("docs/restore-walkthrough.md");
    let block = doc
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a ```text block in docs/restore-walkthrough.md");
    // Every line of the documented transcript appears, in order, in what the binary printed.
    let got_lines: Vec<&str> = got.lines().collect();
    let mut at = 0;
    for want in block.lines() {
        let pos = got_lines[at..]
            .iter()
            .position(|g| g.trim_end() == want.trim_end())
            .unwrap_or_else(|| {
                panic!("docs line not printed (in order): {want:?}\n--- printed ---\n{got}")
            });
        at += pos + 1;
    }
}

/// The walkthrough's answers, in a terminal where progress bars are drawn: no bar text is
/// left on (or drawn onto) a line that holds a prompt, and the error or message lines are
/// whole. A line is judged by what it shows: the text after its last carriage return (a bar
/// cleared with `\r` and erase-line before the prompt leaves nothing visible).
#[test]
fn no_progress_text_on_a_prompt_line() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let lab = lab();
    let a = args(&lab, &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut p = spawn_term(&a, "xterm");
    let mut t = String::new();
    let steps: [(&str, &str, bool); 7] = [
        ("Choice: ", "1", true),
        ("Choice: ", "1", true),
        // A wrong passphrase first: the bar of the failed read must not stay on the line.
        ("(input hidden, 0 to cancel): ", "wrong-passphrase", false),
        ("(input hidden, 0 to cancel): ", PASSPHRASE, false),
        ("Choice: ", "1", true),
        ("Choice: ", "1", true),
        ("to abort: ", "RESTORE", true),
    ];
    for (prompt, answer, echoed) in steps {
        t += &p.exp_string(prompt).unwrap();
        t += prompt;
        p.send_line(answer).unwrap();
        if echoed {
            t += answer;
        }
        t += "\n";
    }
    t += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0, "{t}");
    let text = utf8(&t).replace("\r\n", "\n");
    let bar_words = ["analysing", "restoring", "[==", "=> "];
    let mut prompts = 0;
    for line in text.lines() {
        let shown = line.rsplit('\r').next().unwrap_or(line);
        let is_prompt = ["Choice: ", "(input hidden", "to abort: "]
            .iter()
            .any(|p| shown.contains(p));
        if is_prompt {
            prompts += 1;
            assert!(
                !bar_words.iter().any(|w| shown.contains(w)),
                "progress text on a prompt line: {shown:?}\n{text}"
            );
        }
        for msg in [
            "does not match this backup",
            "RESTORE PLAN",
            "Checksum verified",
        ] {
            if let Some(at) = shown.find(msg) {
                assert!(
                    !bar_words.iter().any(|w| shown[..at].contains(w)),
                    "progress text before a message: {shown:?}"
                );
            }
        }
    }
    assert_eq!(prompts, 7, "{text}");
    // Not vacuous: a bar was drawn (and cleared) during the run.
    assert!(
        text.contains("analysing "),
        "no progress bar was drawn:\n{text}"
    );
    assert!(
        text.contains("The passphrase or key does not match this backup."),
        "{text}"
    );
}

/// A host whose type cannot be detected: the compatibility question takes `y` after asking
/// again on anything else, and STORAGE (which selects nothing here) is shown disabled with
/// the reason and cannot be chosen.
#[test]
fn yes_no_takes_y_and_a_mode_that_selects_nothing_is_disabled() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let lab = lab();
    fs::remove_dir_all(&lab.root).unwrap();
    fs::create_dir(&lab.root).unwrap();
    let a = args(&lab, &[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut p = spawn(&a);
    let mut t = String::new();
    for (prompt, answer) in [
        ("Choice: ", "1"),
        ("Choice: ", "1"),
        ("(input hidden, 0 to cancel): ", PASSPHRASE),
    ] {
        t += &p.exp_string(prompt).unwrap();
        p.send_line(answer).unwrap();
    }
    t += &p
        .exp_string("cannot detect the current system type")
        .unwrap();
    t += &p.exp_string("(yes/no): ").unwrap();
    p.send_line("maybe").unwrap();
    t += &p
        .exp_string("Please answer yes or no (y/n), or cancel.")
        .unwrap();
    t += &p.exp_string("(yes/no): ").unwrap();
    p.send_line("y").unwrap();
    let menu = p.exp_string("Choice: ").unwrap();
    assert!(menu.contains("Select restore mode:"), "{menu}");
    assert!(
        menu.contains("  [-] STORAGE only (not available: this host's type (PVE/PBS) is unknown)"),
        "{menu}"
    );
    assert!(menu.contains("  [1] FULL restore"), "{menu}");
    p.send_line("2").unwrap();
    t += &p
        .exp_string("STORAGE only: not available: this host's type (PVE/PBS) is unknown.")
        .unwrap();
    t += &p.exp_string("Choice: ").unwrap();
    p.send_line("0").unwrap();
    t += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 130, "{t}");
    assert!(!lab.base.join("export").exists());
}

/// Every line of the ```text block under `heading` in docs/restore-walkthrough.md appears, in
/// order, in `got`.
fn assert_doc_block_printed(heading: &str, got: &str) {
    let doc = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/restore-walkthrough.md"
    ))
    .expect("docs/restore-walkthrough.md");
    let block = doc
        .split(heading)
        .nth(1)
        .and_then(|d| d.split("```text\n").nth(1))
        .and_then(|b| b.split("\n```").next())
        .unwrap_or_else(|| panic!("a ```text block under {heading:?}"));
    let got_lines: Vec<&str> = got.lines().collect();
    let mut at = 0;
    for want in block.lines() {
        let pos = got_lines[at..]
            .iter()
            .position(|g| g.trim_end() == want.trim_end())
            .unwrap_or_else(|| {
                panic!("docs line not printed (in order): {want:?}\n--- printed ---\n{got}")
            });
        at += pos + 1;
    }
}

/// The README's first command, exactly (the bundled example backup into a scratch root), in a
/// terminal: the answers a new user gives (`yes` to the warning, `1` FULL, `RESTORE`), and the
/// transcript is the one docs/restore-walkthrough.md shows under "The README's first command".
#[test]
fn docs_readme_first_command_matches_what_the_binary_prints() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let demo = tempfile::tempdir().unwrap();
    let d = demo.path().display().to_string();
    let mut cmd = Command::new(common::bin());
    cmd.current_dir(&repo)
        .args([
            "restore",
            "--backup",
            "examples/pve1.example.lan-backup-20260724-023000.tar.xz.age.bundle.tar",
            "--passphrase-file",
            "examples/example-passphrase.txt",
            "--root",
            &format!("{d}/root"),
            "--create-root",
            "--work-dir",
            &format!("{d}/work"),
            "--export-dir",
            &format!("{d}/export"),
        ])
        .env("TZ", "UTC")
        .env("TERM", "dumb");
    let mut p = spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(90_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty");
    let mut t = String::new();
    for (prompt, answer) in [
        ("(yes/no): ", "yes"),
        ("Choice: ", "1"),
        ("to abort: ", "RESTORE"),
    ] {
        t += &p.exp_string(prompt).unwrap();
        t += prompt;
        p.send_line(answer).unwrap();
        t += answer;
        t += "\n";
    }
    t += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0);
    // The example's own name keeps its date.
    let got = normalise_as(&t, &d, "/tmp/proxsave-demo").replace(
        "pve1.example.lan-backup-<STAMP>",
        "pve1.example.lan-backup-20260724-023000",
    );
    if std::env::var_os("PRINT_WALKTHROUGH").is_some() {
        eprintln!("{got}");
    }
    assert_doc_block_printed("## The README's first command", &got);
    // What the README promises: the restored files are in the scratch root.
    assert!(demo.path().join("root/etc/ssh/sshd_config").is_file());
}
