//! Keys for age-encrypted backups. (Being written.)

/// Errors of the decryption stage.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
