//! Preflight of an installed network configuration with the real tools, before any live apply.
//!
//! Order: the lint of [`crate::ifaces::lint`] first (its errors — a bridge port, bond slave or
//! VLAN raw device this host lacks, a line the tools cannot parse — fail the preflight without
//! running anything, since ifupdown2 does not check them), then the validator of the
//! implementation installed on the running host:
//!
//! * ifupdown2: `ifup -a -s -i FILE` (`--syntax-check`). Exit 0 passes; a non-zero exit whose
//!   output holds only `warning:` lines passes *with those warnings* (3.0.0 exits 1 on
//!   `bridge-ports none` and on MTU advisories); any `error:` fails, and so does a warning
//!   that rejects a value (`address: invalid value "999.0.2.10/24"`: 3.0.0 only warns, but
//!   the interface would not come up as written).
//! * classic ifupdown: `ifup -a -n -i FILE` (`--no-act`). Exit 0 passes; non-zero fails. A file
//!   with a `mapping` stanza is not given to it (mapping scripts run even under `-n`).
//!
//! A validator that crashes (a Python traceback, ifupdown2 3.0.0's `TypeError … _dry_run()` on
//! bridges), lacks the option (`unrecognized arguments`, `unrecognized option`), needs root, is
//! busy (its lock is held) or times out is [`PreflightOutcome::Unusable`]: neither a failure nor
//! a pass. No `ifup` at all, or host actions deferred: [`PreflightOutcome::NotRun`].
//!
//! [`PreflightOutcome::allows_live_apply`] is the gate the live apply uses: only a pass allows
//! it; an unusable or absent validator only with `network.preflight-override = yes`; a failure
//! never.

use std::path::Path;
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use proxsave_restore::host::{CommandOutput, Host, HostActions, HostCommand, Ran};
use serde::Serialize;

use crate::ifaces::{Finding, FindingCode, Severity};

/// How long one validator run may take.
pub const VALIDATOR_TIMEOUT: Duration = Duration::from_secs(20);

/// The ifupdown implementation whose validator ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// ifupdown2 (Proxmox VE, Proxmox Backup Server).
    Ifupdown2,
    /// Classic Debian ifupdown.
    Ifupdown,
}

impl Tool {
    /// The validator's arguments for `file`.
    pub fn args(self, file: &str) -> Vec<String> {
        let flag = match self {
            Tool::Ifupdown2 => "-s",
            Tool::Ifupdown => "-n",
        };
        ["-a", flag, "-i", file]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// The result of a preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum PreflightOutcome {
    /// The configuration passed (with the validator's warnings, if any).
    Passed {
        /// The command that ran.
        command: String,
        /// `warning:` lines of the validator, and lint warnings.
        warnings: Vec<String>,
    },
    /// The configuration is broken: never apply it live.
    Failed {
        /// The validator command, `None` when the lint failed it before any tool ran.
        command: Option<String>,
        /// Which line and why, one per entry.
        reasons: Vec<String>,
    },
    /// The validator could not judge (crashed, lacks the option, needs root, busy, timed out).
    Unusable {
        /// The command that ran.
        command: String,
        /// Why it is unusable, with its output's telling line.
        reason: String,
    },
    /// No validator ran (no `ifup`, host actions deferred).
    NotRun {
        /// Why.
        reason: String,
    },
}

impl PreflightOutcome {
    /// True for [`PreflightOutcome::Passed`].
    pub fn passed(&self) -> bool {
        matches!(self, PreflightOutcome::Passed { .. })
    }

    /// True for [`PreflightOutcome::Failed`].
    pub fn failed(&self) -> bool {
        matches!(self, PreflightOutcome::Failed { .. })
    }

    /// Whether a live apply may follow: a pass always, a failure never, an unusable or absent
    /// validator only when the administrator overrides (`network.preflight-override = yes`).
    pub fn allows_live_apply(&self, override_unusable: bool) -> bool {
        match self {
            PreflightOutcome::Passed { .. } => true,
            PreflightOutcome::Failed { .. } => false,
            PreflightOutcome::Unusable { .. } | PreflightOutcome::NotRun { .. } => {
                override_unusable
            }
        }
    }

    /// One line for summaries (`preflight passed (ifup -a -s -i …)`), then the reasons or
    /// warnings, one per line.
    pub fn describe(&self) -> String {
        match self {
            PreflightOutcome::Passed { command, warnings } if warnings.is_empty() => {
                format!("preflight passed ({command})")
            }
            PreflightOutcome::Passed { command, warnings } => format!(
                "preflight passed with warnings ({command}):\n  {}",
                warnings.join("\n  ")
            ),
            PreflightOutcome::Failed { command, reasons } => format!(
                "preflight failed{}:\n  {}",
                command
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_else(|| " (lint, no tool run)".into()),
                reasons.join("\n  ")
            ),
            PreflightOutcome::Unusable { command, reason } => {
                format!("preflight validator unusable ({command}): {reason}")
            }
            PreflightOutcome::NotRun { reason } => format!("preflight not run: {reason}"),
        }
    }
}

/// Output markers of a validator that crashed or does not know the option.
const UNUSABLE_MARKERS: &[&str] = &[
    "Traceback (most recent call last)",
    "TypeError",
    "_dry_run()",
    "required positional argument",
    "unrecognized arguments",
    "unrecognized option",
    "unknown option",
    "invalid option",
    "illegal option",
    "Use --help for help",
    "must be root",
    "Another instance of this program is already running",
    "main exception: list index out of range",
];

fn combined(out: &CommandOutput) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.stdout.is_empty() {
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    s
}

/// True for an ifupdown2 `warning:` that reports a value it rejects (`address: invalid value
/// "999.0.2.10/24"`): 3.0.0 only warns about those, yet the interface would not come up as
/// written. `bridge-ports: invalid value "none"` is the exception: Proxmox writes it for a
/// bridge without ports and ifupdown2 handles it.
pub fn is_invalid_value(warning: &str) -> bool {
    warning.contains(": invalid value \"")
        && !warning.contains("bridge-ports: invalid value \"none\"")
}

/// Judges a validator's output (pure; see the module documentation).
pub fn classify(tool: Tool, command: &str, out: &CommandOutput) -> PreflightOutcome {
    let text = combined(out);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    if out.timed_out {
        return PreflightOutcome::Unusable {
            command: command.into(),
            reason: format!("timed out after {}s", VALIDATOR_TIMEOUT.as_secs()),
        };
    }
    let warnings: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("warning:"))
        .map(|l| l.to_string())
        .collect();
    if out.success() {
        return PreflightOutcome::Passed {
            command: command.into(),
            warnings: if tool == Tool::Ifupdown2 {
                warnings
            } else {
                Vec::new()
            },
        };
    }
    if let Some(line) = lines
        .iter()
        .find(|l| UNUSABLE_MARKERS.iter().any(|m| l.contains(m)))
    {
        return PreflightOutcome::Unusable {
            command: command.into(),
            reason: format!(
                "{} (exit {}); this says nothing about the configuration",
                line.trim(),
                out.code
                    .map_or_else(|| "by signal".into(), |c| c.to_string())
            ),
        };
    }
    match tool {
        Tool::Ifupdown2
            if !lines.is_empty()
                && lines.len() == warnings.len()
                && !warnings.iter().any(|w| is_invalid_value(w)) =>
        {
            PreflightOutcome::Passed {
                command: command.into(),
                warnings,
            }
        }
        Tool::Ifupdown2 => {
            let mut reasons: Vec<String> = lines
                .iter()
                .filter(|l| l.starts_with("error:") || l.starts_with("warning:"))
                .map(|l| l.to_string())
                .collect();
            if reasons.is_empty() {
                reasons = lines.iter().map(|l| l.to_string()).collect();
            }
            if reasons.is_empty() {
                reasons.push(format!("exit {:?} without output", out.code));
            }
            PreflightOutcome::Failed {
                command: Some(command.into()),
                reasons,
            }
        }
        Tool::Ifupdown => {
            let mut reasons: Vec<String> = lines
                .iter()
                .filter(|l| l.starts_with("ifup:") || l.contains("missing required"))
                .map(|l| l.to_string())
                .collect();
            if reasons.is_empty() {
                reasons.push(format!("exit {:?} without a message", out.code));
            }
            PreflightOutcome::Failed {
                command: Some(command.into()),
                reasons,
            }
        }
    }
}

/// Tells ifupdown2 from classic ifupdown by `ifup --version` (pure).
pub fn detect_tool(out: &CommandOutput) -> Option<Tool> {
    let text = combined(out);
    if text.contains("ifupdown2") {
        Some(Tool::Ifupdown2)
    } else if text.to_ascii_lowercase().contains("ifup version") || out.success() {
        Some(Tool::Ifupdown)
    } else {
        None
    }
}

/// Runs the preflight of `file` (a path on this machine, e.g. `<root>/etc/network/interfaces`)
/// whose lint gave `findings`. `mapping` is true when the configuration has a `mapping`
/// stanza. Commands go through the host's runner.
pub fn run(
    host: &Host,
    cancel: &CancelToken,
    file: &Path,
    findings: &[Finding],
) -> PreflightOutcome {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        return PreflightOutcome::Failed {
            command: None,
            reasons: errors,
        };
    }
    let lint_warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    let Some(file_text) = file.to_str() else {
        return PreflightOutcome::NotRun {
            reason: format!("{} is not a UTF-8 path", file.display()),
        };
    };
    if host.actions == HostActions::Defer {
        let cmd = HostCommand::new("ifup", Tool::Ifupdown2.args(file_text));
        host.defer_note(format!(
            "check the network configuration before applying it: {}",
            cmd.display()
        ));
        return PreflightOutcome::NotRun {
            reason: "host actions are deferred".into(),
        };
    }
    let version = HostCommand::new("ifup", ["--version"]).timeout(Duration::from_secs(10));
    let tool = match host.run(&version, cancel) {
        Ok(Ran::Deferred) => {
            return PreflightOutcome::NotRun {
                reason: "host actions are deferred".into(),
            };
        }
        Err(e) => {
            return PreflightOutcome::NotRun {
                reason: format!("`ifup` could not be started ({e}); install ifupdown2"),
            };
        }
        Ok(Ran::Done(out)) => match detect_tool(&out) {
            Some(t) => t,
            None => {
                return PreflightOutcome::NotRun {
                    reason: format!("`ifup --version` failed: {}", out.failure()),
                };
            }
        },
    };
    if tool == Tool::Ifupdown
        && findings
            .iter()
            .any(|f| f.code == FindingCode::MappingStanza)
    {
        return PreflightOutcome::Unusable {
            command: format!("ifup {}", Tool::Ifupdown.args(file_text).join(" ")),
            reason: "the configuration has a mapping stanza, whose script ifup -n would run".into(),
        };
    }
    let cmd = HostCommand::new("ifup", tool.args(file_text)).timeout(VALIDATOR_TIMEOUT);
    let shown = cmd.display();
    let mut outcome = match host.run(&cmd, cancel) {
        Ok(Ran::Done(out)) => classify(tool, &shown, &out),
        Ok(Ran::Deferred) => PreflightOutcome::NotRun {
            reason: "host actions are deferred".into(),
        },
        Err(e) => PreflightOutcome::NotRun {
            reason: format!("`{shown}` could not be started ({e})"),
        },
    };
    if let PreflightOutcome::Passed { warnings, .. } = &mut outcome {
        warnings.extend(lint_warnings);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stderr: &str) -> CommandOutput {
        CommandOutput {
            code: Some(code),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
            timed_out: false,
        }
    }

    #[test]
    fn warnings_only_pass_with_warnings() {
        let o = classify(
            Tool::Ifupdown2,
            "ifup -a -s -i f",
            &out(
                1,
                "warning: vmbr0: bridge-ports: invalid value \"none\": valid attribute values: ['<interface-list>']\n",
            ),
        );
        assert!(o.passed(), "{o:?}");
        assert!(o.describe().contains("bridge-ports: invalid value"));
    }

    #[test]
    fn errors_fail_with_their_line() {
        let o = classify(
            Tool::Ifupdown2,
            "ifup -a -s -i f",
            &out(
                1,
                "error: /x/interfaces: line1: error processing line 'address 1.2.3.4/24'\n",
            ),
        );
        assert!(o.failed());
        assert!(o.describe().contains("line1"), "{}", o.describe());
        assert!(!o.allows_live_apply(true));
    }

    #[test]
    fn crashes_and_missing_options_are_unusable() {
        for text in [
            "error: NetlinkListenerWithCache.link_set_bridge_info_data_dry_run() missing 1 required positional argument: 'link_just_created'\n",
            "usage: ifup ...\nifup: error: unrecognized arguments: -s\n",
            "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'x'\n",
            "ifup: unrecognized option '--check'\n",
        ] {
            let o = classify(Tool::Ifupdown2, "ifup -a -s -i f", &out(1, text));
            assert!(
                matches!(o, PreflightOutcome::Unusable { .. }),
                "{text}: {o:?}"
            );
            assert!(!o.allows_live_apply(false));
            assert!(o.allows_live_apply(true));
        }
    }

    #[test]
    fn classic_errors_name_the_line() {
        let o = classify(
            Tool::Ifupdown,
            "ifup -a -n -i f",
            &out(
                1,
                "ifup: f:1: misplaced option\nifup: couldn't read interfaces file \"f\"\n",
            ),
        );
        assert_eq!(
            o,
            PreflightOutcome::Failed {
                command: Some("ifup -a -n -i f".into()),
                reasons: vec![
                    "ifup: f:1: misplaced option".into(),
                    "ifup: couldn't read interfaces file \"f\"".into()
                ]
            }
        );
        // Classic ifup prints the would-run commands on stderr: no warnings on a pass.
        let ok = classify(
            Tool::Ifupdown,
            "ifup -a -n -i f",
            &out(0, "run-parts --exit-on-error /etc/network/if-pre-up.d\n"),
        );
        assert_eq!(
            ok,
            PreflightOutcome::Passed {
                command: "ifup -a -n -i f".into(),
                warnings: vec![]
            }
        );
    }

    #[test]
    fn tool_detection() {
        let mut v = out(0, "");
        v.stdout = b"ifupdown2:3.0.0-1.1\n".to_vec();
        assert_eq!(detect_tool(&v), Some(Tool::Ifupdown2));
        let mut c = out(0, "");
        c.stdout = b"ifup version 0.8.41\n".to_vec();
        assert_eq!(detect_tool(&c), Some(Tool::Ifupdown));
        assert_eq!(detect_tool(&out(127, "not found")), None);
    }
}
