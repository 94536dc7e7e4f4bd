//! Tar entry metadata as the reader yields it.

use std::fmt;

use serde::Serialize;

use crate::path::escape_bytes;

/// A point in time with nanosecond precision (seconds since the Unix epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Timestamp {
    /// Whole seconds; negative before 1970.
    pub secs: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// A whole-second timestamp.
    pub fn from_secs(secs: i64) -> Self {
        Timestamp { secs, nanos: 0 }
    }

    /// Parses a PAX time value: `[-]seconds[.fraction]`, fraction up to 9 digits used
    /// (longer fractions are truncated, as GNU tar does).
    pub fn parse_pax(value: &str) -> Option<Timestamp> {
        let (neg, digits) = match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let (int, frac) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let secs: i64 = int.parse().ok()?;
        let mut nanos: u32 = 0;
        for (i, b) in frac.bytes().take(9).enumerate() {
            nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
        }
        if !neg {
            return Some(Timestamp { secs, nanos });
        }
        // -1.25 means 1.25 s before the epoch: secs = -2, nanos = 0.75 s.
        if nanos == 0 {
            Some(Timestamp { secs: -secs, nanos })
        } else {
            Some(Timestamp {
                secs: -secs - 1,
                nanos: 1_000_000_000 - nanos,
            })
        }
    }

    /// The PAX text form (`secs` or `secs.fraction` without trailing zeros).
    pub fn to_pax(&self) -> String {
        if self.nanos == 0 {
            return self.secs.to_string();
        }
        let (secs, nanos, sign) = if self.secs < 0 {
            (-(self.secs + 1), 1_000_000_000 - self.nanos, "-")
        } else {
            (self.secs, self.nanos, "")
        };
        let frac = format!("{nanos:09}");
        format!("{sign}{secs}.{}", frac.trim_end_matches('0'))
    }
}

/// What an entry is, by its tar type flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// `5`.
    Directory,
    /// `0`, NUL (old tars) or `7` is reported as [`EntryKind::Contiguous`].
    File,
    /// `2`.
    Symlink,
    /// `1`.
    Hardlink,
    /// `3`.
    CharDevice,
    /// `4`.
    BlockDevice,
    /// `6`.
    Fifo,
    /// `7` (contiguous file; treated as suspicious, never written).
    Contiguous,
    /// GNU sparse file (`S`, or PAX `GNU.sparse.*` records).
    Sparse,
    /// A PAX global header (`g`), which would change how later entries are read.
    GlobalHeader,
    /// Any other type flag.
    Other(u8),
}

impl EntryKind {
    /// The kind for a tar type flag byte.
    pub fn from_typeflag(flag: u8) -> EntryKind {
        match flag {
            b'0' | 0 => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            b'7' => EntryKind::Contiguous,
            b'S' => EntryKind::Sparse,
            b'g' => EntryKind::GlobalHeader,
            other => EntryKind::Other(other),
        }
    }

    /// One-letter form used by `ls` (`d`, `-`, `l`, `h`, `c`, `b`, `p`, `?`).
    pub fn letter(&self) -> char {
        match self {
            EntryKind::Directory => 'd',
            EntryKind::File => '-',
            EntryKind::Symlink => 'l',
            EntryKind::Hardlink => 'h',
            EntryKind::CharDevice => 'c',
            EntryKind::BlockDevice => 'b',
            EntryKind::Fifo => 'p',
            _ => '?',
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryKind::Directory => f.write_str("directory"),
            EntryKind::File => f.write_str("regular file"),
            EntryKind::Symlink => f.write_str("symbolic link"),
            EntryKind::Hardlink => f.write_str("hard link"),
            EntryKind::CharDevice => f.write_str("character device"),
            EntryKind::BlockDevice => f.write_str("block device"),
            EntryKind::Fifo => f.write_str("FIFO"),
            EntryKind::Contiguous => f.write_str("contiguous file"),
            EntryKind::Sparse => f.write_str("GNU sparse file"),
            EntryKind::GlobalHeader => f.write_str("PAX global header"),
            EntryKind::Other(flag) => write!(f, "unknown type {:?}", *flag as char),
        }
    }
}

/// One tar entry's metadata, after PAX and GNU long-name records were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// The member name as stored (PAX `path` / GNU long name / ustar prefix+name).
    pub raw_path: Vec<u8>,
    /// The type.
    pub kind: EntryKind,
    /// Link target of symlinks and hard links (PAX `linkpath` / GNU long link / ustar).
    pub link_target: Option<Vec<u8>>,
    /// Permission bits plus setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Owner name, informational only (restore uses numeric ids).
    pub uname: Option<String>,
    /// Group name, informational only.
    pub gname: Option<String>,
    /// Size of the entry's data in the archive.
    pub size: u64,
    /// Modification time (PAX `mtime` with nanoseconds, else the ustar field).
    pub mtime: Timestamp,
    /// Access time, only when a PAX `atime` record carries it.
    pub atime: Option<Timestamp>,
    /// Device numbers of device entries.
    pub device: Option<(u32, u32)>,
    /// True when the entry carried extended attributes or ACLs (never applied).
    pub has_xattrs: bool,
    /// Byte offset of the entry's header block in the tar stream (for error messages).
    pub offset: u64,
}

impl EntryHeader {
    /// The raw name escaped for display.
    pub fn display_name(&self) -> String {
        escape_bytes(&self.raw_path)
    }

    /// The link target escaped for display, if any.
    pub fn display_link(&self) -> Option<String> {
        self.link_target.as_deref().map(escape_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            Timestamp::parse_pax("1721781000.512345678"),
            Some(Timestamp {
                secs: 1721781000,
                nanos: 512345678
            })
        );
        assert_eq!(
            Timestamp::parse_pax("1721781000.5"),
            Some(Timestamp {
                secs: 1721781000,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            Timestamp::parse_pax("12.1234567891"),
            Some(Timestamp {
                secs: 12,
                nanos: 123456789
            })
        );
        assert_eq!(
            Timestamp::parse_pax("-1.25"),
            Some(Timestamp {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(Timestamp::parse_pax("7"), Some(Timestamp::from_secs(7)));
        assert_eq!(Timestamp::parse_pax("x"), None);
        assert_eq!(Timestamp::parse_pax("1.2e3"), None);
        assert_eq!(Timestamp::parse_pax(""), None);
        for v in ["1721781000.512345678", "5", "-1.25", "0.5"] {
            assert_eq!(Timestamp::parse_pax(v).unwrap().to_pax(), v);
        }
    }
}
