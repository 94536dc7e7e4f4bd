//! Sorted, deduplicated path lists bounded in memory: the root paths a restore writes
//! (a million of them for a backup of home directories).
//!
//! [`PathSorter`] sorts with the crate's external merge sort ([`crate::sort::Sorter`]: runs
//! of at most the budget in an unnamed 0600 file of the run's private work directory,
//! merged [`crate::sort::FAN_IN`] at a time) and drops duplicates while writing the merged
//! output into one [`PathList`] (a [`SpillVec`]). A list that fits the budget never touches
//! the disk.
//!
//! Memory: the sort budget while gathering; the merge's read buffers plus one path per run
//! while merging; the finished list's in-memory part (at most the budget) afterwards.

use std::path::{Path, PathBuf};

use proxsave_archive::path::ArchivePath;
use proxsave_archive::spill::SpillVec;

use crate::error::RestoreError;
use crate::sort::Sorter;

/// Default memory budget of one sort (2 MiB).
pub const SORT_BUDGET: usize = 2 << 20;

fn decode(r: std::io::Result<Vec<u8>>, dir: &Path) -> Result<ArchivePath, RestoreError> {
    let bytes = r.map_err(|e| RestoreError::io(dir, e))?;
    ArchivePath::parse(&bytes).ok().flatten().ok_or_else(|| {
        RestoreError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad path record"),
        )
    })
}

/// A sorted list of distinct archive paths, bounded in memory; see the module docs.
pub struct PathList {
    list: SpillVec<Vec<u8>>,
    dir: PathBuf,
}

impl PathList {
    /// An empty list spilling into `dir`.
    pub fn empty(dir: &Path) -> PathList {
        PathList {
            list: SpillVec::new(dir, SORT_BUDGET),
            dir: dir.to_path_buf(),
        }
    }

    /// The sorted, deduplicated `paths` (kept in memory up to [`SORT_BUDGET`], then
    /// spilled into `dir`).
    ///
    /// # Errors
    /// The spill files cannot be written.
    pub fn from_paths(
        paths: impl IntoIterator<Item = ArchivePath>,
        dir: &Path,
    ) -> Result<PathList, RestoreError> {
        let mut s = PathSorter::new(dir, SORT_BUDGET);
        for p in paths {
            s.push(p)?;
        }
        s.finish()
    }

    /// Number of paths.
    pub fn len(&self) -> u64 {
        self.list.len()
    }

    /// True when the list holds no path.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// True once part of the list lives in a spill file.
    pub fn is_spilled(&self) -> bool {
        self.list.is_spilled()
    }

    /// The paths, sorted (byte order), each once.
    pub fn iter(&self) -> impl Iterator<Item = Result<ArchivePath, RestoreError>> + '_ {
        self.list.iter().map(|r| decode(r, &self.dir))
    }

    /// Every path in a `Vec` (small lists, tests).
    ///
    /// # Errors
    /// Reading the spill file.
    pub fn to_vec(&self) -> Result<Vec<ArchivePath>, RestoreError> {
        self.iter().collect()
    }

    /// This list and `extra` (any order, duplicates allowed; meant for short lists such as
    /// the files appliers write), as a new sorted list.
    ///
    /// # Errors
    /// Reading this list or writing the new one.
    pub fn union(&self, extra: Vec<ArchivePath>) -> Result<PathList, RestoreError> {
        let mut extra = extra;
        extra.sort();
        extra.dedup();
        let mut out = SpillVec::new(&self.dir, SORT_BUDGET);
        let mut extra = extra.into_iter().peekable();
        let push = |out: &mut SpillVec<Vec<u8>>, p: &ArchivePath| {
            out.push(&p.as_bytes().to_vec())
                .map_err(|e| RestoreError::io(&self.dir, e))
        };
        for p in self.iter() {
            let p = p?;
            while let Some(x) = extra.next_if(|x| *x < p) {
                push(&mut out, &x)?;
            }
            extra.next_if(|x| *x == p);
            push(&mut out, &p)?;
        }
        for x in extra {
            push(&mut out, &x)?;
        }
        Ok(PathList {
            list: out,
            dir: self.dir.clone(),
        })
    }
}

/// Gathers paths in any order and returns them sorted and deduplicated as a [`PathList`]:
/// the external sort is [`crate::sort::Sorter`] (byte order of the paths), duplicates are
/// dropped while its merged output is written into the list.
pub struct PathSorter {
    dir: PathBuf,
    budget: usize,
    sorter: Sorter<Vec<u8>>,
}

impl PathSorter {
    /// An empty sorter keeping about `budget` bytes of paths in memory, spilling sorted runs
    /// into `dir` (a private directory).
    pub fn new(dir: &Path, budget: usize) -> PathSorter {
        PathSorter {
            dir: dir.to_path_buf(),
            budget: budget.max(1),
            sorter: Sorter::new(dir, budget, |a: &Vec<u8>, b: &Vec<u8>| a.cmp(b)),
        }
    }

    /// Adds one path.
    ///
    /// # Errors
    /// A run cannot be written.
    pub fn push(&mut self, p: ArchivePath) -> Result<(), RestoreError> {
        self.sorter
            .push(p.as_bytes().to_vec())
            .map_err(|e| RestoreError::io(&self.dir, e))
    }

    /// Number of sorted runs spilled so far.
    pub fn runs(&self) -> usize {
        self.sorter.runs()
    }

    /// The sorted, deduplicated list of every path pushed.
    ///
    /// # Errors
    /// Reading or writing the runs.
    pub fn finish(self) -> Result<PathList, RestoreError> {
        let io = |e| RestoreError::io(&self.dir, e);
        let mut list = SpillVec::new(&self.dir, self.budget);
        let mut last: Option<Vec<u8>> = None;
        for p in self.sorter.finish().map_err(io)? {
            let p = p.map_err(io)?;
            if last.as_ref() != Some(&p) {
                list.push(&p).map_err(io)?;
                last = Some(p);
            }
        }
        Ok(PathList {
            list,
            dir: self.dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ArchivePath {
        ArchivePath::from_user(s).expect("path")
    }

    #[test]
    fn external_sort_matches_an_in_memory_sort() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Scrambled order with duplicates across runs.
        let input: Vec<ArchivePath> = (0..20_000u64)
            .map(|i| (i * 7919) % 15_000)
            .map(|i| p(&format!("home/u{}/f{}", i % 37, i)))
            .collect();
        let mut s = PathSorter::new(dir.path(), 4096);
        for x in &input {
            s.push(x.clone()).expect("push");
        }
        assert!(
            s.runs() > crate::sort::FAN_IN,
            "several merge passes: {}",
            s.runs()
        );
        let list = s.finish().expect("finish");
        let mut want = input.clone();
        want.sort();
        want.dedup();
        assert_eq!(list.len(), want.len() as u64);
        assert!(list.is_spilled());
        assert_eq!(list.to_vec().expect("read"), want);
        // Union with a few extra paths, some already there.
        let extra = vec![p("etc/hosts"), want[10].clone(), p("zzz"), p("etc/hosts")];
        let u = list.union(extra).expect("union");
        let mut want2 = want;
        want2.extend([p("etc/hosts"), p("zzz")]);
        want2.sort();
        assert_eq!(u.to_vec().expect("read"), want2);
        // Nothing named is left in the private directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn small_lists_stay_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = PathList::from_paths([p("b"), p("a"), p("b")], dir.path()).expect("list");
        assert!(!list.is_spilled());
        assert_eq!(list.to_vec().expect("read"), vec![p("a"), p("b")]);
        assert!(PathList::empty(dir.path()).is_empty());
    }
}
