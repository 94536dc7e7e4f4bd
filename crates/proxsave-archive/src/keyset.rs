//! A set of 128-bit keys bounded in memory: the policy's record of the regular files an
//! archive created (see [`crate::policy`]).
//!
//! Keys are already uniformly distributed (keyed hashes of paths, random per run), so the
//! set never hashes them again. Up to [`MEM_KEYS`] keys live in an in-memory hash table.
//! When it is full, its keys are sorted and merged with the **run** — one sorted file of
//! every older key, unnamed (`O_TMPFILE`, mode 0600) in the system's temporary folder —
//! into a new run, and memory starts again from empty. A lookup that misses the table asks a
//! fixed-size Bloom filter over the run ([`BLOOM_BYTES`]); only when the filter says "maybe"
//! does it read the run: a fixed-size fence (every `len / FENCE` th key) narrows the search
//! to one block of at most a few KiB, read with one positioned read.
//!
//! Memory is bounded whatever the number of keys: the table ([`MEM_KEYS`] keys, about
//! 4.5 MiB), the sorting buffer of one merge (the same number of keys), the filter and the
//! fence. Merging rewrites the run, so the total I/O grows with the square of the key count
//! divided by [`MEM_KEYS`]; it is sequential and, for the entry counts backups have (a few
//! million), small next to writing the files.
//!
//! Removing a key that may be in the run records it in a small `removed` table, applied at
//! the next merge (removals are rare: a file of the archive later replaced by a directory
//! or symlink of the same archive).
//!
//! I/O errors are never lost as wrong answers in the unsafe direction: if the run cannot be
//! written, the keys stay in memory (the set then grows as before); if the run cannot be
//! read during a lookup, the answer is "present" — the policy then refuses the entry (a
//! visible, safe outcome) rather than accepting it without its checks.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

/// Keys kept in the in-memory table before they are merged into the run.
pub const MEM_KEYS: usize = 200_000;

/// Size of the Bloom filter over the run (4 MiB: below one false "maybe" in a thousand
/// lookups up to about two million keys).
pub const BLOOM_BYTES: usize = 4 << 20;

/// Bits set per key in the Bloom filter.
const BLOOM_HASHES: u64 = 4;

/// Entries of the fence (at most; 64 KiB).
const FENCE: u64 = 4096;

const KEY: u64 = 16;

/// The identity hash for keys that are already random.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, k: u128) {
        self.0 = k as u64;
    }
}

type Table = HashSet<u128, BuildHasherDefault<KeyHasher>>;

struct Run {
    file: File,
    /// Keys in the file.
    len: u64,
    /// Every `step`-th key of the file, in order.
    fence: Vec<u128>,
    step: u64,
}

/// A set of 128-bit random keys bounded in memory; see the module docs.
pub struct KeySet {
    mem: Table,
    mem_keys: usize,
    removed: Table,
    run: Option<Run>,
    bloom: Vec<u64>,
    /// The run could not be written: everything stays in memory.
    in_memory_only: bool,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet::new()
    }
}

impl KeySet {
    /// An empty set.
    pub fn new() -> KeySet {
        KeySet::with_memory_keys(MEM_KEYS)
    }

    /// An empty set that keeps at most `n` keys in memory before merging them into its run
    /// (tests use small values).
    pub fn with_memory_keys(n: usize) -> KeySet {
        KeySet {
            mem: Table::default(),
            mem_keys: n.max(1),
            removed: Table::default(),
            run: None,
            bloom: Vec::new(),
            in_memory_only: false,
        }
    }

    /// True when the set holds no key.
    pub fn is_empty(&self) -> bool {
        let in_run = self.run.as_ref().map_or(0, |r| r.len);
        self.mem.is_empty() && in_run <= self.removed.len() as u64
    }

    /// True once some keys live in the run file.
    pub fn is_spilled(&self) -> bool {
        self.run.is_some()
    }

    /// Whether `k` is in the set.
    pub fn contains(&self, k: u128) -> bool {
        if self.mem.contains(&k) {
            return true;
        }
        if self.removed.contains(&k) {
            return false;
        }
        match &self.run {
            Some(run) if self.bloom_maybe(k) => run_contains(run, k).unwrap_or(true),
            _ => false,
        }
    }

    /// Adds `k`.
    pub fn insert(&mut self, k: u128) {
        if self.removed.remove(&k) {
            // Still in the run.
            return;
        }
        self.mem.insert(k);
        if self.mem.len() >= self.mem_keys && !self.in_memory_only && self.merge().is_err() {
            self.in_memory_only = true;
        }
    }

    /// Removes `k`.
    pub fn remove(&mut self, k: u128) {
        self.mem.remove(&k);
        if let Some(run) = &self.run
            && self.bloom_maybe(k)
            && run_contains(run, k).unwrap_or(true)
        {
            self.removed.insert(k);
        }
    }

    fn bloom_maybe(&self, k: u128) -> bool {
        if self.bloom.is_empty() {
            return true;
        }
        bloom_positions(self.bloom.len(), k)
            .all(|b| self.bloom[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Sorts the table, merges it with the run into a new run, and empties the table.
    fn merge(&mut self) -> io::Result<()> {
        let mut keys: Vec<u128> = self.mem.iter().copied().collect();
        keys.sort_unstable();
        let old = self.run.take();
        let total = old.as_ref().map_or(0, |r| r.len) + keys.len() as u64;
        let step = total.div_ceil(FENCE).max(1);
        let file = tempfile::tempfile()?;
        let mut out = BufWriter::with_capacity(256 << 10, &file);
        let mut fence = Vec::new();
        let mut len = 0u64;
        let mut push = |k: u128, out: &mut BufWriter<&File>| -> io::Result<()> {
            if len % step == 0 {
                fence.push(k);
            }
            len += 1;
            out.write_all(&k.to_le_bytes())
        };
        let mut new = keys.iter().copied().peekable();
        if let Some(old) = &old {
            let mut rd = BufReader::with_capacity(256 << 10, &old.file);
            let mut rd_pos = 0u64;
            let mut buf = [0u8; KEY as usize];
            // A reader at offset 0 of the unnamed file (positioned reads keep it independent
            // of the file's own offset).
            let mut next_old = |rd: &mut BufReader<&File>| -> io::Result<Option<u128>> {
                if rd_pos == old.len {
                    return Ok(None);
                }
                rd.read_exact(&mut buf)?;
                rd_pos += 1;
                Ok(Some(u128::from_le_bytes(buf)))
            };
            use std::io::Seek;
            rd.seek(io::SeekFrom::Start(0))?;
            let mut cur = next_old(&mut rd)?;
            while let Some(o) = cur {
                while let Some(&n) = new.peek()
                    && n < o
                {
                    push(n, &mut out)?;
                    new.next();
                }
                if new.peek() == Some(&o) {
                    new.next();
                }
                if !self.removed.remove(&o) {
                    push(o, &mut out)?;
                }
                cur = next_old(&mut rd)?;
            }
        }
        for n in new {
            push(n, &mut out)?;
        }
        out.flush()?;
        drop(out);
        if self.bloom.is_empty() {
            self.bloom = vec![0u64; BLOOM_BYTES / 8];
        }
        let words = self.bloom.len();
        for &k in &keys {
            for b in bloom_positions(words, k) {
                self.bloom[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        self.run = Some(Run {
            file,
            len,
            fence,
            step,
        });
        self.removed.clear();
        self.mem.clear();
        Ok(())
    }
}

/// The filter bits of `k` in a filter of `words` 64-bit words (double hashing over the
/// key's two halves).
fn bloom_positions(words: usize, k: u128) -> impl Iterator<Item = u64> {
    let bits = (words as u64 * 64).max(1);
    let h1 = k as u64;
    let h2 = ((k >> 64) as u64) | 1;
    (0..BLOOM_HASHES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// Whether the sorted run holds `k` (one positioned read of at most `step` keys).
fn run_contains(run: &Run, k: u128) -> io::Result<bool> {
    let i = match run.fence.binary_search(&k) {
        Ok(_) => return Ok(true),
        Err(0) => return Ok(false),
        Err(i) => i - 1,
    };
    let start = i as u64 * run.step;
    let end = (start + run.step).min(run.len);
    let mut buf = vec![0u8; ((end - start) * KEY) as usize];
    run.file.read_exact_at(&mut buf, start * KEY)?;
    let keys: Vec<u128> = buf
        .chunks_exact(KEY as usize)
        .map(|c| {
            let mut b = [0u8; KEY as usize];
            b.copy_from_slice(c);
            u128::from_le_bytes(b)
        })
        .collect();
    Ok(keys.binary_search(&k).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn key(i: u64) -> u128 {
        // Spread like the policy's keyed hashes.
        let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = (i ^ 0xDEAD_BEEF).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (u128::from(a) << 64) | u128::from(b.rotate_left(17))
    }

    #[test]
    fn spills_past_the_memory_limit_and_answers_exactly() {
        let mut s = KeySet::with_memory_keys(1000);
        for i in 0..10_500 {
            s.insert(key(i));
        }
        assert!(s.is_spilled());
        assert!(s.mem.len() < 1000);
        for i in 0..10_500 {
            assert!(s.contains(key(i)), "key {i} lost");
        }
        for i in 10_500..40_000 {
            assert!(!s.contains(key(i)), "key {i} invented");
        }
        // Removal from the run and from memory, then re-insertion.
        s.remove(key(5));
        s.remove(key(10_400));
        assert!(!s.contains(key(5)) && !s.contains(key(10_400)));
        for i in 20_000..22_000 {
            s.insert(key(i));
        }
        assert!(!s.contains(key(5)), "a removal survived no merge");
        s.insert(key(5));
        assert!(s.contains(key(5)));
    }

    proptest! {
        /// The set answers like a `BTreeSet` for any sequence of inserts and removals,
        /// whatever the memory limit.
        #[test]
        fn behaves_like_a_set(
            limit in 1usize..64,
            ops in proptest::collection::vec((any::<bool>(), 0u64..300), 0..600),
        ) {
            let mut s = KeySet::with_memory_keys(limit);
            let mut model = BTreeSet::new();
            for (insert, i) in ops {
                if insert {
                    s.insert(key(i));
                    model.insert(key(i));
                } else {
                    s.remove(key(i));
                    model.remove(&key(i));
                }
            }
            for i in 0..300 {
                prop_assert_eq!(s.contains(key(i)), model.contains(&key(i)), "key {}", i);
            }
            prop_assert_eq!(s.is_empty(), model.is_empty());
        }
    }
}
