//! The backup manifest (`.metadata`). (Being written.)

/// Errors reading a manifest.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
