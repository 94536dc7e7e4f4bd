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
