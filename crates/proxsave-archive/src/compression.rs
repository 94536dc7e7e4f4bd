//! Decompression of the inner archive. (Being written.)

/// Errors of the decompression stage.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
