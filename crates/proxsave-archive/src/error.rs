//! The crate's error type.
//!
//! Each stage of the read path has its own error enum (manifest, checksum, key, compression,
//! tar); [`Error`] wraps them so a caller can match on the stage that failed. Every variant
//! names the file, member or entry involved.

use std::io;
use std::path::PathBuf;

use crate::checksum::ChecksumError;
use crate::compression::CompressionError;
use crate::key::KeyError;
use crate::manifest::ManifestError;
use crate::tar::TarError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Anything that can go wrong while reading or extracting a backup.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path given does not look like a proxsave backup.
    #[error("{}: {reason}", path.display())]
    NotABackup {
        /// The path given.
        path: PathBuf,
        /// Why it was not accepted.
        reason: String,
    },
    /// The outer `.bundle.tar` is malformed or incomplete.
    #[error("{}: {reason}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The integrity check failed or was impossible.
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// Decryption failed (no key, wrong key, corrupt ciphertext).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Decompression failed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The tar stream inside is malformed.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// The age payload failed authentication or ended early.
    #[error("the encrypted data is {}: {detail}", if *truncated { "truncated" } else { "corrupt (authentication failed)" })]
    Ciphertext {
        /// True when the data ended early rather than failing authentication.
        truncated: bool,
        /// The decryption library's message.
        detail: String,
    },
    /// The compressed data is corrupt, truncated or followed by junk.
    #[error("{detail}")]
    Decompress {
        /// What the decompressor found, e.g. "the xz data is corrupt: …".
        detail: String,
    },
    /// Reading the backup failed while an entry's data was being consumed; the pipeline in
    /// [`crate::read`] turns this into the error of the failing layer.
    #[error("reading the backup failed: {0}")]
    Read(#[source] io::Error),
    /// Strict extraction refused entries; nothing was written.
    #[error("{} entries were refused by the extraction safety rules; nothing was written", .0.refused)]
    Refused(Box<crate::extract::ExtractReport>),
    /// The path is not in the backup.
    #[error("{path}: not found in the backup")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The path is in the backup but is not a regular file.
    #[error("{path} {what}")]
    NotAFile {
        /// The path asked for.
        path: String,
        /// What it is instead.
        what: String,
    },
    /// `decrypt` was asked for a backup that is not encrypted.
    #[error("{}: the backup is not encrypted; there is nothing to decrypt", path.display())]
    NotEncrypted {
        /// The backup.
        path: PathBuf,
    },
    /// The user cancelled the operation.
    #[error("cancelled")]
    Cancelled,
    /// Extraction could not proceed (root not usable, staging failed, commit failed).
    #[error("{0}")]
    Extract(String),
}

impl Error {
    /// Wraps an I/O error with the file it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
