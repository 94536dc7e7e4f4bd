//! End-to-end tests of the read-only commands against backups made with the real tools:
//! GNU tar (PAX), xz/zstd/pigz/pbzip2/bzip2/lzma, the `age` CLI, `ssh-keygen`, `sha256sum`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_ok, code, missing_or_empty, run, stderr, stdout};
use proxsave_archive::key::{SALT_LEGACY, SALT_V1, derive_identity};
use proxsave_testkit::fixture::{
    BackupSpec, Compressor, Encryption, HostTree, MadeBackup, gnu_tar_pax, make_backup, pipe,
    sha256sum, snapshot,
};
use proxsave_testkit::{require_tool, require_tools};

const PASSPHRASE: &str = "Correct-Horse-Battery-9";
const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";

struct Case {
    dir: tempfile::TempDir,
    tree: PathBuf,
    tar: Vec<u8>,
}

fn host_case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("host");
    HostTree::pve_node(&tree);
    let tar = gnu_tar_pax(&tree);
    Case { dir, tree, tar }
}

fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let recipient = String::from_utf8(
        Command::new("age-keygen")
            .arg("-y")
            .arg(&key)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    (key, recipient)
}

fn write_passphrase(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("passphrase.txt");
    fs::write(&p, format!("{text}\n")).unwrap();
    p
}

/// Extracts `backup` with `key_args` into a fresh folder and asserts the tree is identical
/// to the source (content, mode, owner, nanosecond mtimes, symlink text).
fn assert_extracts_exactly(case: &Case, backup: &Path, key_args: &[&str]) {
    let out_dir = case.dir.path().join(format!("out-{}", rand_suffix()));
    let mut args = vec![
        "extract",
        "--backup",
        backup.to_str().unwrap(),
        "--to",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(key_args);
    let out = run(&args);
    assert_ok(&out);
    assert_eq!(
        snapshot(&out_dir),
        snapshot(&case.tree),
        "extracted tree differs"
    );
    fs::remove_dir_all(&out_dir).unwrap();
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}", N.fetch_add(1, Ordering::SeqCst))
}

#[test]
fn every_compressor_reads_back_byte_exactly() {
    require_tools!(
        "tar",
        "sha256sum",
        "find",
        "xz",
        "zstd",
        "pigz",
        "pbzip2",
        "bzip2",
        "lzma"
    );
    let case = host_case();
    for compressor in [
        Compressor::Xz,
        Compressor::Zstd,
        Compressor::Pigz,
        Compressor::Pbzip2,
        Compressor::Bzip2,
        Compressor::Lzma,
        Compressor::None,
    ] {
        let made = make_backup(
            &case.tar,
            &BackupSpec {
                compressor,
                ..BackupSpec::default()
            },
        );
        let bundle = made.write_bundle(case.dir.path());
        let verify = run(["verify", "--backup", bundle.to_str().unwrap()]);
        assert_ok(&verify);
        assert!(
            stdout(&verify).contains("the backup is sound"),
            "{compressor:?}"
        );
        assert_extracts_exactly(&case, &bundle, &[]);
    }
}

#[test]
fn xz_multi_block_and_concatenated_streams_read_fully() {
    require_tools!("tar", "sha256sum", "find", "xz");
    let case = host_case();
    // Many blocks (as `xz -T0` writes for big archives) and two streams back to back.
    let half = case.tar.len() / 2;
    let mut xz = pipe("xz", &["-T0", "--block-size=4KiB", "-c"], &case.tar[..half]);
    xz.extend(pipe("xz", &["-c"], &case.tar[half..]));
    let mut made = make_backup(&case.tar, &BackupSpec::default());
    made.archive = xz;
    made.sha256 = sha256sum(&made.archive);
    made.sha256_line = format!("{}  {}\n", made.sha256, made.archive_name);
    made.manifest = String::new();
    let raw = case.dir.path().join("raw");
    fs::create_dir(&raw).unwrap();
    let archive = made.write_raw(&raw);
    fs::remove_file(raw.join(format!("{}.metadata", made.archive_name))).unwrap();
    assert_extracts_exactly(&case, &archive, &[]);
}

#[test]
fn age_x25519_ssh_and_passphrase_recipients_all_decrypt() {
    require_tools!(
        "tar",
        "sha256sum",
        "find",
        "xz",
        "age",
        "age-keygen",
        "ssh-keygen"
    );
    let case = host_case();
    let keys = case.dir.path().join("keys");
    fs::create_dir(&keys).unwrap();

    // X25519 identity.
    let (x_key, x_recipient) = age_keygen(&keys, "x25519.txt");
    let made = make_backup(
        &case.tar,
        &BackupSpec {
            encryption: Encryption::Recipients(vec![x_recipient]),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(case.dir.path());
    assert_extracts_exactly(&case, &bundle, &["--identity", x_key.to_str().unwrap()]);

    // OpenSSH ed25519 and RSA recipients.
    for kind in ["ed25519", "rsa"] {
        let key = keys.join(format!("id_{kind}"));
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
            .arg(&key);
        if kind == "rsa" {
            cmd.args(["-b", "2048"]);
        }
        assert!(cmd.status().unwrap().success());
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        let made = make_backup(
            &case.tar,
            &BackupSpec {
                encryption: Encryption::Recipients(vec![public.trim().to_string()]),
                stamp: format!("20260724-0231{}", if kind == "rsa" { "01" } else { "00" }),
                ..BackupSpec::default()
            },
        );
        let bundle = made.write_bundle(case.dir.path());
        assert_extracts_exactly(&case, &bundle, &["--identity", key.to_str().unwrap()]);
    }

    // Passphrase-derived recipients for each of upstream's three salts.
    let pass_file = write_passphrase(&keys, PASSPHRASE);
    for (i, (salt, in_manifest)) in [(SALT_V2, true), (SALT_V1, false), (SALT_LEGACY, false)]
        .into_iter()
        .enumerate()
    {
        let recipient = derive_identity(PASSPHRASE, salt).to_public().to_string();
        let made = make_backup(
            &case.tar,
            &BackupSpec {
                encryption: Encryption::Recipients(vec![recipient]),
                passphrase_salt: in_manifest.then(|| salt.to_string()),
                stamp: format!("20260724-02320{i}"),
                ..BackupSpec::default()
            },
        );
        let bundle = made.write_bundle(case.dir.path());
        assert_extracts_exactly(
            &case,
            &bundle,
            &["--passphrase-file", pass_file.to_str().unwrap()],
        );
    }
}

#[test]
fn raw_layout_and_old_bundle_order_are_read() {
    require_tools!("tar", "sha256sum", "find", "zstd");
    let case = host_case();
    let made = make_backup(
        &case.tar,
        &BackupSpec {
            compressor: Compressor::Zstd,
            ..BackupSpec::default()
        },
    );
    let raw = case.dir.path().join("raw");
    fs::create_dir(&raw).unwrap();
    let archive = made.write_raw(&raw);
    assert_extracts_exactly(&case, &archive, &[]);
    // Naming the .metadata sidecar works too.
    let meta = raw.join(format!("{}.metadata", made.archive_name));
    assert_extracts_exactly(&case, &meta, &[]);

    // Bundles before upstream v0.12.5: archive first, metadata last.
    let old = case.dir.path().join("old.bundle.tar");
    let st = Command::new("tar")
        .args(["--format=ustar", "-C"])
        .arg(&raw)
        .arg("-cf")
        .arg(&old)
        .arg(&made.archive_name)
        .arg(format!("{}.sha256", made.archive_name))
        .arg(format!("{}.metadata", made.archive_name))
        .status()
        .unwrap();
    assert!(st.success());
    assert_extracts_exactly(&case, &old, &[]);
}

fn plain_bundle(case: &Case) -> (MadeBackup, PathBuf) {
    let made = make_backup(&case.tar, &BackupSpec::default());
    let bundle = made.write_bundle(case.dir.path());
    (made, bundle)
}

#[test]
fn cat_accepts_every_spelling_and_ls_lists() {
    require_tools!("tar", "sha256sum", "xz");
    let case = host_case();
    let (_, bundle) = plain_bundle(&case);
    let b = bundle.to_str().unwrap();
    let expected = fs::read(case.tree.join("etc/pve/storage.cfg")).unwrap();
    for spelling in [
        "etc/pve/storage.cfg",
        "./etc/pve/storage.cfg",
        "/etc/pve/storage.cfg",
    ] {
        let out = run(["cat", "--backup", b, spelling]);
        assert_ok(&out);
        assert_eq!(out.stdout, expected, "{spelling}");
    }
    let missing = run(["cat", "--backup", b, "etc/nope"]);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("etc/nope: not found in the backup"));
    let link = run(["cat", "--backup", b, "etc/localtime"]);
    assert_eq!(code(&link), 1);
    assert!(stderr(&link).contains("symbolic link to /usr/share/zoneinfo/Europe/Rome"));

    let ls = run(["ls", "--backup", b, "/etc/pve"]);
    assert_ok(&ls);
    let names: Vec<String> = stdout(&ls).lines().map(str::to_string).collect();
    assert!(
        names.contains(&"./etc/pve/storage.cfg".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"./etc/pve/priv/authkey.key".to_string()));
    assert!(names.iter().all(|n| n.starts_with("./etc/pve")));

    let long = run(["ls", "-l", "--backup", b, "usr/local/bin/*"]);
    assert_ok(&long);
    assert!(
        stdout(&long).contains("-rwsr-xr-x root/root"),
        "{}",
        stdout(&long)
    );

    let json = run(["ls", "--json", "--backup", b, "etc/localtime"]);
    assert_ok(&json);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["schema"], "proxsave/ls/v1");
    assert_eq!(v["entries"][0]["link"], "/usr/share/zoneinfo/Europe/Rome");
    assert_eq!(v["entries"][0]["kind"], "symlink");
}

#[test]
fn extract_selects_paths_and_keeps_parent_modes() {
    require_tools!("tar", "sha256sum", "xz");
    let case = host_case();
    let (_, bundle) = plain_bundle(&case);
    let out_dir = case.dir.path().join("sel");
    let out = run([
        "extract",
        "--backup",
        bundle.to_str().unwrap(),
        "--to",
        out_dir.to_str().unwrap(),
        "/etc/pve/priv/authkey.key",
    ]);
    assert_ok(&out);
    let got = fs::read(out_dir.join("etc/pve/priv/authkey.key")).unwrap();
    assert_eq!(
        got,
        fs::read(case.tree.join("etc/pve/priv/authkey.key")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    // The parent's mode comes from the archive (0700), not a default.
    let mode = fs::metadata(out_dir.join("etc/pve/priv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
    assert!(!out_dir.join("etc/hosts").exists());

    let none = case.dir.path().join("none");
    let out = run([
        "extract",
        "--backup",
        bundle.to_str().unwrap(),
        "--to",
        none.to_str().unwrap(),
        "etc/does-not-exist",
    ]);
    assert_eq!(code(&out), 1);
    assert!(missing_or_empty(&none));
}

#[test]
fn decrypt_writes_an_upstream_style_bundle() {
    require_tools!("tar", "sha256sum", "xz", "age", "age-keygen");
    let case = host_case();
    let (key, recipient) = age_keygen(case.dir.path(), "k.txt");
    let made = make_backup(
        &case.tar,
        &BackupSpec {
            encryption: Encryption::Recipients(vec![recipient]),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(case.dir.path());
    let out_dir = case.dir.path().join("decrypted");
    let out = run([
        "decrypt",
        "--backup",
        bundle.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let plain = made.archive_name.trim_end_matches(".age").to_string();
    let dbundle = out_dir.join(format!("{plain}.decrypted.bundle.tar"));
    assert_eq!(stdout(&out).trim(), dbundle.to_str().unwrap());
    // Only the bundle is left (no plaintext staging file).
    let left: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // Members and order, read with GNU tar.
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&dbundle)
        .output()
        .unwrap();
    let members: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        members,
        [
            format!("{plain}.metadata"),
            format!("{plain}.sha256"),
            plain.clone()
        ]
    );
    let x = case.dir.path().join("x");
    fs::create_dir(&x).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&dbundle)
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap()
            .success()
    );
    let plaintext = fs::read(x.join(&plain)).unwrap();
    // The plaintext is exactly what xz wrote before age encrypted it.
    let original_plain = pipe("age", &["-d", "-i", key.to_str().unwrap()], &made.archive);
    assert_eq!(plaintext, original_plain);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(x.join(format!("{plain}.metadata"))).unwrap()).unwrap();
    assert_eq!(manifest["encryption_mode"], "none");
    assert_eq!(manifest["sha256"], sha256sum(&plaintext));
    assert_eq!(manifest["archive_size"], plaintext.len());
    assert_eq!(manifest["hostname"], "pve1.example.lan");
    assert_eq!(
        fs::read_to_string(x.join(format!("{plain}.sha256"))).unwrap(),
        format!("{}  {plain}\n", sha256sum(&plaintext))
    );
    // The decrypted bundle is itself a sound backup, readable without a key.
    assert_ok(&run(["verify", "--backup", dbundle.to_str().unwrap()]));
    // Refuses to overwrite.
    let again = run([
        "decrypt",
        "--backup",
        bundle.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code(&again), 1);
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn inspect_works_without_a_key() {
    require_tools!("tar", "sha256sum", "xz", "age", "age-keygen");
    let case = host_case();
    let (_, recipient) = age_keygen(case.dir.path(), "k.txt");
    let made = make_backup(
        &case.tar,
        &BackupSpec {
            encryption: Encryption::Recipients(vec![recipient]),
            passphrase_salt: Some(SALT_V2.into()),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(case.dir.path());
    let out = run(["inspect", "--json", "--backup", bundle.to_str().unwrap()]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "proxsave/inspect/v1");
    assert_eq!(v["encrypted"], true);
    assert_eq!(v["integrity"]["status"], "ok");
    assert_eq!(v["integrity"]["computed"], made.sha256);
    assert_eq!(v["manifest"]["passphrase_salt"], SALT_V2);
    assert_eq!(v["manifest"]["hostname"], "pve1.example.lan");
    let human = run(["inspect", "--backup", bundle.to_str().unwrap()]);
    assert_ok(&human);
    assert!(
        stdout(&human).contains("PVE v8.4.1 (cluster)"),
        "{}",
        stdout(&human)
    );
}

/// A failure case: the command must exit non-zero with `needle` in its message and leave the
/// extraction folder as it was.
fn assert_fails(backup: &Path, key_args: &[&str], needle: &str, work: &Path) {
    let b = backup.to_str().unwrap();
    let mut verify = vec!["verify", "--backup", b];
    verify.extend_from_slice(key_args);
    let out = run(&verify);
    assert_eq!(code(&out), 1, "verify: {}", stderr(&out));
    assert!(
        stderr(&out).contains(needle),
        "verify: expected {needle:?} in:\n{}",
        stderr(&out)
    );

    let dest = work.join(format!("fail-{}", rand_suffix()));
    let mut extract = vec!["extract", "--backup", b, "--to", dest.to_str().unwrap()];
    extract.extend_from_slice(key_args);
    let out = run(&extract);
    assert_eq!(code(&out), 1, "extract: {}", stderr(&out));
    assert!(
        stderr(&out).contains(needle),
        "extract: expected {needle:?} in:\n{}",
        stderr(&out)
    );
    assert!(!dest.exists(), "extract left {} behind", dest.display());

    // An existing empty folder stays empty.
    fs::create_dir(&dest).unwrap();
    let out = run(&extract);
    assert_eq!(code(&out), 1);
    assert!(
        missing_or_empty(&dest),
        "extract wrote into {}",
        dest.display()
    );
    fs::remove_dir(&dest).unwrap();
}

/// Re-checksums a made backup after tampering, as if the backup tool had written the damaged
/// data (so the damage itself, not the checksum, is what must be reported).
fn rechecksum(made: &mut MadeBackup) {
    made.sha256 = sha256sum(&made.archive);
    made.sha256_line = format!("{}  {}\n", made.sha256, made.archive_name);
    let v: serde_json::Value = serde_json::from_str(&made.manifest).unwrap();
    let old = v["sha256"].as_str().unwrap().to_string();
    let old_size = v["archive_size"].to_string();
    made.manifest = made.manifest.replace(&old, &made.sha256).replace(
        &format!("\"archive_size\": {old_size}"),
        &format!("\"archive_size\": {}", made.archive.len()),
    );
}

#[test]
fn each_kind_of_damage_has_its_own_error_and_writes_nothing() {
    require_tools!("tar", "sha256sum", "xz", "age", "age-keygen");
    let case = host_case();
    let work = case.dir.path();
    let (key, recipient) = age_keygen(work, "k.txt");
    let (other_key, _) = age_keygen(work, "other.txt");
    let k = ["--identity", key.to_str().unwrap()];
    let encrypted = make_backup(
        &case.tar,
        &BackupSpec {
            encryption: Encryption::Recipients(vec![recipient.clone()]),
            ..BackupSpec::default()
        },
    );
    let dir = |name: &str| {
        let d = work.join(name);
        fs::create_dir(&d).unwrap();
        d
    };

    // Wrong key.
    let good = encrypted.write_bundle(&dir("good"));
    assert_fails(
        &good,
        &["--identity", other_key.to_str().unwrap()],
        "does not match this backup",
        work,
    );

    // Wrong passphrase (the archive is for an X25519 key, so any passphrase is wrong).
    let pass = write_passphrase(work, "not-the-passphrase");
    assert_fails(
        &good,
        &["--passphrase-file", pass.to_str().unwrap()],
        "does not match this backup",
        work,
    );

    // No key at all, non-interactively: a usage error naming the options.
    let out = run(["verify", "--backup", good.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--passphrase-file"));

    // Data changed after it was checksummed: checksum mismatch.
    let mut flipped = encrypted.clone();
    let mid = flipped.archive.len() / 2;
    flipped.archive[mid] ^= 0x40;
    let b = flipped.write_bundle(&dir("flipped"));
    assert_fails(&b, &k, "does not match its checksum", work);

    // A byte flipped before checksumming: the age authentication catches it.
    let mut corrupt = flipped.clone();
    rechecksum(&mut corrupt);
    let b = corrupt.write_bundle(&dir("corrupt"));
    assert_fails(&b, &k, "the encrypted data is corrupt", work);

    // Ciphertext cut short (consistent sidecars): truncated.
    let mut cut = encrypted.clone();
    cut.archive.truncate(cut.archive.len() - 100);
    rechecksum(&mut cut);
    let b = cut.write_bundle(&dir("cut"));
    assert_fails(&b, &k, "the encrypted data is truncated", work);

    // Checksum file and manifest disagree.
    let mut conflict = encrypted.clone();
    conflict.sha256_line = format!("{}  {}\n", "0".repeat(64), conflict.archive_name);
    let b = conflict.write_bundle(&dir("conflict"));
    assert_fails(&b, &k, "disagree", work);

    // No checksum anywhere: the raw archive alone.
    let lone = dir("lone");
    fs::write(lone.join(&encrypted.archive_name), &encrypted.archive).unwrap();
    assert_fails(&lone.join(&encrypted.archive_name), &k, "no checksum", work);

    // Bundle cut in the middle of the archive member.
    let b = encrypted.write_bundle(&dir("short"));
    let bytes = fs::read(&b).unwrap();
    fs::write(&b, &bytes[..bytes.len() - encrypted.archive.len() / 2]).unwrap();
    assert_fails(&b, &k, "truncated", work);

    // A tar stream cut inside a file's data, compressed and checksummed consistently.
    let mut short_tar = case.tar.clone();
    short_tar.truncate(short_tar.len() / 2 + 100);
    let made = make_backup(&short_tar, &BackupSpec::default());
    let b = made.write_bundle(&dir("tarcut"));
    assert_fails(&b, &[], "tar stream is truncated", work);

    // Garbage after the end-of-archive marker.
    let mut trailing = case.tar.clone();
    trailing.extend_from_slice(b"garbage after the end of the archive");
    let made = make_backup(&trailing, &BackupSpec::default());
    let b = made.write_bundle(&dir("trailing"));
    assert_fails(
        &b,
        &[],
        "unexpected data after the end of the tar archive",
        work,
    );

    // Corrupt xz data, checksummed consistently.
    let mut bad_xz = make_backup(&case.tar, &BackupSpec::default());
    let n = bad_xz.archive.len();
    bad_xz.archive[n / 2] ^= 0xff;
    rechecksum(&mut bad_xz);
    let b = bad_xz.write_bundle(&dir("badxz"));
    assert_fails(&b, &[], "the xz data is corrupt", work);

    // A name that says xz over zstd data.
    if require_tool("zstd").is_some() {
        let mut lie = make_backup(
            &case.tar,
            &BackupSpec {
                compressor: Compressor::Zstd,
                ..BackupSpec::default()
            },
        );
        lie.archive_name = lie.archive_name.replace(".tar.zst", ".tar.xz");
        lie.sha256_line = format!("{}  {}\n", lie.sha256, lie.archive_name);
        let b = lie.write_bundle(&dir("lie"));
        assert_fails(&b, &[], "zstd", work);
    }
}

#[test]
fn inspect_with_a_key_lists_the_categories_and_decrypt_failures_leave_no_folder() {
    require_tools!("tar", "sha256sum", "xz", "age", "age-keygen");
    let case = host_case();
    let (key, recipient) = age_keygen(case.dir.path(), "k.txt");
    let (other, _) = age_keygen(case.dir.path(), "other.txt");
    let made = make_backup(
        &case.tar,
        &BackupSpec {
            encryption: Encryption::Recipients(vec![recipient]),
            ..BackupSpec::default()
        },
    );
    let bundle = made.write_bundle(case.dir.path());
    let b = bundle.to_str().unwrap();
    let out = run([
        "inspect",
        "--json",
        "--backup",
        b,
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cats: Vec<&str> = v["contents"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for id in [
        "pve_cluster",
        "storage_pve",
        "network",
        "ssh",
        "scripts",
        "user_data",
    ] {
        assert!(cats.contains(&id), "{id} in {cats:?}");
    }
    assert_eq!(v["contents"]["backup_type"], "pve");
    assert_eq!(v["contents"]["cluster_mode"], "cluster");

    let out_dir = case.dir.path().join("new-folder/decrypted");
    let out = run([
        "decrypt",
        "--backup",
        b,
        "--out",
        out_dir.to_str().unwrap(),
        "--identity",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("does not match this backup"));
    assert!(
        !case.dir.path().join("new-folder").exists(),
        "decrypt left {} behind",
        out_dir.display()
    );
}
