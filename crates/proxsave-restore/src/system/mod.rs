//! Common system files a restore merges instead of overwriting: pure, I/O-free cores that the
//! appliers call (they read the stage and the root, and write the results through the root
//! handle).

pub mod accounts;
