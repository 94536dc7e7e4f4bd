//! `priv/token.cfg` of Proxmox VE: API token secrets, one `user@realm!tokenid secret` line
//! each.
//!
//! As PVE's token-config reader reads it: lines are split on `\n`; whitespace-only lines are
//! ignored; a line must be exactly `<non-blank> <non-blank>` (one blank, nothing around) with
//! a valid token id; anything else is skipped and reported. A token listed twice keeps the
//! later secret. A parsed file that was not changed is written back byte for byte; otherwise
//! sorted by token id, as PVE writes it.

use super::user_cfg::valid_tokenid;
pub use super::user_cfg::{Diag, Original};

/// One token secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenSecret {
    /// `name@realm!token`.
    pub tokenid: String,
    /// The secret (a UUID).
    pub secret: String,
}

impl TokenSecret {
    /// The user part of the token id.
    pub fn user(&self) -> &str {
        self.tokenid
            .split_once('!')
            .map_or(self.tokenid.as_str(), |(u, _)| u)
    }
}

/// A parsed `token.cfg`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenCfg {
    /// Entries, in file order, each token once.
    pub entries: Vec<TokenSecret>,
    /// The file as read.
    pub original: Original,
}

/// Parses `token.cfg`; never fails.
pub fn parse(text: &str) -> (TokenCfg, Vec<Diag>) {
    let mut cfg = TokenCfg {
        original: Original(Some(text.to_owned())),
        ..TokenCfg::default()
    };
    let mut diags = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.chars().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let parsed = line.split_once(' ').filter(|(id, secret)| {
            !id.is_empty()
                && !secret.is_empty()
                && !id.chars().any(|c| c.is_ascii_whitespace())
                && !secret.chars().any(|c| c.is_ascii_whitespace())
        });
        match parsed {
            Some((id, secret)) if valid_tokenid(id) => cfg.set(TokenSecret {
                tokenid: id.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => diags.push(Diag {
                line: n + 1,
                message: "not a `user@realm!token secret` line".into(),
            }),
        }
    }
    (cfg, diags)
}

impl TokenCfg {
    /// Sets (or adds) a token's secret.
    pub fn set(&mut self, entry: TokenSecret) {
        match self.entries.iter_mut().find(|e| e.tokenid == entry.tokenid) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// The file (the original text when unchanged, else sorted as PVE writes it).
    pub fn to_text(&self) -> String {
        if let Some(text) = &self.original.0 {
            if parse(text).0 == *self {
                return text.clone();
            }
        }
        let mut sorted: Vec<&TokenSecret> = self.entries.iter().collect();
        sorted.sort_by(|a, b| a.tokenid.cmp(&b.tokenid));
        sorted
            .iter()
            .map(|e| format!("{} {}\n", e.tokenid, e.secret))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, rng_seed: proptest::test_runner::RngSeed::Fixed(8), ..Default::default() })]

        #[test]
        fn parse_of_write_is_the_model_sorted(
            entries in proptest::collection::btree_map("[a-z][a-z0-9._-]{0,8}@(pve|pam)![A-Za-z][A-Za-z0-9_-]{1,8}", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", 0..6)
        ) {
            let cfg = TokenCfg {
                entries: entries.into_iter().rev().map(|(tokenid, secret)| TokenSecret { tokenid, secret }).collect(),
                original: Original(None),
            };
            let text = cfg.to_text();
            let (back, diags) = parse(&text);
            proptest::prop_assert!(diags.is_empty());
            let mut sorted = cfg.entries.clone();
            sorted.sort_by(|a, b| a.tokenid.cmp(&b.tokenid));
            proptest::prop_assert_eq!(&back.entries, &sorted);
            proptest::prop_assert_eq!(back.to_text(), text);
        }
    }

    #[test]
    fn reads_tokens_and_writes_them_sorted() {
        let text = "root@pam!zz 2222\nalice@pve!ci 1111\nbad\n two@pve!x y\n";
        let (mut cfg, diags) = parse(text);
        assert_eq!(cfg.entries.len(), 2);
        assert_eq!(diags.iter().map(|d| d.line).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(cfg.to_text(), text);
        cfg.entries.retain(|e| e.user() != "nobody@pve");
        cfg.set(TokenSecret {
            tokenid: "bob@pve!a".into(),
            secret: "3333".into(),
        });
        assert_eq!(
            cfg.to_text(),
            "alice@pve!ci 1111\nbob@pve!a 3333\nroot@pam!zz 2222\n"
        );
    }
}
