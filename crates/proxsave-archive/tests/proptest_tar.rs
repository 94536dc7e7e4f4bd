//! Property tests of the tar reader (and of our tar writer), issue 7 point 5.
//!
//! - Entries written with our [`TarWriter`] and with the `tar` crate (ustar and GNU headers,
//!   GNU long names and long links, PAX `path`/`linkpath`/`size`/`mtime`/`uid`/`gid` records,
//!   base-256 and 8-digit octal ids, hard links, devices) read back with the headers and data
//!   that were written.
//! - Any single-byte corruption of a header block outside its checksum field, and any change
//!   of the stored checksum value, is reported as a bad header at that block.
//! - Arbitrary bytes, valid archives with mutated header fields (checksum fixed up, so the
//!   mutation reaches the field parsers) and truncated archives never panic or loop: the reader
//!   returns entries or an error; a truncated archive is always an error.

use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proxsave_archive::entry::{EntryHeader, EntryKind, Timestamp};
use proxsave_archive::tar::{BLOCK, TarError, TarReader};
use proxsave_archive::write::{TarWriter, WriteHeader, WriteKind};

/// The team's rule is bounded, seeded randomness: a fixed seed (unless `PROPTEST_RNG_SEED`
/// asks for another, to explore), and no regression files (each bug these tests found has a
/// unit test of its own).
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if matches!(c.rng_seed, proptest::test_runner::RngSeed::Random) {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x7072_6f78_7361_7665);
    }
    c.failure_persistence = None;
    c
}

// ------------------------------------------------------------------------------------------------
// What the reader yields, minus the offset
// ------------------------------------------------------------------------------------------------

/// One entry as a user of the reader sees it: every header field (but the block offset) and
/// the data.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    raw_path: Vec<u8>,
    kind: EntryKind,
    link_target: Option<Vec<u8>>,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: Option<String>,
    gname: Option<String>,
    size: u64,
    mtime: Timestamp,
    atime: Option<Timestamp>,
    device: Option<(u32, u32)>,
    has_xattrs: bool,
    data: Vec<u8>,
}

impl Seen {
    fn new(h: EntryHeader, data: Vec<u8>) -> Seen {
        Seen {
            raw_path: h.raw_path,
            kind: h.kind,
            link_target: h.link_target,
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            uname: h.uname,
            gname: h.gname,
            size: h.size,
            mtime: h.mtime,
            atime: h.atime,
            device: h.device,
            has_xattrs: h.has_xattrs,
            data,
        }
    }
}

#[derive(Debug)]
enum ReadFail {
    Header(TarError),
    Data(io::Error),
    Finish(TarError),
}

impl std::fmt::Display for ReadFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFail::Header(e) => write!(f, "next entry: {e}"),
            ReadFail::Data(e) => write!(f, "entry data: {e}"),
            ReadFail::Finish(e) => write!(f, "end of archive: {e}"),
        }
    }
}

/// Reads a whole archive (entries, data, end check). Every `next_entry` must consume at least
/// one block, so the number of calls is bounded by the input size: more is an endless loop.
fn read_all(bytes: &[u8]) -> Result<Vec<Seen>, ReadFail> {
    let mut r = TarReader::new(bytes);
    let mut out = Vec::new();
    let mut last_offset = None;
    let max_calls = bytes.len() / BLOCK + 2;
    for _ in 0..max_calls {
        match r.next_entry().map_err(ReadFail::Header)? {
            None => {
                r.finish().map_err(ReadFail::Finish)?;
                return Ok(out);
            }
            Some(h) => {
                assert_eq!(
                    h.offset % BLOCK as u64,
                    0,
                    "header offset not block-aligned"
                );
                assert!(
                    last_offset.is_none_or(|o| h.offset > o),
                    "header offsets must increase"
                );
                last_offset = Some(h.offset);
                let mut data = Vec::new();
                r.read_to_end(&mut data).map_err(ReadFail::Data)?;
                assert!(
                    data.len() as u64 <= h.size,
                    "more data than the header declares"
                );
                out.push(Seen::new(h, data));
            }
        }
    }
    panic!(
        "the reader did not reach an end after {max_calls} entries of a {}-byte input",
        bytes.len()
    );
}

fn read_ok(bytes: &[u8]) -> Result<Vec<Seen>, TestCaseError> {
    read_all(bytes).map_err(|e| TestCaseError::fail(format!("reading failed: {e}")))
}

// ------------------------------------------------------------------------------------------------
// Generators
// ------------------------------------------------------------------------------------------------

fn timestamp() -> impl Strategy<Value = Timestamp> {
    let secs = prop_oneof![
        4 => 0i64..2_000_000_000,
        // Around the largest ustar mtime (11 octal digits).
        1 => 0o77777777777i64 - 3..0o77777777777i64 + 3,
        1 => -100_000i64..0,
        1 => any::<i64>(),
    ];
    let nanos = prop_oneof![Just(0u32), 0u32..1_000_000_000];
    (secs, nanos).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..70_000,
        // Around the largest ustar id (7 octal digits) and past 8 octal digits.
        1 => 0o7777777u64 - 2..0o7777777u64 + 3,
        1 => 0o77777777u64 - 2..0o77777777u64 + 3,
        1 => 0u64..u64::from(u32::MAX),
        1 => any::<u64>(),
    ]
}

fn owner_name() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z_][a-z0-9_-]{0,30}")
}

/// A member name component for our writer, which stores names as given: any bytes but `/`
/// and NUL, sometimes long or non-UTF-8.
fn raw_component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-zA-Z0-9_.-]{1,16}".prop_map(String::into_bytes),
        2 => "[a-z]{60,140}".prop_map(String::into_bytes),
        2 => vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..24),
        1 => "[é☃ü中 ]{1,6}".prop_map(String::into_bytes),
    ]
}

fn raw_path() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec(raw_component(), 1..5)).prop_map(|(dotted, comps)| {
        let mut p = if dotted { b"./".to_vec() } else { Vec::new() };
        p.extend(comps.join(&b'/'));
        p
    })
}

#[derive(Clone, Debug)]
enum OurBody {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
}

#[derive(Clone, Debug)]
struct OurSpec {
    path: Vec<u8>,
    body: OurBody,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: Option<String>,
    gname: Option<String>,
    mtime: Timestamp,
    atime: Option<Timestamp>,
}

fn our_spec() -> impl Strategy<Value = OurSpec> {
    let body = prop_oneof![
        3 => vec(any::<u8>(), 0..1500).prop_map(OurBody::File),
        1 => Just(OurBody::Dir),
        1 => vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 1..200).prop_map(OurBody::Symlink),
    ];
    (
        raw_path(),
        body,
        any::<u32>(),
        id(),
        id(),
        owner_name(),
        owner_name(),
        timestamp(),
        prop::option::of(timestamp()),
    )
        .prop_map(
            |(path, body, mode, uid, gid, uname, gname, mtime, atime)| OurSpec {
                path,
                body,
                mode,
                uid,
                gid,
                uname,
                gname,
                mtime,
                atime,
            },
        )
}

fn write_ours(specs: &[OurSpec], subsecond: bool) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new(), subsecond);
    for s in specs {
        let (kind, link, data): (WriteKind, Option<Vec<u8>>, &[u8]) = match &s.body {
            OurBody::File(d) => (WriteKind::File, None, d),
            OurBody::Dir => (WriteKind::Directory, None, b""),
            OurBody::Symlink(t) => (WriteKind::Symlink, Some(t.clone()), b""),
        };
        let header = WriteHeader {
            path: s.path.clone(),
            kind,
            link,
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            uname: s.uname.clone(),
            gname: s.gname.clone(),
            size: data.len() as u64,
            mtime: s.mtime,
            atime: s.atime,
        };
        w.append(&header, &mut &data[..]).expect("writing to a Vec");
    }
    w.finish().expect("writing to a Vec")
}

/// What the reader must give back for an entry written by our writer.
fn expected_ours(s: &OurSpec, subsecond: bool) -> Seen {
    let (kind, link_target, data) = match &s.body {
        OurBody::File(d) => (EntryKind::File, None, d.clone()),
        OurBody::Dir => (EntryKind::Directory, None, Vec::new()),
        OurBody::Symlink(t) => (EntryKind::Symlink, Some(t.clone()), Vec::new()),
    };
    Seen {
        raw_path: s.path.clone(),
        kind,
        link_target,
        mode: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        uname: s.uname.clone().filter(|n| !n.is_empty()),
        gname: s.gname.clone().filter(|n| !n.is_empty()),
        size: data.len() as u64,
        // Without sub-second times the writer promises whole seconds.
        mtime: if subsecond {
            s.mtime
        } else {
            Timestamp::from_secs(s.mtime.secs)
        },
        atime: if subsecond { s.atime } else { None },
        device: None,
        has_xattrs: false,
        data,
    }
}

// --- the `tar` crate as a second writer ---------------------------------------------------------

/// A clean relative path component as the `tar` crate accepts it (no `.`/`..`, no `/`).
fn clean_component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => "[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,15}".prop_map(String::into_bytes),
        2 => "[a-z]{50,150}".prop_map(String::into_bytes),
        1 => "[é☃ü中]{1,6}".prop_map(String::into_bytes),
        1 => vec(128u8..=255, 1..8),
    ]
}

/// Starts with an ASCII component: the `tar` crate refuses a long name whose first 100 bytes
/// hold no valid UTF-8 (it needs some text for the header that precedes a GNU long name).
fn clean_path() -> impl Strategy<Value = Vec<u8>> {
    ("[a-z0-9_-]{1,8}", vec(clean_component(), 0..4)).prop_map(|(first, rest)| {
        let mut comps = vec![first.into_bytes()];
        comps.extend(rest);
        comps.join(&b'/')
    })
}

/// A symlink target: relative (also with `..`) or absolute.
fn link_target() -> impl Strategy<Value = Vec<u8>> {
    let comp = prop_oneof![4 => clean_component(), 1 => Just(b"..".to_vec())];
    (prop::sample::select(vec!["", "/", "./"]), vec(comp, 1..5)).prop_map(|(lead, comps)| {
        let mut t = lead.as_bytes().to_vec();
        t.extend(comps.join(&b'/'));
        t
    })
}

#[derive(Clone, Debug)]
enum CrateBody {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Clone, Debug)]
struct CrateSpec {
    gnu: bool,
    path: Vec<u8>,
    body: CrateBody,
    mode: u32,
    /// Below 2^56: the `tar` crate's base-256 writer keeps 7 bytes of value.
    uid: u64,
    gid: u64,
    /// Write the uid as 8 octal digits without a terminator (as some tars do).
    uid_octal8: bool,
    uname: String,
    gname: String,
    mtime: u64,
    pax_path: Option<Vec<u8>>,
    pax_linkpath: Option<Vec<u8>>,
    /// The time and whether to write its fraction with trailing zeros.
    pax_mtime: Option<(Timestamp, bool)>,
    /// Put the real size in a PAX record and this (wrong) value in the ustar field.
    pax_size_lie: Option<u64>,
    pax_uid: Option<u64>,
    pax_gid: Option<u64>,
}

fn crate_spec() -> impl Strategy<Value = CrateSpec> {
    let device = (0u32..0o7777777, 0u32..0o7777777);
    let body = prop_oneof![
        4 => vec(any::<u8>(), 0..1500).prop_map(CrateBody::File),
        1 => Just(CrateBody::Dir),
        2 => link_target().prop_map(CrateBody::Symlink),
        1 => clean_path().prop_map(CrateBody::Hardlink),
        1 => device.clone().prop_map(|(a, b)| CrateBody::Char(a, b)),
        1 => device.prop_map(|(a, b)| CrateBody::Block(a, b)),
        1 => Just(CrateBody::Fifo),
    ];
    let crate_id = prop_oneof![
        3 => 0u64..70_000,
        1 => 0o7777777u64 - 2..0o7777777u64 + 3,
        1 => 0o77777777u64 - 2..0o77777777u64 + 3,
        1 => 0u64..(1u64 << 56),
    ];
    let names = (
        "[a-z_][a-z0-9_-]{0,31}|",
        "[a-z_][a-z0-9_-]{0,31}|",
        prop_oneof![0u64..2_000_000_000, 0u64..(1u64 << 40)],
    );
    let pax = (
        // Not ending in `/`: a regular file named `x/` is an old-style directory, which
        // the reader reads without data (and the policy refuses when it has a size).
        prop::option::weighted(
            0.2,
            vec(any::<u8>(), 1..300).prop_filter("no trailing /", |p| !p.ends_with(b"/")),
        ),
        prop::option::weighted(0.2, vec(any::<u8>(), 1..300)),
        prop::option::weighted(0.3, (timestamp(), any::<bool>())),
        prop::option::weighted(0.2, 0u64..5000),
        prop::option::weighted(0.2, any::<u64>()),
        prop::option::weighted(0.2, any::<u64>()),
    );
    (
        any::<bool>(),
        clean_path(),
        body,
        0u32..=0o7777,
        (crate_id.clone(), crate_id, any::<bool>()),
        names,
        pax,
    )
        .prop_map(
            |(gnu, path, body, mode, (uid, gid, uid_octal8), (uname, gname, mtime), pax)| {
                let (pax_path, pax_linkpath, pax_mtime, pax_size_lie, pax_uid, pax_gid) = pax;
                CrateSpec {
                    gnu,
                    path,
                    body,
                    mode,
                    uid,
                    gid,
                    uid_octal8,
                    uname,
                    gname,
                    mtime,
                    pax_path,
                    pax_linkpath,
                    pax_mtime,
                    pax_size_lie,
                    pax_uid,
                    pax_gid,
                }
            },
        )
}

/// PAX time text: the canonical form, or (for times after the epoch) all nine fraction
/// digits, trailing zeros included.
fn pax_time_text(t: Timestamp, padded: bool) -> String {
    if padded && t.secs >= 0 {
        format!("{}.{:09}", t.secs, t.nanos)
    } else {
        t.to_pax()
    }
}

fn write_with_tar_crate(specs: &[CrateSpec]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for s in specs {
        let data: &[u8] = match &s.body {
            CrateBody::File(d) => d,
            _ => b"",
        };
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(p) = &s.pax_path {
            pax.push(("path", p.clone()));
        }
        if let Some(l) = &s.pax_linkpath {
            pax.push(("linkpath", l.clone()));
        }
        if let Some((t, padded)) = s.pax_mtime {
            pax.push(("mtime", pax_time_text(t, padded).into_bytes()));
        }
        if s.pax_size_lie.is_some() {
            pax.push(("size", data.len().to_string().into_bytes()));
        }
        if let Some(u) = s.pax_uid {
            pax.push(("uid", u.to_string().into_bytes()));
        }
        if let Some(g) = s.pax_gid {
            pax.push(("gid", g.to_string().into_bytes()));
        }
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (*k, &v[..])))
                .expect("PAX records");
        }
        let mut h = if s.gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(match s.body {
            CrateBody::File(_) => tar::EntryType::Regular,
            CrateBody::Dir => tar::EntryType::Directory,
            CrateBody::Symlink(_) => tar::EntryType::Symlink,
            CrateBody::Hardlink(_) => tar::EntryType::Link,
            CrateBody::Char(..) => tar::EntryType::Char,
            CrateBody::Block(..) => tar::EntryType::Block,
            CrateBody::Fifo => tar::EntryType::Fifo,
        });
        h.set_mode(s.mode);
        h.set_uid(s.uid);
        if s.uid_octal8 && s.uid <= 0o77777777 {
            h.as_old_mut()
                .uid
                .copy_from_slice(format!("{:08o}", s.uid).as_bytes());
        }
        h.set_gid(s.gid);
        h.set_username(&s.uname).expect("uname fits");
        h.set_groupname(&s.gname).expect("gname fits");
        h.set_mtime(s.mtime);
        h.set_size(s.pax_size_lie.unwrap_or(data.len() as u64));
        if let CrateBody::Char(major, minor) | CrateBody::Block(major, minor) = s.body {
            h.set_device_major(major).expect("device fits");
            h.set_device_minor(minor).expect("device fits");
        }
        // With a PAX path or linkpath the header fields hold decoys, which must lose.
        let path = if s.pax_path.is_some() {
            [b"decoy/".as_slice(), &s.path].concat()
        } else {
            s.path.clone()
        };
        let path = Path::new(std::ffi::OsStr::from_bytes(&path));
        match &s.body {
            CrateBody::Symlink(t) | CrateBody::Hardlink(t) => {
                let target = if s.pax_linkpath.is_some() {
                    b"decoy-target".to_vec()
                } else {
                    t.clone()
                };
                b.append_link(
                    &mut h,
                    path,
                    Path::new(std::ffi::OsStr::from_bytes(&target)),
                )
                .expect("link entry");
            }
            _ => b.append_data(&mut h, path, data).expect("entry"),
        }
    }
    b.into_inner().expect("finishing the archive")
}

fn expected_crate(s: &CrateSpec) -> Seen {
    let (kind, link, device, data) = match &s.body {
        CrateBody::File(d) => (EntryKind::File, None, None, d.clone()),
        CrateBody::Dir => (EntryKind::Directory, None, None, Vec::new()),
        CrateBody::Symlink(t) => (EntryKind::Symlink, Some(t.clone()), None, Vec::new()),
        CrateBody::Hardlink(t) => (EntryKind::Hardlink, Some(t.clone()), None, Vec::new()),
        CrateBody::Char(a, b) => (EntryKind::CharDevice, None, Some((*a, *b)), Vec::new()),
        CrateBody::Block(a, b) => (EntryKind::BlockDevice, None, Some((*a, *b)), Vec::new()),
        CrateBody::Fifo => (EntryKind::Fifo, None, None, Vec::new()),
    };
    let link_target = link.map(|t| s.pax_linkpath.clone().unwrap_or(t));
    let mut raw_path = s.pax_path.clone().unwrap_or_else(|| s.path.clone());
    if kind == EntryKind::Directory {
        while raw_path.len() > 1 && raw_path.ends_with(b"/") {
            raw_path.pop();
        }
    }
    let size = if s.pax_size_lie.is_some() || matches!(s.body, CrateBody::File(_)) {
        data.len() as u64
    } else {
        0
    };
    Seen {
        raw_path,
        kind,
        link_target,
        mode: s.mode,
        uid: s.pax_uid.unwrap_or(s.uid),
        gid: s.pax_gid.unwrap_or(s.gid),
        uname: Some(s.uname.clone()).filter(|n| !n.is_empty()),
        gname: Some(s.gname.clone()).filter(|n| !n.is_empty()),
        size,
        mtime: s
            .pax_mtime
            .map_or(Timestamp::from_secs(s.mtime as i64), |(t, _)| t),
        atime: None,
        device,
        has_xattrs: false,
        data,
    }
}

// ------------------------------------------------------------------------------------------------
// An independent walker over well-formed archives, to find header blocks
// ------------------------------------------------------------------------------------------------

fn octal_or_base256(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |acc, &b| {
                (acc << 8) | u64::from(b)
            });
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b.is_ascii_digit())
        .fold(0, |acc, &b| acc * 8 + u64::from(b - b'0'))
}

fn pax_size_record(body: &[u8]) -> Option<u64> {
    let mut rest = body;
    let mut size = None;
    while let Some(space) = rest.iter().position(|&b| b == b' ') {
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let record = &rest[space + 1..len - 1];
        if let Some(v) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(v).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    size
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Offsets of all header blocks (extension headers included) up to the end marker, and the
/// offset of the end marker.
fn header_blocks(bytes: &[u8]) -> (Vec<usize>, usize) {
    let mut headers = Vec::new();
    let mut pos = 0;
    let mut pax_size = None;
    loop {
        let block = &bytes[pos..pos + BLOCK];
        if block.iter().all(|&b| b == 0) {
            return (headers, pos);
        }
        headers.push(pos);
        let flag = block[156];
        let mut size = octal_or_base256(&block[124..136]);
        match flag {
            b'x' => pax_size = pax_size_record(&bytes[pos + BLOCK..pos + BLOCK + size as usize]),
            b'L' | b'K' => {}
            _ => {
                if let Some(s) = pax_size.take() {
                    size = s;
                }
                if matches!(flag, b'1'..=b'6') {
                    size = 0;
                }
            }
        }
        pos += BLOCK + round_up(size) as usize;
    }
}

fn fix_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// An archive from either writer, with its entries as the reader must yield them.
fn any_archive() -> impl Strategy<Value = (Vec<u8>, Vec<Seen>)> {
    prop_oneof![
        (vec(our_spec(), 1..5), any::<bool>()).prop_map(|(specs, subsecond)| {
            let expected = specs.iter().map(|s| expected_ours(s, subsecond)).collect();
            (write_ours(&specs, subsecond), expected)
        }),
        vec(crate_spec(), 1..5).prop_map(|specs| {
            let expected = specs.iter().map(expected_crate).collect();
            (write_with_tar_crate(&specs), expected)
        }),
    ]
}

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// What our writer writes, the reader gives back: names of any bytes and length, modes,
    /// ids of any size, owner names, sub-second and pre-1970 times, symlinks, data.
    #[test]
    fn our_writer_round_trips(specs in vec(our_spec(), 0..6), subsecond in any::<bool>()) {
        let bytes = write_ours(&specs, subsecond);
        prop_assert_eq!(bytes.len() % BLOCK, 0);
        let seen = read_ok(&bytes)?;
        let expected: Vec<Seen> = specs.iter().map(|s| expected_ours(s, subsecond)).collect();
        prop_assert_eq!(seen, expected);
    }

    /// What the `tar` crate writes (ustar and GNU headers, GNU long names and links, PAX
    /// records that override decoy header fields, base-256 and 8-digit octal ids, hard links,
    /// devices, FIFOs), the reader gives back.
    #[test]
    fn tar_crate_archives_read_back(specs in vec(crate_spec(), 0..6)) {
        let bytes = write_with_tar_crate(&specs);
        let seen = read_ok(&bytes)?;
        let expected: Vec<Seen> = specs.iter().map(expected_crate).collect();
        prop_assert_eq!(seen, expected);
    }

    /// Any change to one byte of a header block outside the checksum field is reported as a
    /// bad header at exactly that block; the entries before it read normally.
    #[test]
    fn header_corruption_is_detected(
        (bytes, expected) in any_archive(),
        pick in any::<prop::sample::Index>(),
        at in (0usize..BLOCK - 8).prop_map(|i| if i >= 148 { i + 8 } else { i }),
        flip in 1u8..=255,
    ) {
        let (headers, _) = header_blocks(&bytes);
        let block = headers[pick.index(headers.len())];
        let mut bad = bytes.clone();
        bad[block + at] ^= flip;
        check_bad_header_at(&bad, block, &expected)?;
    }

    /// A stored checksum that differs from the block's sum is refused.
    #[test]
    fn wrong_checksum_value_is_detected(
        (bytes, expected) in any_archive(),
        pick in any::<prop::sample::Index>(),
        delta in 1u32..0o777777,
    ) {
        let (headers, _) = header_blocks(&bytes);
        let block = headers[pick.index(headers.len())];
        let mut bad = bytes.clone();
        let stored = octal_or_base256(&bad[block + 148..block + 156]);
        let wrong = (stored + u64::from(delta)) % 0o1000000;
        // The reader also accepts the historical signed sum; stay clear of it.
        let signed: i64 = bad[block..block + BLOCK]
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { i64::from(b as i8) })
            .sum();
        prop_assume!(wrong as i64 != signed);
        bad[block + 148..block + 156].copy_from_slice(format!("{wrong:06o}\0 ").as_bytes());
        check_bad_header_at(&bad, block, &expected)?;
    }

    /// Header fields set to anything (with the checksum fixed, so the field parsers see the
    /// garbage), and random bytes anywhere: entries or an error, never a panic or a loop.
    #[test]
    fn mutated_archives_never_panic(
        (bytes, _) in any_archive(),
        header_edits in vec((any::<prop::sample::Index>(), 0usize..BLOCK, any::<u8>()), 1..6),
        anywhere in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let (headers, _) = header_blocks(&bytes);
        let mut bad = bytes.clone();
        for (pick, at, value) in header_edits {
            let block = headers[pick.index(headers.len())];
            bad[block + at] = value;
            fix_checksum(&mut bad[block..block + BLOCK]);
        }
        for (pick, value) in anywhere {
            let i = pick.index(bad.len());
            bad[i] = value;
        }
        let _ = read_all(&bad);
    }

    /// Arbitrary bytes (and arbitrary bytes behind a valid header) never panic or loop.
    #[test]
    fn arbitrary_bytes_never_panic(
        prefix in prop::option::of(any_archive()),
        garbage in vec(any::<u8>(), 0..3000),
    ) {
        let mut input = match prefix {
            Some((bytes, _)) => {
                let (headers, _) = header_blocks(&bytes);
                bytes[..headers[0] + BLOCK].to_vec()
            }
            None => Vec::new(),
        };
        input.extend_from_slice(&garbage);
        let _ = read_all(&input);
    }

    /// An archive cut anywhere before the end of its first end-of-archive block is an error
    /// (truncated data or header, or a missing end marker); cut right after that block it is
    /// accepted (GNU tar's lone zero block).
    #[test]
    fn truncation_is_an_error((bytes, expected) in any_archive(), cut in any::<prop::sample::Index>()) {
        let (_, end) = header_blocks(&bytes);
        let cut = cut.index(end + BLOCK);
        prop_assert!(read_all(&bytes[..cut]).is_err(), "cut at {} of {} accepted", cut, bytes.len());
        let lone = read_ok(&bytes[..end + BLOCK])?;
        prop_assert_eq!(lone, expected);
    }

    /// Zero padding after the end marker is accepted; anything else is trailing data.
    #[test]
    fn trailing_bytes_after_the_end(
        (bytes, _) in any_archive(),
        zeros in 0usize..3000,
        junk in vec(1u8..=255, 1..4),
    ) {
        let mut padded = bytes.clone();
        padded.extend(std::iter::repeat_n(0u8, zeros));
        read_ok(&padded)?;
        padded.extend_from_slice(&junk);
        let err = read_all(&padded);
        prop_assert!(
            matches!(
                err,
                Err(ReadFail::Finish(TarError::TrailingData { .. }))
                    | Err(ReadFail::Header(TarError::TrailingData { .. }))
            ),
            "{:?}",
            err
        );
    }
}

/// Reading `bad` yields the entries before `block` and then a bad-header error for `block`.
fn check_bad_header_at(bad: &[u8], block: usize, expected: &[Seen]) -> Result<(), TestCaseError> {
    let mut r = TarReader::new(bad);
    let mut n = 0;
    loop {
        match r.next_entry() {
            Ok(Some(h)) => {
                prop_assert!(
                    (h.offset as usize) < block,
                    "entry at {} read past the corrupt block at {}",
                    h.offset,
                    block
                );
                let mut data = Vec::new();
                r.read_to_end(&mut data)
                    .map_err(|e| TestCaseError::fail(format!("data before the corruption: {e}")))?;
                prop_assert_eq!(&Seen::new(h, data), &expected[n]);
                n += 1;
            }
            Ok(None) => return Err(TestCaseError::fail("corruption not detected")),
            Err(TarError::BadHeader { offset, .. }) => {
                prop_assert_eq!(offset, block as u64);
                return Ok(());
            }
            Err(other) => {
                return Err(TestCaseError::fail(format!(
                    "expected a bad header at {block}, got {other}"
                )));
            }
        }
    }
}
