//! The age layer against ciphertext made by the real `age` CLI and keys made by `age-keygen`
//! and `ssh-keygen`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use age::secrecy::SecretString;
use proxsave_archive::key::{
    self, Key, KeyError, PayloadFault, SALT_LEGACY, SALT_V1, SshKeyUnlock, classify_payload_error,
    decrypt, decrypt_payload, derive_identity,
};
use proxsave_testkit::{require_tools, run};
use tempfile::TempDir;

const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";
const PASSPHRASE: &str = "Correct-Horse-Battery-9";
/// Encrypted STREAM chunk: 64 KiB of plaintext plus a 16-byte tag.
const CHUNK: usize = 64 * 1024 + 16;

/// Deterministic, incompressible-looking bytes.
fn plaintext(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u8
        })
        .collect()
}

/// `age ARGS -o out.age plain` in `dir`; returns the ciphertext.
fn age_encrypt(dir: &Path, args: &[&str], plain: &[u8]) -> Vec<u8> {
    let input = dir.join("plain");
    let output = dir.join("out.age");
    std::fs::write(&input, plain).unwrap();
    let _ = std::fs::remove_file(&output);
    run(Command::new("age")
        .args(args)
        .arg("-o")
        .arg(&output)
        .arg(&input));
    std::fs::read(&output).unwrap()
}

/// `age-keygen -o NAME`; returns the file and its recipient.
fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&path));
    let out = run(Command::new("age-keygen").arg("-y").arg(&path));
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (path, recipient)
}

/// `ssh-keygen -t TYPE -N PASS -f NAME`; returns the private key file (the .pub is next to it).
fn ssh_keygen(dir: &Path, kind: &str, name: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", "test", "-f"])
        .arg(&path));
    path
}

fn pub_file(private: &Path) -> String {
    format!("{}.pub", private.display())
}

/// The secret line of an age-keygen file.
fn secret_line(key_file: &Path) -> String {
    std::fs::read_to_string(key_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned()
}

/// Decrypts and reads everything; a payload error fails the test.
fn open(
    ciphertext: &[u8],
    key: &Key,
    salt: Option<&str>,
    unlock: Option<&dyn SshKeyUnlock>,
) -> Result<Vec<u8>, KeyError> {
    let mut reader = decrypt(ciphertext, key, salt, unlock)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("payload decrypts");
    Ok(out)
}

/// The header opens but reading the payload fails; returns that error.
fn payload_error(ciphertext: &[u8], key: &Key) -> io::Error {
    let mut reader = match decrypt(ciphertext, key, None, None) {
        Ok(r) => r,
        Err(e) => panic!("header should open: {e}"),
    };
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect_err("payload must fail")
}

/// Same through [`decrypt_payload`].
fn payload_error_tracked(ciphertext: &[u8], key: &Key) -> io::Error {
    let mut reader = match decrypt_payload(ciphertext, key, None, None) {
        Ok(r) => r,
        Err(e) => panic!("header should open: {e}"),
    };
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect_err("payload must fail")
}

fn decrypt_err(
    ciphertext: &[u8],
    key: &Key,
    salt: Option<&str>,
    unlock: Option<&dyn SshKeyUnlock>,
) -> KeyError {
    match decrypt(ciphertext, key, salt, unlock) {
        Ok(_) => panic!("decrypt should fail"),
        Err(e) => e,
    }
}

/// Offset of the first payload byte (after the header and the 16-byte nonce).
fn payload_start(ciphertext: &[u8]) -> usize {
    let mac = ciphertext
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("age header has a MAC line");
    let end = mac
        + 1
        + ciphertext[mac + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap();
    end + 1 + 16
}

/// Answers SSH key passphrase requests and counts them.
struct Answer {
    passphrase: Option<&'static str>,
    asked: AtomicUsize,
}

impl Answer {
    fn new(passphrase: Option<&'static str>) -> Self {
        Answer {
            passphrase,
            asked: AtomicUsize::new(0),
        }
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl SshKeyUnlock for Answer {
    fn passphrase(&self, _key_label: &str) -> Option<SecretString> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.passphrase.map(SecretString::from)
    }
}

/// A backup encrypted to a fresh age key, with its key file.
fn x25519_backup(dir: &Path, plain: &[u8]) -> (Vec<u8>, PathBuf) {
    let (key_file, recipient) = age_keygen(dir, "key.txt");
    (age_encrypt(dir, &["-r", &recipient], plain), key_file)
}

// ---------------------------------------------------------------------------------------
// Keys that open a backup

#[test]
fn x25519_identity_file_decrypts() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(1000);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);

    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    assert_eq!(key.describe(), "1 identity");
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn x25519_secret_key_typed_in_lower_and_upper_case_decrypts() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(3000);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let secret = secret_line(&key_file);

    for typed in [secret.to_uppercase(), secret.to_lowercase()] {
        let mut key = Key::new();
        key.add_secret(&format!("  {typed}  \n")).unwrap();
        assert_eq!(key.describe(), "1 identity");
        assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
    }
}

#[test]
fn identity_file_with_comments_and_several_keys_decrypts() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(100);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let (other, _) = age_keygen(dir.path(), "other.txt");
    let combined = dir.path().join("keys.txt");
    std::fs::write(
        &combined,
        format!(
            "# first\n\n{}\n   # indented comment\n{}\r\n",
            secret_line(&other),
            secret_line(&key_file)
        ),
    )
    .unwrap();

    let mut key = Key::new();
    key.add_identity_file(&combined).unwrap();
    assert_eq!(key.describe(), "2 identities");
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn ssh_ed25519_key_decrypts() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(70_000);
    let id = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], &plain);

    let mut key = Key::new();
    key.add_identity_file(&id).unwrap();
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn ssh_rsa_key_decrypts() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(5000);
    let id = ssh_keygen(dir.path(), "rsa", "id_rsa", "");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], &plain);

    let mut key = Key::new();
    key.add_identity_file(&id).unwrap();
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn passphrase_protected_ssh_key_unlocks_once() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(2000);
    let id = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "secret");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], &plain);

    let mut key = Key::new();
    key.add_identity_file(&id).unwrap();
    let answer = Answer::new(Some("secret"));
    assert_eq!(open(&ct, &key, None, Some(&answer)).unwrap(), plain);
    assert_eq!(answer.asked(), 1);
    // A second pass over the backup (verify, then extract) does not ask again.
    assert_eq!(open(&ct, &key, None, Some(&answer)).unwrap(), plain);
    assert_eq!(answer.asked(), 1);
}

#[test]
fn passphrase_protected_ssh_key_stays_locked() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let id = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "secret");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], b"x");
    let label = id.display().to_string();

    let mut key = Key::new();
    key.add_identity_file(&id).unwrap();

    let no_answer = Answer::new(None);
    match decrypt_err(&ct, &key, None, Some(&no_answer)) {
        KeyError::SshKeyLocked { label: l } => assert_eq!(l, label),
        other => panic!("expected SshKeyLocked, got {other}"),
    }
    assert_eq!(no_answer.asked(), 1);

    let wrong = Answer::new(Some("not-it"));
    let err = decrypt_err(&ct, &key, None, Some(&wrong));
    assert!(matches!(err, KeyError::SshKeyLocked { .. }), "{err}");
    assert_eq!(
        wrong.asked(),
        3,
        "asked again while the passphrase is wrong"
    );

    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::SshKeyLocked { .. }), "{err}");
    assert!(err.to_string().contains(&label), "{err}");
}

#[test]
fn passphrase_protected_ssh_key_is_not_asked_for_other_backups() {
    require_tools!("age", "age-keygen", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(10);
    let locked = ssh_keygen(dir.path(), "ed25519", "id_locked", "secret");
    let other = ssh_keygen(dir.path(), "ed25519", "id_other", "");
    let (key_file, recipient) = age_keygen(dir.path(), "key.txt");
    let answer = Answer::new(Some("secret"));

    // Encrypted to another SSH key: a no-match, without a prompt.
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&other)], &plain);
    let mut key = Key::new();
    key.add_identity_file(&locked).unwrap();
    let err = decrypt_err(&ct, &key, None, Some(&answer));
    assert!(matches!(err, KeyError::NoMatch { .. }), "{err}");
    assert!(err.to_string().contains("1 ssh-ed25519 key"), "{err}");

    // Encrypted to an age key we also hold: opened by that key, without a prompt.
    let ct = age_encrypt(dir.path(), &["-r", &recipient], &plain);
    key.add_identity_file(&key_file).unwrap();
    assert_eq!(open(&ct, &key, None, Some(&answer)).unwrap(), plain);
    assert_eq!(answer.asked(), 0);
}

/// Encrypts to `derive_identity(PASSPHRASE, salt)` with the age CLI, as proxsave does.
fn passphrase_backup(dir: &Path, salt: &str, plain: &[u8]) -> Vec<u8> {
    let recipient = derive_identity(PASSPHRASE, salt).to_public().to_string();
    age_encrypt(dir, &["-r", &recipient], plain)
}

#[test]
fn passphrase_with_manifest_v2_salt_decrypts() {
    require_tools!("age");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(4000);
    let ct = passphrase_backup(dir.path(), SALT_V2, &plain);

    let mut key = Key::new();
    key.add_secret(PASSPHRASE).unwrap();
    assert_eq!(key.describe(), "a passphrase");
    assert_eq!(open(&ct, &key, Some(SALT_V2), None).unwrap(), plain);
}

#[test]
fn passphrase_with_v1_salt_decrypts_without_manifest_salt() {
    require_tools!("age");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(4000);
    let ct = passphrase_backup(dir.path(), SALT_V1, &plain);

    let mut key = Key::new();
    key.add_secret(&format!("\t{PASSPHRASE}\n")).unwrap();
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn passphrase_with_legacy_salt_decrypts_even_with_a_manifest_salt() {
    require_tools!("age");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(4000);
    let ct = passphrase_backup(dir.path(), SALT_LEGACY, &plain);

    let mut key = Key::new();
    key.add_secret(PASSPHRASE).unwrap();
    // The manifest salt is tried first, then v1, then legacy.
    assert_eq!(open(&ct, &key, Some(SALT_V2), None).unwrap(), plain);
}

#[test]
fn native_age_passphrase_file_decrypts() {
    // `age -p` reads the passphrase from a terminal only, so the age library writes this one
    // (same format; a low work factor keeps the test fast).
    let plain = plaintext(500);
    let mut recipient = age::scrypt::Recipient::new(SecretString::from("native pass"));
    recipient.set_work_factor(10);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut ct = Vec::new();
    let mut writer = encryptor.wrap_output(&mut ct).unwrap();
    io::Write::write_all(&mut writer, &plain).unwrap();
    writer.finish().unwrap();

    let mut key = Key::new();
    key.add_secret("wrong pass").unwrap();
    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::NoMatch { .. }), "{err}");
    assert!(err.to_string().contains("age -p"), "{err}");

    key.add_secret("native pass").unwrap();
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

// ---------------------------------------------------------------------------------------
// Keys that do not open a backup

#[test]
fn wrong_passphrase_is_no_match() {
    require_tools!("age");
    let dir = TempDir::new().unwrap();
    let ct = passphrase_backup(dir.path(), SALT_V1, b"data");

    let mut key = Key::new();
    key.add_secret("Wrong-Horse-Battery-0").unwrap();
    let err = decrypt_err(&ct, &key, Some(SALT_V2), None);
    let message = err.to_string();
    assert!(matches!(err, KeyError::NoMatch { .. }), "{message}");
    assert!(
        message.contains(SALT_V2) && message.contains(SALT_LEGACY),
        "{message}"
    );
    assert!(message.contains("1 X25519 key"), "{message}");
    assert!(!message.contains("Wrong-Horse"), "{message}");
}

#[test]
fn wrong_x25519_key_is_no_match() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let (ct, _) = x25519_backup(dir.path(), b"data");
    let (other, _) = age_keygen(dir.path(), "other.txt");

    let mut key = Key::new();
    key.add_identity_file(&other).unwrap();
    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::NoMatch { .. }), "{err}");
    assert!(err.to_string().contains("other.txt"), "{err}");
}

#[test]
fn wrong_ssh_key_is_no_match() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let id = ssh_keygen(dir.path(), "rsa", "id_rsa", "");
    let other = ssh_keygen(dir.path(), "ed25519", "id_other", "");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], b"data");

    let mut key = Key::new();
    key.add_identity_file(&other).unwrap();
    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::NoMatch { .. }), "{err}");
    assert!(err.to_string().contains("1 ssh-rsa key"), "{err}");
}

#[test]
fn passphrase_for_an_ssh_only_backup_is_no_match_without_deriving() {
    require_tools!("age", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let id = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "");
    let ct = age_encrypt(dir.path(), &["-R", &pub_file(&id)], b"data");

    let mut key = Key::new();
    key.add_secret(PASSPHRASE).unwrap();
    let started = std::time::Instant::now();
    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::NoMatch { .. }), "{err}");
    assert!(err.to_string().contains("ssh-ed25519"), "{err}");
    // No scrypt run is needed to know an X25519-less header cannot match a passphrase.
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
}

#[test]
fn no_key_is_required() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let (ct, _) = x25519_backup(dir.path(), b"data");
    let err = decrypt_err(&ct, &Key::new(), None, None);
    assert!(matches!(err, KeyError::Required), "{err}");
    assert!(err.to_string().contains("--passphrase-file"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Damaged input

#[test]
fn garbage_is_corrupt() {
    let mut key = Key::new();
    key.add_secret("AGE-SECRET-KEY-1LRVUMYNG80FWZ6RJXY67GADZYXHSMASWF646PHWF6PRH9ZE65ASQX23VQS")
        .unwrap();
    let inputs: [&[u8]; 6] = [
        b"",
        b"hello",
        &plaintext(100_000),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03 a gzip file, not age",
        b"age-encryption.org/v2\n-> X25519 abc\n--- xyz\n",
        b"age-encryption.org/v1\nnot a stanza\n",
    ];
    for input in inputs {
        let err = decrypt_err(input, &key, None, None);
        assert!(
            matches!(err, KeyError::Corrupt { .. }),
            "{:?}: {err}",
            String::from_utf8_lossy(&input[..input.len().min(20)])
        );
    }
}

#[test]
fn flipped_header_byte_is_corrupt() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let (ct, key_file) = x25519_backup(dir.path(), &plaintext(1000));
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();

    let mac_line = ct.windows(4).position(|w| w == b"--- ").unwrap();
    // In the magic line, in the version, in the MAC (the MAC line is "--- " + 43 base64).
    for at in [3, 20, mac_line + 10, mac_line + 40] {
        let mut bad = ct.clone();
        bad[at] ^= 0x01;
        let err = decrypt_err(&bad, &key, None, None);
        assert!(matches!(err, KeyError::Corrupt { .. }), "byte {at}: {err}");
    }
}

#[test]
fn armored_input_is_corrupt_not_no_match() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let (key_file, recipient) = age_keygen(dir.path(), "key.txt");
    let ct = age_encrypt(dir.path(), &["-a", "-r", &recipient], b"data");
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    let err = decrypt_err(&ct, &key, None, None);
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
}

#[test]
fn flipped_payload_byte_is_corrupt() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(200 * 1024);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    let start = payload_start(&ct);

    // The nonce, the first chunk, the second chunk's tag.
    for at in [start - 3, start + 10, start + 2 * CHUNK - 1] {
        let mut bad = ct.clone();
        bad[at] ^= 0x80;
        for e in [payload_error(&bad, &key), payload_error_tracked(&bad, &key)] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "byte {at}: {e}");
            assert_eq!(
                classify_payload_error(&e),
                PayloadFault::Corrupt,
                "byte {at}: {e}"
            );
        }
    }

    // In the last (short) chunk: plain `decrypt` says corrupt; `decrypt_payload` cannot tell
    // damage there from a cut and says truncated.
    let mut bad = ct.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0x80;
    let e = payload_error(&bad, &key);
    assert_eq!(classify_payload_error(&e), PayloadFault::Corrupt, "{e}");
    let e = payload_error_tracked(&bad, &key);
    assert_eq!(classify_payload_error(&e), PayloadFault::Truncated, "{e}");
}

#[test]
fn truncated_inside_a_chunk_is_truncated() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(200 * 1024);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    let start = payload_start(&ct);

    for cut in [start + 100, start + CHUNK + CHUNK / 2, ct.len() - 1] {
        let e = payload_error_tracked(&ct[..cut], &key);
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}: {e}");
        assert_eq!(
            classify_payload_error(&e),
            PayloadFault::Truncated,
            "cut {cut}: {e}"
        );

        // age itself reports such a cut as a failed ("decryption error") last chunk.
        let e = payload_error(&ct[..cut], &key);
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "cut {cut}: {e}");
        assert_eq!(e.to_string(), "decryption error");
        assert_eq!(
            classify_payload_error(&e),
            PayloadFault::Corrupt,
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn truncated_at_a_chunk_boundary_is_truncated() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(200 * 1024);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    let start = payload_start(&ct);

    for cut in [start, start + CHUNK, start + 2 * CHUNK, start + 3 * CHUNK] {
        for e in [
            payload_error(&ct[..cut], &key),
            payload_error_tracked(&ct[..cut], &key),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}: {e}");
            assert_eq!(
                classify_payload_error(&e),
                PayloadFault::Truncated,
                "cut {cut}: {e}"
            );
        }
        assert_eq!(
            payload_error(&ct[..cut], &key).to_string(),
            "age file is truncated"
        );
    }

    // Cut inside the header or the nonce: the header cannot be read.
    for cut in [10, start - 20, start - 1] {
        let err = decrypt_err(&ct[..cut], &key, None, None);
        assert!(matches!(err, KeyError::Corrupt { .. }), "cut {cut}: {err}");
    }
}

#[test]
fn intact_multi_chunk_payload_reads_through_decrypt_payload() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let (key_file, recipient) = age_keygen(dir.path(), "key.txt");
    let mut key = Key::new();
    key.add_identity_file(&key_file).unwrap();
    // An exact multiple of the chunk size has a full-size last chunk.
    for len in [200 * 1024, 3 * 64 * 1024, 0] {
        let plain = plaintext(len);
        let ct = age_encrypt(dir.path(), &["-r", &recipient], &plain);
        let mut out = Vec::new();
        decrypt_payload(&ct[..], &key, None, None)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain, "len {len}");
    }
}

// ---------------------------------------------------------------------------------------
// Key files

#[test]
fn passphrase_file_holding_a_secret_key_is_a_key() {
    require_tools!("age", "age-keygen");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(300);
    let (ct, key_file) = x25519_backup(dir.path(), &plain);
    let pass_file = dir.path().join("pass");
    std::fs::write(
        &pass_file,
        format!(
            "  {}  \nsecond line ignored\n",
            secret_line(&key_file).to_lowercase()
        ),
    )
    .unwrap();

    let mut key = Key::new();
    key.add_passphrase_file(&pass_file).unwrap();
    assert_eq!(key.describe(), "1 identity");
    assert_eq!(open(&ct, &key, None, None).unwrap(), plain);
}

#[test]
fn passphrase_file_first_line_is_the_passphrase() {
    require_tools!("age");
    let dir = TempDir::new().unwrap();
    let plain = plaintext(300);
    let ct = passphrase_backup(dir.path(), SALT_V2, &plain);
    let pass_file = dir.path().join("pass");
    std::fs::write(
        &pass_file,
        format!("{PASSPHRASE}  \r\nnot the passphrase\n"),
    )
    .unwrap();

    let mut key = Key::new();
    key.add_passphrase_file(&pass_file).unwrap();
    assert_eq!(key.describe(), "a passphrase");
    assert_eq!(open(&ct, &key, Some(SALT_V2), None).unwrap(), plain);
}

#[test]
fn empty_passphrase_file_is_invalid_naming_the_file() {
    let dir = TempDir::new().unwrap();
    for (name, content) in [("empty", ""), ("blank", "  \n\nsecret on line 3\n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = Key::new().add_passphrase_file(&path).unwrap_err();
        match &err {
            KeyError::InvalidKey { origin, .. } => assert_eq!(origin, &path.display().to_string()),
            other => panic!("expected InvalidKey, got {other}"),
        }
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    let missing = dir.path().join("missing");
    let err = Key::new().add_passphrase_file(&missing).unwrap_err();
    assert!(matches!(err, KeyError::ReadFile { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn junk_identity_file_is_invalid_naming_the_file() {
    require_tools!("age-keygen", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let (key_file, recipient) = age_keygen(dir.path(), "key.txt");
    let ssh = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "junk",
            b"hello world\n".to_vec(),
            "not an age identity file or OpenSSH private key",
        ),
        (
            "binary",
            vec![0xff, 0xfe, 0x00, 0x01],
            "not an age identity file or OpenSSH private key",
        ),
        (
            "comments",
            b"# only a comment\n\n".to_vec(),
            "not an age identity file or OpenSSH private key",
        ),
        (
            "recipient",
            format!("{recipient}\n").into_bytes(),
            "public key",
        ),
        (
            "ssh.pub",
            std::fs::read(pub_file(&ssh)).unwrap(),
            "SSH public key",
        ),
        ("bad-key", b"AGE-SECRET-KEY-1QQQQ\n".to_vec(), "line 1"),
        (
            "bad-ssh",
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
                .to_vec(),
            "not an age identity file or OpenSSH private key",
        ),
        (
            "key-then-junk",
            format!("{}\nfoo\n", secret_line(&key_file)).into_bytes(),
            "line 2",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let err = Key::new().add_identity_file(&path).unwrap_err();
        match &err {
            KeyError::InvalidKey { origin, reason } => {
                assert_eq!(origin, &path.display().to_string(), "{name}");
                assert!(reason.contains(expected), "{name}: {reason}");
            }
            other => panic!("{name}: expected InvalidKey, got {other}"),
        }
    }
}

#[test]
fn unsupported_ssh_keys_are_invalid_with_a_reason() {
    require_tools!("ssh-keygen");
    let dir = TempDir::new().unwrap();
    let ecdsa = ssh_keygen(dir.path(), "ecdsa", "id_ecdsa", "");
    let pem = dir.path().join("id_rsa_pem");
    run(Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "secret", "-f",
        ])
        .arg(&pem));
    for (path, expected) in [(ecdsa, "ecdsa"), (pem, "ssh-keygen -p -o")] {
        let err = Key::new().add_identity_file(&path).unwrap_err();
        match &err {
            KeyError::InvalidKey { origin, reason } => {
                assert_eq!(origin, &path.display().to_string());
                assert!(reason.contains(expected), "{reason}");
            }
            other => panic!("expected InvalidKey, got {other}"),
        }
    }
}

#[test]
fn key_debug_never_shows_secrets() {
    require_tools!("age-keygen", "ssh-keygen");
    let dir = TempDir::new().unwrap();
    let (key_file, _) = age_keygen(dir.path(), "key.txt");
    let secret = secret_line(&key_file);
    let ssh = ssh_keygen(dir.path(), "ed25519", "id_ed25519", "");
    let ssh_text = std::fs::read_to_string(&ssh).unwrap();
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, "file-passphrase-xyz\n").unwrap();

    let mut key = Key::new();
    key.add_secret("typed-passphrase-abc").unwrap();
    key.add_secret(&secret.to_lowercase()).unwrap();
    key.add_passphrase_file(&pass_file).unwrap();
    key.add_identity_file(&key_file).unwrap();
    key.add_identity_file(&ssh).unwrap();
    assert_eq!(key.describe(), "2 passphrases and 3 identities");

    let debug = format!("{key:?} {key:#?}");
    for secret_text in [
        "typed-passphrase-abc",
        "file-passphrase-xyz",
        &secret["AGE-SECRET-KEY-1".len()..],
    ] {
        assert!(
            !debug.to_uppercase().contains(&secret_text.to_uppercase()),
            "{debug}"
        );
    }
    let ssh_body: String = ssh_text.lines().nth(2).unwrap().chars().take(30).collect();
    assert!(!debug.contains(&ssh_body), "{debug}");
    assert!(!key::salts_to_try(None).is_empty());
}
