//! The Proxmox VE file formats, pure (no I/O): parse, typed model, write.

pub mod shadow;
pub mod tfa;
pub mod token;
pub mod user_cfg;
