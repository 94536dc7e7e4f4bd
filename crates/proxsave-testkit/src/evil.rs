//! A raw tar block writer for hostile archives.
//!
//! Tar libraries refuse to write what an attacker would: `..` names, bad checksums, PAX
//! records that contradict the ustar fields, hard links with data, device entries, global
//! headers, GNU sparse maps, truncated streams. [`EvilTar`] writes 512-byte blocks exactly as
//! told, so each malicious case of the security tests is built in code, byte by byte.
//!
//! ```
//! use proxsave_testkit::evil::{EvilTar, Hdr};
//! let tar = EvilTar::new()
//!     .pax(&[("path", b"../etc/passwd")])
//!     .file("innocent", b"root::0:0::/root:/bin/sh\n")
//!     .end()
//!     .into_bytes();
//! assert_eq!(tar.len() % 512, 0);
//! ```

/// The tar block size.
pub const BLOCK: usize = 512;

/// The magic of a header block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// POSIX ustar (`ustar\0` `00`), with the prefix field.
    Ustar,
    /// Old GNU (`ustar  \0`), with sparse fields.
    Gnu,
    /// Pre-POSIX v7: no magic at all.
    V7,
}

/// What to store in the checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The correct (unsigned) sum.
    Good,
    /// The correct sum plus this delta (a corrupt header).
    Off(i64),
}

/// One header block, field by field. Every field is written verbatim (truncated to its
/// width); numbers that do not fit in octal are written base-256 as GNU tar does.
#[derive(Clone, Debug)]
pub struct Hdr {
    /// Name field (100 bytes).
    pub name: Vec<u8>,
    /// Mode.
    pub mode: u64,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// The size field (what the ustar header declares, whatever data follows).
    pub size: u64,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Type flag byte.
    pub typeflag: u8,
    /// Link name field (100 bytes).
    pub linkname: Vec<u8>,
    /// Magic.
    pub magic: Magic,
    /// Owner name.
    pub uname: Vec<u8>,
    /// Group name.
    pub gname: Vec<u8>,
    /// Device major.
    pub devmajor: u64,
    /// Device minor.
    pub devminor: u64,
    /// ustar prefix field (155 bytes; only meaningful with [`Magic::Ustar`]).
    pub prefix: Vec<u8>,
    /// Checksum.
    pub checksum: Checksum,
    /// Raw bytes poked into the block after everything else, `(offset, bytes)`.
    pub poke: Vec<(usize, Vec<u8>)>,
}

impl Hdr {
    /// A header of type `typeflag` for `name`, mode 0644, owner 0:0, mtime 1 700 000 000.
    pub fn new(name: impl AsRef<[u8]>, typeflag: u8) -> Hdr {
        Hdr {
            name: name.as_ref().to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_700_000_000,
            typeflag,
            linkname: Vec::new(),
            magic: Magic::Ustar,
            uname: b"root".to_vec(),
            gname: b"root".to_vec(),
            devmajor: 0,
            devminor: 0,
            prefix: Vec::new(),
            checksum: Checksum::Good,
            poke: Vec::new(),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: u64) -> Hdr {
        self.mode = mode;
        self
    }

    /// Sets the declared size.
    pub fn size(mut self, size: u64) -> Hdr {
        self.size = size;
        self
    }

    /// Sets the link name.
    pub fn link(mut self, link: impl AsRef<[u8]>) -> Hdr {
        self.linkname = link.as_ref().to_vec();
        self
    }

    /// Sets owner and group ids.
    pub fn owner(mut self, uid: u64, gid: u64) -> Hdr {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets the modification time.
    pub fn mtime(mut self, mtime: u64) -> Hdr {
        self.mtime = mtime;
        self
    }

    /// Sets the device numbers.
    pub fn device(mut self, major: u64, minor: u64) -> Hdr {
        self.devmajor = major;
        self.devminor = minor;
        self
    }

    /// Sets the magic.
    pub fn magic(mut self, magic: Magic) -> Hdr {
        self.magic = magic;
        self
    }

    /// Sets the ustar prefix.
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> Hdr {
        self.prefix = prefix.as_ref().to_vec();
        self
    }

    /// Sets the checksum.
    pub fn checksum(mut self, checksum: Checksum) -> Hdr {
        self.checksum = checksum;
        self
    }

    /// Overwrites raw bytes of the block at `offset` (before the checksum is computed).
    pub fn poke(mut self, offset: usize, bytes: impl AsRef<[u8]>) -> Hdr {
        self.poke.push((offset, bytes.as_ref().to_vec()));
        self
    }

    /// The 512-byte block.
    pub fn block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put(&mut b[0..100], &self.name);
        num(&mut b[100..108], self.mode);
        num(&mut b[108..116], self.uid);
        num(&mut b[116..124], self.gid);
        num(&mut b[124..136], self.size);
        num(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        put(&mut b[157..257], &self.linkname);
        match self.magic {
            Magic::Ustar => {
                b[257..263].copy_from_slice(b"ustar\0");
                b[263..265].copy_from_slice(b"00");
            }
            Magic::Gnu => b[257..265].copy_from_slice(b"ustar  \0"),
            Magic::V7 => {}
        }
        if self.magic != Magic::V7 {
            put(&mut b[265..297], &self.uname);
            put(&mut b[297..329], &self.gname);
            num(&mut b[329..337], self.devmajor);
            num(&mut b[337..345], self.devminor);
        }
        if self.magic == Magic::Ustar {
            put(&mut b[345..500], &self.prefix);
        }
        for (offset, bytes) in &self.poke {
            b[*offset..*offset + bytes.len()].copy_from_slice(bytes);
        }
        b[148..156].fill(b' ');
        let sum: i64 = b.iter().map(|&x| i64::from(x)).sum();
        let stored = match self.checksum {
            Checksum::Good => sum,
            Checksum::Off(delta) => sum + delta,
        };
        let text = format!("{:06o}\0 ", stored.max(0));
        b[148..156].copy_from_slice(text.as_bytes());
        b
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Octal with a NUL terminator when it fits, else GNU base-256.
fn num(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    if text.len() <= width {
        field[..width].copy_from_slice(text.as_bytes());
        field[width] = 0;
        return;
    }
    field.fill(0);
    field[0] = 0x80;
    let bytes = value.to_be_bytes();
    let n = bytes.len().min(field.len() - 1);
    let start = field.len() - n;
    field[start..].copy_from_slice(&bytes[bytes.len() - n..]);
}

/// One PAX record, `"<len> <key>=<value>\n"` with the self-counting length.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = 1 + key.len() + 1 + value.len() + 1;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut out = len.to_string().into_bytes();
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// The zero padding that completes `len` bytes to a whole block.
pub fn padding(len: usize) -> usize {
    (BLOCK - len % BLOCK) % BLOCK
}

/// A tar stream under construction; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct EvilTar {
    out: Vec<u8>,
}

impl EvilTar {
    /// An empty stream.
    pub fn new() -> EvilTar {
        EvilTar::default()
    }

    /// One header block, exactly as given.
    pub fn header(mut self, h: Hdr) -> EvilTar {
        self.out.extend_from_slice(&h.block());
        self
    }

    /// Data followed by zero padding to a whole block.
    pub fn data(mut self, data: &[u8]) -> EvilTar {
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len() + padding(data.len()), 0);
        self
    }

    /// Raw bytes, no padding.
    pub fn raw(mut self, bytes: &[u8]) -> EvilTar {
        self.out.extend_from_slice(bytes);
        self
    }

    /// A header plus its data, with the declared size equal to the data length.
    pub fn entry(self, h: Hdr, data: &[u8]) -> EvilTar {
        self.header(h.size(data.len() as u64)).data(data)
    }

    /// A regular file (type `0`, mode 0644).
    pub fn file(self, name: impl AsRef<[u8]>, data: &[u8]) -> EvilTar {
        self.entry(Hdr::new(name, b'0'), data)
    }

    /// A regular file with a mode.
    pub fn file_mode(self, name: impl AsRef<[u8]>, data: &[u8], mode: u64) -> EvilTar {
        self.entry(Hdr::new(name, b'0').mode(mode), data)
    }

    /// A directory (type `5`).
    pub fn dir(self, name: impl AsRef<[u8]>, mode: u64) -> EvilTar {
        self.header(Hdr::new(name, b'5').mode(mode))
    }

    /// A symbolic link (type `2`, mode 0777).
    pub fn symlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> EvilTar {
        self.header(Hdr::new(name, b'2').mode(0o777).link(target))
    }

    /// A hard link (type `1`).
    pub fn hardlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> EvilTar {
        self.header(Hdr::new(name, b'1').link(target))
    }

    /// A PAX extended header (`x`) with these records, applying to the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> EvilTar {
        self.pax_typed(b'x', records)
    }

    /// A PAX global header (`g`).
    pub fn global_pax(self, records: &[(&str, &[u8])]) -> EvilTar {
        self.pax_typed(b'g', records)
    }

    fn pax_typed(self, typeflag: u8, records: &[(&str, &[u8])]) -> EvilTar {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        self.entry(Hdr::new("./PaxHeaders/evil", typeflag), &body)
    }

    /// A GNU long name record (`L`, `././@LongLink`) for the next entry.
    pub fn gnu_long_name(self, name: &[u8]) -> EvilTar {
        let mut data = name.to_vec();
        data.push(0);
        self.entry(Hdr::new("././@LongLink", b'L').magic(Magic::Gnu), &data)
    }

    /// A GNU long link record (`K`) for the next entry.
    pub fn gnu_long_link(self, link: &[u8]) -> EvilTar {
        let mut data = link.to_vec();
        data.push(0);
        self.entry(Hdr::new("././@LongLink", b'K').magic(Magic::Gnu), &data)
    }

    /// The end-of-archive marker (two zero blocks).
    pub fn end(mut self) -> EvilTar {
        self.out.extend_from_slice(&[0u8; 2 * BLOCK]);
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The stream.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// An old-GNU sparse header (`S`) for `name`: `map` holds `(offset, numbytes)` pairs; the first
/// four go into the header, the rest into extension blocks of 21 pairs each. `stored` is the
/// size field (bytes of data that follow), `realsize` the claimed apparent size.
pub fn gnu_sparse(name: &[u8], map: &[(u64, u64)], stored: u64, realsize: u64) -> Vec<u8> {
    let mut h = Hdr::new(name, b'S').magic(Magic::Gnu).size(stored);
    let mut first = [0u8; 4 * 24];
    for (i, (off, len)) in map.iter().take(4).enumerate() {
        num(&mut first[i * 24..i * 24 + 12], *off);
        num(&mut first[i * 24 + 12..i * 24 + 24], *len);
    }
    h = h.poke(386, first);
    let mut real = [0u8; 12];
    num(&mut real, realsize);
    h = h.poke(483, real);
    let rest: Vec<&(u64, u64)> = map.iter().skip(4).collect();
    if !rest.is_empty() {
        h = h.poke(482, [1u8]);
    }
    let mut out = h.block().to_vec();
    let chunks: Vec<&[&(u64, u64)]> = rest.chunks(21).collect();
    for (ci, chunk) in chunks.iter().enumerate() {
        let mut ext = [0u8; BLOCK];
        for (i, (off, len)) in chunk.iter().enumerate() {
            num(&mut ext[i * 24..i * 24 + 12], *off);
            num(&mut ext[i * 24 + 12..i * 24 + 24], *len);
        }
        ext[504] = u8::from(ci + 1 < chunks.len());
        out.extend_from_slice(&ext);
    }
    out
}

/// One archive of the malicious catalogue: a stable name and the tar bytes.
#[derive(Clone, Debug)]
pub struct CatalogueCase {
    /// Stable name (`cNN what`, the number of the catalogue entry it belongs to).
    pub name: &'static str,
    /// The uncompressed tar stream.
    pub tar: Vec<u8>,
}

/// Where the catalogue's links point outside a root (no such folder needs to exist).
pub const OUTSIDE: &str = "/tmp/proxsave-outside";

/// The malicious-archive catalogue as plain tar streams, every case of the security tests
/// (`extract_security.rs`, `tests/malicious.rs`) that is an archive on its own, plus the
/// reader-level abuses (checksums, sizes, records, ends). Used by the differential test that
/// runs the `tar` crate's reader and ours over the same bytes.
pub fn catalogue() -> Vec<CatalogueCase> {
    let passwd = format!("{OUTSIDE}/passwd");
    let mut out: Vec<CatalogueCase> = Vec::new();
    let mut add = |name: &'static str, tar: Vec<u8>| out.push(CatalogueCase { name, tar });

    // 1–8: path forms.
    add(
        "c01 traversal names",
        EvilTar::new()
            .file("etc/ok", b"ok\n")
            .file("../etc/passwd", b"pwned\n")
            .file("a/../../x", b"pwned\n")
            .file("./../x", b"pwned\n")
            .file("..", b"pwned\n")
            .dir("a/..", 0o777)
            .symlink("../lnk", "/")
            .hardlink("../hl", "etc/ok")
            .pax(&[("path", b"../../outside/pax")])
            .file("innocent-pax", b"pwned\n")
            .gnu_long_name(b"../../outside/longname")
            .file("innocent-long", b"pwned\n")
            .header(Hdr::new("outside/prefixed", b'0').prefix("../.."))
            .end()
            .into_bytes(),
    );
    add(
        "c02 absolute names",
        EvilTar::new()
            .file("/etc/shadow", b"shadow\n")
            .file("//etc/x", b"x\n")
            .file("///etc//./y", b"y\n")
            .file(&passwd, b"pwned\n")
            .file("/../x", b"pwned\n")
            .end()
            .into_bytes(),
    );
    add(
        "c03 trailing slash on a regular file header",
        EvilTar::new()
            .file("etc/x/", b"")
            .header(Hdr::new("etc/y/", 0).mode(0o750))
            .file("etc/x/inside", b"in\n")
            .end()
            .into_bytes(),
    );
    add(
        "c04 empty, dot and slash names",
        EvilTar::new()
            .file("", b"empty\n")
            .file(".", b"dot\n")
            .file("////", b"")
            .dir("./", 0o777)
            .dir("/", 0o777)
            .header(Hdr::new("./", b'5').mode(0o777).owner(4242, 4242).mtime(1))
            .file("etc/ok", b"ok\n")
            .end()
            .into_bytes(),
    );
    add(
        "c05 NUL in PAX records, control characters",
        EvilTar::new()
            .pax(&[("path", b"etc/a\0../../outside/passwd")])
            .file("etc/innocent", b"pwned\n")
            .pax(&[("linkpath", b"ok\0/../../outside")])
            .symlink("etc/nul-link", "ok")
            .file(
                "etc/log\n  refused ./etc/shadow: \x1b[31mforged\x1b[0m",
                b"ok\n",
            )
            .file("../\x1b[2Jevil\r\nline", b"pwned\n")
            .end()
            .into_bytes(),
    );
    add(
        "c05 newline inside a PAX path",
        EvilTar::new()
            .pax(&[("path", b"etc/new\nline"), ("mtime", b"1700000000.25")])
            .file("etc/innocent", b"x\n")
            .file("etc/after", b"after\n")
            .end()
            .into_bytes(),
    );
    let long = "a/".repeat(2100) + "f";
    add(
        "c06 over-long names and components",
        EvilTar::new()
            .gnu_long_name(long.as_bytes())
            .file("long-via-gnu", b"pwned\n")
            .pax(&[("path", format!("p/{long}").as_bytes())])
            .file("long-via-pax", b"pwned\n")
            .pax(&[("path", "c".repeat(256).as_bytes())])
            .file("component-256", b"pwned\n")
            .pax(&[("path", "c".repeat(255).as_bytes())])
            .file("ok-255", b"255\n")
            .end()
            .into_bytes(),
    );
    add(
        "c07 PAX records over ustar fields",
        EvilTar::new()
            .file("t", b"target\n")
            .pax(&[("path", b"../pax_escape")])
            .file("safe/ustar_name", b"pwned\n")
            .pax(&[("path", b"safe/pax_name")])
            .file("../ustar_escape", b"pax\n")
            .pax(&[("linkpath", b"../../outside")])
            .symlink("safe/l1", "harmless")
            .pax(&[("linkpath", b"harmless")])
            .symlink("safe/l2", "../../../outside")
            .pax(&[("linkpath", b"/etc/shadow")])
            .hardlink("safe/h1", "t")
            .pax(&[("linkpath", b"t")])
            .hardlink("safe/h2", "/etc/shadow")
            .end()
            .into_bytes(),
    );
    add(
        "c07 PAX path over a GNU long name",
        EvilTar::new()
            .gnu_long_name(b"../long_escape")
            .pax(&[("path", b"safe/pax_over_long")])
            .file("x", b"pax2\n")
            .gnu_long_link(b"../../../outside")
            .pax(&[("linkpath", b"t")])
            .symlink("safe/l3", "alsoharmless")
            .end()
            .into_bytes(),
    );
    add(
        "c08 non-UTF-8 names",
        EvilTar::new()
            .file(b"etc/caf\xe9-\xff\xfe", b"latin1\n")
            .symlink(b"etc/l\x80", b"caf\xe9-\xff\xfe")
            .file(b"../\xc3\x28", b"pwned\n")
            .end()
            .into_bytes(),
    );

    // 9–18: symlinks.
    add(
        "c09 writes through a symlink of the archive",
        EvilTar::new()
            .symlink("link", OUTSIDE)
            .file("link/passwd", b"pwned\n")
            .dir("link/newdir", 0o777)
            .symlink("link/l", "/")
            .end()
            .into_bytes(),
    );
    add(
        "c10 dotdot link then a deep path",
        EvilTar::new()
            .symlink("link", "..")
            .file("link/exploit/foo/bar", b"pwned\n")
            .dir("sub", 0o755)
            .symlink("sub/up", "..")
            .file("sub/up/exploit/foo/bar", b"pwned\n")
            .end()
            .into_bytes(),
    );
    add(
        "c11 directory entry over a link",
        EvilTar::new()
            .symlink("link", OUTSIDE)
            .dir("link", 0o777)
            .dir("link/.", 0o777)
            .symlink("victim", format!("{OUTSIDE}/victim_dir"))
            .header(
                Hdr::new("victim", b'5')
                    .mode(0o7777)
                    .owner(4242, 4242)
                    .mtime(1),
            )
            .end()
            .into_bytes(),
    );
    add(
        "c12 file over a symlink",
        EvilTar::new()
            .symlink("l", &passwd)
            .file("l", b"replaced\n")
            .symlink("l2", &passwd)
            .symlink("l2", "somewhere-inside")
            .end()
            .into_bytes(),
    );
    let mut chains = EvilTar::new()
        .dir("d1/d2", 0o755)
        .symlink("d1/d2/z", "../..")
        .symlink("d1/d2/y", "z/..")
        .symlink("d1/w", "d2/z/../..")
        .symlink("L", "x/..")
        .symlink("x", ".")
        .file("chain-target", b"end\n");
    for i in (0..=41).rev() {
        let target = if i == 41 {
            "chain-target".to_string()
        } else {
            format!("h{}", i + 1)
        };
        chains = chains.symlink(format!("h{i}"), target);
    }
    add("c13 link chains", chains.end().into_bytes());
    add(
        "c14 symlink loops",
        EvilTar::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", b"pwned\n")
            .symlink("self", "self")
            .end()
            .into_bytes(),
    );
    add(
        "c15 absolute symlinks",
        EvilTar::new()
            .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
            .symlink("etc/ceph/ceph.conf", "/etc/pve/ceph.conf")
            .file("etc/ceph/ceph.conf/evil", b"pwned\n")
            .end()
            .into_bytes(),
    );
    add(
        "c17 metadata and xattrs on a symlink entry",
        EvilTar::new()
            .pax(&[
                (
                    "SCHILY.xattr.security.capability",
                    b"\x01\x00\x00\x02\xff\xff\xff\xff",
                ),
                ("SCHILY.acl.access", b"user::rwx,user:4242:rwx,other::rwx"),
                ("mtime", b"12345.5"),
                ("atime", b"12345.5"),
            ])
            .header(
                Hdr::new("l", b'2')
                    .mode(0o6777)
                    .owner(4242, 4242)
                    .link(&passwd),
            )
            .end()
            .into_bytes(),
    );

    // 19–23: hard links.
    add(
        "c19 hard links outside the archive",
        EvilTar::new()
            .file("f", b"mine\n")
            .hardlink("h_abs", "/etc/shadow")
            .hardlink("h_up", "../outside/passwd")
            .hardlink("h_ok", "./f")
            .end()
            .into_bytes(),
    );
    add(
        "c20 hard link with data",
        EvilTar::new()
            .file("a", b"original\n")
            .header(Hdr::new("b", b'1').link("a").size(9))
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c20 hard link with a PAX size",
        EvilTar::new()
            .file("a", b"original\n")
            .pax(&[("size", b"9")])
            .header(Hdr::new("c", b'1').link("a"))
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c22 hard link then a same-named file",
        EvilTar::new()
            .file("a", b"orig\n")
            .hardlink("b", "a")
            .file("b", b"new b\n")
            .end()
            .into_bytes(),
    );
    add(
        "c23 hard links to directories and empty targets",
        EvilTar::new()
            .dir("d", 0o755)
            .hardlink("h", "d")
            .hardlink("h3", ".")
            .hardlink("h4", "")
            .end()
            .into_bytes(),
    );

    // 24–30: entry types and modes.
    add(
        "c24 devices and FIFOs",
        EvilTar::new()
            .header(Hdr::new("dev/mem", b'3').mode(0o666).device(1, 1))
            .header(Hdr::new("dev/sda", b'4').mode(0o666).device(8, 0))
            .header(Hdr::new("run/fifo", b'6').mode(0o666))
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c24 contiguous and unknown types",
        EvilTar::new()
            .entry(Hdr::new("c7", b'7'), b"contiguous\n")
            .entry(Hdr::new("unknown", b'Z'), b"unknown type\n")
            .entry(Hdr::new("volume", b'V'), b"")
            .entry(Hdr::new("dumpdir", b'D').magic(Magic::Gnu), b"Ya\0\0")
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c25 setuid, setgid, sticky and big ids",
        EvilTar::new()
            .file_mode("bin/suid", b"#!/bin/sh\n", 0o4755)
            .file_mode("bin/sgid", b"#!/bin/sh\n", 0o2755)
            .header(Hdr::new("tmp", b'5').mode(0o1777))
            .entry(
                Hdr::new("bin/huge-uid", b'0')
                    .mode(0o4755)
                    .owner(u64::from(u32::MAX), 0),
                b"x",
            )
            .entry(
                Hdr::new("bin/base256-uid", b'0')
                    .mode(0o6755)
                    .owner(1 << 40, 1 << 40),
                b"x",
            )
            .end()
            .into_bytes(),
    );
    add(
        "c28 extended attributes and ACLs",
        EvilTar::new()
            .pax(&[
                ("SCHILY.xattr.user.evil", b"1"),
                ("LIBARCHIVE.xattr.user.evil2", b"MQ=="),
                ("SCHILY.acl.access", b"user::rwx,mask::rwx,other::rwx"),
            ])
            .file_mode("bin/cap", b"#!/bin/sh\n", 0o755)
            .end()
            .into_bytes(),
    );
    add(
        "c30 duplicate directory entries",
        EvilTar::new()
            .header(Hdr::new("d", b'5').mode(0o700).mtime(1_000))
            .file("d/f", b"f\n")
            .header(Hdr::new("d/", b'5').mode(0o750).mtime(2_000))
            .header(Hdr::new("./d", b'5').mode(0o751).mtime(3_000))
            .end()
            .into_bytes(),
    );

    // 31–36: header and format abuse.
    let hidden = EvilTar::new().file("hidden", b"smuggled\n").into_bytes();
    let visible = || {
        EvilTar::new()
            .file("visible", b"visible\n")
            .end()
            .into_bytes()
    };
    add(
        "c31 ustar 0 + PAX 1024",
        EvilTar::new()
            .pax(&[("size", b"1024")])
            .header(Hdr::new("r", b'0').size(0))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    add(
        "c31 ustar 1024 + PAX 0",
        EvilTar::new()
            .pax(&[("size", b"0")])
            .header(Hdr::new("r", b'0').size(1024))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    add(
        "c31 directory with a size",
        EvilTar::new()
            .header(Hdr::new("d/", b'5').size(1024))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    add(
        "c31 directory with a PAX size",
        EvilTar::new()
            .pax(&[("size", b"1024")])
            .header(Hdr::new("d/", b'5'))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    add(
        "c31 symlink with a size",
        EvilTar::new()
            .header(Hdr::new("l", b'2').link("t").size(1024))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    add(
        "c31 regular file with a trailing slash and a size",
        EvilTar::new()
            .header(Hdr::new("f/", b'0').size(1024))
            .raw(&hidden)
            .raw(&visible())
            .into_bytes(),
    );
    let after = || EvilTar::new().file("after", b"after\n").end().into_bytes();
    add(
        "c31 PAX size u64::MAX",
        EvilTar::new()
            .pax(&[("size", u64::MAX.to_string().as_bytes())])
            .file("r", b"")
            .raw(&after())
            .into_bytes(),
    );
    add(
        "c31 PAX size 2^63",
        EvilTar::new()
            .pax(&[("size", (1u64 << 63).to_string().as_bytes())])
            .file("r", b"")
            .raw(&after())
            .into_bytes(),
    );
    add(
        "c31 PAX size beyond u64",
        EvilTar::new()
            .pax(&[("size", b"99999999999999999999999")])
            .file("r", b"")
            .raw(&after())
            .into_bytes(),
    );
    add(
        "c31 PAX size negative",
        EvilTar::new()
            .pax(&[("size", b"-1")])
            .file("r", b"")
            .raw(&after())
            .into_bytes(),
    );
    add(
        "c31 ustar size base-256 negative",
        EvilTar::new()
            .header(Hdr::new("neg", b'0').poke(124, [0xffu8; 12]))
            .raw(&after())
            .into_bytes(),
    );
    add(
        "c31 ustar size base-256 2^63",
        EvilTar::new()
            .header(Hdr::new("big", b'0').poke(124, {
                let mut f = [0u8; 12];
                f[0] = 0x80;
                f[4] = 0x80;
                f
            }))
            .raw(&after())
            .into_bytes(),
    );
    let map: Vec<(u64, u64)> = (0..30).map(|i| (i * (1 << 35), 16)).collect();
    add(
        "c32 old GNU sparse",
        EvilTar::new()
            .raw(&gnu_sparse(b"var/sparse-old", &map, 512, 1 << 40))
            .data(&[b'S'; 512])
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c32 PAX GNU sparse 1.0",
        EvilTar::new()
            .pax(&[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"../../outside/sparse"),
                ("GNU.sparse.realsize", b"1099511627776"),
            ])
            .file("./GNUSparseFile.0/sparse", &{
                let mut d = b"1\n0\n512\n".to_vec();
                d.resize(1024, b'S');
                d
            })
            .file("after", b"after\n")
            .end()
            .into_bytes(),
    );
    add(
        "c33 global header",
        EvilTar::new()
            .global_pax(&[
                ("path", b"../../outside/global"),
                ("uid", b"0"),
                ("mode", b"4777"),
            ])
            .file_mode("etc/after", b"after\n", 0o644)
            .end()
            .into_bytes(),
    );
    let mut many: Vec<u8> = Vec::new();
    for i in 0..20_000 {
        many.extend(pax_record("comment", format!("{i:08}").as_bytes()));
    }
    many.extend(pax_record("path", b"../../outside/many"));
    many.extend(pax_record("path", b"etc/many"));
    add(
        "c34 many PAX records, repeated path",
        EvilTar::new()
            .entry(Hdr::new("PaxHeaders/many", b'x'), &many)
            .file("x", b"many\n")
            .end()
            .into_bytes(),
    );
    let mut huge = Vec::new();
    while huge.len() <= 1 << 20 {
        huge.extend(pax_record("comment", &[b'c'; 1000]));
    }
    add(
        "c34 PAX header over 1 MiB",
        EvilTar::new()
            .entry(Hdr::new("PaxHeaders/huge", b'x'), &huge)
            .file("x", b"x\n")
            .end()
            .into_bytes(),
    );
    add(
        "c34 GNU long name over 64 KiB",
        EvilTar::new()
            .gnu_long_name("n/".repeat(40_000).as_bytes())
            .file("x", b"x\n")
            .end()
            .into_bytes(),
    );
    let good = EvilTar::new()
        .file("etc/a", b"aaaa\n")
        .file("etc/b", &[b'b'; 700])
        .end()
        .into_bytes();
    let second = EvilTar::new()
        .file("etc/c", b"second archive\n")
        .end()
        .into_bytes();
    add(
        "c35 bad checksum",
        EvilTar::new()
            .file("etc/a", b"aaaa\n")
            .entry(Hdr::new("etc/b", b'0').checksum(Checksum::Off(1)), b"b")
            .end()
            .into_bytes(),
    );
    add(
        "c35 signed checksum",
        EvilTar::new()
            .entry(
                Hdr::new(b"etc/\xe9t\xe9", b'0').checksum(Checksum::Off(-2 * 256)),
                b"signed\n",
            )
            .end()
            .into_bytes(),
    );
    add("c35 truncated mid-header", good[..1024 + 100].to_vec());
    add("c35 truncated mid-data", good[..1536 + 300].to_vec());
    add("c35 missing end blocks", good[..2560].to_vec());
    add("c35 lone zero block at the end", good[..3072].to_vec());
    add(
        "c35 trailing garbage",
        [&good[..], b"garbage after the end"].concat(),
    );
    add(
        "c35 concatenated archives",
        [&good[..], &second[..]].concat(),
    );
    add(
        "c35 lone zero block then headers",
        [&good[..3072], &second[..]].concat(),
    );
    add(
        "c35 extended header without an entry",
        EvilTar::new()
            .file("etc/a", b"a")
            .pax(&[("path", b"x")])
            .end()
            .into_bytes(),
    );
    add(
        "c35 malformed PAX record",
        EvilTar::new()
            .file("etc/a", b"a")
            .entry(Hdr::new("p", b'x'), b"99 path=x\n")
            .file("etc/b", b"b")
            .end()
            .into_bytes(),
    );
    add(
        "c35 garbage in a numeric field",
        EvilTar::new()
            .file("etc/a", b"a")
            .header(Hdr::new("etc/b", b'0').poke(124, b"0000000001x\0"))
            .end()
            .into_bytes(),
    );
    add(
        "c35 PAX mtime that is not a time",
        EvilTar::new()
            .pax(&[("mtime", b"1.2e3")])
            .file("etc/a", b"a")
            .end()
            .into_bytes(),
    );
    add(
        "c36 duplicate regular entries",
        EvilTar::new()
            .file_mode("etc/f", b"first\n", 0o600)
            .file_mode("./etc/f", b"second\n", 0o640)
            .file_mode("/etc//f", b"third\n", 0o644)
            .end()
            .into_bytes(),
    );

    // 38: budgets (scaled down: the reader-level shape, not the volume).
    let mut deep = EvilTar::new();
    let mut path = String::new();
    for _ in 0..300 {
        path.push_str("n/");
        deep = deep.pax(&[("path", path.as_bytes())]).dir("deep", 0o755);
    }
    path.push_str("bottom");
    deep = deep
        .pax(&[("path", path.as_bytes())])
        .file("deep-file", b"bottom\n");
    add(
        "c38 deep nesting through PAX paths",
        deep.end().into_bytes(),
    );
    add(
        "c38 huge link targets",
        EvilTar::new()
            .pax(&[("linkpath", "a/".repeat(200_000).as_bytes())])
            .symlink("huge", "x")
            .gnu_long_link("a/".repeat(30_000).as_bytes())
            .symlink("huge2", "x")
            .end()
            .into_bytes(),
    );
    add(
        "c43 staging-area names",
        EvilTar::new()
            .file(".proxsave-stage-1-00000000/f1", b"pwned\n")
            .symlink(".proxsave-stage-evil", "/")
            .file("etc/.proxsave-stage-ok", b"fine below the top\n")
            .end()
            .into_bytes(),
    );
    add(
        "v7 header without magic",
        EvilTar::new()
            .entry(Hdr::new("etc/v7", b'0').magic(Magic::V7), b"v7\n")
            .entry(Hdr::new("etc/v7-dir/", 0).magic(Magic::V7), b"")
            .end()
            .into_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        let r = pax_record("path", &[b'x'; 95]);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 "));
    }

    #[test]
    fn blocks_have_valid_checksums_unless_told() {
        let b = Hdr::new("a", b'0').block();
        let sum: u64 = b
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(x)
                }
            })
            .sum();
        let stored = u64::from_str_radix(std::str::from_utf8(&b[148..154]).unwrap(), 8).unwrap();
        assert_eq!(sum, stored);
        let bad = Hdr::new("a", b'0').checksum(Checksum::Off(1)).block();
        assert_ne!(bad[148..156], b[148..156]);
    }

    #[test]
    fn big_numbers_use_base256() {
        let mut f = [0u8; 12];
        num(&mut f, u64::MAX);
        assert_eq!(f[0], 0x80);
        assert_eq!(&f[4..], &[0xff; 8]);
    }
}
