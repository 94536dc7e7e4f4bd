//! The grammars of PBS's access-control files (as `proxmox-backup` 3.x reads and writes them).
//!
//! * `user.cfg` — section config with `user: <userid>` (`comment`, `email`, `enable`,
//!   `expire`, `firstname`, `lastname`) and `token: <user@realm!name>` (`comment`, `enable`,
//!   `expire`) sections. PBS adds an enabled `root@pam` when the file has none.
//! * `domains.cfg` — section config of realms (`openid`, `ldap`, `ad`; newer PBS also `pam`
//!   and `pbs`). Bind passwords are in `ldap_passwords.json`, not here.
//! * `acl.cfg` — one entry per line, `acl:<0|1>:<path>:<ugid,…>:<role,…>`; empty lines are
//!   skipped; any other line (a comment too) makes PBS refuse the whole file.
//! * `token.shadow` — a JSON object `{"user@realm!name": "<hash>"}`.
//! * `shadow.json` — a JSON object `{"user@pbs": "<hash>"}`.
//! * `tfa.json` — a JSON object with `users` (`{"userid": {...}}`) and realm-wide settings
//!   (`webauthn`, `u2f`).
//!
//! Section-config files are read with [`proxsave_formats::section::parse`] (a line that fits
//! nowhere is reported, not fatal), then checked against PBS's schema ([`check_sections`]):
//! what PBS would refuse (an unknown section type or property, a bad id) is dropped and
//! reported, because one such line makes PBS refuse the whole file. They are written the way
//! PBS writes them ([`render_sections`]): `type: id`, `\tkey value`, one empty line between
//! sections, no comment.

use std::collections::BTreeMap;

use proxsave_formats::section::{self, Section};
use serde_json::{Map, Value};

/// A problem on one line of a file (1-based; 0 when the line is unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    /// 1-based line.
    pub line: usize,
    /// What is wrong (never a secret).
    pub message: String,
}

/// The roles PBS knows (3.x and 4.x); an ACL line naming another one makes PBS refuse the
/// whole `acl.cfg`.
pub const ROLES: &[&str] = &[
    "Admin",
    "Audit",
    "NoAccess",
    "DatastoreAdmin",
    "DatastoreReader",
    "DatastoreBackup",
    "DatastorePowerUser",
    "DatastoreAudit",
    "RemoteAudit",
    "RemoteAdmin",
    "RemoteSyncOperator",
    "RemoteSyncPushOperator",
    "RemoteDatastoreAdmin",
    "RemoteDatastorePowerUser",
    "TapeAudit",
    "TapeAdmin",
    "TapeOperator",
    "TapeReader",
];

const USER_KEYS: &[&str] = &[
    "comment",
    "email",
    "enable",
    "expire",
    "firstname",
    "lastname",
];
const TOKEN_KEYS: &[&str] = &["comment", "enable", "expire"];
const REALM_TYPES: &[&str] = &["pam", "pbs", "openid", "ldap", "ad"];

fn safe_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// True for a PBS user id `name@realm` (no `:` or `!`, a realm of safe-id characters).
pub fn valid_userid(id: &str) -> bool {
    let Some((name, realm)) = id.rsplit_once('@') else {
        return false;
    };
    !name.is_empty()
        && name.len() <= 64
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, ':' | '/' | '!' | '@'))
        && realm.len() >= 2
        && realm.len() <= 32
        && realm.chars().all(safe_id_char)
}

/// True for a token id `user@realm!name`.
pub fn valid_tokenid(id: &str) -> bool {
    match id.split_once('!') {
        Some((user, name)) => {
            valid_userid(user)
                && !name.is_empty()
                && name.len() <= 64
                && name.chars().all(safe_id_char)
        }
        None => false,
    }
}

/// True for an auth id (a user id or a token id).
pub fn valid_authid(id: &str) -> bool {
    valid_userid(id) || valid_tokenid(id)
}

/// The user of a token id (`user@realm!name` → `user@realm`); the id itself for a user.
pub fn user_of(authid: &str) -> &str {
    authid.split_once('!').map_or(authid, |(u, _)| u)
}

/// PBS's boolean values.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// True when a `user:`/`token:` section is enabled (PBS's default is enabled).
pub fn enabled(s: &Section) -> bool {
    s.effective("enable").and_then(parse_bool).unwrap_or(true)
}

/// Which section-config file a section list belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionFile {
    /// `user.cfg`.
    User,
    /// `domains.cfg`.
    Domains,
}

/// Parses a section-config file and keeps only what PBS accepts: the sections and the
/// problems found (with their lines). A later section with the id of an earlier one replaces
/// it, as PBS reads it.
pub fn check_sections(text: &str, file: SectionFile) -> (Vec<Section>, Vec<Diag>) {
    let (cfg, diags) = section::parse(text);
    let mut out: Vec<Section> = Vec::new();
    let mut problems: Vec<Diag> = diags
        .into_iter()
        .map(|d| Diag {
            line: d.line,
            message: d.message,
        })
        .collect();
    for mut s in cfg.sections {
        let line = s.line;
        let bad = |m: String| Diag { line, message: m };
        let (ok_type, keys): (bool, Option<&[&str]>) = match file {
            SectionFile::User => match s.ty.as_str() {
                "user" => (valid_userid(&s.id), Some(USER_KEYS)),
                "token" => (valid_tokenid(&s.id), Some(TOKEN_KEYS)),
                _ => (false, None),
            },
            SectionFile::Domains => (
                REALM_TYPES.contains(&s.ty.as_str())
                    && s.id.len() >= 2
                    && s.id.len() <= 32
                    && s.id.chars().all(safe_id_char),
                None,
            ),
        };
        if !ok_type {
            problems.push(bad(format!(
                "section `{}: {}` is not one PBS accepts here (dropped)",
                s.ty, s.id
            )));
            continue;
        }
        if let Some(keys) = keys {
            let before = s.props.len();
            let unknown: Vec<String> = s
                .props
                .iter()
                .filter(|p| !keys.contains(&p.key.as_str()))
                .map(|p| p.key.clone())
                .collect();
            s.props.retain(|p| keys.contains(&p.key.as_str()));
            if s.props.len() != before {
                problems.push(bad(format!(
                    "`{}: {}`: unknown propert{} {} dropped",
                    s.ty,
                    s.id,
                    if unknown.len() == 1 { "y" } else { "ies" },
                    unknown.join(", ")
                )));
            }
        }
        // A bare flag or a value on several keys: PBS needs `key value`, once per key.
        let mut seen: Vec<String> = Vec::new();
        let mut dropped = Vec::new();
        s.props.retain(|p| {
            let keep = p.value.as_deref().is_some_and(|v| !v.is_empty()) && !seen.contains(&p.key);
            if keep {
                seen.push(p.key.clone());
            } else {
                dropped.push(p.key.clone());
            }
            keep
        });
        if !dropped.is_empty() {
            problems.push(bad(format!(
                "`{}: {}`: propert{} without a value or repeated dropped: {}",
                s.ty,
                s.id,
                if dropped.len() == 1 { "y" } else { "ies" },
                dropped.join(", ")
            )));
        }
        if let Some(i) = out.iter().position(|o| o.id == s.id) {
            problems.push(bad(format!(
                "`{}: {}` defined again: the later one is kept, as PBS reads it",
                s.ty, s.id
            )));
            out.remove(i);
        }
        out.push(s);
    }
    (out, problems)
}

/// The sections in PBS's writer style: `type: id`, `\tkey value` lines, one empty line
/// between sections (none after the last); an empty string for no section.
pub fn render_sections(sections: &[Section]) -> String {
    let mut out = String::new();
    for s in sections {
        if !out.is_empty() {
            out.push('\n');
        }
        let mut fresh = Section::new(s.ty.clone(), s.id.clone());
        fresh.props = s.props.clone();
        let text = fresh.render();
        out.push_str(text.strip_suffix('\n').unwrap_or(&text));
    }
    out
}

// ------------------------------------------------------------------------------------------
// acl.cfg
// ------------------------------------------------------------------------------------------

/// One `acl.cfg` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclLine {
    /// `true` for `acl:1:…` (the roles propagate to sub-paths).
    pub propagate: bool,
    /// The path (`/`, `/datastore/store1`, …).
    pub path: String,
    /// Users, tokens and `@groups`.
    pub members: Vec<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// The line as read (trimmed), to write it back unchanged; `None` for a built line.
    pub original: Option<String>,
}

impl AclLine {
    /// The line as PBS writes it (the original text when unchanged).
    pub fn text(&self) -> String {
        if let Some(o) = &self.original {
            return o.clone();
        }
        format!(
            "acl:{}:{}:{}:{}",
            u8::from(self.propagate),
            self.path,
            self.members.join(","),
            self.roles.join(",")
        )
    }

    /// The (path, member, role, propagate) entries of the line.
    pub fn entries(&self) -> Vec<(String, String, String, bool)> {
        let path = normal_acl_path(&self.path);
        let mut out = Vec::new();
        for m in &self.members {
            for r in &self.roles {
                out.push((path.clone(), m.clone(), r.clone(), self.propagate));
            }
        }
        out
    }
}

/// `/a//b/` → `/a/b` (PBS splits the path on `/` and drops empty parts).
pub fn normal_acl_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Parses `acl.cfg` as PBS does (`str::lines`, each trimmed, empty ones skipped). A line PBS
/// would refuse (wrong number of fields, not `acl`, a propagate flag other than 0/1, an
/// unknown role, a member that is no auth id or `@group`) is reported and skipped.
pub fn parse_acl(text: &str) -> (Vec<AclLine>, Vec<Diag>) {
    let mut lines = Vec::new();
    let mut diags = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |m: &str| Diag {
            line: n + 1,
            message: m.to_string(),
        };
        let items: Vec<&str> = line.split(':').collect();
        if items.len() != 5 {
            diags.push(bad(
                "not an `acl:<0|1>:<path>:<users>:<roles>` line (wrong number of fields)",
            ));
            continue;
        }
        if items[0] != "acl" {
            diags.push(bad("line does not start with `acl`"));
            continue;
        }
        let propagate = match items[1] {
            "0" => false,
            "1" => true,
            _ => {
                diags.push(bad("propagate flag is not 0 or 1"));
                continue;
            }
        };
        let members: Vec<String> = items[3].split(',').map(|v| v.trim().to_string()).collect();
        let roles: Vec<String> = items[4].split(',').map(|v| v.trim().to_string()).collect();
        if let Some(r) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
            diags.push(Diag {
                line: n + 1,
                message: format!("unknown role `{r}`"),
            });
            continue;
        }
        if let Some(m) = members.iter().find(|m| {
            !(valid_authid(m)
                || m.strip_prefix('@')
                    .is_some_and(|g| !g.is_empty() && g.chars().all(safe_id_char)))
        }) {
            diags.push(Diag {
                line: n + 1,
                message: format!("`{m}` is not a user, token or @group"),
            });
            continue;
        }
        lines.push(AclLine {
            propagate,
            path: items[2].to_string(),
            members,
            roles,
            original: Some(line.to_string()),
        });
    }
    (lines, diags)
}

/// `acl.cfg` text: one line each, a final newline (empty for no line).
pub fn render_acl(lines: &[AclLine]) -> String {
    lines.iter().map(|l| format!("{}\n", l.text())).collect()
}

// ------------------------------------------------------------------------------------------
// JSON files
// ------------------------------------------------------------------------------------------

/// Parses a JSON object whose values are strings (`token.shadow`, `shadow.json`). An empty
/// (or whitespace-only) text is an empty map, as PBS reads a missing file.
///
/// # Errors
/// Not JSON, not an object, or a value that is not a string (never quoting a value).
pub fn parse_secret_map(text: &str) -> Result<BTreeMap<String, String>, Diag> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| Diag {
        line: e.line(),
        // serde's message may quote the input: only its category is given.
        message: format!("not valid JSON ({:?} error)", e.classify()),
    })?;
    let Value::Object(map) = v else {
        return Err(Diag {
            line: 1,
            message: "not a JSON object".into(),
        });
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            _ => {
                return Err(Diag {
                    line: 0,
                    message: format!("the value of `{k}` is not a string"),
                });
            }
        }
    }
    Ok(out)
}

/// `token.shadow` as PBS writes it (compact JSON).
pub fn render_token_shadow(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".into())
}

/// `shadow.json` as PBS writes it (pretty JSON).
pub fn render_shadow(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string_pretty(map).unwrap_or_else(|_| "{}".into())
}

/// A parsed `tfa.json`: the `users` object and every other top-level key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tfa {
    /// Second factors per user id.
    pub users: Map<String, Value>,
    /// Realm-wide settings (`webauthn`, `u2f`) and any other key, as they are.
    pub settings: Map<String, Value>,
}

/// Parses `tfa.json` (empty text: no entry).
///
/// # Errors
/// Not JSON, not an object, or `users` not an object.
pub fn parse_tfa(text: &str) -> Result<Tfa, Diag> {
    if text.trim().is_empty() {
        return Ok(Tfa::default());
    }
    let v: Value = serde_json::from_str(text).map_err(|e| Diag {
        line: e.line(),
        message: format!("not valid JSON ({:?} error)", e.classify()),
    })?;
    let Value::Object(mut map) = v else {
        return Err(Diag {
            line: 1,
            message: "not a JSON object".into(),
        });
    };
    let users = match map.remove("users") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(u)) => u,
        Some(_) => {
            return Err(Diag {
                line: 1,
                message: "`users` is not an object".into(),
            });
        }
    };
    Ok(Tfa {
        users,
        settings: map,
    })
}

/// `tfa.json` as PBS writes it (compact JSON).
pub fn render_tfa(tfa: &Tfa) -> String {
    let mut map = tfa.settings.clone();
    map.insert("users".into(), Value::Object(tfa.users.clone()));
    serde_json::to_string(&Value::Object(map)).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_cfg_as_pbs_writes_it() {
        let text = "user: alice@pbs\n\tcomment Alice\n\temail a@example.com\n\tenable 1\n\n\
                    token: alice@pbs!ci\n\tcomment CI\n\tenable true\n\n\
                    user: root@pam\n\tcomment Superuser\n\tenable 1\n";
        let (s, d) = check_sections(text, SectionFile::User);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].ty, "token");
        assert_eq!(s[1].id, "alice@pbs!ci");
        assert_eq!(render_sections(&s), text.trim_end().to_string() + "\n");
    }

    #[test]
    fn user_cfg_drops_what_pbs_refuses_and_names_the_line() {
        let text = "# a comment\nuser: bob@pbs\n\tenable 0\n\tpassword x\n\n\
                    group: admins\n\tusers bob@pbs\n\nuser: nobody\n\tcomment x\n\n\
                    user: bob@pbs\n\tcomment later\n";
        let (s, d) = check_sections(text, SectionFile::User);
        let ids: Vec<_> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["bob@pbs"]);
        assert_eq!(s[0].get("comment"), Some("later"));
        let msgs: Vec<String> = d
            .iter()
            .map(|d| format!("{}: {}", d.line, d.message))
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("2: ") && m.contains("password")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("6: ") && m.contains("group: admins"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("9: ") && m.contains("nobody"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("12: ") && m.contains("later one"))
        );
        assert!(!render_sections(&s).contains('#'));
    }

    #[test]
    fn acl_lines_as_pbs_reads_them() {
        let text = "acl:1:/:alice@pbs,@ops:Admin\n\n acl:0:/datastore/s1:alice@pbs!ci:DatastoreBackup,DatastoreReader \n\
                    acl:1:/x:bob@pbs:Bogus\nacl:2:/:bob@pbs:Admin\n# comment\nacl:1:/:bad:Admin\n";
        let (l, d) = parse_acl(text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].members, ["alice@pbs!ci"]);
        assert_eq!(l[1].roles, ["DatastoreBackup", "DatastoreReader"]);
        assert!(!l[1].propagate);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [4, 5, 6, 7]);
        assert_eq!(
            render_acl(&l),
            "acl:1:/:alice@pbs,@ops:Admin\nacl:0:/datastore/s1:alice@pbs!ci:DatastoreBackup,DatastoreReader\n"
        );
    }

    #[test]
    fn json_maps_never_quote_a_value() {
        assert_eq!(
            parse_secret_map(r#"{"a@pbs!t":"$5$salt$hash"}"#).unwrap()["a@pbs!t"],
            "$5$salt$hash"
        );
        let e = parse_secret_map(r#"{"a@pbs": "s3cr3t-hash", "b": 1}"#).unwrap_err();
        assert!(!e.message.contains("s3cr3t"));
        let e = parse_secret_map("{\"a\": \"s3cr3t-hash\"").unwrap_err();
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
        assert!(parse_secret_map("  \n").unwrap().is_empty());
        let t = parse_tfa(r#"{"users":{"a@pbs":{"totp":[]}},"webauthn":{"rp":"x"}}"#).unwrap();
        assert_eq!(t.users.len(), 1);
        assert!(t.settings.contains_key("webauthn"));
        assert_eq!(parse_tfa(&render_tfa(&t)).unwrap(), t);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = check_sections(&s, SectionFile::User);
            let _ = check_sections(&s, SectionFile::Domains);
            let _ = parse_acl(&s);
            let _ = parse_secret_map(&s);
            let _ = parse_tfa(&s);
        }

        #[test]
        fn acl_round_trip(
            lines in proptest::collection::vec(
                (any::<bool>(), "(/[a-z0-9]{1,8}){0,3}",
                 proptest::collection::vec("[a-z]{1,6}@(pbs|pam)(![a-z]{1,5})?", 1..3),
                 proptest::collection::vec(proptest::sample::select(ROLES), 1..3)),
                0..6)
        ) {
            let built: Vec<AclLine> = lines.into_iter().map(|(p, path, m, r)| AclLine {
                propagate: p,
                path: if path.is_empty() { "/".into() } else { path },
                members: m,
                roles: r.into_iter().map(str::to_string).collect(),
                original: None,
            }).collect();
            let text = render_acl(&built);
            let (parsed, diags) = parse_acl(&text);
            prop_assert!(diags.is_empty(), "{:?}", diags);
            prop_assert_eq!(render_acl(&parsed), text);
            let a: Vec<_> = parsed.iter().flat_map(AclLine::entries).collect();
            let b: Vec<_> = built.iter().flat_map(AclLine::entries).collect();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn sections_round_trip(
            users in proptest::collection::vec(
                ("[a-z]{1,8}@(pbs|pam|ldap1)", proptest::option::of("[A-Za-z][A-Za-z ]{0,10}[a-z]"), any::<bool>()),
                0..5)
        ) {
            let mut secs = Vec::new();
            for (id, comment, en) in users {
                if secs.iter().any(|s: &Section| s.id == id) { continue; }
                let mut s = Section::new("user", id);
                if let Some(c) = comment { s.push_prop("comment", Some(&c)); }
                s.push_prop("enable", Some(if en { "1" } else { "0" }));
                secs.push(s);
            }
            let text = render_sections(&secs);
            let (back, diags) = check_sections(&text, SectionFile::User);
            prop_assert!(diags.is_empty(), "{:?}", diags);
            prop_assert_eq!(back, secs);
            // And PBS's own (strict) grammar reads it.
            prop_assert!(section::parse_strict(&text).is_ok());
        }

        #[test]
        fn secret_maps_round_trip(m in proptest::collection::btree_map("[a-z]{1,6}@pbs(![a-z]{1,4})?", "[ -~]{0,20}", 0..6)) {
            prop_assert_eq!(&parse_secret_map(&render_token_shadow(&m)).unwrap(), &m);
            prop_assert_eq!(&parse_secret_map(&render_shadow(&m)).unwrap(), &m);
        }
    }
}
