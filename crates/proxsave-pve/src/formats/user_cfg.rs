//! `user.cfg` of Proxmox VE: users, API tokens, groups, pools, roles and ACLs as colon lines.
//!
//! The grammar is the one of PVE's own reader (`parse_user_config` in `PVE::AccessControl`):
//!
//! * every line is trimmed; empty lines are ignored; the line is split on every `:` and each
//!   field is trimmed; a missing field is empty;
//! * `user:<userid>:<enable>:<expire>:<firstname>:<lastname>:<email>:<comment>:<keys>:`
//! * `token:<userid>!<tokenid>:<expire>:<privsep>:<comment>:`
//! * `group:<groupid>:<member,list>:<comment>:`
//! * `pool:<poolid>:<comment>:<vmid,list>:<storage,list>:`
//! * `role:<roleid>:<privilege,list>:`
//! * `acl:<propagate>:<path>:<user|@group|user!token,list>:<role,list>:`
//!
//! `enable`, `privsep` and `propagate` are true when the field is non-empty and not `0` (as
//! Perl tests it); `expire` is empty (0) or decimal digits. First name, last name and the
//! comments are URI-escaped text ([`encode_text`] / [`decode_text`]); lists are split like
//! PVE's `split_list` ([`split_list`]). A line that does not parse is skipped and reported as a
//! [`Diag`] with its 1-based line number; the rest of the file is kept.
//!
//! [`UserCfg::to_text`] writes in PVE's order (users, each followed by its tokens; groups;
//! pools; roles; ACLs, with a blank line between the kinds, each kind sorted by id as PVE
//! sorts it). A file parsed and not changed is written back byte for byte; an entry that was
//! not changed keeps its original line.

use std::fmt;

/// A line of a configuration file that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diag {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The original text of a parsed line or file. It never takes part in equality: two
/// entries are equal when their typed fields are.
#[derive(Clone, Debug, Default)]
pub struct Original(pub Option<String>);

impl PartialEq for Original {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Original {}

/// `user:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// `name@realm`.
    pub userid: String,
    /// Enabled.
    pub enable: bool,
    /// Expiry (seconds since the epoch; 0 never).
    pub expire: u64,
    /// First name (decoded).
    pub firstname: String,
    /// Last name (decoded).
    pub lastname: String,
    /// E-mail address (not escaped by PVE).
    pub email: String,
    /// Comment (decoded).
    pub comment: String,
    /// Legacy TFA keys field (not escaped by PVE).
    pub keys: String,
    /// The line as read.
    pub original: Original,
}

/// `token:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Token {
    /// `name@realm!token`.
    pub tokenid: String,
    /// Expiry (0 never).
    pub expire: u64,
    /// Privilege separation.
    pub privsep: bool,
    /// Comment (decoded).
    pub comment: String,
    /// The line as read.
    pub original: Original,
}

impl Token {
    /// The user part of the token id (`name@realm`).
    pub fn user(&self) -> &str {
        self.tokenid
            .split_once('!')
            .map_or(self.tokenid.as_str(), |(u, _)| u)
    }
}

/// `group:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub groupid: String,
    /// Member user ids.
    pub users: Vec<String>,
    /// Comment (decoded).
    pub comment: String,
    /// The line as read.
    pub original: Original,
}

/// `pool:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// Pool id (`a`, `a/b`, `a/b/c`).
    pub poolid: String,
    /// Comment (decoded).
    pub comment: String,
    /// Guest ids.
    pub vms: Vec<String>,
    /// Storage ids.
    pub storage: Vec<String>,
    /// The line as read.
    pub original: Original,
}

/// `role:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// Role id.
    pub roleid: String,
    /// Privileges.
    pub privs: Vec<String>,
    /// The line as read.
    pub original: Original,
}

/// `acl:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    /// Propagate to sub-paths.
    pub propagate: bool,
    /// The object path (`/`, `/vms/100`, `/pool/dev`).
    pub path: String,
    /// Users, `@groups` and tokens.
    pub members: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// The line as read.
    pub original: Original,
}

/// A parsed `user.cfg`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCfg {
    /// Users, in file order.
    pub users: Vec<User>,
    /// Tokens, in file order.
    pub tokens: Vec<Token>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Pools.
    pub pools: Vec<Pool>,
    /// Roles (custom roles; PVE does not write its built-in ones).
    pub roles: Vec<Role>,
    /// ACL lines.
    pub acls: Vec<Acl>,
    /// The whole file as read.
    pub original: Original,
}

// ----------------------------------------------------------------------------------------
// Text fields and lists
// ----------------------------------------------------------------------------------------

/// Escapes a text field the way PVE's decoder reads it back: control characters, DEL,
/// every non-ASCII byte of the UTF-8 form, `:` and `%` become `%XX` (upper-case hex); so do
/// blanks at either end (PVE trims fields). PVE's own `encode_text` leaves `%` and the end
/// blanks as they are, so its `decode_text` can misread them; ours never loses a character.
pub fn encode_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let lead = bytes.iter().take_while(|b| **b == b' ').count();
    let trail = if lead == bytes.len() {
        0
    } else {
        bytes.iter().rev().take_while(|b| **b == b' ').count()
    };
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge_blank = b == b' ' && (i < lead || i >= bytes.len() - trail);
        if !(0x20..0x7f).contains(&b) || b == b':' || b == b'%' || edge_blank {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Reads a text field back: `%XX` becomes the byte, an invalid escape stays as it is, and the
/// bytes are read as UTF-8 (an invalid sequence becomes U+FFFD), as PVE's `decode_text` does.
pub fn decode_text(data: &str) -> String {
    let b = data.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a list field like PVE's `split_list`: on NUL when there is one, else on `,`, `;`
/// and whitespace, empty items dropped.
pub fn split_list(field: &str) -> Vec<String> {
    if field.contains('\0') {
        return field.split('\0').map(str::to_owned).collect();
    }
    field
        .split(|c: char| c == ',' || c == ';' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Perl's truth of a field: empty and `0` are false.
fn truthy(field: &str) -> bool {
    !(field.is_empty() || field == "0")
}

/// Perl's `\s` on bytes: blank, tab, newline, vertical tab, form feed, carriage return.
fn perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

// ----------------------------------------------------------------------------------------
// Ids (as PVE validates them)
// ----------------------------------------------------------------------------------------

fn realm_ok(realm: &str) -> bool {
    let mut c = realm.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic())
        && realm.len() >= 2
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_'))
}

/// `name@realm` as PVE accepts it (3 to 64 characters; the name without blanks, `:` or `/`).
pub fn valid_userid(userid: &str) -> bool {
    let len = userid.chars().count();
    if !(3..=64).contains(&len) {
        return false;
    }
    // The name may contain `@`; the realm is after the last one that leaves a valid realm.
    match userid.rsplit_once('@') {
        Some((name, realm)) => {
            !name.is_empty()
                && !name
                    .chars()
                    .any(|c| c.is_whitespace() || c == ':' || c == '/')
                && realm_ok(realm)
        }
        None => false,
    }
}

/// `name@realm!token` as PVE accepts it.
pub fn valid_tokenid(tokenid: &str) -> bool {
    match tokenid.rsplit_once('!') {
        Some((user, token)) => {
            !user
                .chars()
                .any(|c| c.is_whitespace() || c == ':' || c == '/')
                && user
                    .rsplit_once('@')
                    .is_some_and(|(n, r)| !n.is_empty() && !n.contains('!') && realm_ok(r))
                && realm_ok(token)
        }
        None => false,
    }
}

fn simple_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A group id as PVE accepts it.
pub fn valid_groupid(id: &str) -> bool {
    simple_id_ok(id)
}

/// A role id as PVE accepts it.
pub fn valid_roleid(id: &str) -> bool {
    simple_id_ok(id)
}

/// A pool id as PVE accepts it (at most three levels `a/b/c`).
pub fn valid_poolid(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() <= 3 && parts.iter().all(|p| simple_id_ok(p))
}

// ----------------------------------------------------------------------------------------
// Parse
// ----------------------------------------------------------------------------------------

/// Parses `user.cfg`; never fails: lines that do not parse are skipped and reported.
pub fn parse(text: &str) -> (UserCfg, Vec<Diag>) {
    let mut cfg = UserCfg {
        original: Original(Some(text.to_owned())),
        ..UserCfg::default()
    };
    let mut diags = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(perl_space);
        if line.is_empty() {
            continue;
        }
        if let Err(message) = parse_line(line, &mut cfg) {
            diags.push(Diag {
                line: n + 1,
                message,
            });
        }
    }
    (cfg, diags)
}

fn parse_line(line: &str, cfg: &mut UserCfg) -> Result<(), String> {
    let fields: Vec<&str> = line
        .split(':')
        .map(|f| f.trim_matches(perl_space))
        .collect();
    let f = |i: usize| fields.get(i).copied().unwrap_or("");
    let original = Original(Some(line.to_owned()));
    let expire = |what: &str, v: &str| -> Result<u64, String> {
        if v.is_empty() {
            return Ok(0);
        }
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what}: expire `{v}` is not a number"));
        }
        v.parse::<u64>()
            .map_err(|_| format!("{what}: expire `{v}` is too large"))
    };
    match f(0) {
        "user" => {
            let userid = f(1);
            if !valid_userid(userid) {
                return Err(format!("user `{userid}`: not a valid user id"));
            }
            cfg.users.push(User {
                userid: userid.to_owned(),
                enable: truthy(f(2)),
                expire: expire(&format!("user `{userid}`"), f(3))?,
                firstname: decode_text(f(4)),
                lastname: decode_text(f(5)),
                email: f(6).to_owned(),
                comment: decode_text(f(7)),
                keys: f(8).to_owned(),
                original,
            });
        }
        "token" => {
            let tokenid = f(1);
            if !valid_tokenid(tokenid) {
                return Err(format!("token `{tokenid}`: not a valid token id"));
            }
            cfg.tokens.push(Token {
                tokenid: tokenid.to_owned(),
                expire: expire(&format!("token `{tokenid}`"), f(2))?,
                privsep: truthy(f(3)),
                comment: decode_text(f(4)),
                original,
            });
        }
        "group" => {
            let groupid = f(1);
            if !valid_groupid(groupid) {
                return Err(format!("group `{groupid}`: not a valid group id"));
            }
            cfg.groups.push(Group {
                groupid: groupid.to_owned(),
                users: split_list(f(2)),
                comment: decode_text(f(3)),
                original,
            });
        }
        "pool" => {
            let poolid = f(1);
            if !valid_poolid(poolid) {
                return Err(format!("pool `{poolid}`: not a valid pool id"));
            }
            cfg.pools.push(Pool {
                poolid: poolid.to_owned(),
                comment: decode_text(f(2)),
                vms: split_list(f(3)),
                storage: split_list(f(4)),
                original,
            });
        }
        "role" => {
            let roleid = f(1);
            if !valid_roleid(roleid) {
                return Err(format!("role `{roleid}`: not a valid role id"));
            }
            cfg.roles.push(Role {
                roleid: roleid.to_owned(),
                privs: split_list(f(2)),
                original,
            });
        }
        "acl" => {
            let path = f(2);
            if !path.starts_with('/') {
                return Err(format!("acl: `{path}` is not a valid path"));
            }
            cfg.acls.push(Acl {
                propagate: truthy(f(1)),
                path: path.to_owned(),
                members: split_list(f(3)),
                roles: split_list(f(4)),
                original,
            });
        }
        other => {
            return Err(format!("unknown entry type `{other}`"));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Write
// ----------------------------------------------------------------------------------------

impl User {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!(
            "user:{}:{}:{}:{}:{}:{}:{}:{}:",
            self.userid,
            u8::from(self.enable),
            self.expire,
            encode_text(&self.firstname),
            encode_text(&self.lastname),
            self.email,
            encode_text(&self.comment),
            self.keys
        )
    }
}

impl Token {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!(
            "token:{}:{}:{}:{}:",
            self.tokenid,
            self.expire,
            u8::from(self.privsep),
            encode_text(&self.comment)
        )
    }
}

impl Group {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!(
            "group:{}:{}:{}:",
            self.groupid,
            self.users.join(","),
            encode_text(&self.comment)
        )
    }
}

impl Pool {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!(
            "pool:{}:{}:{}:{}:",
            self.poolid,
            encode_text(&self.comment),
            self.vms.join(","),
            self.storage.join(",")
        )
    }
}

impl Role {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!("role:{}:{}:", self.roleid, self.privs.join(","))
    }
}

impl Acl {
    /// The line as PVE writes it (no newline).
    pub fn render(&self) -> String {
        format!(
            "acl:{}:{}:{}:{}:",
            u8::from(self.propagate),
            self.path,
            self.members.join(","),
            self.roles.join(",")
        )
    }
}

/// The original line when it still reads as `entry`, else the rendered one.
fn line_of<T: PartialEq + Clone>(
    entry: &T,
    original: &Original,
    render: impl Fn(&T) -> String,
    reparse: impl Fn(&str) -> Option<T>,
) -> String {
    if let Some(line) = &original.0 {
        if reparse(line).as_ref() == Some(entry) {
            return line.clone();
        }
    }
    render(entry)
}

fn reparse(line: &str) -> Option<UserCfg> {
    let mut cfg = UserCfg::default();
    parse_line(line, &mut cfg).ok().map(|()| cfg)
}

impl UserCfg {
    /// The file: the original text when nothing changed since it was parsed, else PVE's
    /// order (see the module docs), each unchanged entry with its original line.
    pub fn to_text(&self) -> String {
        if let Some(text) = &self.original.0 {
            if parse(text).0 == *self {
                return text.clone();
            }
        }
        let mut out = String::new();
        let mut users: Vec<&User> = self.users.iter().collect();
        users.sort_by(|a, b| a.userid.cmp(&b.userid));
        let mut tokens: Vec<&Token> = self.tokens.iter().collect();
        tokens.sort_by(|a, b| a.tokenid.cmp(&b.tokenid));
        let mut written_tokens = vec![false; tokens.len()];
        for u in &users {
            out.push_str(&line_of(*u, &u.original, User::render, |l| {
                reparse(l).and_then(|c| c.users.into_iter().next())
            }));
            out.push('\n');
            for (i, t) in tokens.iter().enumerate() {
                if !written_tokens[i] && t.user() == u.userid {
                    written_tokens[i] = true;
                    out.push_str(&token_line(t));
                    out.push('\n');
                }
            }
        }
        // Tokens of users not in the file (PVE would drop them; we keep them visible).
        for (i, t) in tokens.iter().enumerate() {
            if !written_tokens[i] {
                out.push_str(&token_line(t));
                out.push('\n');
            }
        }
        out.push('\n');
        let mut groups: Vec<&Group> = self.groups.iter().collect();
        groups.sort_by(|a, b| a.groupid.cmp(&b.groupid));
        for g in groups {
            out.push_str(&line_of(g, &g.original, Group::render, |l| {
                reparse(l).and_then(|c| c.groups.into_iter().next())
            }));
            out.push('\n');
        }
        out.push('\n');
        let mut pools: Vec<&Pool> = self.pools.iter().collect();
        pools.sort_by(|a, b| a.poolid.cmp(&b.poolid));
        for p in pools {
            out.push_str(&line_of(p, &p.original, Pool::render, |l| {
                reparse(l).and_then(|c| c.pools.into_iter().next())
            }));
            out.push('\n');
        }
        out.push('\n');
        let mut roles: Vec<&Role> = self.roles.iter().collect();
        roles.sort_by(|a, b| a.roleid.cmp(&b.roleid));
        for r in roles {
            out.push_str(&line_of(r, &r.original, Role::render, |l| {
                reparse(l).and_then(|c| c.roles.into_iter().next())
            }));
            out.push('\n');
        }
        out.push('\n');
        let mut acls: Vec<&Acl> = self.acls.iter().collect();
        acls.sort_by(|a, b| acl_path_key(&a.path).cmp(&acl_path_key(&b.path)));
        for a in acls {
            out.push_str(&line_of(a, &a.original, Acl::render, |l| {
                reparse(l).and_then(|c| c.acls.into_iter().next())
            }));
            out.push('\n');
        }
        out
    }

    /// The user `userid`.
    pub fn user(&self, userid: &str) -> Option<&User> {
        self.users.iter().rev().find(|u| u.userid == userid)
    }
}

fn token_line(t: &Token) -> String {
    line_of(t, &t.original, Token::render, |l| {
        reparse(l).and_then(|c| c.tokens.into_iter().next())
    })
}

/// PVE walks the ACL tree from `/` depth first, children sorted by name.
fn acl_path_key(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests;
