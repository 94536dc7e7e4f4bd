//! `/etc/resolv.conf` after a network restore (pure decisions; the applier writes).
//!
//! The backup's `/etc/resolv.conf` is never copied: on the old host it was often a symlink into
//! systemd-resolved's runtime directory, or (older backups) a link to the backup's own
//! `resolv_conf.txt`. The root's file is repaired only when it needs it:
//!
//! * it is missing, a symlink that does not resolve inside the root, or a symlink to a
//!   backup artefact (`…/commands/system/resolv_conf.txt`, `…/commands/resolv_conf.txt`);
//! * a regular file (even one without nameservers) or a working symlink is left alone.
//!
//! The repair: a symlink to systemd-resolved's `/run/systemd/resolve/resolv.conf` (else
//! `stub-resolv.conf`) when the root has it; else the backup's recorded `resolv_conf.txt` when
//! it has a `nameserver` line (CRLF made LF, one final newline, mode 0644); else
//! `nameserver <gateway>` (the configuration's first `gateway`) and `nameserver 1.1.1.1`.

use std::path::Path;

use serde::Serialize;

/// Archive names of the backup's recorded `resolv.conf`, in lookup order.
pub const RECORDED: [&str; 2] = [
    "var/lib/proxsave-info/commands/system/resolv_conf.txt",
    "commands/resolv_conf.txt",
];

/// systemd-resolved's files, in preference order (absolute paths inside the root).
pub const RESOLVED: [&str; 2] = [
    "/run/systemd/resolve/resolv.conf",
    "/run/systemd/resolve/stub-resolv.conf",
];

/// Largest recorded file used.
pub const MAX_RECORDED: usize = 64 * 1024;

/// What `/etc/resolv.conf` in the root is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// Nothing there.
    Missing,
    /// A regular file (or anything that is not a symlink).
    File,
    /// A symlink with this target; `resolves` when it reaches an existing file in the root.
    Symlink {
        /// The link's text.
        target: String,
        /// True when it resolves inside the root.
        resolves: bool,
    },
}

/// The repair to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Leave it as it is.
    Keep {
        /// Why.
        reason: String,
    },
    /// Replace it by a symlink (target relative to `/etc`).
    Link {
        /// The link text, e.g. `../run/systemd/resolve/resolv.conf`.
        target: String,
        /// Why.
        reason: String,
    },
    /// Replace it by a regular file, mode 0644.
    Write {
        /// The contents.
        contents: String,
        /// Why.
        reason: String,
    },
}

/// Reads what `/etc/resolv.conf` is inside `root`.
pub fn inspect(root: &Path) -> Current {
    let p = root.join("etc/resolv.conf");
    match std::fs::symlink_metadata(&p) {
        Err(_) => Current::Missing,
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(&p)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let resolves = crate::rootfs::is_file(root, Path::new("/etc/resolv.conf"));
            Current::Symlink { target, resolves }
        }
        Ok(_) => Current::File,
    }
}

/// Normalises a recorded file: CRLF to LF, exactly one final newline; `None` without a
/// `nameserver` line or when too large.
pub fn usable_recorded(bytes: &[u8]) -> Option<String> {
    if bytes.len() > MAX_RECORDED {
        return None;
    }
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with("nameserver"))
    {
        return None;
    }
    Some(format!("{}\n", text.trim_end_matches('\n')))
}

/// Decides the repair (pure). `resolved_present[i]` tells whether [`RESOLVED`]`[i]` exists in
/// the root; `recorded` is the backup's recorded file; `gateway` the configuration's gateway.
pub fn decide(
    current: &Current,
    resolved_present: [bool; 2],
    recorded: Option<&[u8]>,
    gateway: Option<&str>,
) -> Action {
    let why = match current {
        Current::File => {
            return Action::Keep {
                reason: "/etc/resolv.conf is a regular file of this host".into(),
            };
        }
        Current::Symlink { target, .. }
            if target.contains("commands/system/resolv_conf.txt")
                || target.contains("commands/resolv_conf.txt") =>
        {
            format!("/etc/resolv.conf points to a backup artefact ({target})")
        }
        Current::Symlink {
            resolves: true,
            target,
        } => {
            return Action::Keep {
                reason: format!("/etc/resolv.conf is a working symlink to {target}"),
            };
        }
        Current::Symlink { target, .. } => {
            format!("/etc/resolv.conf is a dangling symlink to {target}")
        }
        Current::Missing => "/etc/resolv.conf is missing".into(),
    };
    for (i, present) in resolved_present.iter().enumerate() {
        if *present {
            return Action::Link {
                target: format!("..{}", RESOLVED[i]),
                reason: format!("{why}; systemd-resolved's {} is used", RESOLVED[i]),
            };
        }
    }
    if let Some(text) = recorded.and_then(usable_recorded) {
        return Action::Write {
            contents: text,
            reason: format!("{why}; the nameservers the backup recorded are used"),
        };
    }
    let first = gateway.unwrap_or("1.1.1.1");
    Action::Write {
        contents: format!(
            "# written by proxsave: the backup recorded no nameserver\nnameserver {first}\nnameserver 1.1.1.1\noptions timeout:2 attempts:2\n"
        ),
        reason: format!(
            "{why}; the backup recorded no nameserver, so {} and 1.1.1.1 are used",
            if gateway.is_some() {
                "the configuration's gateway"
            } else {
                "1.1.1.1"
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_without_nameservers_is_kept() {
        assert!(matches!(
            decide(
                &Current::File,
                [true, true],
                Some(b"nameserver 9.9.9.9\n"),
                None
            ),
            Action::Keep { .. }
        ));
    }

    #[test]
    fn artefact_link_uses_resolved_then_recorded_then_gateway() {
        let cur = Current::Symlink {
            target: "../var/lib/proxsave-info/commands/system/resolv_conf.txt".into(),
            resolves: true,
        };
        assert_eq!(
            decide(&cur, [false, true], None, None),
            Action::Link {
                target: "../run/systemd/resolve/stub-resolv.conf".into(),
                reason: "/etc/resolv.conf points to a backup artefact (../var/lib/proxsave-info/commands/system/resolv_conf.txt); systemd-resolved's /run/systemd/resolve/stub-resolv.conf is used".into()
            }
        );
        match decide(
            &cur,
            [false, false],
            Some(b"search lan\r\nnameserver 192.0.2.53\r\n\r\n"),
            None,
        ) {
            Action::Write { contents, .. } => {
                assert_eq!(contents, "search lan\nnameserver 192.0.2.53\n")
            }
            a => panic!("{a:?}"),
        }
        match decide(
            &Current::Missing,
            [false, false],
            Some(b"search lan\n"),
            Some("192.0.2.1"),
        ) {
            Action::Write { contents, .. } => assert!(
                contents.contains("nameserver 192.0.2.1\nnameserver 1.1.1.1\n"),
                "{contents}"
            ),
            a => panic!("{a:?}"),
        }
    }
}
