//! Property tests of the account file parsers and the accounts merge (seeded, bounded).

use std::collections::HashSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use proxsave_restore::system::accounts::{
    AccountFile, AccountFiles, GroupFile, GshadowFile, LineFile, LoginDefs, MergeOutcome, Merged,
    ParseLine, PasswdFile, ShadowFile, SubidFile, merge,
};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0acc_0a17),
        failure_persistence: None,
        ..Config::default()
    }
}

fn round_trips<E: ParseLine>(text: &str) -> Result<(), TestCaseError> {
    let file = LineFile::<E>::parse(text);
    prop_assert_eq!(file.to_string(), text);
    let blank_or_parsed = file.lines().iter().enumerate().all(|(i, l)| {
        l.entry().is_some()
            || file.warnings().iter().any(|w| w.line == i + 1)
            || l.text().trim().is_empty()
            || l.text().trim_start().starts_with('#')
    });
    prop_assert!(blank_or_parsed, "a line that does not parse must be named");
    Ok(())
}

fn all_round_trip(text: &str) -> Result<(), TestCaseError> {
    round_trips::<proxsave_restore::system::accounts::PasswdEntry>(text)?;
    round_trips::<proxsave_restore::system::accounts::GroupEntry>(text)?;
    round_trips::<proxsave_restore::system::accounts::ShadowEntry>(text)?;
    round_trips::<proxsave_restore::system::accounts::GshadowEntry>(text)?;
    round_trips::<proxsave_restore::system::accounts::SubidEntry>(text)?;
    round_trips::<proxsave_restore::system::accounts::LoginDef>(text)?;
    prop_assert_eq!(LoginDefs::parse(text).to_string(), text);
    Ok(())
}

/// Text made of the characters these formats care about.
const LINEISH: &str = "[a-z0-9:,!*#+$ \t\r\n._-]{0,300}";

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parsers_round_trip_any_text(text in any::<String>()) {
        all_round_trip(&text)?;
    }

    #[test]
    fn parsers_round_trip_lineish_text(text in LINEISH) {
        all_round_trip(&text)?;
    }

    #[test]
    fn valid_lines_parse_to_their_fields(
        name in "[a-z_][a-z0-9_-]{0,15}",
        uid in 0u32..u32::MAX,
        gid in 0u32..u32::MAX,
        gecos in "[A-Za-z ,]{0,20}",
        members in proptest::collection::vec("[a-z][a-z0-9]{0,6}", 0..4),
        start in any::<u64>(),
        count in any::<u64>(),
        newline in any::<bool>(),
    ) {
        let nl = if newline { "\n" } else { "" };
        let passwd = format!("{name}:x:{uid}:{gid}:{gecos}:/home/{name}:/bin/bash{nl}");
        let file = PasswdFile::parse(&passwd);
        prop_assert_eq!(file.to_string(), passwd.clone());
        prop_assert!(file.warnings().is_empty());
        let entry = file.entries().next().map(|(_, e)| e.clone());
        prop_assert!(entry.is_some());
        if let Some(e) = entry {
            prop_assert_eq!((&e.name, e.uid, e.gid, &e.gecos), (&name, uid, gid, &gecos));
            prop_assert_eq!(format!("{e}{nl}"), passwd);
        }

        let list = members.join(",");
        let group = format!("{name}:x:{gid}:{list}{nl}");
        let file = GroupFile::parse(&group);
        prop_assert_eq!(file.to_string(), group);
        let entry = file.entries().next().map(|(_, e)| e.clone());
        prop_assert!(entry.is_some());
        if let Some(e) = entry {
            prop_assert_eq!(e.gid, gid);
            prop_assert_eq!(e.members().collect::<Vec<_>>(), members.iter().map(String::as_str).collect::<Vec<_>>());
        }

        let shadow = format!("{name}:$y$j9T$salt$hash:{}:0:99999:7:::{nl}", uid % 30000);
        let file = ShadowFile::parse(&shadow);
        prop_assert_eq!(file.to_string(), shadow);
        prop_assert_eq!(file.entries().count(), 1);

        let gshadow = format!("{name}:!:{list}:{list}{nl}");
        let file = GshadowFile::parse(&gshadow);
        prop_assert_eq!(file.to_string(), gshadow);
        prop_assert_eq!(file.entries().count(), 1);

        let subid = format!("{name}:{start}:{count}{nl}");
        let file = SubidFile::parse(&subid);
        prop_assert_eq!(file.to_string(), subid);
        let entry = file.entries().next().map(|(_, e)| (e.start, e.count));
        prop_assert_eq!(entry, Some((start, count)));
    }
}

// ------------------------------------------------------------------------------------------
// The merge
// ------------------------------------------------------------------------------------------

const NAMES: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "root", "daemon", "backup", "sudo", "devs",
];
const IDS: [u32; 12] = [
    1000, 1001, 1002, 1003, 1004, 0, 1, 27, 34, 999, 60001, 65534,
];
const STARTS: [u64; 4] = [100000, 165536, 150000, 231072];
const JUNK: [&str; 7] = [
    "garbage",
    "",
    "+::::::",
    "x:y",
    "# comment",
    "odd:x:01002:1:::",
    "a:b:c:d:e:f:g:h:i:j",
];
const DEFS: [&str; 4] = [
    "",
    "UID_MIN 1001\nUID_MAX 1002\n",
    "UID_MIN 500\nGID_MIN 500\n",
    "UID_MAX 70000\nGID_MAX 70000\n",
];

/// name, uid, private group (else gid), gid, shadow hash variant, gecos variant
type User = (usize, usize, bool, usize, Option<u8>, u8);
/// name, gid, members
type Group = (usize, usize, Vec<usize>);
/// owner (name, or uid when past the names), start, single id
type Subid = (usize, usize, bool);
/// file, junk line, position
type Junk = (usize, usize, usize);

/// Mostly regular names and ids (indexes 0..5), some system ones.
fn pick(len: usize) -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..5usize, 1 => 0..len]
}

fn side(base: bool) -> impl Strategy<Value = AccountFiles> {
    (
        proptest::collection::vec(
            (
                pick(NAMES.len()),
                pick(IDS.len()),
                proptest::bool::weighted(0.8),
                pick(IDS.len()),
                proptest::option::weighted(0.8, 0u8..2),
                0u8..2,
            ),
            0..7,
        ),
        proptest::collection::vec(
            (
                5..NAMES.len(),
                pick(IDS.len()),
                proptest::collection::vec(pick(NAMES.len()), 0..4),
            ),
            0..4,
        ),
        proptest::bool::weighted(0.8),
        proptest::collection::vec((0..NAMES.len() + 2, 0..STARTS.len(), any::<bool>()), 0..4),
        proptest::collection::vec((0usize..6, 0..JUNK.len(), 0usize..10), 0..2),
        any::<[bool; 6]>(),
    )
        .prop_map(move |(users, groups, gshadow, subids, junk, newlines)| {
            build(base, &users, &groups, gshadow, &subids, &junk, newlines)
        })
}

fn build(
    base: bool,
    users: &[User],
    groups: &[Group],
    gshadow: bool,
    subids: &[Subid],
    junk: &[Junk],
    newlines: [bool; 6],
) -> AccountFiles {
    let mut lines: [Vec<String>; 6] = Default::default();
    let mut group_lines: Vec<(String, u32, Vec<String>)> = Vec::new();
    if base {
        lines[0].push("root:x:0:0:root:/root:/bin/bash".into());
        lines[2].push("root:*:19000:0:99999:7:::".into());
        group_lines.push(("root".into(), 0, Vec::new()));
        group_lines.push(("sudo".into(), 27, Vec::new()));
    }
    for &(n, u, private, g, hash, gecos) in users {
        let name = NAMES[n];
        let uid = IDS[u];
        let gid = if private { uid } else { IDS[g] };
        lines[0].push(format!(
            "{name}:x:{uid}:{gid}:g{gecos}:/home/{name}:/bin/sh"
        ));
        if let Some(h) = hash {
            lines[2].push(format!("{name}:$6$h{h}:19000:0:99999:7:::"));
        }
        if private && !group_lines.iter().any(|(n, _, _)| n == name) {
            group_lines.push((name.to_owned(), gid, Vec::new()));
        }
    }
    for (n, g, members) in groups {
        let members: Vec<String> = members.iter().map(|&m| NAMES[m].to_owned()).collect();
        match group_lines
            .iter_mut()
            .find(|(name, _, _)| name == NAMES[*n])
        {
            Some((_, _, list)) => list.extend(members),
            None => group_lines.push((NAMES[*n].to_owned(), IDS[*g], members)),
        }
    }
    for (name, gid, members) in &group_lines {
        lines[1].push(format!("{name}:x:{gid}:{}", members.join(",")));
        if gshadow {
            lines[3].push(format!("{name}:!::{}", members.join(",")));
        }
    }
    for &(owner, start, one) in subids {
        let owner = if owner < NAMES.len() {
            NAMES[owner].to_owned()
        } else {
            IDS[owner - NAMES.len()].to_string()
        };
        let count = if one { 1 } else { 65536 };
        lines[4].push(format!("{owner}:{}:{count}", STARTS[start]));
        lines[5].push(format!("{owner}:{}:{count}", STARTS[start] + 7));
    }
    for &(file, j, at) in junk {
        let at = at.min(lines[file].len());
        lines[file].insert(at, JUNK[j].to_owned());
    }
    let mut files = AccountFiles::default();
    for (i, file) in AccountFile::ALL.into_iter().enumerate() {
        let optional = matches!(
            file,
            AccountFile::Gshadow | AccountFile::Subuid | AccountFile::Subgid
        );
        if optional && lines[i].is_empty() {
            continue;
        }
        let mut text = lines[i].join("\n");
        if newlines[i] && !lines[i].is_empty() {
            text.push('\n');
        }
        files.set(file, &text);
    }
    files
}

fn after(current: &AccountFiles, outcome: &MergeOutcome) -> AccountFiles {
    let mut merged = AccountFiles::default();
    for file in AccountFile::ALL {
        if let Some(text) = outcome
            .file(file)
            .map(str::to_owned)
            .or_else(|| current.text(file))
        {
            merged.set(file, &text);
        }
    }
    merged
}

fn lines_of(files: &AccountFiles, file: AccountFile) -> Vec<String> {
    let text = files.text(file).unwrap_or_default();
    let parsed = PasswdFile::parse(&text);
    parsed.lines().iter().map(|l| l.text().to_owned()).collect()
}

fn key(line: &str) -> &str {
    line.split(':').next().unwrap_or_default()
}

/// Every line of this host is still there, at its place; a changed line is one the merge
/// may change (a matched user's lines from the backup, a member list extended).
fn check_kept(
    file: AccountFile,
    current: &AccountFiles,
    merged: &AccountFiles,
    backup: &AccountFiles,
) -> Result<(), TestCaseError> {
    let cur = lines_of(current, file);
    let out = lines_of(merged, file);
    prop_assert!(out.len() >= cur.len(), "{:?} lost lines", file);
    let backup_lines: HashSet<String> = lines_of(backup, file).into_iter().collect();
    for (old, new) in cur.iter().zip(&out) {
        if old == new {
            continue;
        }
        prop_assert_eq!(
            key(old),
            key(new),
            "{:?}: line {:?} became {:?}",
            file,
            old,
            new
        );
        match file {
            AccountFile::Passwd | AccountFile::Shadow => {
                prop_assert!(
                    backup_lines.contains(new),
                    "{:?}: {:?} is not a backup line",
                    file,
                    new
                );
                if file == AccountFile::Passwd {
                    let uid = |l: &str| l.split(':').nth(2).map(str::to_owned);
                    prop_assert_eq!(uid(old), uid(new), "a matched user keeps its uid");
                }
            }
            AccountFile::Group | AccountFile::Gshadow => {
                // name:pw:gid-or-admins: unchanged, members extended.
                let (old_head, old_members) = old.rsplit_once(':').unwrap_or_default();
                let (new_head, new_members) = new.rsplit_once(':').unwrap_or_default();
                prop_assert_eq!(old_head, new_head);
                prop_assert!(
                    new_members.starts_with(old_members),
                    "{:?} -> {:?}",
                    old,
                    new
                );
            }
            AccountFile::Subuid | AccountFile::Subgid => {
                prop_assert!(false, "{:?}: line {:?} changed", file, old);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn merge_keeps_this_host_and_adds_only_regular_users(
        current in prop_oneof![9 => side(true), 1 => side(false)],
        backup in prop_oneof![9 => side(true), 1 => side(false)],
        defs in 0..DEFS.len(),
    ) {
        let defs = LoginDefs::parse(DEFS[defs]);
        let ranges = defs.id_ranges().0;
        let outcome = match merge(&current, &backup, &defs) {
            Merged::Done(outcome) => *outcome,
            Merged::Skipped(reason) => {
                let empty = |f: AccountFile| current.text(f).is_none_or(|t| t.trim().is_empty())
                    || backup.text(AccountFile::Passwd).is_none_or(|t| t.trim().is_empty());
                prop_assert!(
                    empty(AccountFile::Passwd) || empty(AccountFile::Group) || empty(AccountFile::Shadow),
                    "skipped without reason: {}", reason
                );
                return Ok(());
            }
        };
        let merged = after(&current, &outcome);
        for file in AccountFile::ALL {
            check_kept(file, &current, &merged, &backup)?;
        }

        // New and replaced passwd lines: never root, always a regular uid, unique.
        let cur = lines_of(&current, AccountFile::Passwd);
        let out = PasswdFile::parse(&merged.text(AccountFile::Passwd).unwrap_or_default());
        let entries: Vec<_> = out.entries().map(|(i, e)| (i, e.clone())).collect();
        for (i, e) in &entries {
            let changed = cur.get(*i).is_none_or(|old| old != out.lines()[*i].text());
            if !changed {
                continue;
            }
            prop_assert!(e.name != "root" && e.uid != 0, "root brought: {:?}", e);
            prop_assert!(ranges.is_regular_uid(e.uid), "uid {} outside the range", e.uid);
            if *i >= cur.len() {
                prop_assert_eq!(entries.iter().filter(|(_, o)| o.name == e.name).count(), 1);
                prop_assert!(!cur.iter().any(|l| l.split(':').nth(2) == Some(&e.uid.to_string())));
            }
        }
        // Every user added has a shadow line, every group added a gshadow line (if any).
        let shadow = merged.text(AccountFile::Shadow).unwrap_or_default();
        for u in &outcome.report.users_added {
            let prefix = format!("{}:", u.name);
            prop_assert!(shadow.lines().any(|l| l.starts_with(&prefix)));
        }
        if let Some(gshadow) = merged.text(AccountFile::Gshadow) {
            for g in &outcome.report.groups_added {
                let prefix = format!("{}:", g.name);
                prop_assert!(gshadow.lines().any(|l| l.starts_with(&prefix)));
            }
        }
        prop_assert_eq!(
            outcome.report.files_changed.clone(),
            outcome.files.iter().map(|(f, _)| *f).collect::<Vec<_>>()
        );

        // Idempotent.
        match merge(&merged, &backup, &defs) {
            Merged::Done(again) => {
                prop_assert!(again.files.is_empty(), "second merge changes {:?}", again.report.files_changed);
            }
            Merged::Skipped(reason) => prop_assert!(false, "second merge skipped: {}", reason),
        }
    }
}
