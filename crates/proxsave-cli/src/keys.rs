//! Key options and the key prompt.

use std::io::BufRead;

use anyhow::Context;
use proxsave_archive::Error as ArchiveError;
use proxsave_archive::key::{Key, KeyError, SshKeyUnlock};

use crate::Exit;
use crate::cli::KeyArgs;
use crate::term;

/// How many times a wrong passphrase may be typed at the prompt.
const MAX_PROMPTS: u32 = 3;

/// Builds the key from `--passphrase-file` / `--identity`.
pub fn key_from_args(args: &KeyArgs) -> Result<Key, Exit> {
    let mut key = Key::new();
    if let Some(path) = &args.passphrase_file {
        if path.as_os_str() == "-" {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the passphrase from standard input")?;
            key.add_secret(line.trim())
                .map_err(|e| Exit::Usage(format!("--passphrase-file -: {e}")))?;
        } else {
            key.add_passphrase_file(path)
                .map_err(|e| Exit::Failure(e.into()))?;
        }
    }
    for path in &args.identity {
        key.add_identity_file(path)
            .map_err(|e| Exit::Failure(e.into()))?;
    }
    Ok(key)
}

/// Prompts for the passphrase of a protected OpenSSH key, when a terminal is there.
pub struct TtyUnlock;

impl SshKeyUnlock for TtyUnlock {
    fn passphrase(&self, key_label: &str) -> Option<proxsave_archive::secrecy::SecretString> {
        if !term::stdin_is_tty() {
            return None;
        }
        term::prompt_secret(&format!("Passphrase for SSH key {key_label}: "))
            .ok()
            .map(proxsave_archive::secrecy::SecretString::from)
    }
}

/// Runs `op` with the key from the options; in a terminal, asks for a passphrase or key when
/// none was given or the one given does not match (three tries). Typing nothing or `0`
/// aborts.
pub fn with_key<T>(
    args: &KeyArgs,
    label: &str,
    op: impl FnMut(&Key, &dyn SshKeyUnlock) -> Result<T, ArchiveError>,
) -> Result<T, Exit> {
    with_key_kept(args, label, op).map(|(v, _)| v)
}

/// Like [`with_key`], also returning the key that worked (for further reads).
pub fn with_key_kept<T>(
    args: &KeyArgs,
    label: &str,
    mut op: impl FnMut(&Key, &dyn SshKeyUnlock) -> Result<T, ArchiveError>,
) -> Result<(T, Key), Exit> {
    let mut key = key_from_args(args)?;
    let unlock = TtyUnlock;
    let mut prompts = 0;
    loop {
        match op(&key, &unlock) {
            Ok(v) => return Ok((v, key)),
            Err(ArchiveError::Key(e @ (KeyError::Required | KeyError::NoMatch { .. }))) => {
                let interactive = term::stdin_is_tty()
                    && args.passphrase_file.as_deref() != Some(std::path::Path::new("-"));
                if !interactive || prompts >= MAX_PROMPTS {
                    return Err(match e {
                        KeyError::Required => Exit::Usage(format!(
                            "{label} is encrypted: give --passphrase-file FILE or --identity FILE"
                        )),
                        other => Exit::Failure(ArchiveError::Key(other).into()),
                    });
                }
                if matches!(e, KeyError::NoMatch { .. }) {
                    crate::progress::quiet(|| {
                        eprintln!("The passphrase or key does not match this backup.");
                    });
                }
                prompts += 1;
                let secret = term::prompt_secret(&format!(
                    "Passphrase or AGE-SECRET-KEY for {label} (input hidden, 0 to cancel): "
                ))
                .context("reading the passphrase")?;
                let secret = secret.trim();
                if secret.is_empty() || secret == "0" {
                    return Err(Exit::Aborted);
                }
                key = key_from_args(args)?;
                key.add_secret(secret)
                    .map_err(|e| Exit::Failure(e.into()))?;
            }
            Err(e) => return Err(Exit::Failure(e.into())),
        }
    }
}
