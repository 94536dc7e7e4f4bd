//! Keys for age-encrypted backups: what the user supplies, and opening the age layer with it.
//!
//! proxsave encrypts with [age](https://age-encryption.org/v1) in binary form. A backup is
//! opened with any mix of:
//!
//! - a **passphrase**. proxsave never used age's own passphrase (scrypt) recipient: it turns
//!   the passphrase into an X25519 key ([`derive_identity`]) with a salt that is either
//!   per-installation (stored in the manifest as `passphrase_salt`) or one of two fixed
//!   historical salts ([`SALT_V1`], [`SALT_LEGACY`]). [`decrypt`] tries them in the order of
//!   [`salts_to_try`];
//! - **age identities** (`AGE-SECRET-KEY-1…`), typed or from an identity file;
//! - **OpenSSH private keys** (ed25519 or RSA), possibly passphrase-protected; such a key is
//!   unlocked through [`SshKeyUnlock`] only when the backup was actually encrypted to it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::io::Read;
//! use proxsave_archive::key::{self, Key};
//!
//! let mut key = Key::new();
//! key.add_passphrase_file(std::path::Path::new("/root/backup-pass"))?;
//! let file = std::io::BufReader::new(std::fs::File::open("host.tar.xz.age")?);
//! let mut plain = key::decrypt_payload(file, &key, Some("proxsave/age-passphrase/v2:…"), None)?;
//! let mut bytes = Vec::new();
//! if let Err(e) = plain.read_to_end(&mut bytes) {
//!     match key::classify_payload_error(&e) {
//!         key::PayloadFault::Truncated => eprintln!("the backup is cut short: {e}"),
//!         key::PayloadFault::Corrupt => eprintln!("the backup is damaged: {e}"),
//!         key::PayloadFault::Other => eprintln!("read error: {e}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Secrets stay in [`SecretString`]s or zeroized buffers and never appear in `Debug` output or
//! error messages.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use age::stream::StreamReader;
use age::{DecryptError, Decryptor};
use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The fixed passphrase salt of proxsave before per-installation salts (before v0.25.0).
pub const SALT_V1: &str = "proxsave/age-passphrase/v1";
/// The fixed passphrase salt used while the project was called `proxmox-backup-go`.
pub const SALT_LEGACY: &str = "proxmox-backup-go/age-passphrase/v1";

/// How every age secret key string starts (compared case-insensitively).
const SECRET_KEY_PREFIX: &str = "AGE-SECRET-KEY-";
/// Bech32 human-readable part of age secret keys.
const SECRET_KEY_HRP: &str = "age-secret-key-";
/// Passphrase derivation: scrypt N = 2^15, r = 8, p = 1, 32 bytes (as upstream).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// Largest key or passphrase file read (age's own limit for identity files).
const MAX_KEY_FILE: u64 = 16 << 20;
/// How often a passphrase-protected SSH key is asked for before giving up.
const SSH_UNLOCK_ATTEMPTS: usize = 3;

/// Stanza tags of the recipient types age knows.
const TAG_X25519: &str = "X25519";
const TAG_SSH_ED25519: &str = "ssh-ed25519";
const TAG_SSH_RSA: &str = "ssh-rsa";
const TAG_SCRYPT: &str = "scrypt";

/// Errors of the decryption stage.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The backup is encrypted and no key or passphrase was given.
    #[error(
        "this backup is encrypted and no key or passphrase was given (give --passphrase-file or --identity)"
    )]
    Required,
    /// None of the keys or passphrases given can open the backup.
    #[error("the passphrase or key does not match this backup (tried {tried})")]
    NoMatch {
        /// What was tried, without secrets; also says what the backup is encrypted to.
        tried: String,
    },
    /// A key, passphrase or key file given by the user is unusable.
    #[error("{origin}: {reason}")]
    InvalidKey {
        /// Where the key came from: a file name or a label such as "the key or passphrase given".
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A passphrase-protected SSH key matches the backup but could not be unlocked.
    #[error(
        "the SSH key {label} is protected by a passphrase and was not unlocked (no passphrase or a wrong one was given)"
    )]
    SshKeyLocked {
        /// The key's label (its file name).
        label: String,
    },
    /// The age layer is damaged or the file is not age-encrypted at all.
    #[error("the backup cannot be decrypted: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// Reading the age header failed.
    #[error("cannot read the backup's age header: {0}")]
    Io(#[source] io::Error),
    /// A key, identity or passphrase file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn invalid(origin: &str, reason: impl Into<String>) -> KeyError {
    KeyError::InvalidKey {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

/// Derives proxsave's X25519 identity from a passphrase and a salt.
///
/// `k = scrypt(P = trimmed passphrase, S = salt, N = 2^15, r = 8, p = 1, 32 bytes)`, clamped
/// (`k[0] &= 248; k[31] &= 127; k[31] |= 64`), encoded as `AGE-SECRET-KEY-1…` (BIP-173 Bech32)
/// and parsed by age. Takes about 32 MiB of memory and a fraction of a second.
pub fn derive_identity(passphrase: &str, salt: &str) -> age::x25519::Identity {
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .expect("constant scrypt parameters are valid");
    let mut k = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(
        passphrase.trim().as_bytes(),
        salt.as_bytes(),
        &params,
        &mut k[..],
    )
    .expect("a 32-byte output is valid for scrypt");
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    let hrp = bech32::Hrp::parse(SECRET_KEY_HRP).expect("constant HRP is valid");
    let encoded = Zeroizing::new(
        bech32::encode_upper::<bech32::Bech32>(hrp, &k[..]).expect("32 bytes fit in Bech32"),
    );
    age::x25519::Identity::from_str(&encoded).expect("a freshly encoded secret key parses")
}

/// The salts a passphrase is tried with, in order: the manifest's `passphrase_salt` (when
/// non-empty after trimming), then [`SALT_V1`], then [`SALT_LEGACY`]; without duplicates.
pub fn salts_to_try(manifest_salt: Option<&str>) -> Vec<String> {
    let mut salts: Vec<String> = Vec::with_capacity(3);
    let candidates = manifest_salt
        .map(str::trim)
        .into_iter()
        .chain([SALT_V1, SALT_LEGACY]);
    for salt in candidates {
        if !salt.is_empty() && !salts.iter().any(|s| s == salt) {
            salts.push(salt.to_owned());
        }
    }
    salts
}

/// True when `text` starts with `prefix`, ignoring ASCII case.
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// A typed or pasted passphrase.
struct Passphrase {
    secret: SecretString,
}

/// An age X25519 identity and where it came from.
struct X25519Key {
    identity: age::x25519::Identity,
    label: String,
}

/// An OpenSSH private key and where it came from.
struct SshKey {
    /// As parsed; `Encrypted` until unlocked.
    identity: age::ssh::Identity,
    label: String,
    /// The 4-byte key tag age puts into `ssh-*` stanzas (base64, unpadded), when computable.
    tag: Option<String>,
    /// The key after unlocking, kept so one run asks for its passphrase only once.
    unlocked: Mutex<Option<age::ssh::Identity>>,
}

impl SshKey {
    fn new(identity: age::ssh::Identity, label: &str) -> Self {
        let tag = ssh_key_tag(&identity);
        SshKey {
            identity,
            label: label.to_owned(),
            tag,
            unlocked: Mutex::new(None),
        }
    }

    fn is_encrypted(&self) -> bool {
        matches!(self.identity, age::ssh::Identity::Encrypted(_))
    }

    /// Whether `stanza` was made for this key (by key tag; by type when the tag is unknown).
    fn matches(&self, stanza: &Stanza) -> bool {
        if stanza.tag != TAG_SSH_ED25519 && stanza.tag != TAG_SSH_RSA {
            return false;
        }
        match &self.tag {
            Some(tag) => stanza.args.first() == Some(tag),
            None => true,
        }
    }

    fn cached(&self) -> Option<age::ssh::Identity> {
        self.unlocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn remember(&self, identity: &age::ssh::Identity) {
        *self
            .unlocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(identity.clone());
    }
}

/// The tag age writes into `ssh-ed25519`/`ssh-rsa` stanzas: base64 of SHA-256(public key)[..4].
fn ssh_key_tag(identity: &age::ssh::Identity) -> Option<String> {
    let recipient = age::ssh::Recipient::try_from(identity.clone()).ok()?;
    // Display is "<type> <base64 of the SSH wire-format public key>".
    let text = recipient.to_string();
    let wire = BASE64_STANDARD
        .decode(text.split_whitespace().nth(1)?)
        .ok()?;
    let digest = Sha256::digest(&wire);
    Some(BASE64_STANDARD_NO_PAD.encode(&digest[..4]))
}

/// Everything the user supplied to decrypt with: passphrases, age identities and SSH keys.
///
/// `Debug` shows only counts and labels, never secrets.
#[derive(Default)]
pub struct Key {
    passphrases: Vec<Passphrase>,
    x25519: Vec<X25519Key>,
    ssh: Vec<SshKey>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x25519: Vec<&str> = self.x25519.iter().map(|k| k.label.as_str()).collect();
        let ssh: Vec<&str> = self.ssh.iter().map(|k| k.label.as_str()).collect();
        f.debug_struct("Key")
            .field("passphrases", &self.passphrases.len())
            .field("age_identities", &x25519)
            .field("ssh_keys", &ssh)
            .finish()
    }
}

impl Key {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.passphrases.is_empty() && self.x25519.is_empty() && self.ssh.is_empty()
    }

    /// Adds a typed or pasted secret.
    ///
    /// The text is trimmed; empty text is [`KeyError::InvalidKey`]. Text starting
    /// (case-insensitively) with `AGE-SECRET-KEY-` is an X25519 identity, as upstream decides;
    /// anything else is a passphrase.
    pub fn add_secret(&mut self, text: &str) -> Result<(), KeyError> {
        self.push_secret(text, "the key or passphrase given")
    }

    /// Adds the secret in a passphrase file (`--passphrase-file FILE`): its first line,
    /// trimmed, read as by [`Key::add_secret`]. Errors name the file.
    pub fn add_passphrase_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let origin = path.display().to_string();
        let bytes = read_key_file(path)?;
        if bytes.is_empty() {
            return Err(invalid(
                &origin,
                "the file is empty; its first line must hold the passphrase or an AGE-SECRET-KEY-1… key",
            ));
        }
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = std::str::from_utf8(first)
            .map_err(|_| invalid(&origin, "the first line is not UTF-8 text"))?;
        if line.trim().is_empty() {
            return Err(invalid(
                &origin,
                "the first line is empty; it must hold the passphrase or an AGE-SECRET-KEY-1… key",
            ));
        }
        self.push_secret(line, &origin)
    }

    /// Adds the identities in an identity file (`--identity FILE`): an age identity file
    /// (`AGE-SECRET-KEY-1…` lines, `#` comments, blank lines) or an OpenSSH private key
    /// (ed25519 or RSA). A passphrase-protected SSH key is accepted here and unlocked only
    /// when a backup needs it (see [`SshKeyUnlock`]). Errors name the file.
    pub fn add_identity_file(&mut self, path: &Path) -> Result<(), KeyError> {
        let bytes = read_key_file(path)?;
        self.add_identity_bytes(&bytes, &path.display().to_string())
    }

    /// Adds the identities in `bytes`, the content of an identity file; `label` names it in
    /// messages. Same formats as [`Key::add_identity_file`].
    pub fn add_identity_bytes(&mut self, bytes: &[u8], label: &str) -> Result<(), KeyError> {
        const NOT_A_KEY: &str = "not an age identity file or OpenSSH private key";
        let text = std::str::from_utf8(bytes)
            .map_err(|_| invalid(label, format!("{NOT_A_KEY} (it is not text)")))?;
        let text = text.trim_start();
        if text.starts_with("-----BEGIN") {
            return self.push_ssh(text, label);
        }
        if text.starts_with("age-encryption.org/") {
            return Err(invalid(
                label,
                "this identity file is itself age-encrypted; decrypt it first (age -d -o key.txt FILE)",
            ));
        }
        let mut found = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if starts_with_ignore_case(line, SECRET_KEY_PREFIX) {
                let upper = Zeroizing::new(line.to_ascii_uppercase());
                let identity = age::x25519::Identity::from_str(&upper).map_err(|e| {
                    invalid(
                        label,
                        format!("line {number} is not a valid AGE-SECRET-KEY-1… identity ({e})"),
                    )
                })?;
                found.push(identity);
                continue;
            }
            let reason = if line.starts_with("age1") {
                format!(
                    "line {number} is an age public key (recipient); give the file with the matching AGE-SECRET-KEY-1… instead"
                )
            } else if line.starts_with("ssh-") || line.starts_with("ecdsa-") {
                format!(
                    "line {number} is an SSH public key; give the private key file (e.g. ~/.ssh/id_ed25519, not the .pub)"
                )
            } else if starts_with_ignore_case(line, "AGE-PLUGIN-") {
                format!("line {number} is an age plugin identity; plugins are not supported")
            } else {
                format!(
                    "{NOT_A_KEY} (line {number} is neither a comment nor an AGE-SECRET-KEY-1… key)"
                )
            };
            return Err(invalid(label, reason));
        }
        if found.is_empty() {
            return Err(invalid(
                label,
                format!("{NOT_A_KEY} (it holds no AGE-SECRET-KEY-1… line)"),
            ));
        }
        for identity in found {
            self.push_x25519(identity, label);
        }
        Ok(())
    }

    /// A summary without secrets, e.g. "a passphrase and 2 identities".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.passphrases.len() {
            0 => {}
            1 => parts.push("a passphrase".to_owned()),
            n => parts.push(format!("{n} passphrases")),
        }
        match self.x25519.len() + self.ssh.len() {
            0 => {}
            1 => parts.push("1 identity".to_owned()),
            n => parts.push(format!("{n} identities")),
        }
        if parts.is_empty() {
            "no key or passphrase".to_owned()
        } else {
            parts.join(" and ")
        }
    }

    fn push_secret(&mut self, text: &str, origin: &str) -> Result<(), KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid(origin, "it is empty"));
        }
        if starts_with_ignore_case(text, SECRET_KEY_PREFIX) {
            let upper = Zeroizing::new(text.to_ascii_uppercase());
            let identity = age::x25519::Identity::from_str(&upper).map_err(|e| {
                invalid(
                    origin,
                    format!(
                        "it starts with AGE-SECRET-KEY- but is not a valid age secret key ({e})"
                    ),
                )
            })?;
            self.push_x25519(identity, origin);
        } else {
            self.passphrases.push(Passphrase {
                secret: SecretString::from(text.to_owned()),
            });
        }
        Ok(())
    }

    fn push_x25519(&mut self, identity: age::x25519::Identity, label: &str) {
        self.x25519.push(X25519Key {
            identity,
            label: label.to_owned(),
        });
    }

    fn push_ssh(&mut self, text: &str, label: &str) -> Result<(), KeyError> {
        use age::ssh::{Identity, UnsupportedKey};
        let identity = Identity::from_buffer(io::Cursor::new(text.as_bytes()), Some(label.into()))
            .map_err(|_| {
                invalid(
                    label,
                    "not an age identity file or OpenSSH private key (the key block could not be parsed; ed25519 and RSA keys are supported)",
                )
            })?;
        let reason = match &identity {
            Identity::Unencrypted(_) | Identity::Encrypted(_) => {
                self.ssh.push(SshKey::new(identity, label));
                return Ok(());
            }
            Identity::Unsupported(UnsupportedKey::EncryptedPem) => {
                "a passphrase-protected PEM RSA key is not supported; convert it with `ssh-keygen -p -o -f FILE`".to_owned()
            }
            Identity::Unsupported(UnsupportedKey::EncryptedSsh(cipher)) => {
                format!("the SSH key is encrypted with an unsupported cipher ({cipher})")
            }
            Identity::Unsupported(UnsupportedKey::Hardware(kind)) => {
                format!("hardware security keys ({kind}) are not supported")
            }
            Identity::Unsupported(UnsupportedKey::Type(kind)) => {
                format!("unsupported SSH key type {kind}; use an ed25519 or RSA key")
            }
        };
        Err(invalid(label, reason))
    }
}

/// Reads a small key or passphrase file into a buffer that is wiped when dropped.
fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let read_error = |source| KeyError::ReadFile {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_KEY_FILE {
        return Err(invalid(
            &path.display().to_string(),
            format!("the file is too large for a key ({size} bytes)"),
        ));
    }
    // Sized up front so the buffer is not reallocated (which would leave copies behind).
    let capacity = usize::try_from(size).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// Unlocks passphrase-protected OpenSSH keys.
///
/// The CLI prompts without echo; tests answer directly. It is asked only when the backup
/// was encrypted to that key, up to three times while the passphrase is wrong.
pub trait SshKeyUnlock: Send + Sync {
    /// The passphrase of the SSH key labelled `key_label`, or `None` to give up.
    fn passphrase(&self, key_label: &str) -> Option<SecretString>;
}

/// Opens the age layer of `input` with `key`.
///
/// Passphrases are expanded to one derived identity per salt of [`salts_to_try`]
/// (`manifest_salt` first); each salt is derived at most once, only when the backup has an
/// X25519 recipient, and stops at the first match. Identities are tried as given, cheapest
/// first; passphrase-protected SSH keys last. A file written by `age -p` (native scrypt) is
/// opened with a given passphrase too.
///
/// Errors: [`KeyError::Required`] (nothing given), [`KeyError::NoMatch`] (wrong key or
/// passphrase), [`KeyError::SshKeyLocked`], [`KeyError::Corrupt`] (not age, damaged header),
/// [`KeyError::Io`].
///
/// The returned reader fails with an `io::Error` when the payload is damaged; see
/// [`classify_payload_error`]. It cannot tell a ciphertext cut inside a 64 KiB chunk from a
/// damaged last chunk: prefer [`decrypt_payload`], which can.
pub fn decrypt<R: Read>(
    input: R,
    key: &Key,
    manifest_salt: Option<&str>,
    unlock: Option<&dyn SshKeyUnlock>,
) -> Result<StreamReader<R>, KeyError> {
    let decryptor = Decryptor::new(input).map_err(header_error)?;
    if key.is_empty() {
        return Err(KeyError::Required);
    }
    let attempt = Attempt::new(key, manifest_salt, unlock);
    let native_scrypt: Vec<NativeScrypt> = if decryptor.is_scrypt() {
        key.passphrases
            .iter()
            .map(|p| NativeScrypt(age::scrypt::Identity::new(p.secret.clone())))
            .collect()
    } else {
        Vec::new()
    };
    let identities = attempt.identities(&native_scrypt);
    decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| attempt.error(e, !native_scrypt.is_empty()))
}

/// Like [`decrypt`], but the returned reader reports a ciphertext that ends early (anywhere,
/// not only at a chunk boundary) as [`PayloadFault::Truncated`].
pub fn decrypt_payload<R: Read>(
    input: R,
    key: &Key,
    manifest_salt: Option<&str>,
    unlock: Option<&dyn SshKeyUnlock>,
) -> Result<PayloadReader<R>, KeyError> {
    let at_eof = Arc::new(AtomicBool::new(false));
    let watched = EofWatch {
        inner: input,
        at_eof: Arc::clone(&at_eof),
    };
    let stream = decrypt(watched, key, manifest_salt, unlock)?;
    Ok(PayloadReader { stream, at_eof })
}

/// The decrypted payload returned by [`decrypt_payload`].
///
/// When the last, short chunk fails to authenticate, the error is `UnexpectedEof`: the file
/// ends early or its very last bytes are damaged, which age cannot tell apart.
pub struct PayloadReader<R> {
    stream: StreamReader<EofWatch<R>>,
    at_eof: Arc<AtomicBool>,
}

impl<R: Read> Read for PayloadReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).map_err(|e| {
            // age fills a whole 64 KiB chunk before decrypting it, so reaching the end of
            // the input means the failing chunk is the final, short one.
            if e.kind() == io::ErrorKind::InvalidData && self.at_eof.load(Ordering::Relaxed) {
                io::Error::new(io::ErrorKind::UnexpectedEof, TruncatedPayload)
            } else {
                e
            }
        })
    }
}

/// The ciphertext reader under [`PayloadReader`]: notes when the input is exhausted.
struct EofWatch<R> {
    inner: R,
    at_eof: Arc<AtomicBool>,
}

impl<R: Read> Read for EofWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.at_eof.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// The error inside the `UnexpectedEof` of a [`PayloadReader`].
#[derive(Debug)]
struct TruncatedPayload;

impl fmt::Display for TruncatedPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the encrypted backup ends early (or its last bytes are damaged)")
    }
}

impl std::error::Error for TruncatedPayload {}

/// What an `io::Error` from reading a decrypted payload means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFault {
    /// The ciphertext was modified: a chunk failed to authenticate.
    Corrupt,
    /// The ciphertext ends before its last chunk.
    Truncated,
    /// Anything else, e.g. an I/O error of the underlying file.
    Other,
}

/// Classifies an `io::Error` returned while reading the reader of [`decrypt`] or
/// [`decrypt_payload`].
///
/// Relies on the error kinds of age 0.12 (messages are informative only):
/// - `UnexpectedEof`: age's "age file is truncated" (input ended exactly at a chunk boundary,
///   before the final chunk), or [`decrypt_payload`]'s report of a short last chunk that
///   failed (cut inside a chunk) → [`PayloadFault::Truncated`];
/// - `InvalidData`: age's "decryption error" (a chunk failed to authenticate; with plain
///   [`decrypt`] this includes a cut inside a chunk), "last chunk has been processed" (data
///   after the final chunk), "Last STREAM chunk is empty" → [`PayloadFault::Corrupt`];
/// - anything else comes from the underlying reader → [`PayloadFault::Other`].
pub fn classify_payload_error(e: &io::Error) -> PayloadFault {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => PayloadFault::Truncated,
        io::ErrorKind::InvalidData => PayloadFault::Corrupt,
        _ => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<io::Error>())
        {
            // Some layers wrap the age error in another io::Error.
            Some(inner) => classify_payload_error(inner),
            None => PayloadFault::Other,
        },
    }
}

/// Maps an error from reading the age header.
fn header_error(e: DecryptError) -> KeyError {
    let corrupt = |reason: &str| KeyError::Corrupt {
        reason: reason.to_owned(),
    };
    match e {
        DecryptError::InvalidHeader => {
            corrupt("it is not an age-encrypted file, or its age header is damaged")
        }
        DecryptError::UnknownFormat => {
            corrupt("it uses an unknown age format version (written by a newer age?)")
        }
        DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => corrupt(
            "it ends inside the age header (the file is empty, cut short, or not age-encrypted)",
        ),
        DecryptError::Io(e) => KeyError::Io(e),
        other => KeyError::Corrupt {
            reason: other.to_string(),
        },
    }
}

/// State of one [`decrypt`] call, shared by the identities tried.
struct Attempt<'a> {
    key: &'a Key,
    salts: Vec<String>,
    unlock: Option<&'a dyn SshKeyUnlock>,
    /// Recipients (`age1…`) already tried, so a derived identity is not tried twice.
    tried_recipients: RefCell<HashSet<String>>,
    /// What the header is encrypted to (stanza tags), for the no-match message.
    seen: RefCell<Vec<String>>,
    /// SSH keys the backup is encrypted to that stayed locked.
    locked: RefCell<Vec<String>>,
}

impl<'a> Attempt<'a> {
    fn new(
        key: &'a Key,
        manifest_salt: Option<&str>,
        unlock: Option<&'a dyn SshKeyUnlock>,
    ) -> Self {
        let tried_recipients = key
            .x25519
            .iter()
            .map(|k| k.identity.to_public().to_string())
            .collect();
        Attempt {
            key,
            salts: salts_to_try(manifest_salt),
            unlock,
            tried_recipients: RefCell::new(tried_recipients),
            seen: RefCell::new(Vec::new()),
            locked: RefCell::new(Vec::new()),
        }
    }

    /// The identities in the order they are tried: cheap first, prompts last.
    fn identities<'s>(
        &'s self,
        native_scrypt: &'s [NativeScrypt],
    ) -> Vec<Box<dyn age::Identity + 's>> {
        type Boxed<'s> = Box<dyn age::Identity + 's>;
        let ssh = |key: &'s SshKey| -> Boxed<'s> { Box::new(SshAttempt { attempt: self, key }) };
        let (locked, open): (Vec<&SshKey>, Vec<&SshKey>) =
            self.key.ssh.iter().partition(|k| k.is_encrypted());

        let mut ids: Vec<Boxed<'s>> = vec![Box::new(Observer(self))];
        ids.extend(
            self.key
                .x25519
                .iter()
                .map(|k| Box::new(ByRef(&k.identity)) as Boxed<'s>),
        );
        ids.extend(open.into_iter().map(ssh));
        ids.extend(self.key.passphrases.iter().map(|passphrase| {
            Box::new(PassphraseAttempt {
                attempt: self,
                passphrase,
            }) as Boxed<'s>
        }));
        ids.extend(
            native_scrypt
                .iter()
                .map(|s| Box::new(ByRef(s)) as Boxed<'s>),
        );
        ids.extend(locked.into_iter().map(ssh));
        ids
    }

    /// Maps a failure of `Decryptor::decrypt`.
    fn error(&self, e: DecryptError, tried_scrypt: bool) -> KeyError {
        let corrupt = |reason: String| KeyError::Corrupt { reason };
        match e {
            DecryptError::NoMatchingKeys => match self.locked.borrow().first() {
                Some(label) => KeyError::SshKeyLocked {
                    label: label.clone(),
                },
                None => KeyError::NoMatch {
                    tried: self.tried(tried_scrypt),
                },
            },
            DecryptError::InvalidMac => corrupt(
                "the age header's MAC does not verify: the header was modified or damaged".into(),
            ),
            DecryptError::InvalidHeader => {
                corrupt("a recipient entry in the age header is malformed".into())
            }
            DecryptError::DecryptionFailed => corrupt(
                "the age header has an entry for one of the given SSH keys, but it does not decrypt (damaged header)".into(),
            ),
            DecryptError::ExcessiveWork { required, target } => corrupt(format!(
                "its age passphrase work factor (2^{required}) is far above what this machine does in a second (2^{target}); refusing"
            )),
            DecryptError::Io(e) => KeyError::Io(e),
            other => corrupt(other.to_string()),
        }
    }

    /// What was tried, for [`KeyError::NoMatch`].
    fn tried(&self, tried_scrypt: bool) -> String {
        let key = self.key;
        let mut parts = Vec::new();
        let passphrases = match key.passphrases.len() {
            0 => None,
            1 => Some("a passphrase".to_owned()),
            n => Some(format!("{n} passphrases")),
        };
        if let Some(p) = passphrases {
            let mut text = format!("{p} with the salts {}", self.salts.join(", "));
            if tried_scrypt {
                text.push_str(" and as an age passphrase");
            }
            parts.push(text);
        }
        let mut labels: Vec<String> = Vec::new();
        for label in key
            .x25519
            .iter()
            .map(|k| format!("the age identity from {}", k.label))
        {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels.extend(key.ssh.iter().map(|k| format!("the SSH key {}", k.label)));
        parts.extend(labels);
        let mut text = join_and(&parts);
        if let Some(seen) = self.seen_summary() {
            text.push_str("; the backup is encrypted to ");
            text.push_str(&seen);
        }
        text
    }

    /// "1 X25519 recipient and 1 ssh-ed25519 key", from the header's stanzas.
    fn seen_summary(&self) -> Option<String> {
        let seen = self.seen.borrow();
        let count = |tag: &str| seen.iter().filter(|t| *t == tag).count();
        let plural = |n: usize, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let mut parts = Vec::new();
        let x25519 = count(TAG_X25519);
        if x25519 > 0 {
            parts.push(plural(
                x25519,
                "X25519 key (age key or proxsave passphrase)",
                "X25519 keys (age keys or proxsave passphrases)",
            ));
        }
        for (tag, one, many) in [
            (TAG_SSH_ED25519, "ssh-ed25519 key", "ssh-ed25519 keys"),
            (TAG_SSH_RSA, "ssh-rsa key", "ssh-rsa keys"),
        ] {
            let n = count(tag);
            if n > 0 {
                parts.push(plural(n, one, many));
            }
        }
        if count(TAG_SCRYPT) > 0 {
            parts.push("an age passphrase (age -p)".to_owned());
        }
        let known = [TAG_X25519, TAG_SSH_ED25519, TAG_SSH_RSA, TAG_SCRYPT];
        let other = seen
            .iter()
            .filter(|t| !known.contains(&t.as_str()) && !t.ends_with("-grease"))
            .count();
        if other > 0 {
            parts.push(plural(other, "other recipient", "other recipients"));
        }
        (!parts.is_empty()).then(|| join_and(&parts))
    }
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Tried first: records what the header is encrypted to, matches nothing.
struct Observer<'s, 'a>(&'s Attempt<'a>);

impl age::Identity for Observer<'_, '_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        self.0
            .seen
            .borrow_mut()
            .extend(stanzas.iter().map(|s| s.tag.clone()));
        None
    }
}

/// A passphrase, tried as one derived X25519 identity per salt.
struct PassphraseAttempt<'s, 'a> {
    attempt: &'s Attempt<'a>,
    passphrase: &'s Passphrase,
}

impl age::Identity for PassphraseAttempt<'_, '_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        use age::secrecy::ExposeSecret;
        // Deriving costs 32 MiB and real time: skip it when no X25519 recipient can match.
        if !stanzas.iter().any(|s| s.tag == TAG_X25519) {
            return None;
        }
        for salt in &self.attempt.salts {
            let identity = derive_identity(self.passphrase.secret.expose_secret(), salt);
            let recipient = identity.to_public().to_string();
            if !self.attempt.tried_recipients.borrow_mut().insert(recipient) {
                continue;
            }
            if let Some(found) = identity.unwrap_stanzas(stanzas) {
                return Some(found);
            }
        }
        None
    }
}

/// An SSH key; a passphrase-protected one is unlocked only if the header has its stanza.
struct SshAttempt<'s, 'a> {
    attempt: &'s Attempt<'a>,
    key: &'s SshKey,
}

impl SshAttempt<'_, '_> {
    fn unlock(&self, encrypted: &age::ssh::EncryptedKey) -> Option<age::ssh::Identity> {
        if let Some(identity) = self.key.cached() {
            return Some(identity);
        }
        if let Some(unlock) = self.attempt.unlock {
            for _ in 0..SSH_UNLOCK_ATTEMPTS {
                let passphrase = unlock.passphrase(&self.key.label)?;
                if let Ok(key) = encrypted.decrypt(passphrase) {
                    let identity = age::ssh::Identity::from(key);
                    self.key.remember(&identity);
                    return Some(identity);
                }
            }
        }
        None
    }
}

impl age::Identity for SshAttempt<'_, '_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        match &self.key.identity {
            age::ssh::Identity::Encrypted(encrypted) => {
                if !stanzas.iter().any(|s| self.key.matches(s)) {
                    return None;
                }
                match self.unlock(encrypted) {
                    Some(identity) => identity.unwrap_stanzas(stanzas),
                    None => {
                        self.attempt
                            .locked
                            .borrow_mut()
                            .push(self.key.label.clone());
                        None
                    }
                }
            }
            identity => identity.unwrap_stanzas(stanzas),
        }
    }
}

/// age's own passphrase identity (files from `age -p`); a wrong passphrase is "no match"
/// rather than fatal, so the next passphrase is tried.
struct NativeScrypt(age::scrypt::Identity);

impl age::Identity for NativeScrypt {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        match self.0.unwrap_stanza(stanza) {
            Some(Err(DecryptError::DecryptionFailed)) => None,
            other => other,
        }
    }
}

/// Lends an identity owned elsewhere (the secret is not copied).
struct ByRef<'s, T>(&'s T);

impl<T: age::Identity> age::Identity for ByRef<'_, T> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.0.unwrap_stanza(stanza)
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        self.0.unwrap_stanzas(stanzas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    const PASSPHRASE: &str = "Correct-Horse-Battery-9";
    const SALT_V2: &str = "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff";

    fn check_vector(salt: &str, recipient: &str, secret: &str) {
        let identity = derive_identity(PASSPHRASE, salt);
        assert_eq!(identity.to_public().to_string(), recipient);
        assert_eq!(identity.to_string().expose_secret(), secret);
    }

    #[test]
    fn derive_identity_v1_vector() {
        check_vector(
            SALT_V1,
            "age1r4f226rrqg9jc4tqcnc3lzagzayssypfelher4cwue6kl006kses4x6hdw",
            "AGE-SECRET-KEY-1LRVUMYNG80FWZ6RJXY67GADZYXHSMASWF646PHWF6PRH9ZE65ASQX23VQS",
        );
    }

    #[test]
    fn derive_identity_legacy_vector() {
        check_vector(
            SALT_LEGACY,
            "age1a2hn26mpzl6adeexgxx7q7dtzj5fhhwhegtvt3clv4v4n7yn5dwstkdvan",
            "AGE-SECRET-KEY-18P0DVR2DGJCSLNM6EZAVQ4NL50W347MNYKRJW7TDYCWNYKRYMF5QHCJ8EQ",
        );
    }

    #[test]
    fn derive_identity_v2_vector() {
        check_vector(
            SALT_V2,
            "age1usuqeufd2ycsgqcxhuf6sc93v4nyvyktqcyq30hattplddwtaulqnfxh3m",
            "AGE-SECRET-KEY-1LRACLGSL4SQC2PSX8CEQPU8K2A3VM5E35G44ERDRL7HKULJ7LDJSNJ6A26",
        );
    }

    #[test]
    fn derive_identity_trims_the_passphrase() {
        let a = derive_identity("  Correct-Horse-Battery-9\n", SALT_V1);
        assert_eq!(
            a.to_public().to_string(),
            "age1r4f226rrqg9jc4tqcnc3lzagzayssypfelher4cwue6kl006kses4x6hdw"
        );
    }

    #[test]
    fn salts_order_and_dedup() {
        assert_eq!(salts_to_try(None), vec![SALT_V1, SALT_LEGACY]);
        assert_eq!(salts_to_try(Some("  ")), vec![SALT_V1, SALT_LEGACY]);
        assert_eq!(
            salts_to_try(Some(&format!(" {SALT_V2} "))),
            vec![SALT_V2, SALT_V1, SALT_LEGACY]
        );
        assert_eq!(salts_to_try(Some(SALT_LEGACY)), vec![SALT_LEGACY, SALT_V1]);
    }

    #[test]
    fn add_secret_sorts_keys_from_passphrases() {
        let secret = "AGE-SECRET-KEY-1LRVUMYNG80FWZ6RJXY67GADZYXHSMASWF646PHWF6PRH9ZE65ASQX23VQS";
        let mut key = Key::new();
        assert!(key.is_empty());
        key.add_secret(&format!("  {}\n", secret.to_lowercase()))
            .unwrap();
        key.add_secret("a passphrase").unwrap();
        assert_eq!(key.x25519.len(), 1);
        assert_eq!(key.passphrases.len(), 1);
        assert_eq!(key.describe(), "a passphrase and 1 identity");
        assert!(matches!(
            key.add_secret(" \t\n"),
            Err(KeyError::InvalidKey { .. })
        ));
        let err = key.add_secret("age-secret-key-1notbech32").unwrap_err();
        assert!(matches!(err, KeyError::InvalidKey { .. }), "{err}");
        assert!(!err.to_string().contains("notbech32"), "{err}");
    }

    #[test]
    fn describe_counts() {
        let mut key = Key::new();
        assert_eq!(key.describe(), "no key or passphrase");
        key.add_secret("one").unwrap();
        key.add_secret("two").unwrap();
        assert_eq!(key.describe(), "2 passphrases");
    }

    #[test]
    fn debug_hides_secrets() {
        let secret = "AGE-SECRET-KEY-1LRVUMYNG80FWZ6RJXY67GADZYXHSMASWF646PHWF6PRH9ZE65ASQX23VQS";
        let mut key = Key::new();
        key.add_secret("hunter2-very-secret").unwrap();
        key.add_secret(secret).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.to_uppercase().contains("AGE-SECRET-KEY"), "{debug}");
        assert!(!debug.to_uppercase().contains("LRVUMYNG"), "{debug}");
    }

    #[test]
    fn key_and_payload_reader_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Key>();
        send_sync::<KeyError>();
        send::<PayloadReader<std::fs::File>>();
    }

    #[test]
    fn classify_kinds() {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "age file is truncated");
        assert_eq!(classify_payload_error(&e), PayloadFault::Truncated);
        let e = io::Error::new(io::ErrorKind::InvalidData, "decryption error");
        assert_eq!(classify_payload_error(&e), PayloadFault::Corrupt);
        let e = io::Error::other(io::Error::new(io::ErrorKind::InvalidData, "x"));
        assert_eq!(classify_payload_error(&e), PayloadFault::Corrupt);
        let e = io::Error::new(io::ErrorKind::PermissionDenied, "no");
        assert_eq!(classify_payload_error(&e), PayloadFault::Other);
    }

    #[test]
    fn no_key_is_required_but_garbage_is_corrupt_first() {
        let key = Key::new();
        let Err(err) = decrypt(&b"hello"[..], &key, None, None) else {
            panic!("garbage decrypted");
        };
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        let Err(err) = decrypt(&b""[..], &key, None, None) else {
            panic!("empty input decrypted");
        };
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
    }
}
