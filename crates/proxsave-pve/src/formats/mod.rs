//! PVE configuration files (pure parsers and writers; the generic section-config and
//! property-string code lives in `proxsave-formats`).

pub mod datacenter;
pub mod guest;
pub mod shadow;
pub mod tfa;
pub mod token;
pub mod user_cfg;
