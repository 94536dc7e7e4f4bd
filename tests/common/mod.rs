//! Helpers shared by the end-to-end tests: run the real `proxsave` binary.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test (built by cargo for these tests).
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_proxsave")
}

/// A `Command` for `proxsave` with a clean, predictable environment.
pub fn proxsave() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("TZ", "UTC").env("LC_ALL", "C").stdin(Stdio::null());
    cmd
}

/// Runs `proxsave args…` and returns its output.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    proxsave().args(args).output().expect("run proxsave")
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code (panics on death by signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// Asserts success, printing stderr otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "proxsave failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// True if `dir` does not exist or is empty.
pub fn missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut it) => it.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}
