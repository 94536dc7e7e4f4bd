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
