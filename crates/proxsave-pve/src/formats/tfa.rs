//! `priv/tfa.cfg` of Proxmox VE: second factors per user.
//!
//! Since PVE 7 the file is one JSON object (read by the Rust TFA module of PVE): a `users`
//! object keyed by user id (`{"alice@pve": {"totp": […], "webauthn": […], "recovery": …}}`)
//! beside realm-wide settings (`webauthn`, `u2f`). Older files are colon lines
//! `user:type:base64-json`, which PVE still reads. [`TfaCfg`] keeps the JSON as a
//! [`serde_json::Value`] (nothing is dropped) and legacy lines as they are, both keyed by
//! user. A parsed file that was not changed is written back byte for byte; a changed JSON file
//! is written compact (as PVE writes it).

pub use super::user_cfg::{Diag, Original};
use serde_json::{Map, Value};

/// One legacy line `user:type:data`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyLine {
    /// The user id (first field).
    pub user: String,
    /// The whole line (trimmed).
    pub line: String,
}

/// The two shapes of the file.
#[derive(Clone, Debug, PartialEq)]
pub enum TfaData {
    /// JSON (PVE ≥ 7).
    Json(Map<String, Value>),
    /// Colon lines (older PVE).
    Legacy(Vec<LegacyLine>),
}

/// A parsed `tfa.cfg`.
#[derive(Clone, Debug, PartialEq)]
pub struct TfaCfg {
    /// The content.
    pub data: TfaData,
    /// The file as read.
    pub original: Original,
}

impl Default for TfaCfg {
    fn default() -> Self {
        TfaCfg {
            data: TfaData::Json(Map::new()),
            original: Original(None),
        }
    }
}

/// Parses `tfa.cfg`: JSON when the first non-blank character is `{`, legacy lines otherwise.
/// JSON that does not parse (or is not an object) is an error: nothing of it can be trusted.
///
/// # Errors
/// The JSON error, with its line.
pub fn parse(text: &str) -> Result<(TfaCfg, Vec<Diag>), Diag> {
    let original = Original(Some(text.to_owned()));
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| Diag {
            line: e.line(),
            message: format!("not valid JSON: {e}"),
        })?;
        let Value::Object(map) = value else {
            return Err(Diag {
                line: 1,
                message: "not a JSON object".into(),
            });
        };
        let mut diags = Vec::new();
        if let Some(users) = map.get("users") {
            if !users.is_object() {
                diags.push(Diag {
                    line: 1,
                    message: "`users` is not an object".into(),
                });
            }
        }
        return Ok((
            TfaCfg {
                data: TfaData::Json(map),
                original,
            },
            diags,
        ));
    }
    let mut lines = Vec::new();
    let mut diags = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let user = parts.next().unwrap_or_default();
        let ok = parts.next().is_some_and(|t| !t.is_empty())
            && parts.next().is_some()
            && super::user_cfg::valid_userid(user);
        if !ok {
            diags.push(Diag {
                line: n + 1,
                message: "not a `user:type:data` line".into(),
            });
            continue;
        }
        lines.push(LegacyLine {
            user: user.to_owned(),
            line: line.to_owned(),
        });
    }
    Ok((
        TfaCfg {
            data: TfaData::Legacy(lines),
            original,
        },
        diags,
    ))
}

impl TfaCfg {
    /// True for the legacy shape.
    pub fn is_legacy(&self) -> bool {
        matches!(self.data, TfaData::Legacy(_))
    }

    /// The users that have an entry, in file order (JSON: sorted).
    pub fn users(&self) -> Vec<String> {
        match &self.data {
            TfaData::Json(map) => map
                .get("users")
                .and_then(Value::as_object)
                .map(|u| u.keys().cloned().collect())
                .unwrap_or_default(),
            TfaData::Legacy(lines) => {
                let mut out: Vec<String> = Vec::new();
                for l in lines {
                    if !out.contains(&l.user) {
                        out.push(l.user.clone());
                    }
                }
                out
            }
        }
    }

    /// The JSON entry of `user` (JSON shape only).
    pub fn user_json(&self, user: &str) -> Option<&Value> {
        match &self.data {
            TfaData::Json(map) => map.get("users")?.as_object()?.get(user),
            TfaData::Legacy(_) => None,
        }
    }

    /// The legacy lines of `user` (legacy shape only).
    pub fn user_lines(&self, user: &str) -> Vec<LegacyLine> {
        match &self.data {
            TfaData::Json(_) => Vec::new(),
            TfaData::Legacy(lines) => lines.iter().filter(|l| l.user == user).cloned().collect(),
        }
    }

    /// Removes every entry of `user`.
    pub fn remove_user(&mut self, user: &str) {
        match &mut self.data {
            TfaData::Json(map) => {
                if let Some(Value::Object(users)) = map.get_mut("users") {
                    users.remove(user);
                }
            }
            TfaData::Legacy(lines) => lines.retain(|l| l.user != user),
        }
    }

    /// Sets the JSON entry of `user` (JSON shape; creates `users` when missing).
    pub fn set_user_json(&mut self, user: &str, entry: Value) {
        if let TfaData::Json(map) = &mut self.data {
            let users = map
                .entry("users")
                .or_insert_with(|| Value::Object(Map::new()));
            if !users.is_object() {
                *users = Value::Object(Map::new());
            }
            if let Value::Object(users) = users {
                users.insert(user.to_owned(), entry);
            }
        }
    }

    /// Adds legacy lines (legacy shape).
    pub fn push_lines(&mut self, add: Vec<LegacyLine>) {
        if let TfaData::Legacy(lines) = &mut self.data {
            lines.extend(add);
        }
    }

    /// The file (the original text when unchanged).
    pub fn to_text(&self) -> String {
        if let Some(text) = &self.original.0 {
            if parse(text).is_ok_and(|(c, _)| c.data == self.data) {
                return text.clone();
            }
        }
        match &self.data {
            TfaData::Json(map) => {
                let mut s = serde_json::to_string(map).unwrap_or_else(|_| "{}".into());
                s.push('\n');
                s
            }
            TfaData::Legacy(lines) => lines.iter().map(|l| format!("{}\n", l.line)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_users_are_read_and_unchanged_text_is_kept() {
        let text = "{\"users\":{\"alice@pve\":{\"totp\":[{\"enable\":true}]},\"root@pam\":{\"recovery\":[]}},\"webauthn\":{\"rp\":\"pve\"}}\n";
        let (mut cfg, diags) = parse(text).expect("parses");
        assert!(diags.is_empty());
        assert_eq!(cfg.users(), vec!["alice@pve", "root@pam"]);
        assert_eq!(cfg.to_text(), text);
        cfg.remove_user("root@pam");
        cfg.set_user_json("bob@pve", json!({"totp": []}));
        let out = cfg.to_text();
        let (again, _) = parse(&out).expect("parses");
        assert_eq!(again.users(), vec!["alice@pve", "bob@pve"]);
        assert_eq!(again.user_json("alice@pve"), cfg.user_json("alice@pve"));
    }

    #[test]
    fn legacy_lines_pass_through() {
        let text = "alice@pve:oath:eyJrZXlzIjoiIn0=\nnonsense\n";
        let (cfg, diags) = parse(text).expect("parses");
        assert!(cfg.is_legacy());
        assert_eq!(cfg.users(), vec!["alice@pve"]);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line, 2);
        assert_eq!(cfg.to_text(), text);
    }

    #[test]
    fn broken_json_is_an_error_with_its_line() {
        let err = parse("{\n\"users\": [\n").expect_err("broken");
        assert!(err.line >= 2, "{err}");
    }
}
