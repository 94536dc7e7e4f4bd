//! Test support shared by the proxsave crates.
//!
//! Tests use the real tools that produce proxsave backups (`age`, `xz`, `zstd`, `pbzip2`,
//! `pigz`, GNU `tar`, ...). When one is missing, a test is skipped with a message on a
//! developer machine, but **fails** in CI (`CI` or `PROXSAVE_REQUIRE_TOOLS` set), because CI
//! must install every tool the tests need.
//!
//! Modules:
//! - [`fixture`]: host trees ([`fixture::HostTree`]) and backups made with the real tools.
//! - [`hosts`]: realistic target roots ([`hosts::HostRoot`]) for restores, PBS/dual/standalone
//!   source trees, and [`hosts::make_host_backup`].
//! - [`configdb`]: real-schema pmxcfs `config.db` files ([`configdb::ConfigDb`]).
//! - [`fakes`]: fake host commands ([`fakes::FakeBin`]) that record calls and answer from rules.
//! - [`pve`]: a stateful double of the Proxmox VE API behind a fake `pvesh`
//!   ([`pve::PveDouble`], the `pve-double` binary).
//! - [`paused`]: runs `proxsave` until a checkpoint (`PROXSAVE_TEST_STOP_AT`) to deliver a real
//!   signal at an exact point.

pub mod configdb;
pub mod evil;
pub mod fakes;
pub mod fixture;
pub mod hosts;
pub mod paused;
pub mod pbs;
pub mod pve;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// True when missing tools must fail tests instead of skipping them.
pub fn tools_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("PROXSAVE_REQUIRE_TOOLS").is_some()
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Returns the path of `name`, or `None` after printing a skip message. Panics in CI.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    match which(name) {
        Some(path) => Some(path),
        None if tools_required() => {
            panic!("required tool `{name}` is not installed; CI (.ci/run) must install it")
        }
        None => {
            eprintln!("SKIP: `{name}` is not installed; install it to run this test");
            None
        }
    }
}

/// Returns early from the calling test when any of the tools is missing (fails in CI).
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        $( if $crate::require_tool($tool).is_none() { return; } )+
    };
}

/// Runs a command, panicking with its stderr when it fails. Returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `sh -c script` in `dir`, panicking on failure.
pub fn sh(dir: impl AsRef<Path>, script: impl AsRef<OsStr>) -> Output {
    run(Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.as_ref()))
}
