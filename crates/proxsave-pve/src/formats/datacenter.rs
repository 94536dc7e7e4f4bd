//! `datacenter.cfg`: the cluster-wide options, read like PVE's `parse_datacenter_config`.
//!
//! ```text
//! #Production%20datacenter
//!
//! keyboard: de
//! migration: network=10.10.10.0/24,type=secure
//! tag-style: shape=circle
//! ```
//!
//! Grammar: lines starting with `#` in the first column are the description (each line's text
//! after `#` percent-decoded, lines joined with `\n`). Every other line is trimmed; empty lines
//! and lines that start with `#` after the indentation are skipped; `key: value` is split at
//! the first `:` (the key has no whitespace, the value is the rest with the spaces after `:`
//! removed). Anything else is reported ([`Diag`]) and ignored, as PVE warns and ignores it.
//!
//! Unchanged input is written back byte for byte; a changed config is written like PVE writes
//! it: the description as `#` lines (percent-encoded), an empty line, then `key: value` lines
//! sorted by key.
//!
//! The API of these options is `PUT /cluster/options` ([`DatacenterCfg::cluster_options`]).

use proxsave_formats::section::Diag;
use proxsave_formats::text::{decode_text, encode_text};

/// A parsed (or built) `datacenter.cfg`.
///
/// Equality compares `description` and `entries` only.
#[derive(Debug, Clone, Default)]
pub struct DatacenterCfg {
    /// The description (from the `#` lines), lines joined with `\n`; empty when there is none.
    pub description: String,
    /// `key: value` entries in file order; a repeated key is kept (PVE keeps the last one).
    pub entries: Vec<(String, String)>,
    original: Option<Original>,
}

#[derive(Debug, Clone)]
struct Original {
    text: String,
    description: String,
    entries: Vec<(String, String)>,
}

impl PartialEq for DatacenterCfg {
    fn eq(&self, other: &Self) -> bool {
        self.description == other.description && self.entries == other.entries
    }
}

impl Eq for DatacenterCfg {}

impl DatacenterCfg {
    /// The value PVE uses for `key` (the last line with that key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`: the first line with that key gets the value, later ones are removed;
    /// appended when absent.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(first) => {
                self.entries[first].1 = value.to_string();
                let mut index = 0;
                self.entries.retain(|(k, _)| {
                    let keep = index <= first || k != key;
                    index += 1;
                    keep
                });
            }
            None => self.entries.push((key.to_string(), value.to_string())),
        }
    }

    /// Removes every line with `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        before - self.entries.len()
    }

    /// The keys, once each, in order of first appearance (without `description`).
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &self.entries {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// The keys `live` has and this config lacks (in `live`'s order): options a restore of
    /// this config through `/cluster/options` leaves as they are on the node.
    pub fn keys_missing_from_here<'a>(&self, live: &'a DatacenterCfg) -> Vec<&'a str> {
        let here = self.keys();
        live.keys()
            .into_iter()
            .filter(|k| !here.contains(k))
            .collect()
    }

    /// The parameters of `PUT /cluster/options` (`pvesh set /cluster/options --key=value ...`)
    /// that give the cluster these options: `description` first when there is one, then every
    /// key once, in order of first appearance, with the value PVE reads (the last line's).
    /// Values are passed through unchanged (property strings, booleans as written).
    pub fn cluster_options(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.description.is_empty() {
            out.push(("description".to_string(), self.description.clone()));
        }
        for key in self.keys() {
            if let Some(value) = self.get(key) {
                out.push((key.to_string(), value.to_string()));
            }
        }
        out
    }

    /// Whether this config differs from the text it was parsed from (true when built in code).
    pub fn is_modified(&self) -> bool {
        match &self.original {
            Some(o) => o.description != self.description || o.entries != self.entries,
            None => true,
        }
    }

    /// The file's text: the parsed text when unchanged, else PVE's writer style.
    pub fn to_text(&self) -> String {
        if let Some(o) = self.original.as_ref().filter(|_| !self.is_modified()) {
            return o.text.clone();
        }
        let mut out = String::new();
        if !self.description.is_empty() {
            for line in self.description.split('\n') {
                out.push('#');
                out.push_str(&encode_text(line));
                out.push('\n');
            }
        }
        out.push('\n');
        let mut sorted: Vec<&(String, String)> = self.entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in sorted {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// Perl's `\s` on byte strings.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// Parses `datacenter.cfg`. Never fails: lines PVE would ignore are reported and skipped.
pub fn parse(text: &str) -> (DatacenterCfg, Vec<Diag>) {
    let mut description: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    let mut diags = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        if let Some(comment) = raw.strip_prefix('#') {
            description.push(decode_text(comment));
            continue;
        }
        let line = raw.trim_matches(is_ws);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = line.split_once(':').and_then(|(key, value)| {
            (!key.is_empty() && !key.contains(is_ws))
                .then(|| (key.to_string(), value.trim_start_matches(is_ws).to_string()))
        });
        match entry {
            Some(entry) => entries.push(entry),
            None => diags.push(Diag {
                line: index + 1,
                message: format!("ignored line {line:?}: not `key: value`"),
            }),
        }
    }
    let description = description.join("\n");
    let cfg = DatacenterCfg {
        original: Some(Original {
            text: text.to_string(),
            description: description.clone(),
            entries: entries.clone(),
        }),
        description,
        entries,
    };
    (cfg, diags)
}

/// [`DatacenterCfg::to_text`] as a function.
pub fn to_text(cfg: &DatacenterCfg) -> String {
    cfg.to_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "#Production%20datacenter\n#second line: %3A\n\nconsole: html5\n\
                           keyboard: de\nmac_prefix: BC:24:11\n\
                           migration: network=10.10.10.0/24,type=secure\ntag-style: shape=circle\n";

    #[test]
    fn example() {
        let (cfg, diags) = parse(EXAMPLE);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(cfg.description, "Production datacenter\nsecond line: :");
        assert_eq!(cfg.get("mac_prefix"), Some("BC:24:11"));
        assert_eq!(
            cfg.get("migration"),
            Some("network=10.10.10.0/24,type=secure")
        );
        assert_eq!(cfg.to_text(), EXAMPLE);
        assert_eq!(
            cfg.cluster_options()[..3],
            [
                (
                    "description".to_string(),
                    "Production datacenter\nsecond line: :".to_string()
                ),
                ("console".to_string(), "html5".to_string()),
                ("keyboard".to_string(), "de".to_string()),
            ]
        );
    }

    #[test]
    fn scenario_17() {
        let (cfg, _) = parse("#Prod\nkeyboard: de\nmigration: network=10.0.0.0/24,type=secure\n");
        let params: Vec<String> = cfg
            .cluster_options()
            .iter()
            .map(|(k, v)| format!("--{k}={v}"))
            .collect();
        assert_eq!(
            params,
            [
                "--description=Prod",
                "--keyboard=de",
                "--migration=network=10.0.0.0/24,type=secure"
            ]
        );
    }

    #[test]
    fn keys_the_node_has_and_the_backup_lacks() {
        let (backup, _) = parse("keyboard: de\nconsole: html5\n");
        let (live, _) =
            parse("#x\nkeyboard: en-us\nmac_prefix: BC:24:11\nha: shutdown_policy=migrate\n");
        assert_eq!(backup.keys_missing_from_here(&live), ["mac_prefix", "ha"]);
    }

    #[test]
    fn odd_lines() {
        let text = "  #not description\n\t keyboard:de  \r\nbogus line\n:x\nk v: 1\n\
                    email_from:   a@b  \nkeyboard: fr\n";
        let (cfg, diags) = parse(text);
        assert_eq!(cfg.description, "");
        assert_eq!(
            cfg.entries,
            [
                ("keyboard".to_string(), "de".to_string()),
                ("email_from".to_string(), "a@b".to_string()),
                ("keyboard".to_string(), "fr".to_string()),
            ]
        );
        let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert_eq!(cfg.get("keyboard"), Some("fr"));
        assert_eq!(
            cfg.cluster_options(),
            [
                ("keyboard".to_string(), "fr".to_string()),
                ("email_from".to_string(), "a@b".to_string())
            ]
        );
        assert_eq!(cfg.to_text(), text);
    }

    #[test]
    fn modified_is_written_like_pve() {
        let (mut cfg, _) = parse(EXAMPLE);
        cfg.set("keyboard", "fr");
        cfg.remove("console");
        cfg.description = "Prod: 100%".to_string();
        assert_eq!(
            cfg.to_text(),
            "#Prod%3A 100%25\n\nkeyboard: fr\nmac_prefix: BC:24:11\n\
             migration: network=10.10.10.0/24,type=secure\ntag-style: shape=circle\n"
        );
        let built = DatacenterCfg {
            entries: vec![("keyboard".into(), "de".into())],
            ..DatacenterCfg::default()
        };
        assert_eq!(built.to_text(), "\nkeyboard: de\n");
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_-]{0,15}"
    }

    fn value() -> impl Strategy<Value = String> {
        "([^\\s]([^\\n\\r]{0,20}[^\\s])?)?"
    }

    proptest! {
        #[test]
        fn any_text_writes_back_unchanged(text in "(\\PC|[\\n\\t\\r ]){0,200}") {
            let (cfg, _) = parse(&text);
            prop_assert_eq!(cfg.to_text(), text);
        }

        #[test]
        fn written_configs_parse_back(
            description in "\\PC{0,40}|[\\x00-\\x7f]{0,40}",
            entries in proptest::collection::vec((key(), value()), 0..8),
        ) {
            let cfg = DatacenterCfg { description, entries, original: None };
            let text = cfg.to_text();
            let (again, diags) = parse(&text);
            prop_assert!(diags.is_empty(), "{:?}", diags);
            prop_assert_eq!(&again.description, &cfg.description);
            // The writer sorts by key (stable).
            let mut sorted = cfg.entries.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(&again.entries, &sorted);
            prop_assert_eq!(again.to_text(), text);
        }
    }
}
