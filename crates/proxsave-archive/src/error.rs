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
