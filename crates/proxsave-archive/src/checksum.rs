//! The `.sha256` sidecar and integrity checks.
//!
//! proxsave hashes the archive file exactly as stored (compressed, and age ciphertext when
//! encrypted) and records the hex digest twice: in `<archive>.sha256` (`sha256sum` format) and
//! in the manifest's `sha256`. A restore needs at least one of them and, when both exist, they
//! must agree; only then is the archive read, hashed on the fly with [`HashingReader`], and
//! the result compared with [`Expectation::verify`].
//!
//! ```
//! use proxsave_archive::checksum::{parse_checksum_file, resolve_expectation, HashingReader};
//! use std::io::Read;
//!
//! let sidecar = b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.tar\n";
//! let from_file = parse_checksum_file(sidecar)?;
//! let expected = resolve_expectation(Some(&from_file), None)?;
//!
//! let mut reader = HashingReader::new(&b"abc"[..]);
//! std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
//! let (actual, bytes, _) = reader.finish();
//! assert_eq!(bytes, 3);
//! expected.verify(&actual)?;
//! # Ok::<(), proxsave_archive::checksum::ChecksumError>(())
//! ```

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Length of a SHA-256 digest in hex characters.
pub const SHA256_HEX_LEN: usize = 64;

/// Most bytes upstream reads from a `.sha256` file before its first newline.
pub const CHECKSUM_LINE_LIMIT: usize = 4096;

/// Errors of the integrity check.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// Neither a `.sha256` file nor a manifest `sha256` is available.
    #[error(
        "no checksum: neither a .sha256 file nor a manifest sha256 — refusing to use an unverifiable backup"
    )]
    Missing,
    /// The `.sha256` file and the manifest name different digests.
    #[error(
        "checksum file and manifest disagree: the .sha256 file says {file}, the manifest says {manifest}"
    )]
    Conflict {
        /// Digest from the `.sha256` file.
        file: String,
        /// Digest from the manifest.
        manifest: String,
    },
    /// A checksum value is not a SHA-256 hex digest.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which value (e.g. "checksum file", "manifest sha256").
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The archive's bytes hash to something else than expected.
    #[error(
        "the archive data does not match its checksum (expected {expected}, computed {actual}): the backup is corrupt or was modified"
    )]
    Mismatch {
        /// The expected digest.
        expected: String,
        /// The digest computed from the data.
        actual: String,
    },
}

/// Go's `NormalizeChecksum`: trimmed, lower-cased, exactly 64 hex characters.
///
/// `what` names the value in the error (e.g. "manifest sha256").
pub fn normalize_sha256(value: &str, what: &str) -> Result<String, ChecksumError> {
    let malformed = |reason: String| ChecksumError::Malformed {
        what: what.to_owned(),
        reason,
    };
    let v = value.trim().to_lowercase();
    if v.is_empty() {
        return Err(malformed("it is empty".to_owned()));
    }
    if v.len() != SHA256_HEX_LEN {
        return Err(malformed(format!(
            "a SHA-256 checksum has {SHA256_HEX_LEN} hex characters, this has {}",
            v.len()
        )));
    }
    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!("{v:?} is not hexadecimal")));
    }
    Ok(v)
}

/// First line only (max 4096 bytes before '\n'), first whitespace-separated field, trimmed, lower-cased, exactly 64 hex.
///
/// This is what upstream accepts: `sha256sum` output (`<hex>  <name>`), a bare digest, upper
/// case, leading blanks and CRLF line ends all work; a first line longer than
/// [`CHECKSUM_LINE_LIMIT`] bytes, an empty first line, or a first field that is not a digest
/// give [`ChecksumError::Malformed`]. Anything after the first newline is ignored.
pub fn parse_checksum_file(bytes: &[u8]) -> Result<String, ChecksumError> {
    const WHAT: &str = "checksum file";
    let malformed = |reason: String| ChecksumError::Malformed {
        what: WHAT.to_owned(),
        reason,
    };
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    if line.len() > CHECKSUM_LINE_LIMIT {
        return Err(malformed(format!(
            "more than {CHECKSUM_LINE_LIMIT} bytes before the first newline"
        )));
    }
    if bytes.is_empty() {
        return Err(malformed("the file is empty".to_owned()));
    }
    // Go splits on Unicode white space (`strings.Fields`), as `split_whitespace` does.
    let line = String::from_utf8_lossy(line);
    let Some(field) = line.split_whitespace().next() else {
        return Err(malformed("the first line holds no checksum".to_owned()));
    };
    normalize_sha256(field, WHAT)
}

/// `"<hex>  <name>\n"` (sha256sum format).
pub fn format_checksum_line(hex: &str, name: &str) -> String {
    format!("{hex}  {name}\n")
}

/// The digest an archive must have, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Expectation {
    /// The expected lower-case hex SHA-256 of the stored archive bytes.
    pub sha256: String,
    /// The normalised digest from the `.sha256` file, if there was one.
    pub from_file: Option<String>,
    /// The normalised digest from the manifest, if it had one.
    pub from_manifest: Option<String>,
}

impl Expectation {
    /// Where the expectation comes from, in upstream's words: "checksum file and manifest",
    /// "checksum file" or "manifest".
    pub fn source(&self) -> &'static str {
        match (&self.from_file, &self.from_manifest) {
            (Some(_), Some(_)) => "checksum file and manifest",
            (Some(_), None) => "checksum file",
            _ => "manifest",
        }
    }

    /// Compares a computed digest (any case, surrounding blanks ignored) with the
    /// expectation; [`ChecksumError::Mismatch`] when they differ.
    pub fn verify(&self, actual: &str) -> Result<(), ChecksumError> {
        let actual = actual.trim().to_ascii_lowercase();
        if actual == self.sha256 {
            Ok(())
        } else {
            Err(ChecksumError::Mismatch {
                expected: self.sha256.clone(),
                actual,
            })
        }
    }
}

/// Both present → must be equal (after trim+lowercase), else ChecksumError::Conflict; one → it; none → Missing.
/// A manifest value that is present but not 64 hex → Malformed.
///
/// `file` is the digest read from the `.sha256` file (`None` when there is no such file); a
/// value given here must be a digest, so `Some("")` is [`ChecksumError::Malformed`]. `manifest`
/// is the manifest's `sha256`; like upstream, a blank value counts as absent.
pub fn resolve_expectation(
    file: Option<&str>,
    manifest: Option<&str>,
) -> Result<Expectation, ChecksumError> {
    let from_file = file
        .map(|f| normalize_sha256(f, "checksum file"))
        .transpose()?;
    let from_manifest = manifest
        .filter(|m| !m.trim().is_empty())
        .map(|m| normalize_sha256(m, "manifest sha256"))
        .transpose()?;
    let sha256 = match (&from_file, &from_manifest) {
        (Some(f), Some(m)) if f != m => {
            return Err(ChecksumError::Conflict {
                file: f.clone(),
                manifest: m.clone(),
            });
        }
        (Some(f), _) => f.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => return Err(ChecksumError::Missing),
    };
    Ok(Expectation {
        sha256,
        from_file,
        from_manifest,
    })
}

/// Wraps a reader; SHA-256 and byte count of everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Starts hashing what is read from `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes read through this reader so far.
    ///
    /// Where `std::io::Read` is in scope, method syntax `r.bytes()` resolves to
    /// [`Read::bytes`] (which takes `self` by value) instead of this; call
    /// `HashingReader::bytes(&r)` or use [`bytes_read`](HashingReader::bytes_read).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes read through this reader so far (same as [`HashingReader::bytes`], without the
    /// name clash with [`Read::bytes`]).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably. Bytes read from it directly are not hashed.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Ends hashing: the lower-case hex digest, the byte count and the wrapped reader.
    pub fn finish(self) -> (String, u64, R) {
        (to_hex(&self.hasher.finalize()), self.bytes, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: fmt::Debug> fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingReader")
            .field("inner", &self.inner)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Streams everything from `r` and returns (hex, bytes).
pub fn sha256_of(r: impl Read) -> io::Result<(String, u64)> {
    let mut reader = HashingReader::new(r);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (hex, bytes, _) = reader.finish();
    Ok((hex, bytes))
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn normalize_like_go() {
        assert_eq!(
            normalize_sha256(&format!("  {}  ", ABC.to_uppercase()), "x").ok(),
            Some(ABC.to_owned())
        );
        for bad in ["", "   ", "abc", &"z".repeat(64), &format!("{ABC}0")] {
            assert!(
                matches!(
                    normalize_sha256(bad, "x"),
                    Err(ChecksumError::Malformed { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn line_limit_boundary() {
        // 64 hex + 4032 blanks = 4096 bytes before the newline: accepted.
        let ok = format!("{ABC}{}\n", " ".repeat(CHECKSUM_LINE_LIMIT - 64));
        assert_eq!(
            parse_checksum_file(ok.as_bytes()).ok(),
            Some(ABC.to_owned())
        );
        // Same without a newline at all: still accepted (upstream reads to EOF).
        assert_eq!(
            parse_checksum_file(ok.trim_end_matches('\n').as_bytes()).ok(),
            Some(ABC.to_owned())
        );
        let too_long = format!("{ABC}{}\n", " ".repeat(CHECKSUM_LINE_LIMIT - 63));
        assert!(matches!(
            parse_checksum_file(too_long.as_bytes()),
            Err(ChecksumError::Malformed { .. })
        ));
    }

    #[test]
    fn expectation_source_and_verify() {
        let e = resolve_expectation(Some(ABC), Some(ABC)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.source(), "checksum file and manifest");
        assert!(e.verify(&ABC.to_uppercase()).is_ok());
        assert!(matches!(
            e.verify(&"0".repeat(64)),
            Err(ChecksumError::Mismatch { .. })
        ));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
