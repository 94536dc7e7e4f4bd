//! Differential test: the `tar` crate's reader (`tar::Archive::entries()`) and ours
//! (`proxsave_archive::tar::TarReader`) over the same bytes.
//!
//! Inputs: every archive of the malicious catalogue (`proxsave_testkit::evil::catalogue`), GNU
//! tar archives (`--format=pax`, `gnu`, `oldgnu`, `ustar`, with and without `--sparse`) of trees
//! with long names, long link targets, hard links, setuid/setgid/sticky modes, non-UTF-8 names,
//! a FIFO, a device node and big owner ids (the last two as root), and archives written by
//! `tar::Builder` (our [`TarWriter`], which safety backups and `decrypt` bundles use, and the
//! crate's own `append_dir_all`).
//!
//! For each input both readers are run to their end; per entry the name (bytes), link target,
//! type, size, mode, owner ids, mtime and atime (to the nanosecond), device numbers and data
//! are compared, and so is how the stream ended (cleanly or with an error). Where our reader
//! deliberately differs, the case is listed in [`DIFFERENCES`] with the named reason(s) and
//! the exact set of fields that differ, so any new divergence, or a listed one that went away,
//! fails the test. `docs/formats.md` ("Our tar reader and the tar crate") documents each reason.
//!
//! One normalisation applies everywhere: a directory's name is compared without its trailing
//! `/` (our reader trims it; GNU tar writes `etc/`, `tar::Builder` `etc/`).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use proxsave_archive::entry::{EntryKind, Timestamp};
use proxsave_archive::tar::TarReader;
use proxsave_archive::write::{TarWriter, WriteHeader, WriteKind};
use proxsave_testkit::evil::catalogue;
use proxsave_testkit::fixture::{HostTree, is_root, set_owner, set_times};

// ---------------------------------------------------------------------------------------------
// What a reader saw
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Ent {
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    kind: EntryKind,
    size: u64,
    mode: u32,
    owner: (u64, u64),
    mtime: (i64, u32),
    atime: Option<(i64, u32)>,
    device: Option<(u32, u32)>,
    data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Clean,
    Error(String),
}

#[derive(Clone, Debug)]
struct Seen {
    entries: Vec<Ent>,
    end: End,
}

fn ours(bytes: &[u8]) -> Seen {
    let mut r = TarReader::new(bytes);
    let mut entries = Vec::new();
    loop {
        match r.next_entry() {
            Ok(Some(h)) => {
                let mut data = Vec::new();
                if let Err(e) = r.read_to_end(&mut data) {
                    return Seen {
                        entries,
                        end: End::Error(e.to_string()),
                    };
                }
                entries.push(Ent {
                    path: h.raw_path,
                    link: h.link_target,
                    kind: h.kind,
                    size: h.size,
                    mode: h.mode,
                    owner: (h.uid, h.gid),
                    mtime: (h.mtime.secs, h.mtime.nanos),
                    atime: h.atime.map(|t| (t.secs, t.nanos)),
                    device: h.device,
                    data,
                });
            }
            Ok(None) => break,
            Err(e) => {
                return Seen {
                    entries,
                    end: End::Error(e.to_string()),
                };
            }
        }
    }
    let end = match r.finish() {
        Ok(_) => End::Clean,
        Err(e) => End::Error(e.to_string()),
    };
    Seen { entries, end }
}

/// The `tar` crate's type, mapped here (not through our `EntryKind::from_typeflag`).
fn kind_of(t: tar::EntryType) -> EntryKind {
    match t {
        tar::EntryType::Regular => EntryKind::File,
        tar::EntryType::Link => EntryKind::Hardlink,
        tar::EntryType::Symlink => EntryKind::Symlink,
        tar::EntryType::Char => EntryKind::CharDevice,
        tar::EntryType::Block => EntryKind::BlockDevice,
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Fifo => EntryKind::Fifo,
        tar::EntryType::Continuous => EntryKind::Contiguous,
        tar::EntryType::GNUSparse => EntryKind::Sparse,
        tar::EntryType::XGlobalHeader => EntryKind::GlobalHeader,
        other => EntryKind::Other(other.as_byte()),
    }
}

/// A PAX time (`[-]secs[.fraction]`), parsed independently of `Timestamp::parse_pax`.
fn pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: u32 = digits.parse().ok()?;
    Some(match (neg, nanos) {
        (false, _) => (secs, nanos),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

fn theirs(bytes: &[u8]) -> Seen {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = Vec::new();
    let err = |entries, e: io::Error| Seen {
        entries,
        end: End::Error(e.to_string()),
    };
    let iter = match archive.entries() {
        Ok(i) => i,
        Err(e) => return err(entries, e),
    };
    for entry in iter {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => return err(entries, e),
        };
        // The first record of a key, as the crate itself applies `path`, `size`, `uid`, ...
        // (Not for a global header: `pax_extensions()` would read its own data as its records.)
        let global = entry.header().entry_type() == tar::EntryType::XGlobalHeader;
        let pax: Vec<(Vec<u8>, Vec<u8>)> = if global {
            Vec::new()
        } else {
            match entry.pax_extensions() {
                Ok(Some(records)) => records
                    .filter_map(Result::ok)
                    .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
                    .collect(),
                Ok(None) => Vec::new(),
                Err(e) => return err(entries, e),
            }
        };
        let record = |key: &[u8]| pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let h = entry.header().clone();
        let fields = (|| -> io::Result<_> { Ok((h.mode()?, h.uid()?, h.gid()?, h.mtime()?)) })();
        let (mode, uid, gid, mtime) = match fields {
            Ok(f) => f,
            Err(e) => return err(entries, e),
        };
        let kind = kind_of(h.entry_type());
        let device = match kind {
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                match (h.device_major(), h.device_minor()) {
                    (Ok(Some(a)), Ok(Some(b))) => Some((a, b)),
                    _ => None,
                }
            }
            _ => None,
        };
        let mut path = entry.path_bytes().into_owned();
        if kind == EntryKind::Directory {
            while path.len() > 1 && path.ends_with(b"/") {
                path.pop();
            }
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let size = entry.size();
        let mut data = Vec::new();
        if let Err(e) = entry.read_to_end(&mut data) {
            return err(entries, e);
        }
        entries.push(Ent {
            path,
            link,
            kind,
            size,
            mode: mode & 0o7777,
            owner: (uid, gid),
            mtime: record(b"mtime")
                .and_then(|v| pax_time(&v))
                .unwrap_or((mtime as i64, 0)),
            atime: record(b"atime").and_then(|v| pax_time(&v)),
            device,
            data,
        });
    }
    Seen {
        entries,
        end: End::Clean,
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------------

/// What can differ between the two readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    /// How the stream ended (clean, or an error).
    End,
    /// The number of entries.
    Count,
    Path,
    Link,
    Kind,
    Size,
    Mode,
    Owner,
    Mtime,
    Atime,
    Device,
    Data,
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.chars().count() > 80 {
        let head: String = s.chars().take(80).collect();
        format!("{head:?}…({} bytes)", b.len())
    } else {
        format!("{s:?}")
    }
}

fn compare(o: &Seen, t: &Seen) -> (BTreeSet<Field>, Vec<String>) {
    let mut fields = BTreeSet::new();
    let mut lines = Vec::new();
    let clean = |e: &End| matches!(e, End::Clean);
    if clean(&o.end) != clean(&t.end) {
        fields.insert(Field::End);
        lines.push(format!("end: ours {:?}, tar crate {:?}", o.end, t.end));
    }
    if o.entries.len() != t.entries.len() {
        fields.insert(Field::Count);
        lines.push(format!(
            "entries: ours {}, tar crate {}",
            o.entries.len(),
            t.entries.len()
        ));
    }
    for (i, (a, b)) in o.entries.iter().zip(&t.entries).enumerate() {
        let mut field = |f: Field, same: bool, what: String| {
            if !same {
                fields.insert(f);
                lines.push(format!("entry {i} {}: {f:?}: {what}", show(&a.path)));
            }
        };
        field(
            Field::Path,
            a.path == b.path,
            format!("ours {}, tar crate {}", show(&a.path), show(&b.path)),
        );
        field(
            Field::Link,
            a.link == b.link,
            format!(
                "ours {:?}, tar crate {:?}",
                a.link.as_deref().map(show),
                b.link.as_deref().map(show)
            ),
        );
        field(
            Field::Kind,
            a.kind == b.kind,
            format!("ours {:?}, tar crate {:?}", a.kind, b.kind),
        );
        field(
            Field::Size,
            a.size == b.size,
            format!("ours {}, tar crate {}", a.size, b.size),
        );
        field(
            Field::Mode,
            a.mode == b.mode,
            format!("ours {:o}, tar crate {:o}", a.mode, b.mode),
        );
        field(
            Field::Owner,
            a.owner == b.owner,
            format!("ours {:?}, tar crate {:?}", a.owner, b.owner),
        );
        field(
            Field::Mtime,
            a.mtime == b.mtime,
            format!("ours {:?}, tar crate {:?}", a.mtime, b.mtime),
        );
        field(
            Field::Atime,
            a.atime == b.atime,
            format!("ours {:?}, tar crate {:?}", a.atime, b.atime),
        );
        field(
            Field::Device,
            a.device == b.device,
            format!("ours {:?}, tar crate {:?}", a.device, b.device),
        );
        field(
            Field::Data,
            a.data == b.data,
            format!(
                "ours {} bytes, tar crate {} bytes",
                a.data.len(),
                b.data.len()
            ),
        );
    }
    (fields, lines)
}

// ---------------------------------------------------------------------------------------------
// The documented differences
// ---------------------------------------------------------------------------------------------

/// Why our reader reads something differently; each is a section of the table in
/// `docs/formats.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    /// A stream that ends at a header boundary without the two zero blocks is an error for us
    /// (a cut archive must not pass `verify`); the crate takes end of input as the end.
    MissingEndMarker,
    /// We read to the end of the stream after the marker and refuse anything but zero padding
    /// (garbage, a second archive, headers after a lone zero block); the crate stops at the
    /// first zero block and never looks further.
    DataAfterEnd,
    /// Directories, symlinks and hard links carry no data whatever their size field says
    /// (GNU tar when extracting, Go's `archive/tar` — upstream's reader — and Python); the
    /// crate skips `size` bytes, so it reads the next header(s) as this entry's data.
    HeaderOnlyTypeWithSize,
    /// A regular-file header whose name ends in `/` is a directory (GNU tar, Go); the crate
    /// reports a regular file with that name.
    TrailingSlashIsDirectory,
    /// PAX `path`/`linkpath` win over GNU long name/link records (GNU tar); the crate lets the
    /// GNU record win.
    PaxOverGnuLongName,
    /// A key given twice in one PAX header: the last record wins (POSIX, GNU tar); the crate
    /// uses the first.
    RepeatedPaxKey,
    /// A PAX record whose length is wrong or whose `size`/`uid`/`gid`/`mtime`/`atime` value does
    /// not parse is an error for us; the crate skips it silently and falls back to the ustar
    /// field.
    MalformedPaxRecord,
    /// PAX records are delimited by their length, so a value may hold a newline (POSIX); the
    /// crate splits records at newlines, drops the broken ones and falls back to the ustar
    /// fields.
    NewlineInPaxValue,
    /// Sizes beyond `i64::MAX` (PAX or base-256) are errors for us before anything is read
    /// (no file is that large; GNU tar refuses them too); the crate accepts the size, reads
    /// the rest of the stream as the entry's data, then fails.
    SizeOutOfRange,
    /// A stream that ends inside an entry's data: we fail reading that data; the crate returns
    /// the short data as if complete and fails only at the next header.
    ShortData,
    /// We also accept a checksum computed over signed bytes (historic tars; GNU tar accepts
    /// both); the crate only accepts the unsigned sum.
    SignedChecksum,
    /// PAX headers over 1 MiB and GNU long names/links over 64 KiB are refused before being
    /// read (memory bound on hostile input); the crate reads them whole.
    RecordLimits,
    /// A hard or symbolic link with an empty link field has the empty target for us (the
    /// extraction policy refuses it); the crate reports no link name.
    EmptyLinkTarget,
    /// A base-256 time beyond `i64` is an error for us; the crate returns any `u64`. This is
    /// what `tar::Builder::append_dir_all` writes for a file older than 1970 (the two's
    /// complement stored as a positive number, a date 584 billion years ahead), which is why
    /// our [`TarWriter`] puts such times into a PAX `mtime` record instead.
    TimeOutOfRange,
    /// GNU sparse entries (old `S` headers, PAX `GNU.sparse.*`) are reported as sparse with
    /// their stored bytes, and never extracted; the crate expands old-style maps (or fails on
    /// maps it cannot follow) and reports PAX-sparse entries as regular files holding the raw
    /// map and data.
    Sparse,
}

use Field::*;
use Why::*;

/// Every input on which the two readers differ: (input name, reasons, fields that differ).
/// Inputs not listed must read identically.
const DIFFERENCES: &[(&str, &[Why], &[Field])] = &[
    (
        "c03 trailing slash on a regular file header",
        &[TrailingSlashIsDirectory],
        &[Path, Kind],
    ),
    (
        "c04 empty, dot and slash names",
        &[TrailingSlashIsDirectory],
        &[Path, Kind],
    ),
    (
        "c05 newline inside a PAX path",
        &[NewlineInPaxValue],
        &[Path],
    ),
    (
        "c07 PAX path over a GNU long name",
        &[PaxOverGnuLongName],
        &[Path, Link],
    ),
    (
        "c20 hard link with a PAX size",
        &[HeaderOnlyTypeWithSize],
        &[End, Count, Data],
    ),
    (
        "c20 hard link with data",
        &[HeaderOnlyTypeWithSize],
        &[End, Count, Data],
    ),
    (
        "c23 hard links to directories and empty targets",
        &[EmptyLinkTarget],
        &[Link],
    ),
    (
        "c31 directory with a PAX size",
        &[HeaderOnlyTypeWithSize],
        &[Count, Path, Size, Data],
    ),
    (
        "c31 directory with a size",
        &[HeaderOnlyTypeWithSize],
        &[Count, Path, Size, Data],
    ),
    (
        "c31 symlink with a size",
        &[HeaderOnlyTypeWithSize],
        &[Count, Path, Size, Data],
    ),
    (
        "c31 regular file with a trailing slash and a size",
        &[TrailingSlashIsDirectory, HeaderOnlyTypeWithSize],
        &[Count, Path, Kind, Size, Data],
    ),
    (
        "c31 PAX size negative",
        &[MalformedPaxRecord],
        &[End, Count],
    ),
    (
        "c31 PAX size beyond u64",
        &[MalformedPaxRecord],
        &[End, Count],
    ),
    ("c31 PAX size 2^63", &[SizeOutOfRange], &[Count]),
    ("c31 ustar size base-256 2^63", &[SizeOutOfRange], &[Count]),
    ("c32 old GNU sparse", &[Sparse], &[End, Count]),
    ("c32 PAX GNU sparse 1.0", &[Sparse], &[Kind]),
    (
        "c34 many PAX records, repeated path",
        &[RepeatedPaxKey],
        &[Path],
    ),
    ("c34 PAX header over 1 MiB", &[RecordLimits], &[End, Count]),
    (
        "c34 GNU long name over 64 KiB",
        &[RecordLimits],
        &[End, Count],
    ),
    ("c35 signed checksum", &[SignedChecksum], &[End, Count]),
    ("c35 truncated mid-data", &[ShortData], &[Count]),
    ("c35 missing end blocks", &[MissingEndMarker], &[End]),
    ("c35 trailing garbage", &[DataAfterEnd], &[End]),
    ("c35 concatenated archives", &[DataAfterEnd], &[End]),
    ("c35 lone zero block then headers", &[DataAfterEnd], &[End]),
    (
        "c35 malformed PAX record",
        &[MalformedPaxRecord],
        &[End, Count],
    ),
    (
        "c35 PAX mtime that is not a time",
        &[MalformedPaxRecord],
        &[End, Count],
    ),
    (
        "v7 header without magic",
        &[TrailingSlashIsDirectory],
        &[Path, Kind],
    ),
    (
        "tar::Builder append_dir_all full tree",
        &[TimeOutOfRange],
        &[End, Count],
    ),
    ("gnu tar --format=gnu --sparse", &[Sparse], &[Size, Data]),
    ("gnu tar --format=pax --sparse", &[Sparse], &[Kind]),
];

// ---------------------------------------------------------------------------------------------
// Real-tool fixtures
// ---------------------------------------------------------------------------------------------

const LONG_A: &str = "a-directory-name-of-exactly-one-hundred-bytes-which-is-what-the-ustar-name-field-holds-xxxxxxxxxxxxx";

/// A host tree plus the shapes that stress tar formats. `portable` leaves out what the ustar
/// format cannot hold (names over 255 bytes, links over 100, ids over 2^21).
fn tree(dir: &Path, portable: bool) -> PathBuf {
    let root = dir.join(if portable { "portable" } else { "full" });
    let mut t = HostTree::pve_node(&root);
    t.file("usr/local/bin/suid", b"#!/bin/sh\n", 0o4755, (0, 0))
        .file("usr/local/bin/sgid", b"#!/bin/sh\n", 0o2711, (0, 0))
        .file("etc/none", b"nothing\n", 0o000, (0, 0))
        .file("etc/empty", b"", 0o644, (0, 0))
        .file("etc/odd-size", &vec![b'o'; 1537], 0o640, (0, 0))
        .dir("var/tmp", 0o1777, (0, 0))
        .dir("srv/shared", 0o2775, (0, 33))
        .file("srv/shared/name with spaces", b"x\n", 0o644, (33, 33))
        .symlink("etc/zone-link", "/usr/share/zoneinfo/Europe/Rome");
    fs::hard_link(
        root.join("etc/odd-size"),
        root.join("etc/odd-size.hardlink"),
    )
    .unwrap();
    let latin1 = root.join(std::ffi::OsStr::from_bytes(b"etc/caf\xe9"));
    fs::write(&latin1, b"latin1\n").unwrap();
    set_times(&latin1, (1_721_781_100, 5), (1_721_781_000, 123_456_789));
    let fifo = root.join("run-fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    if is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("dev-null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    if !portable {
        let deep = format!("opt/{LONG_A}/{LONG_A}/{LONG_A}");
        let long_file = format!("{deep}/{}", "f".repeat(120));
        t.file(&long_file, b"deep and long\n", 0o600, (0, 0))
            .symlink("etc/long-link", &format!("/{}/target", "t".repeat(150)));
        fs::hard_link(root.join(&long_file), root.join(format!("{deep}/hard"))).unwrap();
        let big = root.join("etc/big-ids");
        fs::write(&big, b"big ids\n").unwrap();
        set_owner(&big, 4_000_000_000, 3_000_000_123);
        set_times(&big, (1_721_781_200, 999_999_999), (1_721_781_000, 1));
        // An mtime before 1970.
        let old = root.join("etc/before-epoch");
        fs::write(&old, b"old\n").unwrap();
        set_times(&old, (0, 0), (-86_400, 250_000_000));
    }
    t.settle_dirs();
    root
}

fn gnu_tar(root: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .args(["--sort=name", "-C"])
        .arg(root)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The entries a safety backup would write for `root` (directories, files with content,
/// symlinks; hard links as files; FIFOs and devices left out), in name order.
fn walk(root: &Path, rel: &Path, out: &mut Vec<(WriteHeader, Vec<u8>)>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let (kind, link, data) = if ft.is_dir() {
            (WriteKind::Directory, None, Vec::new())
        } else if ft.is_symlink() {
            let l = fs::read_link(&p).unwrap();
            (
                WriteKind::Symlink,
                Some(l.as_os_str().as_bytes().to_vec()),
                Vec::new(),
            )
        } else if ft.is_file() {
            (WriteKind::File, None, fs::read(&p).unwrap())
        } else {
            continue;
        };
        let mut path = b"./".to_vec();
        path.extend_from_slice(rel.as_os_str().as_bytes());
        let header = WriteHeader {
            path,
            kind,
            link,
            mode: m.permissions().mode() & 0o7777,
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            uname: None,
            gname: None,
            size: data.len() as u64,
            mtime: Timestamp {
                secs: m.mtime(),
                nanos: m.mtime_nsec() as u32,
            },
            atime: Some(Timestamp {
                secs: m.atime(),
                nanos: m.atime_nsec() as u32,
            }),
        };
        out.push((header, data));
        if ft.is_dir() {
            walk(root, &rel, out);
        }
    }
}

fn tar_writer(items: &[(WriteHeader, Vec<u8>)], subsecond: bool) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), subsecond);
    for (h, data) in items {
        w.append(h, &mut &data[..]).unwrap();
    }
    w.finish().unwrap()
}

/// Our reader gives back exactly what [`TarWriter`] (the `tar` crate's builder) wrote.
fn assert_reads_back(name: &str, items: &[(WriteHeader, Vec<u8>)], bytes: &[u8], subsecond: bool) {
    let seen = ours(bytes);
    assert_eq!(seen.end, End::Clean, "{name}");
    assert_eq!(seen.entries.len(), items.len(), "{name}");
    for ((h, data), e) in items.iter().zip(&seen.entries) {
        let what = format!("{name}: {}", show(&h.path));
        assert_eq!(e.path, h.path, "{what}");
        assert_eq!(e.link, h.link, "{what}");
        assert_eq!(e.mode, h.mode, "{what}");
        assert_eq!(e.owner, (h.uid, h.gid), "{what}");
        assert_eq!(&e.data, data, "{what}");
        let whole = |t: Timestamp| {
            if subsecond {
                (t.secs, t.nanos)
            } else {
                (t.secs, 0)
            }
        };
        // Whole-second mode drops the fraction (upstream's bundles), also for a time before
        // 1970 that needs a PAX record.
        assert_eq!(e.mtime, whole(h.mtime), "{what}");
        assert_eq!(e.atime, h.atime.filter(|_| subsecond).map(whole), "{what}");
    }
}

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = catalogue()
        .into_iter()
        .map(|c| (c.name.to_string(), c.tar))
        .collect();
    let full = tree(dir, false);
    let portable = tree(dir, true);
    let sparse = dir.join("sparse");
    fs::create_dir(&sparse).unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(sparse.join("disk.img")).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all(&[b'A'; 700]).unwrap();
        f.seek(SeekFrom::Start(512 << 10)).unwrap();
        f.write_all(&[b'B'; 100]).unwrap();
    }
    fs::write(sparse.join("plain"), b"plain\n").unwrap();
    // Safety-backup and bundle style archives first: reading files through GNU tar changes
    // their atimes.
    for (label, root) in [("full", &full), ("portable", &portable)] {
        let mut items = Vec::new();
        walk(root, Path::new(""), &mut items);
        for subsecond in [true, false] {
            let bytes = tar_writer(&items, subsecond);
            let name = format!("TarWriter subsecond={subsecond} {label} tree");
            assert_reads_back(&name, &items, &bytes, subsecond);
            out.push((name, bytes));
        }
    }
    for (label, root) in [("full", &full), ("portable", &portable)] {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", root).unwrap();
        out.push((
            format!("tar::Builder append_dir_all {label} tree"),
            b.into_inner().unwrap(),
        ));
    }
    for format in ["pax", "gnu", "oldgnu"] {
        out.push((
            format!("gnu tar --format={format} full tree"),
            gnu_tar(&full, &[&format!("--format={format}")]),
        ));
    }
    for format in ["pax", "gnu", "ustar"] {
        out.push((
            format!("gnu tar --format={format} portable tree"),
            gnu_tar(&portable, &[&format!("--format={format}")]),
        ));
    }
    for format in ["pax", "gnu"] {
        out.push((
            format!("gnu tar --format={format} --sparse"),
            gnu_tar(&sparse, &[&format!("--format={format}"), "--sparse"]),
        ));
    }
    out
}

#[test]
fn the_tar_crate_and_our_reader_agree_except_where_documented() {
    proxsave_testkit::require_tools!("tar");
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let names: BTreeSet<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), inputs.len(), "input names are unique");
    for (name, _, _) in DIFFERENCES {
        assert!(
            names.contains(name),
            "DIFFERENCES names an unknown input {name:?}"
        );
    }
    let mut used = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, bytes) in &inputs {
        let o = ours(bytes);
        let t = theirs(bytes);
        let (fields, lines) = compare(&o, &t);
        let expected: BTreeSet<Field> = match DIFFERENCES.iter().find(|(n, _, _)| n == name) {
            Some((_, whys, fields)) => {
                used.extend(whys.iter().copied());
                fields.iter().copied().collect()
            }
            None => BTreeSet::new(),
        };
        if fields != expected {
            failures.push(format!(
                "{name}: expected differences in {expected:?}, found {fields:?}\n    {}",
                lines.join("\n    ")
            ));
        }
        // Real archives read to a clean end with both readers; some entries must be there.
        if !name.starts_with('c') && !name.starts_with('v') {
            assert!(!o.entries.is_empty(), "{name}: no entries");
            if !fields.contains(&End) {
                assert_eq!(o.end, End::Clean, "{name}");
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let all = [
        MissingEndMarker,
        DataAfterEnd,
        HeaderOnlyTypeWithSize,
        TrailingSlashIsDirectory,
        PaxOverGnuLongName,
        RepeatedPaxKey,
        MalformedPaxRecord,
        NewlineInPaxValue,
        SizeOutOfRange,
        ShortData,
        SignedChecksum,
        RecordLimits,
        EmptyLinkTarget,
        TimeOutOfRange,
        Sparse,
    ];
    for why in all {
        assert!(
            used.contains(&why),
            "{why:?} is documented but no input shows it"
        );
    }
}

#[test]
fn gnu_tar_extracts_what_tar_writer_wrote_to_the_nanosecond() {
    proxsave_testkit::require_tools!("tar");
    let dir = tempfile::tempdir().unwrap();
    let full = tree(dir.path(), false);
    let mut items = Vec::new();
    walk(&full, Path::new(""), &mut items);
    let bytes = tar_writer(&items, true);
    let archive = dir.path().join("safety.tar");
    fs::write(&archive, &bytes).unwrap();
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    let out = Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(&archive)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The only remark: the file dated before 1970.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        assert!(
            line.contains("before-epoch: implausibly old time stamp"),
            "{stderr}"
        );
    }
    for (h, data) in &items {
        let p = x.join(std::ffi::OsStr::from_bytes(&h.path));
        let m = fs::symlink_metadata(&p).unwrap();
        let what = show(&h.path);
        match h.kind {
            WriteKind::File => {
                assert_eq!(&fs::read(&p).unwrap(), data, "{what}");
                assert_eq!(
                    (m.mtime(), m.mtime_nsec() as u32),
                    (h.mtime.secs, h.mtime.nanos),
                    "{what}"
                );
            }
            WriteKind::Symlink => {
                assert_eq!(
                    fs::read_link(&p).unwrap().as_os_str().as_bytes(),
                    h.link.as_deref().unwrap(),
                    "{what}"
                );
            }
            WriteKind::Directory => assert!(m.is_dir(), "{what}"),
        }
        assert_eq!(m.permissions().mode() & 0o7777, h.mode, "{what}");
        if is_root() {
            assert_eq!(
                (u64::from(m.uid()), u64::from(m.gid())),
                (h.uid, h.gid),
                "{what}"
            );
        }
    }
}
