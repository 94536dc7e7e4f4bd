//! Shared output helpers: JSON documents, error chains, `ls`-style formatting.

use proxsave_archive::entry::{EntryKind, Timestamp};
use serde::Serialize;

/// Version tag of every JSON document this program prints.
pub const SCHEMA_VERSION: u32 = 1;

/// Prints `{"schema": "proxsave/<kind>/v1", ...value}` on stdout.
pub fn print_json<T: Serialize>(kind: &str, value: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(value)?;
    let schema = serde_json::Value::String(format!("proxsave/{kind}/v{SCHEMA_VERSION}"));
    if let serde_json::Value::Object(map) = &mut v {
        let mut out = serde_json::Map::new();
        out.insert("schema".into(), schema);
        out.extend(std::mem::take(map));
        v = serde_json::Value::Object(out);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// [`print_json`] for a document with one long array: `value` is serialized with that array
/// (its field `key`) empty, and `items` (`len` of them) are written in its place one by one,
/// so the whole document is never held in memory. The text is the same as [`print_json`]'s
/// (keys sorted at every level, two-space indentation, a final newline).
pub fn print_json_streamed<T, I, E>(
    kind: &str,
    value: &T,
    key: &str,
    items: I,
    len: usize,
) -> anyhow::Result<()>
where
    T: Serialize,
    I: Iterator<Item = std::io::Result<E>>,
    E: Serialize,
{
    use std::io::Write as _;
    let mut map = match serde_json::to_value(value)? {
        serde_json::Value::Object(map) => map,
        other => anyhow::bail!("a JSON document must be an object, not {other}"),
    };
    map.insert(
        "schema".into(),
        serde_json::Value::String(format!("proxsave/{kind}/v{SCHEMA_VERSION}")),
    );
    let doc = Streamed {
        map,
        key,
        items: std::cell::RefCell::new(Some(items)),
        len,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

struct Streamed<'a, I> {
    map: serde_json::Map<String, serde_json::Value>,
    key: &'a str,
    items: std::cell::RefCell<Option<I>>,
    len: usize,
}

struct StreamedItems<'a, 'b, I>(&'a Streamed<'b, I>);

impl<I, E> Serialize for Streamed<'_, I>
where
    I: Iterator<Item = std::io::Result<E>>,
    E: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in &self.map {
            if k == self.key {
                m.serialize_entry(k, &StreamedItems(self))?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<I, E> Serialize for StreamedItems<'_, '_, I>
where
    I: Iterator<Item = std::io::Result<E>>,
    E: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let items = self.0.items.borrow_mut().take();
        let mut seq = s.serialize_seq(Some(self.0.len))?;
        for item in items.into_iter().flatten() {
            let item = item.map_err(S::Error::custom)?;
            // Through a `Value`, so the element's keys are sorted as `print_json` sorts them.
            let v = serde_json::to_value(&item).map_err(S::Error::custom)?;
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// An error with its causes, `a: b: c`, without repeating a cause already in the message.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// `drwxr-xr-x` style type and mode.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let ch = match i {
            2 if mode & 0o4000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            5 if mode & 0o2000 != 0 => {
                if set {
                    's'
                } else {
                    'S'
                }
            }
            8 if mode & 0o1000 != 0 => {
                if set {
                    't'
                } else {
                    'T'
                }
            }
            _ if set => *c,
            _ => '-',
        };
        s.push(ch);
    }
    s
}

/// `2026-07-24 02:30` in local time.
pub fn time_string(t: Timestamp) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(t.secs, t.nanos) {
        chrono::LocalResult::Single(dt) | chrono::LocalResult::Ambiguous(dt, _) => {
            dt.format("%Y-%m-%d %H:%M").to_string()
        }
        chrono::LocalResult::None => t.secs.to_string(),
    }
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_like_ls() {
        assert_eq!(mode_string(EntryKind::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o2640), "-rw-r-S---");
        assert_eq!(mode_string(EntryKind::Directory, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryKind::Symlink, 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(48_213_504), "46.0 MiB");
    }
}
