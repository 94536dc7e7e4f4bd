//! Property tests of the text parsers of the restore path (issue 7, point 5): archive paths,
//! glob patterns and selectors, Go times, the `.sha256` sidecar and the manifest.
//!
//! Each parser is fed arbitrary input (it must return, never panic) and generated valid input
//! (it must give back what was generated), and is compared with a small reference
//! implementation written here where the rules are simple enough to restate.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Timelike,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proxsave_archive::checksum::{
    ChecksumError, format_checksum_line, normalize_sha256, parse_checksum_file, resolve_expectation,
};
use proxsave_archive::manifest::{GO_ZERO_TIME, GoTime, Manifest, ManifestError, ManifestFormat};
use proxsave_archive::path::{
    ArchivePath, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, PathError, escape_bytes,
};
use proxsave_archive::pathmatch::{Selector, glob_match};

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

// ================================================================================================
// ArchivePath
// ================================================================================================

/// The normal form as the module docs state it: `/`-separated components, empty and `.`
/// dropped, `..` refused, NUL refused, components up to 255 bytes, paths up to 4095 bytes;
/// nothing left is the root.
fn reference_parse(raw: &[u8]) -> Result<Option<Vec<u8>>, PathError> {
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut kept: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(PathError::DotDot),
            c if c.len() > MAX_COMPONENT_BYTES => return Err(PathError::ComponentTooLong),
            c => kept.push(c),
        }
    }
    let joined = kept.join(&b'/');
    if joined.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    Ok((!joined.is_empty()).then_some(joined))
}

/// Raw member names: a soup of separators, dots, NULs, control and non-UTF-8 bytes, and
/// components around the length limits.
fn raw_name() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => prop::sample::select(vec![
            &b"/"[..], b"//", b".", b"..", b"./", b"a", b"etc", b"hosts", b"...", b".a",
            b"\0", b"\n", b"\x1b[31m", b"\\", b"\xff", b"\xc3\xa9", b"\xe9", b" ",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => (254usize..258).prop_map(|n| vec![b'x'; n]),
        1 => vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        4 => vec(token, 0..24).prop_map(|t| t.concat()),
        1 => vec(any::<u8>(), 0..64),
        // Long paths around MAX_PATH_BYTES.
        1 => (15usize..18, 200usize..256).prop_map(|(n, len)| {
            vec![vec![b'd'; len]; n].join(&b'/')
        }),
    ]
}

/// A normalised relative path made of ordinary components.
fn clean_rel_path() -> impl Strategy<Value = String> {
    vec("[a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9_-]|é|sshd_config|pve", 1..6)
        .prop_map(|comps| comps.join("/"))
        .prop_filter("no . or .. components", |p| {
            p.split('/').all(|c| c != "." && c != "..")
        })
}

/// The inverse of [`escape_bytes`], to show that escaping loses nothing.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("two hex digits after \\x"));
            }
            other => panic!("unexpected escape {other:?} in {text:?}"),
        }
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// `parse` never panics and follows the documented normal form exactly.
    #[test]
    fn archive_path_parse_matches_the_reference(raw in raw_name()) {
        let got = ArchivePath::parse(&raw).map(|p| p.map(|p| p.as_bytes().to_vec()));
        prop_assert_eq!(got, reference_parse(&raw));
    }

    /// A parsed path is in normal form: no `.`, `..` or empty component, no NUL, no leading
    /// or trailing `/`, within the limits; parsing it again gives it back (idempotent), and
    /// its accessors agree with each other.
    #[test]
    fn archive_path_normal_form_is_stable(raw in raw_name()) {
        let Ok(Some(p)) = ArchivePath::parse(&raw) else { return Ok(()) };
        let bytes = p.as_bytes();
        prop_assert!(!bytes.contains(&0));
        prop_assert!(!bytes.starts_with(b"/") && !bytes.ends_with(b"/"));
        prop_assert!(bytes.len() <= MAX_PATH_BYTES);
        for c in p.components() {
            prop_assert!(!c.is_empty() && c != b"." && c != b"..", "component {:?}", c);
            prop_assert!(c.len() <= MAX_COMPONENT_BYTES);
        }
        prop_assert_eq!(ArchivePath::parse(bytes), Ok(Some(p.clone())));
        // Accessors.
        prop_assert_eq!(p.depth(), p.components().count());
        prop_assert_eq!(p.components().last().unwrap_or_default(), p.file_name());
        let ancestors: Vec<ArchivePath> = p.ancestors().collect();
        prop_assert_eq!(ancestors.len(), p.depth() - 1);
        for a in &ancestors {
            prop_assert!(p.starts_with(a) && a != &p);
            prop_assert!(!a.starts_with(&p));
        }
        match p.parent() {
            Some(parent) => {
                prop_assert_eq!(ancestors.last(), Some(&parent));
                prop_assert_eq!(parent.join(p.file_name()), p.clone());
            }
            None => prop_assert_eq!(p.depth(), 1),
        }
        prop_assert!(p.starts_with(&p));
    }

    /// `etc/hosts`, `./etc/hosts`, `/etc/hosts`, `etc/hosts/`, `etc//./hosts` are one path,
    /// for `parse` and for `from_user`.
    #[test]
    fn archive_path_spellings_are_equal(
        path in clean_rel_path(),
        lead in prop::sample::select(vec!["", "/", "./", "//", "/./", "././"]),
        trail in prop::sample::select(vec!["", "/", "/.", "//"]),
        sep in prop::sample::select(vec!["/", "//", "/./", "/././/"]),
    ) {
        let plain = ArchivePath::from_user(&path).expect("a clean path");
        prop_assert_eq!(plain.to_str(), Some(path.as_str()));
        let spelled = format!("{lead}{}{trail}", path.replace('/', sep));
        prop_assert_eq!(ArchivePath::from_user(&spelled), Ok(plain.clone()));
        prop_assert_eq!(ArchivePath::parse(spelled.as_bytes()), Ok(Some(plain.clone())));
        prop_assert_eq!(plain.display_dotted(), format!("./{path}"));
    }

    /// `from_user` is `parse` with the root refused.
    #[test]
    fn archive_path_from_user_is_parse_without_root(text in "[a./\\\\é\\x00]{0,12}|.{0,40}") {
        let expected = match ArchivePath::parse(text.as_bytes()) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(PathError::Empty),
            Err(e) => Err(e),
        };
        prop_assert_eq!(ArchivePath::from_user(&text), expected);
    }

    /// Escaping for display hides every control character, loses nothing (it can be undone),
    /// and is what `Display` shows.
    #[test]
    fn escape_bytes_is_printable_and_reversible(raw in raw_name()) {
        let text = escape_bytes(&raw);
        prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
        prop_assert_eq!(unescape(&text), raw.clone());
        if let Ok(Some(p)) = ArchivePath::parse(&raw) {
            prop_assert_eq!(p.to_string(), escape_bytes(p.as_bytes()));
            prop_assert_eq!(p.display_dotted(), format!("./{}", escape_bytes(p.as_bytes())));
        }
    }
}

// ================================================================================================
// Glob patterns
// ================================================================================================

/// Go's `utf8.DecodeRune`: a valid character and its length, or `RuneError` of width 1.
fn decode_rune(s: &[u8]) -> (u32, usize) {
    match s.utf8_chunks().next() {
        None => (0xFFFD, 0),
        Some(chunk) => match chunk.valid().chars().next() {
            Some(c) => (c as u32, c.len_utf8()),
            None => (0xFFFD, 1),
        },
    }
}

/// Go's `path.Match`, transcribed (scanChunk/matchChunk/getEsc), with the one documented
/// difference of ours: a character class never matches `/`.
fn reference_match(pattern: &[u8], name: &[u8]) -> Result<bool, ()> {
    fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
        let mut p = pattern;
        let mut star = false;
        while let Some((b'*', rest)) = p.split_first() {
            p = rest;
            star = true;
        }
        let mut in_range = false;
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'\\' if i + 1 < p.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => return (star, &p[..i], &p[i..]),
                _ => {}
            }
            i += 1;
        }
        (star, p, &[])
    }
    fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), ()> {
        let mut c = chunk;
        if c.is_empty() || c[0] == b'-' || c[0] == b']' {
            return Err(());
        }
        if c[0] == b'\\' {
            c = &c[1..];
            if c.is_empty() {
                return Err(());
            }
        }
        let (r, n) = decode_rune(c);
        if r == 0xFFFD && n == 1 {
            return Err(());
        }
        let rest = &c[n..];
        if rest.is_empty() {
            return Err(());
        }
        Ok((r, rest))
    }
    fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
        let mut failed = false;
        while !chunk.is_empty() {
            if !failed && s.is_empty() {
                failed = true;
            }
            match chunk[0] {
                b'[' => {
                    let mut r = 0;
                    if !failed {
                        // Ours: a class never matches '/'.
                        if s[0] == b'/' {
                            failed = true;
                        }
                        let (rr, n) = decode_rune(s);
                        r = rr;
                        s = &s[n..];
                    }
                    chunk = &chunk[1..];
                    let negated = chunk.first() == Some(&b'^');
                    if negated {
                        chunk = &chunk[1..];
                    }
                    let mut matched = false;
                    let mut nrange = 0;
                    loop {
                        if chunk.first() == Some(&b']') && nrange > 0 {
                            chunk = &chunk[1..];
                            break;
                        }
                        let (lo, rest) = get_esc(chunk)?;
                        chunk = rest;
                        let mut hi = lo;
                        if chunk[0] == b'-' {
                            let (h, rest) = get_esc(&chunk[1..])?;
                            hi = h;
                            chunk = rest;
                        }
                        if lo <= r && r <= hi {
                            matched = true;
                        }
                        nrange += 1;
                    }
                    if matched == negated {
                        failed = true;
                    }
                }
                b'?' => {
                    if !failed {
                        if s[0] == b'/' {
                            failed = true;
                        }
                        let (_, n) = decode_rune(s);
                        s = &s[n..];
                    }
                    chunk = &chunk[1..];
                }
                c => {
                    let c = if c == b'\\' {
                        chunk = &chunk[1..];
                        match chunk.first() {
                            Some(&c) => c,
                            None => return Err(()),
                        }
                    } else {
                        c
                    };
                    if !failed {
                        if c != s[0] {
                            failed = true;
                        }
                        s = &s[1..];
                    }
                    chunk = &chunk[1..];
                }
            }
        }
        Ok((!failed).then_some(s))
    }

    let mut pattern = pattern;
    let mut name = name;
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&b'/'));
        }
        let first = match_chunk(chunk, name);
        if let Ok(Some(t)) = first
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        first?;
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                match match_chunk(chunk, &name[i + 1..])? {
                    Some(t) if pattern.is_empty() && !t.is_empty() => {}
                    Some(t) => {
                        name = t;
                        continue 'pattern;
                    }
                    None => {}
                }
                i += 1;
            }
        }
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn glob_pattern() -> impl Strategy<Value = String> {
    vec(
        prop::sample::select(vec![
            "a", "b", "é", "/", ".", "-", "^", "]", "[", "\\", "*", "**", "?", "[ab]", "[^a]",
            "[a-c]", "[^/]", "[/]", "[é-ü]", "[\\]]", "[\\-]", "[]a]", "[-a]", "[a-]", "\\*",
            "\\?", "\\a", "\\/", "[^\\/]",
        ]),
        0..8,
    )
    .prop_map(|t| t.concat())
}

fn glob_name() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop::sample::select(vec![
            &b"a"[..],
            b"b",
            b"c",
            b"/",
            b".",
            b"-",
            b"]",
            b"*",
            b"\\",
            b"\xc3\xa9",
            b"\xc3\xbc",
            b"\xff",
            b"\xc3",
            b"\xf0",
            b"\xe2\x98",
        ])
        .prop_map(<[u8]>::to_vec),
        0..8,
    )
    .prop_map(|t| t.concat())
}

/// Escapes glob metacharacters so that the pattern matches the text literally.
fn glob_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A selector path: components that exist in generated names.
fn selector_path() -> impl Strategy<Value = ArchivePath> {
    vec(prop::sample::select(vec!["a", "b", "ab", "é", "c.d"]), 1..5)
        .prop_map(|c| ArchivePath::from_user(&c.join("/")).expect("a clean path"))
}

/// A path and a pattern built from it, character by character (kept, escaped, `?`, `*`
/// before it, a class holding it, a negated class; each `/` plain or escaped), so the
/// pattern matches the path by construction.
fn path_and_its_pattern() -> impl Strategy<Value = (ArchivePath, String)> {
    selector_path().prop_flat_map(|path| {
        let text = path.to_str().expect("UTF-8").to_owned();
        let n = text.chars().count();
        (Just(path), vec(0u8..7, n)).prop_map(move |(path, choices)| {
            let mut pattern = String::new();
            for (c, k) in text.chars().zip(choices) {
                let piece = match (c, k) {
                    ('/', k) if k % 2 == 0 => "/".to_owned(),
                    ('/', _) => "\\/".to_owned(),
                    (c, 0 | 1) => c.to_string(),
                    (c, 2) => format!("\\{c}"),
                    (_, 3) => "?".to_owned(),
                    (c, 4) => format!("*{c}"),
                    (c, 5) => format!("[x{c}]"),
                    (_, _) => "[^/]".to_owned(),
                };
                pattern.push_str(&piece);
            }
            (path, pattern)
        })
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// A pattern built from a path matches it; as a selector rule it selects the path and
    /// keeps every ancestor (`may_contain`).
    #[test]
    fn pattern_built_from_a_path_matches_it((path, pattern) in path_and_its_pattern()) {
        prop_assert_eq!(glob_match(&pattern, path.as_bytes()), Ok(true), "{}", pattern);
        if proxsave_archive::pathmatch::is_glob(&pattern) {
            let s = Selector::new(&[pattern.as_str()]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(s.matches(&path));
            for a in path.ancestors() {
                prop_assert!(s.may_contain(&a), "{} selects {} but not its parent {}", pattern, path, a);
            }
        }
    }

    /// For every pattern Go accepts, `glob_match` gives Go's answer (with a class never
    /// matching `/`); a pattern we refuse, Go refuses too.
    #[test]
    fn glob_matches_the_go_reference(pattern in glob_pattern(), name in glob_name()) {
        let ours = glob_match(&pattern, &name);
        // Go refuses some classes we read leniently (`[]a]`, `[-a]`, `[a-]`): no answer to
        // compare with then.
        if let Ok(expected) = reference_match(pattern.as_bytes(), &name) {
            prop_assert_eq!(ours.clone().ok(), Some(expected));
        }
        if ours.is_err() {
            prop_assert!(reference_match(pattern.as_bytes(), &name).is_err());
        }
    }

    /// Wildcards never match `/`: `*`, `?` and classes stay inside one component.
    #[test]
    fn wildcards_never_cross_a_slash(pattern in glob_pattern(), name in glob_name()) {
        let Ok(true) = glob_match(&pattern, &name) else { return Ok(()) };
        let literal_slashes = {
            // Count the '/' the pattern spells literally (plain or escaped, outside classes).
            let p = pattern.as_bytes();
            let (mut i, mut n, mut in_class) = (0, 0, false);
            while i < p.len() {
                match p[i] {
                    b'\\' => {
                        if !in_class && p.get(i + 1) == Some(&b'/') {
                            n += 1;
                        }
                        i += 1;
                    }
                    b'[' if !in_class => {
                        in_class = true;
                        // `]` right after `[` or `[^` is literal.
                        if p.get(i + 1) == Some(&b'^') {
                            i += 1;
                        }
                        if p.get(i + 1) == Some(&b']') {
                            i += 1;
                        }
                    }
                    b']' if in_class => in_class = false,
                    b'/' if !in_class => n += 1,
                    _ => {}
                }
                i += 1;
            }
            n
        };
        prop_assert_eq!(name.iter().filter(|&&b| b == b'/').count(), literal_slashes);
    }

    /// A pattern without metacharacters matches exactly itself; any text escaped matches
    /// exactly itself.
    #[test]
    fn literal_patterns_match_only_themselves(text in "[a-c/.é*?\\[\\]\\\\-]{0,8}", other in glob_name()) {
        if !text.contains(['*', '?', '[', ']', '\\']) {
            prop_assert_eq!(glob_match(&text, &other), Ok(other == text.as_bytes()));
            prop_assert_eq!(glob_match(&text, text.as_bytes()), Ok(true));
        }
        let escaped = glob_escape(&text);
        prop_assert_eq!(glob_match(&escaped, text.as_bytes()), Ok(true));
        prop_assert_eq!(glob_match(&escaped, &other), Ok(other == text.as_bytes()));
    }

    /// `*` alone matches exactly the names without `/`.
    #[test]
    fn star_matches_one_component(name in glob_name()) {
        prop_assert_eq!(glob_match("*", &name), Ok(!name.contains(&b'/')));
        prop_assert_eq!(glob_match("**", &name), Ok(!name.contains(&b'/')));
    }

    /// A path rule (any spelling) selects that path and everything below it, nothing else.
    #[test]
    fn selector_path_rule_selects_a_subtree(
        rule in selector_path(),
        spelling in prop::sample::select(vec!["{}", "./{}", "/{}", "{}/", "//{}//"]),
        path in selector_path(),
    ) {
        let text = spelling.replace("{}", rule.to_str().expect("UTF-8"));
        let s = Selector::new(&[text]).expect("a valid rule");
        prop_assert_eq!(s.matches(&path), path.starts_with(&rule));
        // `may_contain`: the rule lies strictly below the path.
        prop_assert_eq!(s.may_contain(&path), rule.starts_with(&path) && rule != path);
    }

    /// A glob rule selects the paths it matches and everything below them; every proper
    /// ancestor of a selected path may contain a selection (so parent directories are kept).
    #[test]
    fn selector_glob_rule(pattern in glob_pattern(), lead in prop::sample::select(vec!["", "/", "./"]), path in selector_path()) {
        prop_assume!(pattern.contains(['*', '?', '[']));
        let text = format!("{lead}{pattern}");
        let Ok(s) = Selector::new(&[text.as_str()]) else { return Ok(()) };
        let normal = s.describe().remove(0);
        let expected = path
            .ancestors()
            .chain(std::iter::once(path.clone()))
            .any(|a| glob_match(&normal, a.as_bytes()) == Ok(true));
        prop_assert_eq!(s.matches(&path), expected);
        if glob_match(&normal, path.as_bytes()) == Ok(true) {
            for a in path.ancestors() {
                prop_assert!(s.may_contain(&a), "{:?} selects {} but not its parent {}", normal, path, a);
            }
        }
    }
}

// ================================================================================================
// Go times (manifest `created_at`)
// ================================================================================================

/// A local date-time from year 0 to 9999 with an offset of up to ±23:59, as Go parses them.
fn go_datetime() -> impl Strategy<Value = DateTime<FixedOffset>> {
    let first = NaiveDate::from_ymd_opt(0, 1, 1)
        .expect("valid")
        .num_days_from_ce();
    let last = NaiveDate::from_ymd_opt(9999, 12, 31)
        .expect("valid")
        .num_days_from_ce();
    let nanos = prop_oneof![
        Just(0u32),
        0u32..1_000_000_000,
        (0u32..1000).prop_map(|m| m * 1_000_000)
    ];
    let offset_min = prop_oneof![
        Just(0i32),
        -1439i32..=1439,
        (-14i32..=14).prop_map(|h| h * 60)
    ];
    (first..=last, 0u32..86_400, nanos, offset_min).prop_map(|(day, secs, nanos, off)| {
        let date = NaiveDate::from_num_days_from_ce_opt(day).expect("in range");
        let naive: NaiveDateTime = date
            .and_hms_nano_opt(secs / 3600, secs / 60 % 60, secs % 60, nanos)
            .expect("valid time");
        let offset = FixedOffset::east_opt(off * 60).expect("valid offset");
        offset
            .from_local_datetime(&naive)
            .single()
            .expect("fixed offset")
    })
}

/// Go's `time.RFC3339Nano` as `encoding/json` writes it (what upstream puts in manifests).
fn go_rfc3339_nano(dt: &DateTime<FixedOffset>) -> String {
    let mut out = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = dt.nanosecond();
    if nanos != 0 {
        out.push('.');
        out.push_str(format!("{nanos:09}").trim_end_matches('0'));
    }
    let off = dt.offset().local_minus_utc() / 60;
    if off == 0 {
        out.push('Z');
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        out.push_str(&format!(
            "{sign}{:02}:{:02}",
            off.abs() / 60,
            off.abs() % 60
        ));
    }
    out
}

fn is_go_zero(dt: &DateTime<FixedOffset>) -> bool {
    dt.timestamp() == -62_135_596_800 && dt.nanosecond() == 0 && dt.offset().local_minus_utc() == 0
}

/// The value `GoTime::parse` must give for a generated time.
fn expected_go_time(dt: &DateTime<FixedOffset>) -> GoTime {
    if is_go_zero(dt) {
        GoTime(None)
    } else {
        GoTime(Some(*dt))
    }
}

fn same_go_time(a: &GoTime, b: &GoTime) -> bool {
    a == b && a.0.map(|t| *t.offset()) == b.0.map(|t| *t.offset())
}

/// Texts that are close to valid times, to reach the range checks and the offset parser.
fn near_time_text() -> impl Strategy<Value = String> {
    (
        go_datetime(),
        vec(
            (
                any::<prop::sample::Index>(),
                "[0-9:+.TZz -]|.",
                any::<bool>(),
            ),
            1..3,
        ),
    )
        .prop_map(|(dt, edits)| {
            let mut chars: Vec<String> = go_rfc3339_nano(&dt).chars().map(String::from).collect();
            for (at, text, insert) in edits {
                let i = at.index(chars.len());
                if insert {
                    chars.insert(i, text);
                } else {
                    chars[i] = text;
                }
            }
            chars.concat()
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// A time formatted as upstream writes it (RFC 3339 with nanoseconds) parses back to the
    /// same instant and offset, and is written back byte for byte.
    #[test]
    fn go_time_round_trips_rfc3339_nano(dt in go_datetime()) {
        let text = go_rfc3339_nano(&dt);
        let t = GoTime::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(same_go_time(&t, &expected_go_time(&dt)), "{} gave {:?}", text, t);
        let written = if is_go_zero(&dt) { GO_ZERO_TIME.to_owned() } else { text };
        prop_assert_eq!(t.to_go_string(), written);
    }

    /// Other spellings Go accepts for the same time: whole seconds, fixed 3/6/9-digit
    /// fractions, `+00:00` for UTC, extra fraction digits (truncated).
    #[test]
    fn go_time_parses_other_spellings(dt in go_datetime(), extra in "[0-9]{1,5}") {
        for text in [
            dt.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            dt.to_rfc3339_opts(SecondsFormat::Nanos, true),
        ] {
            let t = GoTime::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert!(same_go_time(&t, &expected_go_time(&dt)), "{} gave {:?}", text, t);
        }
        let whole = dt.with_nanosecond(0).expect("valid");
        let text = whole.to_rfc3339_opts(SecondsFormat::Secs, true);
        prop_assert!(same_go_time(&GoTime::parse(&text).expect("whole seconds"), &expected_go_time(&whole)));
        let nanos = dt.to_rfc3339_opts(SecondsFormat::Nanos, true);
        let (head, tail) = nanos.split_at(29);
        let longer = format!("{head}{extra}{tail}");
        prop_assert!(same_go_time(&GoTime::parse(&longer).expect("long fraction"), &expected_go_time(&dt)), "{}", longer);
    }

    /// Any text: a value or an error, never a panic; a value is written back in the canonical
    /// form, which parses to the same time again.
    #[test]
    fn go_time_arbitrary_text_never_panics(text in prop_oneof![".{0,40}", near_time_text()]) {
        if let Ok(t) = GoTime::parse(&text) {
            let canonical = t.to_go_string();
            let again = GoTime::parse(&canonical).map_err(|e| TestCaseError::fail(format!("{canonical}: {e}")))?;
            prop_assert!(same_go_time(&again, &t) || (t.is_zero() && again.is_zero()), "{} -> {}", text, canonical);
            prop_assert_eq!(again.to_go_string(), canonical);
            let _ = t.display();
        }
    }
}

// ================================================================================================
// The `.sha256` sidecar
// ================================================================================================

fn hex64() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{64}"
}

proptest! {
    #![proptest_config(config(256))]

    /// A sidecar as `sha256sum` and friends write it (any case, leading blanks, `*` binary
    /// marker, CRLF, more lines after) gives the digest in lower case.
    #[test]
    fn checksum_file_gives_the_digest(
        hex in hex64(),
        lead in "[ \t]{0,3}",
        sep in prop::sample::select(vec!["  ", " *", "\t", " "]),
        name in "[^\n]{0,40}",
        eol in prop::sample::select(vec!["\n", "\r\n", ""]),
        rest in prop::option::of(".{0,40}"),
        bare in any::<bool>(),
    ) {
        let mut text = if bare { format!("{lead}{hex}{eol}") } else { format!("{lead}{hex}{sep}{name}{eol}") };
        if let Some(rest) = rest
            && !eol.is_empty()
        {
            text.push_str(&rest);
        }
        prop_assert_eq!(parse_checksum_file(text.as_bytes()).ok(), Some(hex.to_ascii_lowercase()));
        let written = format_checksum_line(&hex.to_ascii_lowercase(), &name);
        prop_assert_eq!(parse_checksum_file(written.as_bytes()).ok(), Some(hex.to_ascii_lowercase()));
    }

    /// Anything else: never a panic; a digest only when the first field of the first line is
    /// one (64 hex digits), and an error naming the checksum file otherwise.
    #[test]
    fn checksum_file_arbitrary_bytes(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..200),
            ("[0-9a-fA-Fg ]{60,68}", "[ \t\r\n]{0,2}", vec(any::<u8>(), 0..20))
                .prop_map(|(a, b, c)| [a.as_bytes(), b.as_bytes(), &c].concat()),
        ]
    ) {
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let field = String::from_utf8_lossy(first_line)
            .split_whitespace()
            .next()
            .map(str::to_owned);
        match parse_checksum_file(&bytes) {
            Ok(hex) => {
                prop_assert_eq!(hex.len(), 64);
                prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                prop_assert_eq!(Some(hex), field.map(|f| f.to_lowercase()));
            }
            Err(ChecksumError::Malformed { what, .. }) => prop_assert_eq!(what, "checksum file"),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other}"))),
        }
    }

    /// The two sources of the expected digest: equal up to case and blanks, or a conflict.
    #[test]
    fn expectation_from_both_sources(a in hex64(), b in hex64(), pad in "[ \t]{0,2}", same in any::<bool>()) {
        let b = if same { a.to_ascii_uppercase() } else { b };
        let manifest = format!("{pad}{b}{pad}");
        let got = resolve_expectation(Some(&a), Some(&manifest));
        if a.eq_ignore_ascii_case(&b) {
            let e = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&e.sha256, &a.to_ascii_lowercase());
            prop_assert!(e.verify(&b).is_ok());
        } else {
            let conflict = matches!(got, Err(ChecksumError::Conflict { .. }));
            prop_assert!(conflict);
        }
        // Arbitrary text never panics.
        let _ = normalize_sha256(&pad, "x");
    }
}

// ================================================================================================
// The manifest (`.metadata`)
// ================================================================================================

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,24}",
        1 => vec(any::<char>(), 0..16).prop_map(String::from_iter),
        1 => "[<>&\"\\\\\u{2028}\u{2029}\n\r\t\u{0}\u{1}\u{1f}\u{7f}é☃\u{202e}]{0,10}",
    ]
}

fn go_time_value() -> impl Strategy<Value = GoTime> {
    prop_oneof![1 => Just(GoTime(None)), 6 => go_datetime().prop_map(|dt| expected_go_time(&dt))]
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        (any_text(), any::<i64>(), any_text(), go_time_value()),
        (
            any_text(),
            any::<i64>(),
            any_text(),
            any_text(),
            vec(any_text(), 0..4),
        ),
        (any_text(), any_text(), any_text(), any_text(), any_text()),
        (any_text(), any_text(), any_text()),
    )
        .prop_map(|(a, b, c, d)| Manifest {
            archive_path: a.0,
            archive_size: a.1,
            sha256: a.2,
            created_at: a.3,
            compression_type: b.0,
            compression_level: b.1,
            compression_mode: b.2,
            proxmox_type: b.3,
            proxmox_targets: b.4,
            proxmox_version: c.0,
            pve_version: c.1,
            pbs_version: c.2,
            hostname: c.3,
            script_version: c.4,
            encryption_mode: d.0,
            cluster_mode: d.1,
            passphrase_salt: d.2,
        })
}

/// The manifest's fields as (key, JSON value), in upstream's order.
fn manifest_fields(m: &Manifest) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::Value;
    let s = |v: &str| Value::String(v.to_owned());
    vec![
        ("archive_path", s(&m.archive_path)),
        ("archive_size", Value::from(m.archive_size)),
        ("sha256", s(&m.sha256)),
        ("created_at", s(&m.created_at.to_go_string())),
        ("compression_type", s(&m.compression_type)),
        ("compression_level", Value::from(m.compression_level)),
        ("compression_mode", s(&m.compression_mode)),
        ("proxmox_type", s(&m.proxmox_type)),
        ("proxmox_targets", Value::from(m.proxmox_targets.clone())),
        ("proxmox_version", s(&m.proxmox_version)),
        ("pve_version", s(&m.pve_version)),
        ("pbs_version", s(&m.pbs_version)),
        ("hostname", s(&m.hostname)),
        ("script_version", s(&m.script_version)),
        ("encryption_mode", s(&m.encryption_mode)),
        ("cluster_mode", s(&m.cluster_mode)),
        ("passphrase_salt", s(&m.passphrase_salt)),
    ]
}

/// How one known key is spelled in a generated document.
#[derive(Clone, Debug)]
struct KeyStyle {
    /// Per character: upper-case it (Go matches keys case-insensitively).
    upper: Vec<bool>,
    /// Spell `s` as U+017F, which Go's key folding also matches.
    long_s: bool,
    /// Write `null` instead of the value (the field keeps its zero value).
    null: bool,
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec(("[a-z_]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn random_json_document() -> impl Strategy<Value = (String, Manifest)> {
    (
        manifest(),
        vec(
            (
                vec(any::<bool>(), 20),
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.15),
            ),
            17,
        ),
        vec(("[a-zA-Z_]{1,12}", json_value()), 0..4),
        any::<u64>(),
        prop::sample::select(vec!["", " ", "\n  ", "\t"]),
    )
        .prop_map(|(m, styles, unknown, shuffle_seed, ws)| {
            let mut expected = Manifest::default();
            let mut entries: Vec<(String, serde_json::Value)> = Vec::new();
            for ((key, value), (upper, long_s, null)) in manifest_fields(&m).into_iter().zip(styles)
            {
                let style = KeyStyle {
                    upper,
                    long_s,
                    null,
                };
                let spelled: String = key
                    .chars()
                    .zip(style.upper.iter().cycle())
                    .map(|(c, &up)| match c {
                        's' if style.long_s => '\u{17f}',
                        c if up => c.to_ascii_uppercase(),
                        c => c,
                    })
                    .collect();
                if style.null {
                    entries.push((spelled, serde_json::Value::Null));
                } else {
                    entries.push((spelled, value));
                    set_field(&mut expected, key, &m);
                }
            }
            for (k, v) in unknown {
                // Only names that are no manifest key, under Go's folding.
                let folded = k.to_ascii_lowercase();
                if manifest_fields(&m).iter().all(|(name, _)| *name != folded) {
                    entries.push((k, v));
                }
            }
            // A deterministic shuffle (keys are distinct, so order must not matter).
            let mut seed = shuffle_seed | 1;
            for i in (1..entries.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                entries.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{ws}{}{ws}:{ws}{}",
                        serde_json::to_string(k).expect("a string"),
                        serde_json::to_string(v).expect("a value")
                    )
                })
                .collect();
            (format!("{ws}{{{}{ws}}}{ws}", body.join(",")), expected)
        })
}

fn set_field(out: &mut Manifest, key: &str, m: &Manifest) {
    match key {
        "archive_path" => out.archive_path = m.archive_path.clone(),
        "archive_size" => out.archive_size = m.archive_size,
        "sha256" => out.sha256 = m.sha256.clone(),
        "created_at" => out.created_at = m.created_at,
        "compression_type" => out.compression_type = m.compression_type.clone(),
        "compression_level" => out.compression_level = m.compression_level,
        "compression_mode" => out.compression_mode = m.compression_mode.clone(),
        "proxmox_type" => out.proxmox_type = m.proxmox_type.clone(),
        "proxmox_targets" => out.proxmox_targets = m.proxmox_targets.clone(),
        "proxmox_version" => out.proxmox_version = m.proxmox_version.clone(),
        "pve_version" => out.pve_version = m.pve_version.clone(),
        "pbs_version" => out.pbs_version = m.pbs_version.clone(),
        "hostname" => out.hostname = m.hostname.clone(),
        "script_version" => out.script_version = m.script_version.clone(),
        "encryption_mode" => out.encryption_mode = m.encryption_mode.clone(),
        "cluster_mode" => out.cluster_mode = m.cluster_mode.clone(),
        "passphrase_salt" => out.passphrase_salt = m.passphrase_salt.clone(),
        other => unreachable!("{other}"),
    }
}

/// Legacy `KEY=VALUE` metadata with the values it must give.
fn legacy_document() -> impl Strategy<Value = (String, Manifest, String)> {
    let value = "([!-~]([ -~]*[!-~])?)?";
    (
        prop::sample::subsequence(
            vec![
                "COMPRESSION_TYPE",
                "COMPRESSION_LEVEL",
                "PROXMOX_TYPE",
                "PROXMOX_TARGETS",
                "PROXMOX_VERSION",
                "PVE_VERSION",
                "PBS_VERSION",
                "HOSTNAME",
                "SCRIPT_VERSION",
                "ENCRYPTION_MODE",
                "OTHER_KEY",
            ],
            1..=11,
        ),
        vec(value, 11),
        any::<i64>(),
        vec("[a-z0-9]{1,6}", 0..4),
        vec(
            (
                prop::sample::select(vec!["", "# comment", "   ", "#x=y"]),
                "[ \t]{0,2}",
                "[ \t]{0,2}",
                prop::bool::weighted(0.2),
            ),
            11,
        ),
        prop::sample::select(vec!["backup.tar.xz", "backup.tar.xz.age"]),
    )
        .prop_map(|(keys, values, level, targets, decor, archive)| {
            let mut m = Manifest::default();
            let mut lines = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let (extra, pre, post, crlf) = &decor[i];
                if !extra.is_empty() {
                    lines.push(extra.to_string());
                }
                let v = match *key {
                    "COMPRESSION_LEVEL" => level.to_string(),
                    "PROXMOX_TARGETS" => targets.join(" , "),
                    _ => values[i].clone(),
                };
                match *key {
                    "COMPRESSION_TYPE" => m.compression_type = v.clone(),
                    "COMPRESSION_LEVEL" => m.compression_level = level,
                    "PROXMOX_TYPE" => m.proxmox_type = v.clone(),
                    "PROXMOX_TARGETS" => {
                        for t in &targets {
                            if !m.proxmox_targets.contains(t) {
                                m.proxmox_targets.push(t.clone());
                            }
                        }
                    }
                    "PROXMOX_VERSION" => m.proxmox_version = v.clone(),
                    "PVE_VERSION" => m.pve_version = v.clone(),
                    "PBS_VERSION" => m.pbs_version = v.clone(),
                    "HOSTNAME" => m.hostname = v.clone(),
                    "SCRIPT_VERSION" => m.script_version = v.clone(),
                    "ENCRYPTION_MODE" => m.encryption_mode = v.clone(),
                    _ => {}
                }
                let cr = if *crlf { "\r" } else { "" };
                lines.push(format!("{pre}{key}{post}={post}{v}{cr}"));
            }
            if m.encryption_mode.is_empty() {
                m.encryption_mode = if archive.ends_with(".age") {
                    "age"
                } else {
                    "plain"
                }
                .to_owned();
            }
            (lines.join("\n"), m, archive.to_owned())
        })
}

/// Almost-JSON: manifest tokens in random order, to reach the JSON error paths.
fn json_token_soup() -> impl Strategy<Value = String> {
    vec(
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "null",
            "true",
            "1",
            "-0",
            "1e400",
            "-1.5",
            "18446744073709551616",
            "\"sha256\"",
            "\"created_at\"",
            "\"proxmox_targets\"",
            "\"2026-07-24T02:30:00Z\"",
            "\"x\"",
            "\"\\ud800\"",
            " ",
            "\n",
            "\"ARCHIVE_SIZE\"",
        ]),
        0..24,
    )
    .prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(config(256))]

    /// Our Go-identical JSON parses back to the same manifest (created_at with its offset),
    /// is valid JSON, and is stable when written again.
    #[test]
    fn manifest_json_round_trips(m in manifest()) {
        let json = m.to_json();
        let back = Manifest::from_json(&json).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&json))))?;
        prop_assert_eq!(&back, &m);
        prop_assert!(same_go_time(&back.created_at, &m.created_at));
        prop_assert_eq!(back.to_json(), json.clone());
        let value: serde_json::Value = serde_json::from_slice(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(value.is_object());
        let (parsed, format) = Manifest::parse_sidecar(&json, "x.tar.xz").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(format, ManifestFormat::Json);
        prop_assert_eq!(parsed, m);
    }

    /// JSON written by others: keys in any case (and `ſ` for `s`), any order, unknown keys
    /// with any values, `null` for zero values, any layout. Parses to the generated values.
    #[test]
    fn manifest_json_from_other_writers((text, expected) in random_json_document()) {
        let got = Manifest::from_json(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(&got, &expected);
        prop_assert!(same_go_time(&got.created_at, &expected.created_at));
    }

    /// Legacy `KEY=VALUE` metadata gives its values; the encryption defaults to the archive
    /// name's.
    #[test]
    fn manifest_legacy_gives_its_values((text, expected, archive) in legacy_document()) {
        let got = Manifest::from_legacy(&text, &archive).map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
        prop_assert_eq!(&got, &expected);
        if !text.trim_start().starts_with(['{', '[', '"']) {
            let (sidecar, format) = Manifest::parse_sidecar(text.as_bytes(), &archive).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(format, ManifestFormat::Legacy);
            prop_assert_eq!(sidecar, expected);
        }
    }

    /// Anything: a manifest or an error, never a panic; a legacy error names a line of the
    /// text; whatever parses is written as JSON that parses to the same manifest.
    #[test]
    fn manifest_arbitrary_input_never_panics(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..200),
            json_token_soup().prop_map(String::into_bytes),
            ".{0,60}(=.{0,20})?".prop_map(String::into_bytes),
        ]
    ) {
        for parsed in [
            Manifest::from_json(&bytes),
            Manifest::parse_sidecar(&bytes, "x.tar.age").map(|(m, _)| m),
            Manifest::from_legacy(&String::from_utf8_lossy(&bytes), "x"),
        ] {
            match parsed {
                Ok(m) => {
                    let _ = (m.display_target(), m.display_tool(), m.display_hostname(), m.archive_name());
                    prop_assert_eq!(Manifest::from_json(&m.to_json()).ok(), Some(m));
                }
                Err(ManifestError::Legacy { line, .. }) => {
                    let lines = String::from_utf8_lossy(&bytes).split('\n').count();
                    prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
                }
                Err(_) => {}
            }
        }
    }
}
