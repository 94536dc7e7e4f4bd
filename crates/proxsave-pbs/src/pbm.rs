//! A `proxmox-backup-manager` client over the engine's command runner: the seam every PBS
//! applier uses for the PBS API.
//!
//! Every call goes through [`Host::run`], so `--host-actions defer` records it instead of
//! running it ([`PbmError::Deferred`]), a test's recording runner sees it, and the restore log
//! and the `tracing` command events show it with its secrets redacted.
//!
//! Calls are `proxmox-backup-manager WORDS… POSITIONALS… --key=value …`: one argv element per
//! option (never a shell; proxmox-router's `getopt` takes `--key=value` as well as
//! `--key value`, and the `=` form keeps a value that starts with `-` a value). A value with a
//! line feed or a NUL byte is refused before anything runs (a section-config line cannot hold
//! one). Lists add `--output-format json` and accept a bare array or `{"data": [...]}`.
//!
//! Errors come from proxmox-router's CLI: exit code 255 and either `Error: MESSAGE`, or
//! `Error: parameter verification errors` followed by `parameter 'KEY': MESSAGE` lines. They
//! are classified:
//!
//! | stderr holds | error |
//! |---|---|
//! | `already exists` | [`PbmError::AlreadyExists`] |
//! | `parameter 'KEY': …` | [`PbmError::ParamRejected`] (KEY the first one named) |
//! | `does not exist`, `no such`, `not found` | [`PbmError::NotFound`] |
//!
//! Every error names the call (secrets redacted) and carries PBS's own message, with any secret
//! value PBS echoed replaced by `<redacted>`.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use proxsave_restore::host::{Host, HostActions, HostCommand, REDACTED, Ran};

/// The program run.
pub const PROGRAM: &str = "proxmox-backup-manager";

/// Deadline of one call. `datastore create` waits for its worker task, which creates 65 536
/// folders (seconds on a local disk, longer on a network filesystem).
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// One option, passed as the single argument `--key=value`.
#[derive(Clone, PartialEq, Eq)]
pub struct Arg {
    /// The option name, without dashes.
    pub key: String,
    /// Its value.
    pub value: String,
    /// True when the value is shown as `<redacted>` everywhere.
    pub secret: bool,
}

impl Arg {
    /// `--key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Arg {
        Arg {
            key: key.into(),
            value: value.into(),
            secret: false,
        }
    }

    /// `--key=value` with the value secret (shown as `--key=<redacted>`).
    pub fn secret(key: impl Into<String>, value: impl Into<String>) -> Arg {
        Arg {
            secret: true,
            ..Arg::new(key, value)
        }
    }

    /// The argument passed to the tool.
    pub fn arg(&self) -> String {
        format!("--{}={}", self.key, self.value)
    }

    /// The argument as shown to users.
    pub fn shown(&self) -> String {
        if self.secret {
            format!("--{}={REDACTED}", self.key)
        } else {
            self.arg()
        }
    }

    fn problem(&self) -> Option<&'static str> {
        let good_key = !self.key.is_empty()
            && !self.key.starts_with('-')
            && self
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !good_key {
            Some("not an option name")
        } else if self.value.contains(['\n', '\r']) {
            Some("the value contains a line feed")
        } else if self.value.contains('\0') {
            Some("the value contains a NUL byte")
        } else {
            None
        }
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// One call: `proxmox-backup-manager datastore create store1 /mnt/store1 --comment=x`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The command words (`["datastore", "create"]`, `["s3", "endpoint", "update"]`).
    pub words: Vec<String>,
    /// Positional arguments after the words (ids, a datastore's path); never secret.
    pub positional: Vec<String>,
    /// Options, in order.
    pub args: Vec<Arg>,
}

impl Call {
    /// A call of `words` with `positional` arguments and no option.
    pub fn new<W: Into<String>, P: Into<String>>(
        words: impl IntoIterator<Item = W>,
        positional: impl IntoIterator<Item = P>,
    ) -> Call {
        Call {
            words: words.into_iter().map(Into::into).collect(),
            positional: positional.into_iter().map(Into::into).collect(),
            args: Vec::new(),
        }
    }

    /// Adds `--key=value`.
    #[must_use]
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Call {
        self.args.push(Arg::new(key, value));
        self
    }

    /// Adds `--key=value` with a secret value.
    #[must_use]
    pub fn secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Call {
        self.args.push(Arg::secret(key, value));
        self
    }

    /// The full argument list (secrets in clear: never show it).
    pub fn argv(&self) -> Vec<String> {
        let mut v: Vec<String> = self.words.clone();
        v.extend(self.positional.iter().cloned());
        v.extend(self.args.iter().map(Arg::arg));
        v
    }

    /// The host command of this call, its secret values marked.
    pub fn command(&self) -> HostCommand {
        let mut cmd = HostCommand::new(PROGRAM, self.argv()).timeout(TIMEOUT);
        let first = self.words.len() + self.positional.len();
        for (i, a) in self.args.iter().enumerate() {
            if a.secret {
                cmd = cmd.secret_value(first + i);
            }
        }
        cmd
    }

    /// Replaces every secret value in `text` by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for a in self.args.iter().filter(|a| a.secret && !a.value.is_empty()) {
            out = out.replace(&a.value, REDACTED);
        }
        out
    }
}

fn quoted(s: &str) -> String {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("'{}'", s.replace('\'', r"'\''"))
    } else {
        s.to_string()
    }
}

impl fmt::Display for Call {
    /// `proxmox-backup-manager WORDS… POS… --k=v …`, secrets redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PROGRAM)?;
        for w in &self.words {
            write!(f, " {w}")?;
        }
        for p in &self.positional {
            write!(f, " {}", quoted(p))?;
        }
        for a in &self.args {
            write!(f, " {}", quoted(&a.shown()))?;
        }
        Ok(())
    }
}

/// A call that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Called {
    /// The call as shown (secrets redacted).
    pub call: String,
    /// Standard output, trimmed, secrets scrubbed.
    pub stdout: String,
    /// Standard error (task log lines, warnings), trimmed, secrets scrubbed.
    pub stderr: String,
}

/// A call that failed, or did not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PbmError {
    /// The object does not exist.
    #[error("`{call}`: not found: {message}")]
    NotFound {
        /// The call (secrets redacted).
        call: String,
        /// PBS's message.
        message: String,
    },
    /// The object to create exists already.
    #[error("`{call}`: already exists: {message}")]
    AlreadyExists {
        /// The call (secrets redacted).
        call: String,
        /// PBS's message.
        message: String,
    },
    /// An option was refused (by PBS, or before running because it cannot be passed).
    #[error("`{call}`: parameter '{param}' rejected: {message}")]
    ParamRejected {
        /// The option PBS named first (empty when it named none).
        param: String,
        /// The call (secrets redacted).
        call: String,
        /// PBS's message.
        message: String,
    },
    /// `proxmox-backup-manager` is not installed.
    #[error("`{call}`: {PROGRAM} is not installed: {message}")]
    Missing {
        /// The call (secrets redacted).
        call: String,
        /// The error starting it.
        message: String,
    },
    /// Host actions are deferred: the call was recorded as a to-do, not run.
    #[error("`{call}`: deferred (host actions are deferred)")]
    Deferred {
        /// The call (secrets redacted).
        call: String,
    },
    /// Any other failure.
    #[error("`{call}`: failed ({}): {message}", status_text(*.status))]
    Other {
        /// The call (secrets redacted).
        call: String,
        /// The exit code (`None`: killed, timed out or not started).
        status: Option<i32>,
        /// PBS's message (or why it could not run).
        message: String,
    },
}

fn status_text(status: Option<i32>) -> String {
    match status {
        Some(c) => format!("exit code {c}"),
        None => "no exit code".into(),
    }
}

impl PbmError {
    /// The call (secrets redacted).
    pub fn call(&self) -> &str {
        match self {
            PbmError::NotFound { call, .. }
            | PbmError::AlreadyExists { call, .. }
            | PbmError::ParamRejected { call, .. }
            | PbmError::Missing { call, .. }
            | PbmError::Deferred { call }
            | PbmError::Other { call, .. } => call,
        }
    }

    /// PBS's own message (empty for [`PbmError::Deferred`]).
    pub fn message(&self) -> &str {
        match self {
            PbmError::NotFound { message, .. }
            | PbmError::AlreadyExists { message, .. }
            | PbmError::ParamRejected { message, .. }
            | PbmError::Missing { message, .. }
            | PbmError::Other { message, .. } => message,
            PbmError::Deferred { .. } => "",
        }
    }

    /// True when the tool could not be reached at all (not installed, host actions deferred).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PbmError::Missing { .. } | PbmError::Deferred { .. })
    }
}

/// A PBS version (`proxmox-backup-manager version`'s `running version: X.Y.Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses the `version` output (`proxmox-backup-server 3.2.4-1 running version: 3.2.4`).
    pub fn parse(text: &str) -> Option<Version> {
        let tail = match text.find("running version:") {
            Some(i) => &text[i + "running version:".len()..],
            None => text.strip_prefix("proxmox-backup-server")?,
        };
        let word = tail.split_whitespace().next()?;
        let mut it = word.split(['.', '-']).map(|n| n.parse::<u32>().ok());
        Some(Version(
            it.next()??,
            it.next()??,
            it.next().flatten().unwrap_or(0),
        ))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The `proxmox-backup-manager` client of one restore run.
pub struct Pbm<'a> {
    host: &'a Host,
    cancel: &'a CancelToken,
    version: OnceLock<Result<Option<Version>, PbmError>>,
}

impl<'a> Pbm<'a> {
    /// A client running its calls through `host`, cancelled by `cancel`.
    pub fn new(host: &'a Host, cancel: &'a CancelToken) -> Pbm<'a> {
        Pbm {
            host,
            cancel,
            version: OnceLock::new(),
        }
    }

    /// `proxmox-backup-manager version`, asked once per client: `Ok(None)` when it answered
    /// something unparseable. `Err` when it cannot be run (host actions deferred: nothing is
    /// run, and the probe is no to-do for the administrator).
    ///
    /// # Errors
    /// The tool is missing, deferred, or failed.
    pub fn version(&self) -> Result<Option<Version>, PbmError> {
        self.version
            .get_or_init(|| {
                if self.host.actions == HostActions::Defer {
                    return Err(PbmError::Deferred {
                        call: format!("{PROGRAM} version"),
                    });
                }
                let c = self.call(&Call::new(["version"], [""; 0]))?;
                Ok(Version::parse(&c.stdout))
            })
            .clone()
    }

    /// True when `proxmox-backup-manager version` answered.
    pub fn available(&self) -> bool {
        self.version().is_ok()
    }

    /// `WORDS… list --output-format json`, the rows (a bare array or `{"data": [...]}`).
    ///
    /// # Errors
    /// The call failed, or its output is not a JSON list ([`PbmError::Other`]).
    pub fn list(&self, words: &[&str]) -> Result<Vec<serde_json::Value>, PbmError> {
        let mut w: Vec<&str> = words.to_vec();
        w.push("list");
        let call = Call::new(w, [""; 0]).arg("output-format", "json");
        let c = self.call(&call)?;
        let bad = |why: String| PbmError::Other {
            call: c.call.clone(),
            status: Some(0),
            message: why,
        };
        if c.stdout.is_empty() {
            return Ok(Vec::new());
        }
        let v: serde_json::Value = serde_json::from_str(&c.stdout)
            .map_err(|e| bad(format!("the output is not JSON: {e}")))?;
        let rows = match v {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(mut o) => match o.remove("data") {
                Some(serde_json::Value::Array(a)) => a,
                _ => return Err(bad("the output is not a list".into())),
            },
            _ => return Err(bad("the output is not a list".into())),
        };
        Ok(rows)
    }

    /// The ids of `WORDS… list` (the first of `id_keys` that is a non-empty string in a row).
    ///
    /// # Errors
    /// As [`Pbm::list`], or a row has no id.
    pub fn ids(&self, words: &[&str], id_keys: &[&str]) -> Result<Vec<String>, PbmError> {
        let rows = self.list(words)?;
        let mut out = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let id = id_keys
                .iter()
                .find_map(|k| r.get(*k).and_then(|v| v.as_str()).filter(|s| !s.is_empty()));
            match id {
                Some(id) => out.push(id.to_string()),
                None => {
                    return Err(PbmError::Other {
                        call: format!("{PROGRAM} {} list", words.join(" ")),
                        status: Some(0),
                        message: format!("row {i} has none of {id_keys:?}"),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Runs `call`.
    ///
    /// # Errors
    /// The call failed (classified), or could not be passed (a line feed in a value).
    pub fn call(&self, call: &Call) -> Result<Called, PbmError> {
        let shown = call.to_string();
        if let Some((a, why)) = call.args.iter().find_map(|a| a.problem().map(|w| (a, w))) {
            return Err(PbmError::ParamRejected {
                call: shown,
                param: a.key.clone(),
                message: format!("not passed to {PROGRAM}: {why}"),
            });
        }
        if call
            .words
            .iter()
            .chain(&call.positional)
            .any(|w| w.contains(['\n', '\r', '\0']))
        {
            return Err(PbmError::Other {
                call: shown,
                status: None,
                message: "an argument contains a line feed or a NUL byte".into(),
            });
        }
        match self.host.run(&call.command(), self.cancel) {
            Ok(Ran::Deferred) => Err(PbmError::Deferred { call: shown }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PbmError::Missing {
                call: shown,
                message: e.to_string(),
            }),
            Err(e) => Err(PbmError::Other {
                call: shown,
                status: None,
                message: format!("cannot run {PROGRAM}: {e}"),
            }),
            Ok(Ran::Done(out)) => {
                let stdout = call.scrub(String::from_utf8_lossy(&out.stdout).trim());
                let stderr = call.scrub(String::from_utf8_lossy(&out.stderr).trim());
                if out.success() {
                    return Ok(Called {
                        call: shown,
                        stdout,
                        stderr,
                    });
                }
                if out.timed_out {
                    return Err(PbmError::Other {
                        call: shown,
                        status: None,
                        message: if stderr.is_empty() {
                            "timed out".into()
                        } else {
                            format!("timed out: {stderr}")
                        },
                    });
                }
                Err(classify(shown, out.code, &stderr))
            }
        }
    }
}

/// Classifies a failed call from its exit code and standard error.
pub fn classify(call: String, status: Option<i32>, stderr: &str) -> PbmError {
    let (param, message) = pbs_message(stderr);
    let lower = message.to_ascii_lowercase();
    if lower.contains("already exists") {
        return PbmError::AlreadyExists { call, message };
    }
    if let Some(param) = param {
        return PbmError::ParamRejected {
            call,
            param,
            message,
        };
    }
    if lower.contains("does not exist") || lower.contains("no such") || lower.contains("not found")
    {
        return PbmError::NotFound { call, message };
    }
    PbmError::Other {
        call,
        status,
        message,
    }
}

/// PBS's message: `Error: ` stripped, `parameter 'K': M` lines joined with `; `; the first
/// parameter named.
fn pbs_message(stderr: &str) -> (Option<String>, String) {
    let mut param = None;
    let mut lines = Vec::new();
    let mut verification = false;
    for line in stderr.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let t = t.strip_prefix("Error: ").unwrap_or(t);
        if t == "parameter verification errors" {
            verification = true;
            continue;
        }
        if let Some(rest) = t.strip_prefix("parameter '") {
            if let Some((k, m)) = rest.split_once("': ") {
                param.get_or_insert_with(|| k.to_string());
                lines.push(format!("{k}: {m}"));
                continue;
            }
        }
        lines.push(t.to_string());
    }
    if verification && param.is_none() {
        param = Some(String::new());
    }
    if lines.is_empty() && verification {
        lines.push("parameter verification errors".into());
    }
    (param, lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_shown_with_secrets_redacted() {
        let c = Call::new(["s3", "endpoint", "create"], ["ep1"])
            .arg("endpoint", "s3.example.com")
            .secret("secret-key", "hunter2 x")
            .arg("comment", "my store");
        assert_eq!(
            c.to_string(),
            "proxmox-backup-manager s3 endpoint create ep1 --endpoint=s3.example.com --secret-key=<redacted> '--comment=my store'"
        );
        assert_eq!(c.argv()[5], "--secret-key=hunter2 x");
        let cmd = c.command();
        assert!(!cmd.display().contains("hunter2"), "{}", cmd.display());
        assert_eq!(c.scrub("bad key hunter2 x"), "bad key <redacted>");
    }

    #[test]
    fn secrets_are_scrubbed_in_both_option_forms() {
        let c = Call::new(["remote", "create"], ["pbs-b"])
            .arg("host", "10.0.0.20")
            .secret("password", "Pw-1 2");
        let cmd = c.command();
        assert_eq!(cmd.shown_arg(4).as_deref(), Some("--password=<redacted>"));
        assert!(!cmd.display().contains("Pw-1"), "{}", cmd.display());
        // PBS may echo the value in either option form.
        assert_eq!(
            c.scrub("bad --password Pw-1 2 / --password=Pw-1 2"),
            "bad --password <redacted> / --password=<redacted>"
        );
        let e = classify(
            c.to_string(),
            Some(255),
            &c.scrub("Error: rejected 'Pw-1 2'\n"),
        );
        assert!(!e.to_string().contains("Pw-1"), "{e}");
        assert!(e.to_string().contains("--password=<redacted>"), "{e}");
    }

    #[test]
    fn errors_are_classified_like_proxmox_router_prints_them() {
        let e = classify(
            "c".into(),
            Some(255),
            "Error: parameter verification errors\n\nparameter 'name': datastore 'a1' already exists.\n",
        );
        assert!(matches!(e, PbmError::AlreadyExists { .. }), "{e:?}");
        assert_eq!(e.message(), "name: datastore 'a1' already exists.");
        let e = classify(
            "c".into(),
            Some(255),
            "Error: parameter verification errors\n\nparameter 'reuse-datastore': schema does not allow additional properties.\n",
        );
        match &e {
            PbmError::ParamRejected { param, .. } => assert_eq!(param, "reuse-datastore"),
            other => panic!("{other:?}"),
        }
        let e = classify(
            "c".into(),
            Some(255),
            "Error: datastore 'x' does not exist.\n",
        );
        assert!(matches!(e, PbmError::NotFound { .. }), "{e:?}");
        assert_eq!(e.message(), "datastore 'x' does not exist.");
        let e = classify(
            "c".into(),
            Some(255),
            "Error: unable to create chunk store 'x' subdir \"/mnt/x/.chunks\" - EEXIST: File exists\n",
        );
        assert!(matches!(e, PbmError::Other { .. }), "{e:?}");
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            Version::parse("proxmox-backup-server 3.2.4-1 running version: 3.2.4\n"),
            Some(Version(3, 2, 4))
        );
        assert_eq!(
            Version::parse("proxmox-backup-server 4.0.11-2 running version: 4.0"),
            Some(Version(4, 0, 0))
        );
        assert_eq!(Version::parse("garbage"), None);
        assert!(Version(3, 2, 4) < Version(3, 3, 0));
    }
}
