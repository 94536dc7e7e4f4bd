//! Streaming tar reader and writer. (Being written.)

/// Errors of the tar stage.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
