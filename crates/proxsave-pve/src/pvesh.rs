//! A `pvesh` client over the engine's command runner.
//!
//! Every call goes through [`Host::run`], so `--host-actions defer` records it instead of
//! running it ([`PveshError::Deferred`]), a test's recording runner sees it, and the restore log
//! and the `tracing` command events show it with its secrets redacted.
//!
//! Calls are `pvesh <get|create|set|delete> PATH --key=value … --output-format json`: one argv
//! element per parameter (never a shell), so a value may hold spaces, `=` or a leading `-`. A
//! value or key with a line feed is refused before anything runs (PVE refuses them too: a
//! section-config line cannot hold one).
//!
//! Errors are classified from the exit status *and* standard error, because `pvesh` exits
//! with Perl's `die` status (255, or the last `errno`) for every failure alike:
//!
//! | stderr holds | error |
//! |---|---|
//! | `does not exist`, `not found`, `no such job`, `No '<cmd>' handler defined for` | [`PveshError::NotFound`] |
//! | `already defined`, `already exists` | [`PveshError::AlreadyExists`] |
//! | `Parameter verification failed.` + `param: message` lines, `Unknown option: param`, `fixed parameter 'param'`, `unexpected property 'param'`, `missing value for required option 'param'` | [`PveshError::ParamRejected`] |
//!
//! Every error names the call (secrets redacted) and carries PVE's own message (with any
//! secret value that PVE echoed replaced by `<redacted>`).

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use proxsave_archive::progress::CancelToken;
use proxsave_restore::host::{Host, HostActions, HostCommand, REDACTED, Ran};

/// The program run.
pub const PROGRAM: &str = "pvesh";

/// Deadline of one call (creating a storage may activate it: mount a share, scan a pool).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The `pvesh` verb of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `pvesh get` (HTTP GET).
    Get,
    /// `pvesh create` (HTTP POST).
    Create,
    /// `pvesh set` (HTTP PUT).
    Set,
    /// `pvesh delete` (HTTP DELETE).
    Delete,
}

impl Method {
    /// The `pvesh` verb: `get`, `create`, `set`, `delete`.
    pub fn verb(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Create => "create",
            Method::Set => "set",
            Method::Delete => "delete",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verb())
    }
}

/// One API parameter, passed as the single argument `--key=value`.
#[derive(Clone, PartialEq, Eq)]
pub struct Param {
    /// The parameter name, without dashes.
    pub key: String,
    /// Its value (`1` for a flag).
    pub value: String,
    /// True when the value is shown as `<redacted>` everywhere.
    pub secret: bool,
    /// True when the value may hold line feeds (a multi-line description).
    pub multiline: bool,
}

impl Param {
    /// `--key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Param {
        Param {
            key: key.into(),
            value: value.into(),
            secret: false,
            multiline: false,
        }
    }

    /// `--key=value` with the value secret (shown as `--key=<redacted>`).
    pub fn secret(key: impl Into<String>, value: impl Into<String>) -> Param {
        Param {
            secret: true,
            ..Param::new(key, value)
        }
    }

    /// `--key=value` whose value may hold line feeds (e.g. the datacenter `description`,
    /// which PVE stores as several `#` lines). Shown with each line feed as `\n`.
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Param {
        Param {
            multiline: true,
            ..Param::new(key, value)
        }
    }

    /// A boolean set: `--key=1` (a bare flag of a section-config file).
    pub fn flag(key: impl Into<String>) -> Param {
        Param::new(key, "1")
    }

    /// The argument passed to `pvesh`.
    pub fn arg(&self) -> String {
        format!("--{}={}", self.key, self.value)
    }

    /// The argument as shown to users.
    pub fn shown(&self) -> String {
        if self.secret {
            format!("--{}={REDACTED}", self.key)
        } else if self.multiline {
            self.arg().replace('\n', "\\n")
        } else {
            self.arg()
        }
    }

    /// Why the parameter cannot be passed, if it cannot.
    fn problem(&self) -> Option<&'static str> {
        let good_key = !self.key.is_empty()
            && !self.key.starts_with('-')
            && self
                .key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '[' | ']'));
        if !good_key {
            Some("not a parameter name")
        } else if self.value.contains('\r') || (!self.multiline && self.value.contains('\n')) {
            Some("the value contains a line feed")
        } else if self.value.contains('\0') {
            Some("the value contains a NUL byte")
        } else {
            None
        }
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// A planned call, e.g. for a dry-run line: `pvesh set /storage/nas --password=<redacted>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The verb.
    pub method: Method,
    /// The API path (`/storage/nas`).
    pub path: String,
    /// The parameters, in order.
    pub params: Vec<Param>,
}

impl Call {
    /// A call of `method` on `path` with `params`.
    pub fn new(method: Method, path: impl Into<String>, params: Vec<Param>) -> Call {
        Call {
            method,
            path: path.into(),
            params,
        }
    }

    /// The full argument list passed to `pvesh` (secrets in clear: never show it).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.method.verb().to_string(), self.path.clone()];
        args.extend(self.params.iter().map(Param::arg));
        args.push("--output-format".into());
        args.push("json".into());
        args
    }

    /// The host command of this call, its secret values marked.
    pub fn command(&self) -> HostCommand {
        let mut cmd = HostCommand::new(PROGRAM, self.args()).timeout(TIMEOUT);
        for (i, p) in self.params.iter().enumerate() {
            if p.secret {
                cmd = cmd.secret_value(i + 2);
            }
        }
        cmd
    }

    /// Replaces every secret value in `text` by `<redacted>`.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for p in self
            .params
            .iter()
            .filter(|p| p.secret && !p.value.is_empty())
        {
            out = out.replace(&p.value, REDACTED);
        }
        out
    }
}

impl fmt::Display for Call {
    /// `pvesh VERB PATH --k=v …` with secrets redacted (without `--output-format json`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PROGRAM} {} {}", self.method, shown_path(&self.path))?;
        for p in &self.params {
            let shown = p.shown();
            if shown.contains(char::is_whitespace) || shown.is_empty() {
                write!(f, " '{shown}'")?;
            } else {
                write!(f, " {shown}")?;
            }
        }
        Ok(())
    }
}

fn shown_path(path: &str) -> String {
    if path.contains(char::is_whitespace) {
        format!("'{path}'")
    } else {
        path.to_string()
    }
}

/// A call that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Called {
    /// The call as shown (secrets redacted).
    pub call: String,
    /// What `pvesh` printed on standard output (JSON, or nothing), trimmed.
    pub stdout: String,
    /// PVE's warnings on standard error (e.g. `storage does not support content type 'iso'`),
    /// trimmed; empty when none.
    pub warnings: String,
}

/// A call that failed, or did not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PveshError {
    /// The object or the path does not exist.
    #[error("{call}: not found: {message}")]
    NotFound {
        /// The call (secrets redacted).
        call: String,
        /// PVE's message.
        message: String,
    },
    /// The object to create exists already.
    #[error("{call}: already exists: {message}")]
    AlreadyExists {
        /// The call (secrets redacted).
        call: String,
        /// PVE's message.
        message: String,
    },
    /// A parameter was refused (by PVE, or before running because it cannot be passed).
    #[error("{call}: parameter '{param}' rejected: {message}")]
    ParamRejected {
        /// The call (secrets redacted).
        call: String,
        /// The parameter PVE named first (empty when it named none).
        param: String,
        /// PVE's message.
        message: String,
    },
    /// `pvesh` is not installed (it could not be started).
    #[error("{call}: pvesh is not installed: {message}")]
    Missing {
        /// The call (secrets redacted).
        call: String,
        /// The error starting it.
        message: String,
    },
    /// Host actions are deferred: the call was recorded as a to-do, not run.
    #[error("{call}: deferred (host actions are deferred)")]
    Deferred {
        /// The call (secrets redacted).
        call: String,
    },
    /// Any other failure: exit status (`None`: killed, timed out or not started).
    #[error("{call}: failed ({}): {message}", status_text(*.status))]
    Other {
        /// The call (secrets redacted).
        call: String,
        /// The exit code.
        status: Option<i32>,
        /// PVE's message (or why it could not run).
        message: String,
    },
}

fn status_text(status: Option<i32>) -> String {
    match status {
        Some(c) => format!("exit code {c}"),
        None => "no exit code".into(),
    }
}

impl PveshError {
    /// The call (secrets redacted).
    pub fn call(&self) -> &str {
        match self {
            PveshError::NotFound { call, .. }
            | PveshError::AlreadyExists { call, .. }
            | PveshError::ParamRejected { call, .. }
            | PveshError::Missing { call, .. }
            | PveshError::Deferred { call }
            | PveshError::Other { call, .. } => call,
        }
    }

    /// PVE's own message (empty for [`PveshError::Deferred`]).
    pub fn message(&self) -> &str {
        match self {
            PveshError::NotFound { message, .. }
            | PveshError::AlreadyExists { message, .. }
            | PveshError::ParamRejected { message, .. }
            | PveshError::Missing { message, .. }
            | PveshError::Other { message, .. } => message,
            PveshError::Deferred { .. } => "",
        }
    }

    /// True for [`PveshError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, PveshError::NotFound { .. })
    }
}

/// The `pvesh` client of one restore run.
pub struct Pvesh<'a> {
    host: &'a Host,
    cancel: &'a CancelToken,
    available: OnceLock<bool>,
}

impl<'a> Pvesh<'a> {
    /// A client running its calls through `host`, cancelled by `cancel`.
    pub fn new(host: &'a Host, cancel: &'a CancelToken) -> Pvesh<'a> {
        Pvesh {
            host,
            cancel,
            available: OnceLock::new(),
        }
    }

    /// True when `pvesh` can be called: host actions run (when deferred nothing is run or
    /// recorded) and `pvesh get /version` started (whatever it answered). Asked once per
    /// client.
    pub fn available(&self) -> bool {
        *self.available.get_or_init(|| {
            // deferred: nothing runs, and the probe is no to-do for the administrator
            self.host.actions == HostActions::Run
                && !matches!(
                    self.get("/version"),
                    Err(PveshError::Missing { .. } | PveshError::Deferred { .. })
                )
        })
    }

    /// `pvesh get PATH --output-format json`, parsed (`null` for empty output).
    ///
    /// # Errors
    /// The call failed (classified), or its output is not JSON ([`PveshError::Other`]).
    pub fn get(&self, path: &str) -> Result<serde_json::Value, PveshError> {
        self.get_with(path, &[])
    }

    /// `pvesh get PATH --k=v … --output-format json`, parsed.
    ///
    /// # Errors
    /// As [`Pvesh::get`].
    pub fn get_with(&self, path: &str, params: &[Param]) -> Result<serde_json::Value, PveshError> {
        let called = self.call(&Call::new(Method::Get, path, params.to_vec()))?;
        if called.stdout.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&called.stdout).map_err(|e| PveshError::Other {
            call: called.call,
            status: Some(0),
            message: format!("the output is not JSON: {e}"),
        })
    }

    /// `pvesh create PATH --k=v …`.
    ///
    /// # Errors
    /// The call failed (classified).
    pub fn create(&self, path: &str, params: &[Param]) -> Result<Called, PveshError> {
        self.call(&Call::new(Method::Create, path, params.to_vec()))
    }

    /// `pvesh set PATH --k=v …`.
    ///
    /// # Errors
    /// The call failed (classified).
    pub fn set(&self, path: &str, params: &[Param]) -> Result<Called, PveshError> {
        self.call(&Call::new(Method::Set, path, params.to_vec()))
    }

    /// `pvesh delete PATH --k=v …`.
    ///
    /// # Errors
    /// The call failed (classified).
    pub fn delete(&self, path: &str, params: &[Param]) -> Result<Called, PveshError> {
        self.call(&Call::new(Method::Delete, path, params.to_vec()))
    }

    /// Runs `call`.
    ///
    /// # Errors
    /// The call failed (classified), or could not be passed (a line feed in a value).
    pub fn call(&self, call: &Call) -> Result<Called, PveshError> {
        let shown = call.to_string();
        if let Some(p) = call
            .params
            .iter()
            .find_map(|p| p.problem().map(|why| (p, why)))
        {
            return Err(PveshError::ParamRejected {
                call: shown,
                param: p.0.key.clone(),
                message: format!("not passed to pvesh: {}", p.1),
            });
        }
        if call.path.is_empty() || !call.path.starts_with('/') || call.path.contains(['\n', '\r']) {
            return Err(PveshError::Other {
                call: shown,
                status: None,
                message: "not an API path".into(),
            });
        }
        match self.host.run(&call.command(), self.cancel) {
            Ok(Ran::Deferred) => Err(PveshError::Deferred { call: shown }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PveshError::Missing {
                call: shown,
                message: e.to_string(),
            }),
            Err(e) => Err(PveshError::Other {
                call: shown,
                status: None,
                message: format!("cannot run pvesh: {e}"),
            }),
            Ok(Ran::Done(out)) => {
                let stdout = call.scrub(String::from_utf8_lossy(&out.stdout).trim());
                let stderr = call.scrub(String::from_utf8_lossy(&out.stderr).trim());
                if out.success() {
                    return Ok(Called {
                        call: shown,
                        stdout,
                        warnings: stderr,
                    });
                }
                if out.timed_out {
                    return Err(PveshError::Other {
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
pub fn classify(call: String, status: Option<i32>, stderr: &str) -> PveshError {
    let message = pve_message(stderr);
    let lower = stderr.to_ascii_lowercase();
    // `GET /cluster/backup/{id}` reports a missing job as a parameter error on `id`.
    if lower.contains("no such job") || lower.contains("no such vzdump job") {
        return PveshError::NotFound { call, message };
    }
    if let Some(param) = rejected_param(stderr) {
        return PveshError::ParamRejected {
            call,
            param,
            message,
        };
    }
    if lower.contains("already defined") || lower.contains("already exists") {
        return PveshError::AlreadyExists { call, message };
    }
    if lower.contains("does not exist")
        || lower.contains("not found")
        || lower.contains("no such resource")
        || (lower.contains("handler defined for") && lower.starts_with("no '"))
    {
        return PveshError::NotFound { call, message };
    }
    PveshError::Other {
        call,
        status,
        message,
    }
}

/// PVE's message without the usage text `pvesh` appends to parameter errors: the lines up to
/// the first empty line or `USAGE:`/`pvesh ` usage line, joined with `; `.
fn pve_message(stderr: &str) -> String {
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let t = line.trim();
        if t.starts_with("USAGE:") || t.starts_with("pvesh ") {
            break;
        }
        if t.is_empty() {
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(t);
    }
    lines.join("; ")
}

/// The parameter a parameter error names first.
fn rejected_param(stderr: &str) -> Option<String> {
    let quoted = |line: &str, marker: &str| -> Option<String> {
        let rest = &line[line.find(marker)? + marker.len()..];
        let end = rest.find('\'')?;
        Some(rest[..end].to_string())
    };
    let mut verification = false;
    for line in stderr.lines() {
        let t = line.trim();
        if let Some(p) = t.strip_prefix("Unknown option: ") {
            return Some(p.trim().to_string());
        }
        for marker in [
            "fixed parameter '",
            "unexpected property '",
            "missing value for required option '",
        ] {
            if let Some(p) = quoted(t, marker) {
                return Some(p);
            }
        }
        if t.ends_with("Parameter verification failed.") {
            verification = true;
            continue;
        }
        if verification {
            if let Some((key, _)) = t.split_once(": ") {
                if !key.is_empty() && !key.contains(char::is_whitespace) {
                    return Some(key.to_string());
                }
            }
        }
    }
    verification.then(String::new)
}

#[cfg(test)]
mod tests;
