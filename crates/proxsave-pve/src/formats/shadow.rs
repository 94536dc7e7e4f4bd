//! `priv/shadow.cfg` of Proxmox VE: the password hashes of the `pve` realm, one
//! `userid:hash:` line each.
//!
//! As PVE's `parse_shadow_passwd` reads it: every line is trimmed and empty lines are
//! ignored; a line must be `<non-blank>:<non-blank>:`; it is split on `:` and the first two
//! fields are the user id and the crypt hash. Any other line is skipped and reported. A user
//! listed twice keeps the later hash. A parsed file that was not changed is written back byte
//! for byte; otherwise one `userid:hash:` line per entry, in order.

pub use super::user_cfg::{Diag, Original};

/// One password hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShadowEntry {
    /// `name@realm`.
    pub userid: String,
    /// The crypt hash (`$5$…`).
    pub hash: String,
}

/// A parsed `shadow.cfg`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShadowCfg {
    /// Entries, in file order, each user once.
    pub entries: Vec<ShadowEntry>,
    /// The file as read.
    pub original: Original,
}

fn perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Parses `shadow.cfg`; never fails.
pub fn parse(text: &str) -> (ShadowCfg, Vec<Diag>) {
    let mut cfg = ShadowCfg {
        original: Original(Some(text.to_owned())),
        ..ShadowCfg::default()
    };
    let mut diags = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(perl_space);
        if line.is_empty() {
            continue;
        }
        let shape_ok = line.ends_with(':')
            && !line.chars().any(perl_space)
            && line[..line.len() - 1]
                .split_once(':')
                .is_some_and(|(u, h)| !u.is_empty() && !h.is_empty() && !h.starts_with(':'));
        if !shape_ok {
            diags.push(Diag {
                line: n + 1,
                message: "not a `userid:hash:` line".into(),
            });
            continue;
        }
        let mut fields = line.split(':');
        let userid = fields.next().unwrap_or_default().to_owned();
        let hash = fields.next().unwrap_or_default().to_owned();
        cfg.set(ShadowEntry { userid, hash });
    }
    (cfg, diags)
}

impl ShadowCfg {
    /// Sets (or adds) the hash of a user.
    pub fn set(&mut self, entry: ShadowEntry) {
        match self.entries.iter_mut().find(|e| e.userid == entry.userid) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// The entry of `userid`.
    pub fn get(&self, userid: &str) -> Option<&ShadowEntry> {
        self.entries.iter().find(|e| e.userid == userid)
    }

    /// The file (the original text when unchanged).
    pub fn to_text(&self) -> String {
        if let Some(text) = &self.original.0 {
            if parse(text).0 == *self {
                return text.clone();
            }
        }
        self.entries
            .iter()
            .map(|e| format!("{}:{}:\n", e.userid, e.hash))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pve_lines_and_skips_others() {
        let text = "alice@pve:$5$a$b:\nbroken line\n\n  bob@pve:$5$c$d:  \nx:y\n";
        let (cfg, diags) = parse(text);
        assert_eq!(cfg.entries.len(), 2);
        assert_eq!(cfg.get("bob@pve").map(|e| e.hash.as_str()), Some("$5$c$d"));
        assert_eq!(diags.iter().map(|d| d.line).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(cfg.to_text(), text);
    }

    #[test]
    fn three_fields_keep_the_second_as_pve_does() {
        let (cfg, diags) = parse("a@pve:h:extra:\n");
        assert!(diags.is_empty());
        assert_eq!(cfg.get("a@pve").map(|e| e.hash.as_str()), Some("h"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, rng_seed: proptest::test_runner::RngSeed::Fixed(8), ..Default::default() })]

        #[test]
        fn parse_of_write_is_the_model(
            entries in proptest::collection::btree_map("[a-z][a-z0-9._-]{0,8}@(pve|pam)", "\\$[1-6y]\\$[A-Za-z0-9./]{1,16}\\$[A-Za-z0-9./]{1,40}", 0..6)
        ) {
            let cfg = ShadowCfg {
                entries: entries.into_iter().map(|(userid, hash)| ShadowEntry { userid, hash }).collect(),
                original: Original(None),
            };
            let text = cfg.to_text();
            let (back, diags) = parse(&text);
            proptest::prop_assert!(diags.is_empty());
            proptest::prop_assert_eq!(&back, &cfg);
            proptest::prop_assert_eq!(back.to_text(), text);
        }
    }

    #[test]
    fn a_changed_file_is_written_as_lines() {
        let (mut cfg, _) = parse("a@pve:h1:\n");
        cfg.set(ShadowEntry {
            userid: "b@pve".into(),
            hash: "h2".into(),
        });
        assert_eq!(cfg.to_text(), "a@pve:h1:\nb@pve:h2:\n");
        assert_eq!(parse(&cfg.to_text()).0, cfg);
    }
}
