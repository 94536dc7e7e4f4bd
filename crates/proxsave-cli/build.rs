//! Bakes the git revision into `proxsave --version` (`PROXSAVE_GIT_REV`).
//!
//! Order: the `PROXSAVE_GIT_REV` environment variable (a build from a tarball can name its
//! revision), else `git rev-parse --short HEAD` when the sources are a git checkout and git is
//! installed, else `unknown`. Cargo re-runs this script when HEAD or the branch it points to
//! moves, so the version never names a stale revision.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PROXSAVE_GIT_REV");
    println!("cargo:rerun-if-changed=build.rs");
    let from_env = std::env::var("PROXSAVE_GIT_REV")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let rev = match from_env {
        Some(rev) => rev.trim().to_string(),
        None => {
            // Watch the files that change when a commit is made or checked out (worktrees
            // keep HEAD in their own git dir and branches in the common one).
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    watch(p);
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
                    watch(p);
                }
            }
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=PROXSAVE_GIT_REV={rev}");
}

fn watch(path: String) {
    let mut p = PathBuf::from(path);
    if p.is_relative() {
        if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") {
            p = PathBuf::from(dir).join(p);
        }
    }
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
