//! Property strings: `key=value,key=value`, the value format of many PVE options
//! (`migration: network=10.0.0.0/24,type=secure`, `prune-backups keep-daily=7,keep-weekly=4`,
//! `scsi0: local-lvm:vm-100-disk-0,size=32G`).
//!
//! Grammar (PVE `parse_property_string`, without a schema): split on every `,` (there is no
//! quoting); parts that are empty or whitespace-only are skipped; a part `key=value` has a
//! non-empty key without `=` and a non-empty value (which may contain `=`); a part without `=`
//! is a value for the format's default key (`None` here). A key given twice, or two parts for
//! the default key, is an error, as in PVE. Keys, values and their spacing are kept as written.
//!
//! ```
//! use proxsave_formats::propstring;
//!
//! let parts = propstring::parse("local-lvm:vm-100-disk-0,size=32G").unwrap();
//! assert_eq!(parts[0], (None, "local-lvm:vm-100-disk-0".to_string()));
//! assert_eq!(parts[1], (Some("size".to_string()), "32G".to_string()));
//! assert_eq!(propstring::render(&parts), "local-lvm:vm-100-disk-0,size=32G");
//! assert!(propstring::parse("network=,type=secure").is_err());
//! ```

use serde::{Deserialize, Serialize};

/// A part of a property string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("property string part {part:?}: {reason}")]
pub struct Error {
    /// The offending part, as written.
    pub part: String,
    /// Why it does not parse.
    pub reason: String,
}

/// Parses a property string into ordered `(key, value)` pairs; `None` is the default key.
pub fn parse(s: &str) -> Result<Vec<(Option<String>, String)>, Error> {
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for part in s.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        let fail = |reason: &str| Error {
            part: part.to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = match part.split_once('=') {
            Some(("", _)) => return Err(fail("missing key before `=`")),
            Some((_, "")) => return Err(fail("missing value after `=`")),
            Some((key, value)) => (Some(key.to_string()), value.to_string()),
            None => (None, part.to_string()),
        };
        if out.iter().any(|(k, _)| *k == key) {
            return Err(match &key {
                Some(k) => fail(&format!("duplicate key {k:?}")),
                None => fail("a second value without a key (only the default key may omit it)"),
            });
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Renders pairs back: `key=value` (or the bare value for the default key), joined by `,`.
/// Values must not contain `,` (a property string has no quoting).
pub fn render(parts: &[(Option<String>, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(key) = key {
            out.push_str(key);
            out.push('=');
        }
        out.push_str(value);
    }
    out
}

/// The value of `key` in parsed pairs.
pub fn get<'a>(parts: &'a [(Option<String>, String)], key: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|(k, _)| k.as_deref() == Some(key))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(k: Option<&str>, v: &str) -> (Option<String>, String) {
        (k.map(str::to_string), v.to_string())
    }

    #[test]
    fn examples() {
        assert_eq!(
            parse("network=10.10.10.0/24,type=secure").unwrap(),
            vec![
                pair(Some("network"), "10.10.10.0/24"),
                pair(Some("type"), "secure")
            ]
        );
        assert_eq!(
            parse("keep-all=1").unwrap(),
            vec![pair(Some("keep-all"), "1")]
        );
        // A value may contain `=`; empty parts are skipped.
        assert_eq!(
            parse("a=b=c,,  ,d=e,").unwrap(),
            vec![pair(Some("a"), "b=c"), pair(Some("d"), "e")]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_the_part() {
        let e = parse("a=1,=2").unwrap_err();
        assert_eq!(e.part, "=2");
        assert!(e.to_string().contains("\"=2\""), "{e}");
        assert_eq!(parse("a=1,b=").unwrap_err().part, "b=");
        assert_eq!(parse("a=1,a=2").unwrap_err().part, "a=2");
        assert_eq!(parse("x,y").unwrap_err().part, "y");
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_-]{0,10}"
    }

    fn value() -> impl Strategy<Value = String> {
        "[^,=\\s][^,=]{0,12}"
    }

    proptest! {
        #[test]
        fn parse_render_round_trip(
            default in proptest::option::of(value()),
            map in proptest::collection::btree_map(key(), "[^,]{1,12}", 0..6),
        ) {
            let mut parts: Vec<(Option<String>, String)> = Vec::new();
            if let Some(d) = default {
                parts.push((None, d));
            }
            parts.extend(map.into_iter().map(|(k, v)| (Some(k), v)));
            // A whitespace-only value would be skipped as an empty part.
            parts.retain(|(_, v)| !v.trim().is_empty());
            let text = render(&parts);
            prop_assert_eq!(parse(&text).unwrap(), parts.clone());
            prop_assert_eq!(render(&parse(&text).unwrap()), text);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
