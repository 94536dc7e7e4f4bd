//! The `.sha256` sidecar and integrity checks. (Being written.)

/// Errors of the integrity check.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
