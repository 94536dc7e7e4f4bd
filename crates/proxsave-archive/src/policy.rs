//! The extraction safety rules, as a pure decision per entry.
//!
//! [`Policy`] decides for each tar entry whether it may be written into a root, and how.
//! It keeps a model of what the root will look like after the entries decided so far
//! (directories, files and symlinks this archive creates) layered over what already exists
//! there, seen through [`FsView`]. The same code serves `verify` (an empty view: "what would
//! happen on an empty root") and the extractor (a view of the real root), so `verify` reports
//! exactly what extraction would refuse.
//!
//! The rules (see `docs/security.md`):
//! - only directories, regular files, symlinks and hard links are written; device nodes,
//!   FIFOs, sparse files, global PAX headers and unknown types are refused;
//! - names with `..`, NUL bytes or over-long components are refused; absolute names are
//!   taken relative to the root;
//! - no entry is written *through* a symlink: if any parent component is a symlink (one this
//!   archive created, or one already on the target) the entry is refused — this defeats the
//!   "symlink then write through it" attacks, within one archive and across two runs;
//! - a symlink is created verbatim, but its target must stay inside the root when resolved
//!   as the host would (absolute targets are anchored at the root; a relative target that
//!   climbs above the root, through `..` or through other links, is refused; so are loops),
//!   and it must not change where an earlier link of the archive resolves to (`L -> x/..`
//!   is the root until `x -> .` appears, then the root's parent);
//! - directories and symlinks that declare data are refused: tar readers disagree on whether
//!   such data exists, so they would disagree on every entry that follows;
//! - a hard link may only point at a regular file written earlier by the same run, and may
//!   not carry data;
//! - an existing directory is never replaced by a file or link, and an existing symlink is
//!   never turned into a directory (so nothing is ever `chmod`ed through a link).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::io;

use serde::Serialize;

use crate::entry::{EntryHeader, EntryKind};
use crate::keyset::KeySet;
use crate::path::{ArchivePath, MAX_PATH_BYTES, escape_bytes};

/// Most symlinks followed while checking one link target.
pub const MAX_LINK_HOPS: u32 = 40;

/// Most path bytes looked at while checking the symlink targets of one archive. Legitimate
/// archives need a tiny fraction; hostile link chains through deep trees could otherwise
/// keep `verify` and `extract` busy for hours.
pub const MAX_LINK_CHECK_BYTES: u64 = 32 << 20;

/// Prefix of the private staging directory the extractor creates in the root.
pub const STAGE_PREFIX: &str = ".proxsave-stage-";

/// What exists at a path on the target, as seen without following symlinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskNode {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link with its target text.
    Symlink(Vec<u8>),
    /// Anything else (device, socket, FIFO).
    Other,
}

/// Read-only view of the target root for the policy. Paths are relative to the root; an
/// implementation must not follow symlinks in any component.
pub trait FsView {
    /// What is at `path`, `None` if nothing. Only called when every ancestor of `path` is
    /// known to be a real directory.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    fn lstat(&self, path: &ArchivePath) -> io::Result<Option<DiskNode>>;
}

/// A view of an empty root (used by `verify`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyView;

impl FsView for EmptyView {
    fn lstat(&self, _path: &ArchivePath) -> io::Result<Option<DiskNode>> {
        Ok(None)
    }
}

/// Why an entry is refused. Each variant is a safety rule.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Refusal {
    /// The name is unusable (`..`, NUL, too long, empty).
    BadName {
        /// Details.
        detail: String,
    },
    /// Device nodes, FIFOs, sparse files, global headers, unknown types.
    UnsupportedType {
        /// The entry's type.
        kind: String,
    },
    /// A parent component is a symlink.
    ThroughSymlink {
        /// The parent that is a link.
        parent: String,
        /// True when the link is on the target already, false when this archive made it.
        on_target: bool,
    },
    /// A parent component is not a directory.
    ParentNotDirectory {
        /// The parent.
        parent: String,
    },
    /// A directory exists where the entry is a file or link.
    DirectoryInTheWay,
    /// A device node, socket or FIFO exists where the entry is a file or link; it is never
    /// replaced (a restore must not swap `/dev/…` nodes for files).
    SpecialFileInTheWay,
    /// A file or symlink exists where the entry is a directory.
    NotADirectoryInTheWay {
        /// What is there.
        existing: String,
    },
    /// The symlink target resolves outside the root.
    SymlinkEscapes {
        /// The link text.
        target: String,
    },
    /// Too many symlinks while resolving the target (loop).
    SymlinkLoop {
        /// The link text.
        target: String,
    },
    /// A symlink with an empty target.
    EmptySymlink,
    /// A symlink target that cannot be checked or created (NUL byte, longer than
    /// `PATH_MAX`, resolving through unusable names, or too costly to check).
    BadLinkTarget {
        /// The link text.
        target: String,
        /// What is wrong.
        detail: String,
    },
    /// Creating this symlink would make an earlier symlink of the archive escape or loop.
    BreaksEarlierLink {
        /// The earlier link.
        link: String,
        /// How it would resolve.
        detail: String,
    },
    /// A directory or symlink entry that declares data.
    DeclaresData {
        /// The entry's type.
        kind: String,
        /// The declared size.
        size: u64,
    },
    /// A hard link whose target is absolute, contains `..`, or is empty.
    HardlinkBadTarget {
        /// The link text.
        target: String,
    },
    /// A hard link to something this run did not write as a regular file.
    HardlinkNotExtracted {
        /// The link text.
        target: String,
    },
    /// A hard link entry that carries data.
    HardlinkWithData,
    /// An entry inside the extractor's private staging directory.
    ReservedName,
    /// The target root could not be inspected.
    Inspect {
        /// The I/O error.
        detail: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadName { detail } => write!(f, "unusable name: {detail}"),
            Refusal::UnsupportedType { kind } => {
                write!(f, "{kind} entries are never extracted")
            }
            Refusal::ThroughSymlink { parent, on_target } => write!(
                f,
                "parent {parent} is a symbolic link {}; nothing is written through links",
                if *on_target {
                    "on the target"
                } else {
                    "created by this archive"
                }
            ),
            Refusal::ParentNotDirectory { parent } => {
                write!(f, "parent {parent} is not a directory")
            }
            Refusal::DirectoryInTheWay => write!(f, "a directory exists at this path"),
            Refusal::SpecialFileInTheWay => write!(
                f,
                "a device node, socket or FIFO exists at this path; it is never replaced"
            ),
            Refusal::NotADirectoryInTheWay { existing } => {
                write!(f, "a {existing} exists where the archive has a directory")
            }
            Refusal::SymlinkEscapes { target } => {
                write!(f, "symbolic link target {target:?} escapes the root")
            }
            Refusal::SymlinkLoop { target } => write!(
                f,
                "symbolic link target {target:?} needs more than {MAX_LINK_HOPS} link resolutions (loop)"
            ),
            Refusal::EmptySymlink => write!(f, "symbolic link with an empty target"),
            Refusal::BadLinkTarget { target, detail } => {
                write!(f, "symbolic link target {target:?} {detail}")
            }
            Refusal::BreaksEarlierLink { link, detail } => write!(
                f,
                "creating this link would change how the earlier symbolic link {link} resolves: {detail}"
            ),
            Refusal::DeclaresData { kind, size } => write!(
                f,
                "{kind} entry declares {size} bytes of data; tar readers disagree on where the next header starts"
            ),
            Refusal::HardlinkBadTarget { target } => {
                write!(
                    f,
                    "hard link target {target:?} is not a path inside the archive"
                )
            }
            Refusal::HardlinkNotExtracted { target } => write!(
                f,
                "hard link target {target:?} is not a regular file extracted earlier in this run"
            ),
            Refusal::HardlinkWithData => write!(f, "hard link entry carries data"),
            Refusal::ReservedName => write!(f, "name is reserved for the extractor's staging area"),
            Refusal::Inspect { detail } => write!(f, "cannot inspect the target: {detail}"),
        }
    }
}

/// What to do with an accepted entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the directory (or update an existing one's metadata).
    Dir,
    /// Write a regular file (replacing a file or symlink there).
    File,
    /// Create a symlink with this exact text (replacing a file or symlink there).
    Symlink(Vec<u8>),
    /// Hard-link to the given earlier file.
    Hardlink(ArchivePath),
}

/// The decision for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The root entry (`./`): nothing to do, never re-moded.
    Root,
    /// Accept with the given action at the normalised path.
    Accept(ArchivePath, Action),
    /// Refuse (the path is `None` if the name itself is unusable).
    Refuse(Option<ArchivePath>, Refusal),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink(Vec<u8>),
    Other,
}

impl Node {
    fn describe(&self) -> &'static str {
        match self {
            Node::Dir => "directory",
            Node::File => "file",
            Node::Symlink(_) => "symbolic link",
            Node::Other => "special file",
        }
    }
}

#[derive(Clone, Debug)]
struct Known {
    node: Node,
    from_archive: bool,
}

/// The policy state for one root; see the module docs.
///
/// The model is split in two so it stays small for archives of many small files: regular
/// files created by this archive (by far the most entries) are kept only as a 128-bit keyed
/// hash of their path in `files` (about 20–40 bytes each instead of 100–170); everything
/// else (directories, symlinks, files seen on the target, absent paths) keeps its full
/// entry in `known`. A path is in at most one of the two. The hash keys are random per
/// run, so an archive cannot be built to collide two names.
pub struct Policy<V> {
    view: V,
    known: HashMap<ArchivePath, Option<Known>>,
    files: KeySet,
    keys: (RandomState, RandomState),
    /// Symlinks accepted from this archive (path, target), in order.
    links: Vec<(ArchivePath, Vec<u8>)>,
    /// For each path that a link's resolution passed while it was not a directory, the
    /// links (indexes into `links`) that must be re-checked if a symlink appears there.
    dependents: HashMap<ArchivePath, Vec<usize>>,
    /// Path bytes looked at so far while checking link targets.
    link_work: u64,
}

impl<V: FsView> Policy<V> {
    /// A policy over `view`.
    pub fn new(view: V) -> Self {
        Policy {
            view,
            known: HashMap::new(),
            files: KeySet::new(),
            keys: (RandomState::new(), RandomState::new()),
            links: Vec::new(),
            dependents: HashMap::new(),
            link_work: 0,
        }
    }

    fn file_key(&self, path: &ArchivePath) -> u128 {
        (u128::from(self.keys.0.hash_one(path.as_bytes())) << 64)
            | u128::from(self.keys.1.hash_one(path.as_bytes()))
    }

    /// The model's entry for `path`: `None` when never looked at, `Some(None)` when known
    /// to be absent.
    fn get_known(&self, path: &ArchivePath) -> Option<Option<Known>> {
        if let Some(k) = self.known.get(path) {
            return Some(k.clone());
        }
        if !self.files.is_empty() && self.files.contains(self.file_key(path)) {
            return Some(Some(Known {
                node: Node::File,
                from_archive: true,
            }));
        }
        None
    }

    fn insert_known(&mut self, path: ArchivePath, value: Option<Known>) {
        if matches!(
            value,
            Some(Known {
                node: Node::File,
                from_archive: true
            })
        ) {
            self.known.remove(&path);
            let key = self.file_key(&path);
            self.files.insert(key);
        } else {
            if !self.files.is_empty() {
                let key = self.file_key(&path);
                self.files.remove(key);
            }
            self.known.insert(path, value);
        }
    }

    fn remove_known(&mut self, path: &ArchivePath) {
        self.known.remove(path);
        if !self.files.is_empty() {
            let key = self.file_key(path);
            self.files.remove(key);
        }
    }

    /// The view.
    pub fn view(&self) -> &V {
        &self.view
    }

    /// Decides what to do with `header`. Accepted entries update the model, so later
    /// decisions see them.
    pub fn decide(&mut self, header: &EntryHeader) -> Decision {
        let path = match ArchivePath::parse(&header.raw_path) {
            Ok(Some(p)) => p,
            Ok(None) if header.kind == EntryKind::Directory => return Decision::Root,
            Ok(None) => {
                return Decision::Refuse(
                    None,
                    Refusal::BadName {
                        detail: "empty name".into(),
                    },
                );
            }
            Err(e) => {
                return Decision::Refuse(
                    None,
                    Refusal::BadName {
                        detail: e.to_string(),
                    },
                );
            }
        };
        match self.decide_path(&path, header) {
            Ok(action) => {
                self.record(&path, &action);
                Decision::Accept(path, action)
            }
            Err(refusal) => Decision::Refuse(Some(path), refusal),
        }
    }

    fn decide_path(&mut self, path: &ArchivePath, header: &EntryHeader) -> Result<Action, Refusal> {
        if path
            .components()
            .next()
            .is_some_and(|c| c.starts_with(STAGE_PREFIX.as_bytes()))
        {
            return Err(Refusal::ReservedName);
        }
        match header.kind {
            EntryKind::Directory | EntryKind::File | EntryKind::Symlink | EntryKind::Hardlink => {}
            other => {
                return Err(Refusal::UnsupportedType {
                    kind: other.to_string(),
                });
            }
        }
        if header.size > 0 && matches!(header.kind, EntryKind::Directory | EntryKind::Symlink) {
            return Err(Refusal::DeclaresData {
                kind: header.kind.to_string(),
                size: header.size,
            });
        }
        self.check_parents(path)?;
        let existing = self.lookup(path)?;
        match (&header.kind, existing.as_ref().map(|k| &k.node)) {
            (EntryKind::Directory, Some(Node::Dir) | None) => {}
            (EntryKind::Directory, Some(other)) => {
                return Err(Refusal::NotADirectoryInTheWay {
                    existing: other.describe().into(),
                });
            }
            (_, Some(Node::Dir)) => return Err(Refusal::DirectoryInTheWay),
            (_, Some(Node::Other)) => return Err(Refusal::SpecialFileInTheWay),
            _ => {}
        }
        match header.kind {
            EntryKind::Directory => Ok(Action::Dir),
            EntryKind::File => Ok(Action::File),
            EntryKind::Symlink => {
                let target = header.link_target.clone().unwrap_or_default();
                if target.is_empty() {
                    return Err(Refusal::EmptySymlink);
                }
                let bad = |detail: String| Refusal::BadLinkTarget {
                    target: escape_bytes(&target),
                    detail,
                };
                // Neither can be created (symlink(2) fails), and a huge target would make
                // the check below slow.
                if target.contains(&0) {
                    return Err(bad("contains a NUL byte".into()));
                }
                if target.len() > MAX_PATH_BYTES {
                    return Err(bad(format!(
                        "is longer than PATH_MAX ({MAX_PATH_BYTES} bytes)"
                    )));
                }
                self.check_new_link(path, &target)?;
                Ok(Action::Symlink(target))
            }
            EntryKind::Hardlink => {
                let raw = header.link_target.clone().unwrap_or_default();
                let shown = escape_bytes(&raw);
                if header.size > 0 {
                    return Err(Refusal::HardlinkWithData);
                }
                if raw.starts_with(b"/") {
                    return Err(Refusal::HardlinkBadTarget { target: shown });
                }
                let target = match ArchivePath::parse(&raw) {
                    Ok(Some(t)) => t,
                    _ => return Err(Refusal::HardlinkBadTarget { target: shown }),
                };
                match self.get_known(&target) {
                    Some(Some(Known {
                        node: Node::File,
                        from_archive: true,
                    })) => Ok(Action::Hardlink(target)),
                    _ => Err(Refusal::HardlinkNotExtracted { target: shown }),
                }
            }
            _ => unreachable!("filtered above"),
        }
    }

    /// True when `path`'s parent is a directory in the model. Its own ancestors were all
    /// directories when it was entered, and a directory is never replaced, so this proves
    /// every ancestor is one (walking them all made deep archives cubic in their depth).
    fn parent_known_dir(&self, path: &ArchivePath) -> bool {
        match path.parent() {
            None => true,
            Some(parent) => matches!(
                self.get_known(&parent),
                Some(Some(Known {
                    node: Node::Dir,
                    ..
                }))
            ),
        }
    }

    fn check_parents(&mut self, path: &ArchivePath) -> Result<(), Refusal> {
        if self.parent_known_dir(path) {
            return Ok(());
        }
        for ancestor in path.ancestors() {
            match self.lookup(&ancestor)? {
                None => return Ok(()),
                Some(Known {
                    node: Node::Dir, ..
                }) => {}
                Some(Known {
                    node: Node::Symlink(_),
                    from_archive,
                }) => {
                    return Err(Refusal::ThroughSymlink {
                        parent: ancestor.to_string(),
                        on_target: !from_archive,
                    });
                }
                Some(_) => {
                    return Err(Refusal::ParentNotDirectory {
                        parent: ancestor.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    fn lookup(&mut self, path: &ArchivePath) -> Result<Option<Known>, Refusal> {
        if let Some(k) = self.get_known(path) {
            return Ok(k);
        }
        let node = self
            .view
            .lstat(path)
            .map_err(|e| Refusal::Inspect {
                detail: format!("{path}: {e}"),
            })?
            .map(|d| Known {
                node: match d {
                    DiskNode::Dir => Node::Dir,
                    DiskNode::File => Node::File,
                    DiskNode::Symlink(t) => Node::Symlink(t),
                    DiskNode::Other => Node::Other,
                },
                from_archive: false,
            });
        self.insert_known(path.clone(), node.clone());
        Ok(node)
    }

    /// Lookup for link resolution, where ancestors may not be verified directories.
    fn lookup_any(&mut self, path: &ArchivePath) -> Result<Option<Node>, Refusal> {
        // Only consult the disk when every ancestor is a real directory; otherwise the
        // path cannot exist as something we would have to follow.
        if !self.parent_known_dir(path) {
            for anc in path.ancestors() {
                match self.lookup(&anc)? {
                    Some(Known {
                        node: Node::Dir, ..
                    }) => {}
                    _ => return Ok(None),
                }
            }
        }
        Ok(self.lookup(path)?.map(|k| k.node))
    }

    /// Checks a new symlink `path -> target` as it will be: installed in the model (so a
    /// link through itself is a loop), and together with every earlier link of this archive
    /// whose resolution passed through `path` while it was missing, a file or another link
    /// (a new link can change where those resolve). On success the link is registered.
    fn check_new_link(&mut self, path: &ArchivePath, target: &[u8]) -> Result<(), Refusal> {
        // Install tentatively, missing ancestors as directories (as `record` will).
        let mut saved: Vec<(ArchivePath, Option<Option<Known>>)> = Vec::new();
        let dir = Known {
            node: Node::Dir,
            from_archive: true,
        };
        for anc in path.ancestors() {
            let prev = self.get_known(&anc);
            if !matches!(prev, Some(Some(_))) {
                self.insert_known(anc.clone(), Some(dir.clone()));
                saved.push((anc, prev));
            }
        }
        saved.push((path.clone(), self.get_known(path)));
        self.insert_known(
            path.clone(),
            Some(Known {
                node: Node::Symlink(target.to_vec()),
                from_archive: true,
            }),
        );
        match self.check_link_and_dependents(path, target) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                for (p, prev) in saved.into_iter().rev() {
                    match prev {
                        Some(v) => self.insert_known(p, v),
                        None => self.remove_known(&p),
                    }
                }
                Err(refusal)
            }
        }
    }

    fn check_link_and_dependents(
        &mut self,
        path: &ArchivePath,
        target: &[u8],
    ) -> Result<(), Refusal> {
        let mut visited = Vec::new();
        self.check_link_target(path.parent().as_ref(), target, &mut visited)?;
        let mut rechecked = Vec::new();
        for i in self.dependents.get(path).cloned().unwrap_or_default() {
            let (link, link_target) = self.links[i].clone();
            let in_place = matches!(
                self.get_known(&link),
                Some(Some(Known { node: Node::Symlink(t), from_archive: true })) if *t == link_target
            );
            if !in_place || link == *path {
                continue;
            }
            let mut v = Vec::new();
            self.check_link_target(link.parent().as_ref(), &link_target, &mut v)
                .map_err(|r| Refusal::BreaksEarlierLink {
                    link: link.to_string(),
                    detail: r.to_string(),
                })?;
            rechecked.push((i, v));
        }
        let index = self.links.len();
        self.links.push((path.clone(), target.to_vec()));
        rechecked.push((index, visited));
        for (i, paths) in rechecked {
            for p in paths {
                let deps = self.dependents.entry(p).or_default();
                if deps.last() != Some(&i) {
                    deps.push(i);
                }
            }
        }
        Ok(())
    }

    /// Resolves `target` from `base` as the host would (see the module docs). Every path
    /// looked at that is not a directory is added to `visited`.
    fn check_link_target(
        &mut self,
        base: Option<&ArchivePath>,
        target: &[u8],
        visited: &mut Vec<ArchivePath>,
    ) -> Result<(), Refusal> {
        let shown = escape_bytes(target);
        let mut stack: Vec<Vec<u8>> = Vec::new();
        let mut anchored = target.starts_with(b"/");
        if !anchored && let Some(base) = base {
            stack = base.components().map(|c| c.to_vec()).collect();
        }
        let mut queue: VecDeque<Vec<u8>> =
            target.split(|&b| b == b'/').map(|c| c.to_vec()).collect();
        let mut hops = 0u32;
        while let Some(comp) = queue.pop_front() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    if stack.pop().is_none() && !anchored {
                        return Err(Refusal::SymlinkEscapes { target: shown });
                    }
                }
                _ => {
                    stack.push(comp);
                    let joined = stack.join(&b'/');
                    self.link_work += joined.len() as u64;
                    if self.link_work > MAX_LINK_CHECK_BYTES {
                        return Err(Refusal::BadLinkTarget {
                            target: shown,
                            detail: "needs too much work to check (too many or too complex links in the archive)".into(),
                        });
                    }
                    let path = match ArchivePath::parse(&joined) {
                        Ok(Some(p)) => p,
                        Ok(None) => continue,
                        // The host cannot resolve it either; before, such a path counted
                        // as a directory and was never looked at.
                        Err(e) => {
                            return Err(Refusal::BadLinkTarget {
                                target: shown,
                                detail: format!("resolves through an unusable path ({e})"),
                            });
                        }
                    };
                    let node = self.lookup_any(&path)?;
                    if node != Some(Node::Dir) {
                        visited.push(path);
                    }
                    if let Some(Node::Symlink(next)) = node {
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            return Err(Refusal::SymlinkLoop { target: shown });
                        }
                        stack.pop();
                        if next.starts_with(b"/") {
                            stack.clear();
                            anchored = true;
                        }
                        for c in next.split(|&b| b == b'/').rev() {
                            queue.push_front(c.to_vec());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, path: &ArchivePath, action: &Action) {
        for anc in path.ancestors() {
            if !matches!(self.known.get(&anc), Some(Some(_)))
                && !matches!(self.get_known(&anc), Some(Some(_)))
            {
                self.insert_known(
                    anc,
                    Some(Known {
                        node: Node::Dir,
                        from_archive: true,
                    }),
                );
            }
        }
        let node = match action {
            Action::Dir => Node::Dir,
            Action::File | Action::Hardlink(_) => Node::File,
            Action::Symlink(t) => Node::Symlink(t.clone()),
        };
        self.insert_known(
            path.clone(),
            Some(Known {
                node,
                from_archive: true,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Timestamp;

    fn entry(name: &str, kind: EntryKind, link: Option<&str>) -> EntryHeader {
        EntryHeader {
            raw_path: name.as_bytes().to_vec(),
            kind,
            link_target: link.map(|l| l.as_bytes().to_vec()),
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            size: 0,
            mtime: Timestamp::default(),
            atime: None,
            device: None,
            has_xattrs: false,
            offset: 0,
        }
    }

    fn refused(d: &Decision) -> Option<&Refusal> {
        match d {
            Decision::Refuse(_, r) => Some(r),
            _ => None,
        }
    }

    /// Past the in-memory part of the file set (here 50 keys), files of the archive are
    /// still known: an entry under one of them is refused, a second copy of one is a
    /// duplicate like before the spill, and names never seen are accepted.
    #[test]
    fn file_rules_hold_after_the_file_set_spills() {
        let mut p = Policy::new(EmptyView);
        p.files = KeySet::with_memory_keys(50);
        assert!(matches!(
            p.decide(&entry("./home/", EntryKind::Directory, None)),
            Decision::Accept(..)
        ));
        let mut first = Vec::new();
        for i in 0..1000 {
            let d = p.decide(&entry(&format!("./home/f{i}"), EntryKind::File, None));
            assert!(matches!(d, Decision::Accept(..)), "f{i}: {d:?}");
            first.push(format!("{d:?}"));
        }
        assert!(p.files.is_spilled());
        for i in (0..1000).step_by(97) {
            let d = p.decide(&entry(&format!("./home/f{i}/x"), EntryKind::File, None));
            assert!(
                matches!(refused(&d), Some(Refusal::ParentNotDirectory { .. })),
                "f{i}/x: {d:?}"
            );
            let again = p.decide(&entry(&format!("./home/f{i}"), EntryKind::File, None));
            assert_eq!(format!("{again:?}"), first[i], "second copy of f{i}");
        }
        let d = p.decide(&entry("./home/g1/x", EntryKind::File, None));
        assert!(refused(&d).is_none(), "{d:?}");
    }

    #[test]
    fn write_through_archive_symlink_is_refused() {
        let mut p = Policy::new(EmptyView);
        assert!(matches!(
            p.decide(&entry("./link", EntryKind::Symlink, Some("/etc"))),
            Decision::Accept(..)
        ));
        let d = p.decide(&entry("./link/passwd", EntryKind::File, None));
        assert!(matches!(
            refused(&d),
            Some(Refusal::ThroughSymlink {
                on_target: false,
                ..
            })
        ));
        // Directory entry over the link: never chmod through it.
        let d = p.decide(&entry("./link", EntryKind::Directory, None));
        assert!(matches!(
            refused(&d),
            Some(Refusal::NotADirectoryInTheWay { .. })
        ));
        // A regular file replaces the link (no follow).
        assert!(matches!(
            p.decide(&entry("./link", EntryKind::File, None)),
            Decision::Accept(_, Action::File)
        ));
    }

    #[test]
    fn link_targets_are_resolved_as_the_host_would() {
        let mut p = Policy::new(EmptyView);
        let ok = |p: &mut Policy<EmptyView>, n: &str, t: &str| {
            matches!(
                p.decide(&entry(n, EntryKind::Symlink, Some(t))),
                Decision::Accept(..)
            )
        };
        assert!(ok(&mut p, "etc/localtime", "/usr/share/zoneinfo/UTC"));
        assert!(ok(&mut p, "etc/mtab", "../proc/self/mounts"));
        assert!(ok(&mut p, "good", "etc/config.txt"));
        assert!(!ok(&mut p, "malicious_link", "../../../../etc/passwd"));
        // Chain: up -> .. (root, fine), then via/x -> ../up/.. climbs above the root.
        assert!(ok(&mut p, "sub/up", ".."));
        assert!(!ok(&mut p, "sub/esc", "up/.."));
        // Loop: the link that closes it is refused (checked as if already in place).
        assert!(ok(&mut p, "a", "b"));
        let d = p.decide(&entry("b", EntryKind::Symlink, Some("a")));
        assert!(matches!(refused(&d), Some(Refusal::SymlinkLoop { .. })));
        let d = p.decide(&entry("self", EntryKind::Symlink, Some("self/x")));
        assert!(matches!(refused(&d), Some(Refusal::SymlinkLoop { .. })));
        // A later link must not make an earlier one climb out: `l -> x/..` is the root
        // while `x` is missing, the root's parent once `x -> .` exists.
        assert!(ok(&mut p, "l", "x/.."));
        let d = p.decide(&entry("x", EntryKind::Symlink, Some(".")));
        assert!(
            matches!(refused(&d), Some(Refusal::BreaksEarlierLink { link, .. }) if link == "l"),
            "{d:?}"
        );
        assert!(ok(&mut p, "x", "sub"));
    }

    #[test]
    fn hardlinks_only_to_files_of_this_run() {
        let mut p = Policy::new(EmptyView);
        assert!(matches!(
            p.decide(&entry("./etc/a", EntryKind::File, None)),
            Decision::Accept(..)
        ));
        assert!(matches!(
            p.decide(&entry("./etc/b", EntryKind::Hardlink, Some("./etc/a"))),
            Decision::Accept(_, Action::Hardlink(_))
        ));
        for target in ["/etc/shadow", "../outside", "etc/missing", "etc"] {
            let d = p.decide(&entry("./etc/c", EntryKind::Hardlink, Some(target)));
            assert!(refused(&d).is_some(), "{target}");
        }
        let mut with_data = entry("./etc/d", EntryKind::Hardlink, Some("./etc/a"));
        with_data.size = 10;
        assert_eq!(
            refused(&p.decide(&with_data)),
            Some(&Refusal::HardlinkWithData)
        );
    }

    #[test]
    fn special_files_and_bad_names_are_refused() {
        let mut p = Policy::new(EmptyView);
        for kind in [
            EntryKind::CharDevice,
            EntryKind::BlockDevice,
            EntryKind::Fifo,
            EntryKind::Contiguous,
            EntryKind::Sparse,
            EntryKind::GlobalHeader,
            EntryKind::Other(b'V'),
        ] {
            let d = p.decide(&entry("./dev/x", kind, None));
            assert!(
                matches!(refused(&d), Some(Refusal::UnsupportedType { .. })),
                "{kind:?}"
            );
        }
        assert!(matches!(
            refused(&p.decide(&entry("../etc/passwd", EntryKind::File, None))),
            Some(Refusal::BadName { .. })
        ));
        assert_eq!(
            p.decide(&entry("./", EntryKind::Directory, None)),
            Decision::Root
        );
        assert!(matches!(
            refused(&p.decide(&entry(".proxsave-stage-1/x", EntryKind::File, None))),
            Some(Refusal::ReservedName)
        ));
    }

    struct Disk(HashMap<&'static str, DiskNode>);
    impl FsView for Disk {
        fn lstat(&self, path: &ArchivePath) -> io::Result<Option<DiskNode>> {
            Ok(self.0.get(path.to_str().unwrap()).cloned())
        }
    }

    #[test]
    fn existing_links_on_the_target_are_not_traversed() {
        let disk = Disk(HashMap::from([
            ("var", DiskNode::Dir),
            ("var/tmp", DiskNode::Dir),
            ("var/tmp/x", DiskNode::Symlink(b"/".to_vec())),
            ("x", DiskNode::Symlink(b"../../root/.ssh".to_vec())),
            ("etc", DiskNode::Dir),
            ("etc/ssl", DiskNode::Dir),
        ]));
        let mut p = Policy::new(disk);
        for name in ["var/tmp/x/etc/passwd", "x/authorized_keys"] {
            let d = p.decide(&entry(name, EntryKind::File, None));
            assert!(
                matches!(
                    refused(&d),
                    Some(Refusal::ThroughSymlink {
                        on_target: true,
                        ..
                    })
                ),
                "{name}: {d:?}"
            );
        }
        let d = p.decide(&entry("etc/ssl", EntryKind::File, None));
        assert_eq!(refused(&d), Some(&Refusal::DirectoryInTheWay));
        // A link whose target escapes only because of an existing link on disk.
        let d = p.decide(&entry("etc/l", EntryKind::Symlink, Some("../x")));
        assert!(
            matches!(refused(&d), Some(Refusal::SymlinkEscapes { .. })),
            "{d:?}"
        );
    }

    #[test]
    fn special_files_on_the_target_are_never_replaced() {
        let disk = Disk(HashMap::from([
            ("dev", DiskNode::Dir),
            ("dev/null", DiskNode::Other),
        ]));
        let mut p = Policy::new(disk);
        for kind in [EntryKind::File, EntryKind::Symlink] {
            let d = p.decide(&entry("dev/null", kind, Some("x")));
            assert_eq!(refused(&d), Some(&Refusal::SpecialFileInTheWay), "{kind:?}");
        }
    }
}
