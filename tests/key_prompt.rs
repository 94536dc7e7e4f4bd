//! The key prompt, driven through a real pseudo-terminal as a person would use it.

mod common;

use std::process::Command;

use proxsave_archive::key::derive_identity;
use proxsave_testkit::fixture::{BackupSpec, Encryption, HostTree, gnu_tar_pax, make_backup};
use proxsave_testkit::require_tools;
use rexpect::process::WaitStatus;
use rexpect::session::{Options, spawn_with_options};

const PASSPHRASE: &str = "Correct-Horse-Battery-9";
const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";

fn encrypted_bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let tree = dir.join("host");
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
    made.write_bundle(dir)
}

fn session(args: &[&str]) -> rexpect::session::PtySession {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).env("TZ", "UTC").env("TERM", "dumb");
    spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn proxsave in a pty")
}

fn exit_code(p: &mut rexpect::session::PtySession) -> i32 {
    match p.process().wait().expect("wait") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("proxsave did not exit normally: {other:?}"),
    }
}

#[test]
fn missing_passphrase_is_asked_without_echo_and_retried() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let bundle = encrypted_bundle(dir.path());
    let mut p = session(&["verify", "--backup", bundle.to_str().unwrap()]);
    let mut seen = String::new();
    seen += &p.exp_string("Passphrase or AGE-SECRET-KEY for").unwrap();
    seen += &p.exp_string("(input hidden, 0 to cancel): ").unwrap();
    p.send_line("wrong horse").unwrap();
    seen += &p
        .exp_string("The passphrase or key does not match this backup.")
        .unwrap();
    seen += &p.exp_string("(input hidden, 0 to cancel): ").unwrap();
    p.send_line(PASSPHRASE).unwrap();
    seen += &p.exp_string("the backup is sound").unwrap();
    seen += &p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 0);
    assert!(
        !seen.contains("wrong horse"),
        "typed text was echoed:\n{seen}"
    );
    assert!(!seen.contains(PASSPHRASE), "passphrase was echoed:\n{seen}");
}

#[test]
fn zero_at_the_key_prompt_aborts_with_130() {
    require_tools!("tar", "xz", "age", "sha256sum");
    let dir = tempfile::tempdir().unwrap();
    let bundle = encrypted_bundle(dir.path());
    let out = dir.path().join("out");
    let mut p = session(&[
        "extract",
        "--backup",
        bundle.to_str().unwrap(),
        "--to",
        out.to_str().unwrap(),
    ]);
    p.exp_string("(input hidden, 0 to cancel): ").unwrap();
    p.send_line("0").unwrap();
    p.exp_string("aborted").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(exit_code(&mut p), 130);
    assert!(!out.exists(), "extract left its destination behind");
}
