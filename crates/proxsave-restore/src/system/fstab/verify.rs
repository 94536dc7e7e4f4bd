//! Reading `findmnt --verify --tab-file FILE` output, and the rule that decides whether a
//! merged fstab may replace the old one.

use std::collections::HashMap;
use std::fmt;

/// How serious a finding is (`[E]`, `[W]`, `[ ]` in findmnt's output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// `[E]`.
    Error,
    /// `[W]`.
    Warning,
    /// `[ ]` (only with `--verbose`).
    Info,
}

/// One line of findmnt's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The mountpoint it is about; `None` for file-wide messages (parse errors, a file that
    /// cannot be read).
    pub target: Option<String>,
    /// Its level.
    pub level: Level,
    /// findmnt's message (`parse error at line 12` for parse errors, the file name left out).
    pub message: String,
}

impl Finding {
    /// A source or target that does not exist where findmnt looked (`unreachable …`, and
    /// `cannot detect on-disk filesystem type` that follows a missing source). findmnt checks
    /// the running system, not the restored root, and a new mount's folder or disk may come
    /// later: such findings never refuse a merge.
    pub fn is_unreachable(&self) -> bool {
        self.message.starts_with("unreachable")
            || self
                .message
                .starts_with("cannot detect on-disk filesystem type")
    }

    /// A note about the running system rather than the checked file (systemd still using an
    /// older `/etc/fstab`).
    pub fn is_environment(&self) -> bool {
        self.message.starts_with("your fstab has been modified")
    }

    /// Whether a new finding of this kind refuses the merged file.
    pub fn blocks(&self) -> bool {
        self.level != Level::Info && !self.is_unreachable() && !self.is_environment()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        };
        match &self.target {
            Some(t) => write!(f, "{level}: {t}: {}", self.message),
            None => write!(f, "{level}: {}", self.message),
        }
    }
}

/// The findings of one `findmnt --verify` run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every finding, in output order.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Reads findmnt's standard output (a target line, then `   [E] …` lines) and standard
    /// error (`findmnt: FILE: parse error at line N -- ignored`, the summary, fatal errors).
    /// Run it with `LC_ALL=C`: messages are compared as text. Unknown lines on standard
    /// error count as errors, so a message this parser does not know refuses rather than
    /// passes.
    pub fn parse(stdout: &str, stderr: &str) -> VerifyReport {
        let mut findings: Vec<Finding> = Vec::new();
        let mut target: Option<String> = None;
        for line in stdout.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with("Success, no errors or warnings") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("   [") {
                let mut chars = rest.chars();
                let level = match chars.next() {
                    Some('E') => Level::Error,
                    Some('W') => Level::Warning,
                    _ => Level::Info,
                };
                let message = chars.as_str().strip_prefix("] ").unwrap_or(chars.as_str());
                findings.push(Finding {
                    target: target.clone(),
                    level,
                    message: message.to_owned(),
                });
            } else if line.starts_with([' ', '\t']) {
                // Continuation of a multi-line message.
                if let Some(last) = findings.last_mut() {
                    last.message.push(' ');
                    last.message.push_str(line.trim());
                }
            } else {
                target = Some(line.to_owned());
            }
        }
        for line in stderr.lines() {
            let line = line.trim_end_matches('\r').trim();
            if line.is_empty() || is_summary(line) {
                continue;
            }
            let message = if let Some(at) = line.find("parse error at line") {
                line[at..].trim_end_matches(" -- ignored").to_owned()
            } else {
                line.strip_prefix("findmnt: ").unwrap_or(line).to_owned()
            };
            findings.push(Finding {
                target: None,
                level: Level::Error,
                message,
            });
        }
        VerifyReport { findings }
    }
}

/// `1 parse error, 18 errors, 6 warnings`.
fn is_summary(line: &str) -> bool {
    line.starts_with(|c: char| c.is_ascii_digit())
        && line.contains("parse error")
        && line.contains(" error")
        && line.contains(" warning")
}

/// The findings of the merged file (`new`) that refuse it: those the old file did not have
/// (counted per target, level and message, so a second identical one is new), other than
/// unreachable sources and targets, notes about the running system, and verbose-only lines.
/// Empty means the merged file may replace the old one.
///
/// The merged file starts with the old one byte for byte, so the old lines keep their numbers
/// and an old parse error is not reported again.
pub fn blocking_findings(old: &VerifyReport, new: &VerifyReport) -> Vec<Finding> {
    let mut seen: HashMap<&Finding, usize> = HashMap::new();
    for f in &old.findings {
        *seen.entry(f).or_default() += 1;
    }
    new.findings
        .iter()
        .filter(|f| match seen.get_mut(f) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => f.blocks(),
        })
        .cloned()
        .collect()
}
