//! What the Debian package installs besides the binary, checked through the binary
//! (docs/packaging.md): `--version` names the git revision, `generate-assets` writes
//! `proxsave(1)` and one page per command, and the bash completion it writes completes
//! `proxsave rest` to `restore`. `.ci/run` then builds, installs and removes the real `.deb`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{code, run, stderr, stdout};
use proxsave_testkit::require_tools;

/// The workspace root (this file's crate is crates/proxsave-cli).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The revision the build should have baked in: as build.rs decides it.
fn expected_revision() -> String {
    if let Ok(rev) = std::env::var("PROXSAVE_GIT_REV") {
        if !rev.trim().is_empty() {
            return rev.trim().to_string();
        }
    }
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[test]
fn version_names_the_git_revision() {
    let out = run(["--version"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rev = expected_revision();
    assert_eq!(
        stdout(&out),
        format!("proxsave {} (git {rev})\n", env!("CARGO_PKG_VERSION"))
    );
    if std::env::var_os("CI").is_some() {
        assert_ne!(
            rev, "unknown",
            "CI clones have git: the revision must be known"
        );
    }
}

/// The commands `proxsave --help` lists (what a user can type), without `help`.
fn listed_commands() -> Vec<String> {
    let out = run(["--help"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let help = stdout(&out);
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists commands");
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

fn generate_assets() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("assets");
    let out = run([
        "generate-assets".as_ref(),
        "--out".as_ref(),
        out_dir.as_os_str(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    (dir, out_dir)
}

#[test]
fn man_pages_are_proxsave_1_and_one_per_command() {
    let (_dir, assets) = generate_assets();
    let commands = listed_commands();
    for c in [
        "restore", "verify", "inspect", "ls", "cat", "extract", "decrypt", "list", "diff",
    ] {
        assert!(
            commands.iter().any(|x| x == c),
            "{c} missing from --help: {commands:?}"
        );
    }
    let pages: BTreeSet<String> = std::fs::read_dir(assets.join("man"))
        .expect("man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected: BTreeSet<String> =
        commands.iter().map(|c| format!("proxsave-{c}.1")).collect();
    expected.insert("proxsave.1".to_string());
    // Exactly the listed commands: no page for the hidden generate-assets nor for `help`.
    assert_eq!(pages, expected);

    let main = std::fs::read_to_string(assets.join("man/proxsave.1")).expect("proxsave.1");
    assert!(main.contains(".TH proxsave 1"), "{main}");
    assert!(
        main.contains(&format!("(git {})", expected_revision())),
        "{main}"
    );
    assert!(main.contains("EXIT STATUS"), "{main}");
    assert!(main.contains("\\fBproxsave\\-restore\\fR(1)"), "{main}");
    let restore =
        std::fs::read_to_string(assets.join("man/proxsave-restore.1")).expect("restore page");
    assert!(restore.contains(".TH proxsave-restore 1"), "{restore}");
    assert!(restore.contains("\\-\\-rollback"), "{restore}");
    assert!(restore.contains("\\fBproxsave\\fR(1)"), "{restore}");

    // man renders every page without a warning.
    require_tools!("man");
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l", "-E", "UTF-8"])
            .arg(assets.join("man").join(page))
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run man");
        assert!(out.status.success(), "{page}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{page} renders with warnings");
        let text = plain(&stdout(&out));
        assert!(text.contains("NAME"), "{page}: {text}");
        assert!(text.contains("SEE ALSO"), "{page}: {text}");
    }
}

/// Text without nroff's overstrike bold/underline (`X\bX`, `_\bX`).
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

fn check_completion(script: &Path, words: &[&str], expected: &str) {
    let out = Command::new(repo().join("scripts/check-completion"))
        .arg(script)
        .args(words)
        .arg(expected)
        .output()
        .expect("run scripts/check-completion");
    assert!(
        out.status.success(),
        "{words:?} → {expected}: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn bash_completes_rest_to_restore() {
    require_tools!("bash");
    let (_dir, assets) = generate_assets();
    let bash = assets.join("completions/proxsave.bash");
    check_completion(&bash, &["proxsave", "rest"], "restore");
    check_completion(&bash, &["proxsave", "restore", "--roll"], "--rollback");
    check_completion(&bash, &["proxsave", "ver"], "verify");
    // The hidden packaging command is not offered.
    let out = Command::new(repo().join("scripts/check-completion"))
        .arg(&bash)
        .args(["proxsave", "gen", "generate-assets"])
        .output()
        .expect("run scripts/check-completion");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn zsh_and_fish_completions_name_the_commands() {
    let (_dir, assets) = generate_assets();
    let zsh = std::fs::read_to_string(assets.join("completions/_proxsave")).expect("zsh");
    assert!(zsh.starts_with("#compdef proxsave"), "{zsh}");
    assert!(zsh.contains("restore"), "{zsh}");
    let fish = std::fs::read_to_string(assets.join("completions/proxsave.fish")).expect("fish");
    assert!(fish.contains("complete -c proxsave"), "{fish}");
    assert!(fish.contains("-a \"restore\""), "{fish}");
    require_tools!("zsh");
    let out = Command::new("zsh")
        .arg("-n")
        .arg(assets.join("completions/_proxsave"))
        .output()
        .expect("run zsh -n");
    assert!(out.status.success(), "zsh -n: {}", stderr(&out));
}
