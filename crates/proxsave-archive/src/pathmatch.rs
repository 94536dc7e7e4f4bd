//! Shell-style patterns over archive paths.
//!
//! [`glob_match`] follows Go's `path.Match` (the matcher upstream category patterns are
//! written for): `*` matches any run of characters except `/`, `?` one character except `/`,
//! `[...]` a class (`[a-z]`, `[^0-9]`), `\` escapes. Names are bytes; a byte that does not
//! start a valid UTF-8 character is one character (U+FFFD), as in Go. Two differences from
//! Go, neither of which upstream's patterns meet: a class never matches `/` either (so each
//! part of a pattern between `/` matches one component of a name), and a class may start
//! with `]` or have `-` at either end, taken literally (`[]a]`, `[-_]`), where Go reports a
//! bad pattern.
//!
//! [`Selector`] turns what a user types after `ls`, `extract` or `--categories` into a filter:
//! `etc/hosts`, `./etc/hosts` and `/etc/hosts` are the same, and naming a directory selects
//! everything below it.

use crate::path::ArchivePath;

/// A malformed pattern (unclosed `[`, trailing `\`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// True if `pattern` contains glob metacharacters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Go `path.Match` semantics on bytes (see module docs).
///
/// # Errors
/// [`PatternError`] for a malformed pattern.
pub fn glob_match(pattern: &str, name: &[u8]) -> Result<bool, PatternError> {
    let err = |reason| PatternError {
        pattern: pattern.to_string(),
        reason,
    };
    let pat = pattern.as_bytes();
    validate(pat).map_err(err)?;
    Ok(match_from(pat, name))
}

fn validate(mut pat: &[u8]) -> Result<(), &'static str> {
    while let Some((&c, rest)) = pat.split_first() {
        match c {
            b'\\' => {
                if rest.is_empty() {
                    return Err("trailing backslash");
                }
                pat = &rest[1..];
            }
            b'[' => {
                let (_, len) = class_len(rest).ok_or("unclosed '['")?;
                pat = &rest[len..];
            }
            _ => pat = rest,
        }
    }
    Ok(())
}

/// Length of a class body up to and including `]`; also returns whether it is negated.
fn class_len(body: &[u8]) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = body.first() == Some(&b'^');
    if negated {
        i += 1;
    }
    let mut first = true;
    while i < body.len() {
        match body[i] {
            b']' if !first => return Some((negated, i + 1)),
            b'\\' => i += 2,
            _ => i += 1,
        }
        first = false;
    }
    None
}

/// The character at the start of `bytes` and its length, as Go's `utf8.DecodeRune` reads it:
/// a byte that does not start a valid UTF-8 sequence is one character, U+FFFD.
///
/// (This used to take the length from the lead byte alone, so `?` swallowed up to four bytes
/// of an invalid sequence, `/` included: `?` matched `"\xf0/x"`. And a class compared an
/// invalid byte by its value, so `[é]` matched a Latin-1 `\xe9`. Found by the property
/// tests, tests/proptest_parsers.rs.)
fn decode_char(bytes: &[u8]) -> (u32, usize) {
    let head = &bytes[..bytes.len().min(4)];
    match head
        .utf8_chunks()
        .next()
        .and_then(|c| c.valid().chars().next())
    {
        Some(c) => (u32::from(c), c.len_utf8()),
        None => (0xFFFD, 1),
    }
}

fn match_from(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => {
            // '*' never crosses '/'.
            let mut i = 0;
            loop {
                if match_from(rest, &name[i..]) {
                    return true;
                }
                if i >= name.len() || name[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some((b'?', rest)) => {
            if name.is_empty() || name[0] == b'/' {
                return false;
            }
            let (_, n) = decode_char(name);
            match_from(rest, &name[n..])
        }
        Some((b'[', rest)) => {
            if name.is_empty() || name[0] == b'/' {
                return false;
            }
            let Some((negated, len)) = class_len(rest) else {
                return false;
            };
            let body = &rest[usize::from(negated)..len - 1];
            let (c, clen) = decode_char(name);
            if class_matches(body, c) == negated {
                return false;
            }
            match_from(&rest[len..], &name[clen..])
        }
        Some((b'\\', rest)) => match (rest.split_first(), name.split_first()) {
            (Some((&p, prest)), Some((&n, nrest))) if p == n => match_from(prest, nrest),
            _ => false,
        },
        Some((&p, rest)) => match name.split_first() {
            Some((&n, nrest)) if n == p => match_from(rest, nrest),
            _ => false,
        },
    }
}

fn class_matches(mut body: &[u8], c: u32) -> bool {
    let next = |b: &mut &[u8]| -> u32 {
        if b.first() == Some(&b'\\') && b.len() > 1 {
            *b = &b[1..];
        }
        let (ch, len) = decode_char(b);
        *b = &b[len..];
        ch
    };
    while !body.is_empty() {
        let lo = next(&mut body);
        if body.len() >= 2 && body[0] == b'-' {
            body = &body[1..];
            let hi = next(&mut body);
            if lo <= c && c <= hi {
                return true;
            }
        } else if lo == c {
            return true;
        }
    }
    false
}

/// A valid pattern cut into the parts that match one name component each: at every `/` it
/// matches, written `/` or `\/`. A `/` inside a class does not cut (a class never matches
/// `/`).
///
/// (`may_contain` used to cut at the `/` characters of the text, so the ancestors of what
/// `a\/b*` or `d/a[x/]b/c` select were not kept. Found by the property tests,
/// tests/proptest_parsers.rs.)
fn pattern_components(pat: &[u8]) -> Vec<&[u8]> {
    let mut comps = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            b'/' => {
                comps.push(&pat[start..i]);
                start = i + 1;
                i += 1;
            }
            b'\\' if pat.get(i + 1) == Some(&b'/') => {
                comps.push(&pat[start..i]);
                start = i + 2;
                i += 2;
            }
            b'\\' => i += 2,
            b'[' => i += 1 + class_len(&pat[i + 1..]).map_or(0, |(_, len)| len),
            _ => i += 1,
        }
    }
    comps.push(&pat[start..]);
    comps
}

/// One user-given path or glob, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    text: String,
    glob: bool,
}

/// A set of user-given paths/globs; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    rules: Vec<Rule>,
}

impl Selector {
    /// Builds a selector; an empty list selects everything.
    ///
    /// # Errors
    /// [`PatternError`] for malformed globs or names with `..`.
    pub fn new<S: AsRef<str>>(args: &[S]) -> Result<Selector, PatternError> {
        let mut rules = Vec::new();
        for arg in args {
            let arg = arg.as_ref();
            let glob = is_glob(arg);
            let normal = if glob {
                let trimmed = arg.trim_start_matches('/');
                let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
                let trimmed = trimmed.trim_end_matches('/');
                validate(trimmed.as_bytes()).map_err(|reason| PatternError {
                    pattern: arg.to_string(),
                    reason,
                })?;
                if trimmed.split('/').any(|c| c == "..") {
                    return Err(PatternError {
                        pattern: arg.to_string(),
                        reason: "'..' is not allowed",
                    });
                }
                trimmed.to_string()
            } else {
                match ArchivePath::from_user(arg) {
                    Ok(p) => p.to_str().unwrap_or(arg).to_string(),
                    Err(_) => {
                        return Err(PatternError {
                            pattern: arg.to_string(),
                            reason: "not a path inside the backup",
                        });
                    }
                }
            };
            rules.push(Rule { text: normal, glob });
        }
        Ok(Selector { rules })
    }

    /// True when no rule was given (everything is selected).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True if `path` or one of its ancestors matches a rule.
    pub fn matches(&self, path: &ArchivePath) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|rule| {
            let candidates = path.ancestors().chain(std::iter::once(path.clone()));
            let mut hit = false;
            for candidate in candidates {
                let ok = if rule.glob {
                    match_from(rule.text.as_bytes(), candidate.as_bytes())
                } else {
                    candidate.as_bytes() == rule.text.as_bytes()
                };
                if ok {
                    hit = true;
                    break;
                }
            }
            hit
        })
    }

    /// True if `path` is a proper ancestor of something a rule could select (used to keep
    /// parent directories' metadata when extracting a subset).
    pub fn may_contain(&self, path: &ArchivePath) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|rule| {
            let prefix = path.as_bytes();
            let text = rule.text.as_bytes();
            if rule.glob {
                // Compare the leading components only.
                let depth = path.depth();
                let pat_comps = pattern_components(rule.text.as_bytes());
                if pat_comps.len() <= depth {
                    return false;
                }
                path.components()
                    .zip(pat_comps.iter())
                    .all(|(c, p)| match_from(p, c))
            } else {
                text.len() > prefix.len() && text.starts_with(prefix) && text[prefix.len()] == b'/'
            }
        })
    }

    /// The rules as given after normalisation (for messages).
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.text.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        glob_match(p, n.as_bytes()).unwrap()
    }

    #[test]
    fn go_path_match_semantics() {
        assert!(m("etc/auto.*", "etc/auto.master"));
        assert!(!m("etc/auto.*", "etc/auto.master.d/x"));
        assert!(m("etc/pve/nodes/*/host.fw", "etc/pve/nodes/pve1/host.fw"));
        assert!(!m("etc/pve/nodes/*/host.fw", "etc/pve/nodes/a/b/host.fw"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("a?c", "aéc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*", "abc"));
        assert!(!m("*", "a/b"));
        assert!(glob_match("[abc", b"a").is_err());
        assert!(glob_match("abc\\", b"a").is_err());
    }

    #[test]
    fn question_mark_never_swallows_a_slash_after_invalid_utf8() {
        assert!(!glob_match("?", b"\xf0/x").unwrap());
        assert!(!glob_match("a?", b"a\xe2/").unwrap());
        assert!(glob_match("??", b"\xffa").unwrap());
        assert!(glob_match("a?c", b"a\xf0c").unwrap());
        assert!(glob_match("?/x", b"\xf0/x").unwrap());
    }

    #[test]
    fn class_reads_an_invalid_byte_as_the_replacement_character() {
        assert!(!glob_match("[é]", b"\xe9").unwrap());
        assert!(glob_match("[^é]", b"\xe9").unwrap());
        assert!(glob_match("[\u{fffd}]", b"\xe9").unwrap());
        assert!(glob_match("[é]", "é".as_bytes()).unwrap());
    }

    #[test]
    fn may_contain_cuts_patterns_at_escaped_slashes_not_inside_classes() {
        let escaped = Selector::new(&["a\\/b*"]).unwrap();
        assert!(escaped.matches(&ArchivePath::from_user("a/bc").unwrap()));
        assert!(escaped.may_contain(&ArchivePath::from_user("a").unwrap()));
        let class = Selector::new(&["d/a[x/]b/c"]).unwrap();
        assert!(class.matches(&ArchivePath::from_user("d/axb/c").unwrap()));
        assert!(class.may_contain(&ArchivePath::from_user("d").unwrap()));
        assert!(class.may_contain(&ArchivePath::from_user("d/axb").unwrap()));
        assert!(!class.may_contain(&ArchivePath::from_user("d/ayb").unwrap()));
        assert_eq!(
            pattern_components(b"a\\\\/b\\/[/]c/"),
            [&b"a\\\\"[..], b"b", b"[/]c", b""]
        );
    }

    #[test]
    fn selector_accepts_every_spelling_and_selects_subtrees() {
        for spelling in ["etc/ssh", "./etc/ssh", "/etc/ssh", "etc/ssh/"] {
            let s = Selector::new(&[spelling]).unwrap();
            assert!(s.matches(&ArchivePath::from_user("etc/ssh/sshd_config").unwrap()));
            assert!(s.matches(&ArchivePath::from_user("etc/ssh").unwrap()));
            assert!(!s.matches(&ArchivePath::from_user("etc/sshx").unwrap()));
            assert!(s.may_contain(&ArchivePath::from_user("etc").unwrap()));
            assert!(!s.may_contain(&ArchivePath::from_user("var").unwrap()));
        }
        let g = Selector::new(&["/etc/pve/nodes/*/host.fw"]).unwrap();
        assert!(g.matches(&ArchivePath::from_user("etc/pve/nodes/n1/host.fw").unwrap()));
        assert!(g.may_contain(&ArchivePath::from_user("etc/pve/nodes/n1").unwrap()));
        assert!(!g.matches(&ArchivePath::from_user("etc/pve/nodes/n1/x.fw").unwrap()));
        assert!(Selector::new(&["../x"]).is_err());
        assert!(Selector::new(&["a/../*"]).is_err());
        assert!(
            Selector::new::<&str>(&[])
                .unwrap()
                .matches(&ArchivePath::from_user("x").unwrap())
        );
    }
}
