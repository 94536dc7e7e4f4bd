use super::*;
use proptest::prelude::*;

const STORAGE: &str = "\
# storage.cfg written by hand
dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup
\tprune-backups keep-all=1

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images

nfs: nas-backup
\texport /volume1/pve
\t# moved to the new NAS in 2024
\tpath /mnt/pve/nas-backup
\tserver 192.168.1.10
\tcontent backup
\toptions vers=4.2

pbs: pbs01
\tdatastore store1
\tserver 192.168.1.30
\tfingerprint 3a:7c:00:e1
\tusername backup@pbs

dir: usb-backup
\tpath /mnt/usb-backup
\tcontent backup
\tdisable
\tis_mountpoint 1

";

#[test]
fn storage_cfg_example() {
    let (cfg, diags) = parse(STORAGE);
    assert!(diags.is_empty(), "{diags:?}");
    let ids: Vec<_> = cfg
        .sections
        .iter()
        .map(|s| (s.ty.as_str(), s.id.as_str(), s.line))
        .collect();
    assert_eq!(
        ids,
        [
            ("dir", "local", 2),
            ("lvmthin", "local-lvm", 7),
            ("nfs", "nas-backup", 12),
            ("pbs", "pbs01", 20),
            ("dir", "usb-backup", 26)
        ]
    );
    let nfs = cfg.find("nfs", "nas-backup").unwrap();
    assert_eq!(nfs.props.len(), 5, "the comment is not a property");
    assert!(nfs.props.iter().all(|p| !p.key.starts_with('#')));
    let usb = cfg.find_id("usb-backup").unwrap();
    assert_eq!(usb.prop("disable"), Some(&Prop::flag("disable")));
    assert_eq!(usb.get("disable"), None);
    assert_eq!(usb.effective("disable"), Some("1"));
    assert_eq!(
        cfg.find("pbs", "pbs01").unwrap().get("fingerprint"),
        Some("3a:7c:00:e1")
    );
    assert_eq!(cfg.to_text(), STORAGE);
}

#[test]
fn perl_rules() {
    // Header: no leading whitespace, single-token id, trailing whitespace allowed.
    assert_eq!(perl_header("dir: local"), Some(("dir", "local")));
    assert_eq!(perl_header("dir:local  \t"), Some(("dir", "local")));
    assert_eq!(perl_header("a:b:c"), Some(("a:b", "c")));
    assert_eq!(perl_header("a:b:"), Some(("a", "b:")));
    assert_eq!(perl_header("a:b: c"), Some(("a:b", "c")));
    assert_eq!(perl_header(" dir: local"), None);
    assert_eq!(perl_header("dir: my local"), None);
    assert_eq!(perl_header("dir :local"), None);
    assert_eq!(perl_header(":x"), None);
    assert_eq!(perl_header("dir:"), None);
    assert_eq!(perl_header("dir:é"), Some(("dir", "é")));
    assert_eq!(perl_header("é"), None);
    // Property: indented key, optional value trimmed.
    assert_eq!(perl_property("\tdisable"), Some(Prop::flag("disable")));
    assert_eq!(perl_property("  disable \t"), Some(Prop::flag("disable")));
    assert_eq!(
        perl_property("\tschedule  sun 01:00 \r"),
        Some(Prop::new("schedule", "sun 01:00"))
    );
    assert_eq!(perl_property("disable"), None);
    assert_eq!(perl_property(" \t "), None);
}

#[test]
fn comments_blank_and_junk_lines() {
    let text = "junk before\n   \n#c\ndir: a\n\t#x\n  # y\n\tpath /a\n \t\n\tk v\nnot indented\n\n\
                \n0\ndir: b\n\tpath /b\n0\n\tpath /c\n";
    let (cfg, diags) = parse(text);
    let lines: Vec<_> = diags.iter().map(|d| d.line).collect();
    assert_eq!(lines, [1, 2, 8, 10, 17], "{diags:#?}");
    assert!(diags[2].message.contains("whitespace-only"), "{}", diags[2]);
    assert!(diags[2].message.contains("dir: a"), "{}", diags[2]);
    assert!(
        diags[3].to_string().starts_with("line 10: "),
        "{}",
        diags[3]
    );
    let a = cfg.find("dir", "a").unwrap();
    assert_eq!(a.props, [Prop::new("path", "/a"), Prop::new("k", "v")]);
    // A `0` line is false in Perl: it ends a section like an empty line.
    assert_eq!(
        cfg.find("dir", "b").unwrap().props,
        [Prop::new("path", "/b")]
    );
    assert_eq!(cfg.to_text(), text);
}

#[test]
fn a_header_inside_a_section_is_ignored_and_duplicates_are_kept() {
    let text = "dir: a\n\tpath /a\ndir: b\n\tpath /b\n";
    let (cfg, diags) = parse(text);
    assert_eq!(cfg.sections.len(), 1);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line, 3);
    assert_eq!(cfg.sections[0].get_all("path"), ["/a", "/b"]);
    assert_eq!(cfg.to_text(), text);
}

#[test]
fn modified_config_keeps_untouched_sections() {
    let (mut cfg, _) = parse(STORAGE);
    let local = cfg.find_mut("dir", "local").unwrap();
    local.set("content", Some("iso,backup"));
    local.set("shared", None);
    assert!(cfg.remove("lvmthin", "local-lvm").is_some());
    cfg.push(Section::new("cifs", "smb").with("server", Some("10.0.0.9")));
    let text = cfg.to_text();
    assert!(text.starts_with(
        "# storage.cfg written by hand\ndir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n\
         \tprune-backups keep-all=1\n\tshared\n\nnfs: nas-backup\n\texport /volume1/pve\n\
         \t# moved to the new NAS in 2024\n"
    ));
    assert!(text.ends_with("\tis_mountpoint 1\n\ncifs: smb\n\tserver 10.0.0.9\n\n"));
    let (again, diags) = parse(&text);
    assert!(diags.is_empty());
    assert_eq!(again, cfg);
}

#[test]
fn edited_sections_keep_their_comments_and_untouched_lines() {
    let text = "# head\nnfs: nas\n  export /volume1/pve   \n\t# moved in 2024\n\tpath /mnt/pve/nas\n\
                \toptions vers=4.2\n\t# end note\n\ndir: b\n\tpath /b";
    let (mut cfg, _) = parse(text);
    let nas = cfg.find_mut("nfs", "nas").unwrap();
    nas.set("options", Some("vers=4.1"));
    nas.remove("path");
    nas.push_prop("disable", None);
    let b = cfg.find_mut("dir", "b").unwrap();
    b.set("content", Some("backup"));
    assert_eq!(
        cfg.to_text(),
        "# head\nnfs: nas\n  export /volume1/pve   \n\t# moved in 2024\n\toptions vers=4.1\n\
         \tdisable\n\t# end note\n\ndir: b\n\tpath /b\n\tcontent backup\n"
    );
    let (again, _) = parse(&cfg.to_text());
    assert_eq!(again, cfg);
    // A new key between two kept ones goes after the one before it.
    let (mut cfg, _) = parse("dir: a\n\tk1 1\n\t#c\n\tk3 3\n\n");
    let a = cfg.find_mut("dir", "a").unwrap();
    a.props.insert(1, Prop::new("k2", "2"));
    assert_eq!(cfg.to_text(), "dir: a\n\tk1 1\n\tk2 2\n\t#c\n\tk3 3\n\n");
    // A renamed section gets a new header line, the rest is kept.
    let (mut cfg, _) = parse("dir:  a \n\t#c\n\tk 1\n\n");
    cfg.sections[0].id = "b".into();
    assert_eq!(cfg.to_text(), "dir: b\n\t#c\n\tk 1\n\n");
}

#[test]
fn pushing_after_an_unterminated_last_section() {
    let (mut cfg, _) = parse("dir: a\n\tpath /a");
    cfg.push(Section::new("dir", "b"));
    assert_eq!(cfg.to_text(), "dir: a\n\tpath /a\n\ndir: b\n\n");
    let (mut cfg, _) = parse("# only a comment");
    cfg.push(Section::new("dir", "b").with("disable", None));
    assert_eq!(cfg.to_text(), "# only a comment\ndir: b\n\tdisable\n\n");
}

#[test]
fn section_helpers() {
    let mut s = Section::new("smtp", "relay")
        .with("mailto-user", Some("root@pam"))
        .with("server", Some("mail"))
        .with("mailto-user", Some("ops@pve"));
    assert_eq!(s.get_all("mailto-user"), ["root@pam", "ops@pve"]);
    assert!(s.has("server"));
    s.set("mailto-user", Some("a@pve"));
    assert_eq!(
        s.props,
        [
            Prop::new("mailto-user", "a@pve"),
            Prop::new("server", "mail")
        ]
    );
    assert_eq!(s.remove("server"), 1);
    assert_eq!(s.remove("server"), 0);
    assert_eq!(s.render(), "smtp: relay\n\tmailto-user a@pve\n\n");
    assert!(s.is_modified());
}

#[test]
fn strict_rules() {
    let text = "datastore: store1\n\tpath /mnt/ds\n\t# c\n\tcomment main\n   \n\
                remote:  r1 \n    host 10.0.0.1\n";
    let cfg = parse_strict(text).unwrap();
    assert_eq!(cfg.sections.len(), 2);
    assert_eq!(
        cfg.find("remote", "r1").unwrap().get("host"),
        Some("10.0.0.1")
    );
    assert_eq!(cfg.to_text(), text);
    let bad = [
        ("datastore: a\n\tverify-new\n", 2, "no value"),
        (
            "datastore: a\n\tpath /a\n\tpath /b\n",
            3,
            "duplicate property",
        ),
        ("datastore: a\n\nsync: a\n", 3, "duplicate section id"),
        ("1x: a\n", 1, "header"),
        ("datastore: a\nnot indented\n", 2, "indented"),
        ("datastore:\n", 1, "header"),
    ];
    for (text, line, what) in bad {
        let e = parse_strict(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(what), "{text:?}: {e}");
    }
}

// ---- property tests ----

/// One generated line of a PVE-style file and what the parser must make of it.
#[derive(Debug, Clone)]
enum Piece {
    Comment(String),
    Prop(String, Option<String>),
}

fn ty() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,15}"
}
fn id() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_.-]{0,20}"
}
fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,15}"
}
/// Values without newlines that do not start or end with whitespace.
fn value() -> impl Strategy<Value = String> {
    "[^\\s#]([^\\n\\r]{0,20}[^\\s])?"
}
fn indent() -> impl Strategy<Value = String> {
    prop_oneof![Just("\t"), Just("  "), Just("    "), Just(" \t")].prop_map(str::to_string)
}
fn trailing() -> impl Strategy<Value = String> {
    prop_oneof![Just(""), Just(""), Just(" "), Just("\t"), Just("\r")].prop_map(str::to_string)
}
fn comment() -> impl Strategy<Value = String> {
    ("[ \\t]{0,2}", "[^\\n]{0,20}").prop_map(|(ind, text)| format!("{ind}#{text}"))
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        1 => comment().prop_map(Piece::Comment),
        4 => (key(), proptest::option::of(value())).prop_map(|(k, v)| Piece::Prop(k, v)),
    ]
}

type GenSection = (String, String, Vec<(String, Piece, String)>);

fn gen_section() -> impl Strategy<Value = GenSection> {
    (
        ty(),
        id(),
        proptest::collection::vec((indent(), piece(), trailing()), 0..6),
    )
}

/// A PVE-style file with comments between and inside sections, odd indentation and trailing
/// whitespace, and the model the parser must find in it.
fn pve_file() -> impl Strategy<Value = (String, Vec<Section>)> {
    (
        proptest::collection::vec(comment(), 0..3),
        proptest::collection::vec(
            (
                gen_section(),
                proptest::collection::vec(comment(), 0..2),
                "(\n){1,2}",
            ),
            0..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(head, sections, last_blank)| {
            let mut text = String::new();
            for c in head {
                text.push_str(&c);
                text.push('\n');
            }
            let mut model = Vec::new();
            let count = sections.len();
            for (i, ((ty, id, pieces), between, blanks)) in sections.into_iter().enumerate() {
                text.push_str(&format!("{ty}: {id}\n"));
                let mut section = Section::new(&ty, &id);
                for (ind, piece, trail) in pieces {
                    match piece {
                        Piece::Comment(c) => text.push_str(&c),
                        Piece::Prop(k, v) => {
                            text.push_str(&ind);
                            text.push_str(&k);
                            if let Some(v) = &v {
                                text.push(' ');
                                text.push_str(v);
                            }
                            text.push_str(&trail);
                            section.push_prop(&k, v.as_deref());
                        }
                    }
                    text.push('\n');
                }
                if i + 1 < count || last_blank {
                    text.push_str(&blanks);
                    for c in between {
                        text.push_str(&c);
                        text.push('\n');
                    }
                }
                model.push(section);
            }
            (text, model)
        })
}

fn model() -> impl Strategy<Value = Vec<Section>> {
    proptest::collection::vec(
        (
            ty(),
            id(),
            proptest::collection::vec((key(), proptest::option::of(value())), 0..6),
        )
            .prop_map(|(ty, id, props)| {
                let mut s = Section::new(ty, id);
                for (k, v) in props {
                    s.push_prop(&k, v.as_deref());
                }
                s
            }),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pve_style_files_parse_to_their_model_and_write_back_unchanged((text, model) in pve_file()) {
        let (cfg, diags) = parse(&text);
        prop_assert!(diags.is_empty(), "{:?}\n{}", diags, text);
        prop_assert_eq!(&cfg.sections, &model);
        prop_assert_eq!(cfg.to_text(), text);
    }

    #[test]
    fn written_models_parse_back(model in model()) {
        let cfg = SectionConfig::from(model.clone());
        let text = cfg.to_text();
        let (again, diags) = parse(&text);
        prop_assert!(diags.is_empty(), "{:?}", diags);
        prop_assert_eq!(&again.sections, &model);
        // Written text of a parsed, unchanged file is the same text.
        prop_assert_eq!(again.to_text(), text);
    }

    #[test]
    fn edits_keep_other_sections_and_parse_back(
        (text, _) in pve_file(),
        edit in any::<prop::sample::Index>(),
        extra in model(),
        k in key(),
        v in proptest::option::of(value()),
        drop in any::<prop::sample::Index>(),
        rename in any::<bool>(),
    ) {
        let (mut cfg, _) = parse(&text);
        let untouched: Vec<String> = cfg.sections.iter().map(|s| {
            s.origin.as_ref().map(|o| o.text.trim_end_matches('\n').to_string()).unwrap_or_default()
        }).collect();
        let edited = if cfg.sections.is_empty() {
            None
        } else {
            let i = edit.index(cfg.sections.len());
            let s = &mut cfg.sections[i];
            if !s.props.is_empty() {
                let gone = s.props[drop.index(s.props.len())].key.clone();
                s.remove(&gone);
            }
            s.set(&k, v.as_deref());
            if rename {
                s.id.push_str("-x");
            }
            Some(i)
        };
        for s in extra {
            cfg.push(s);
        }
        let written = cfg.to_text();
        let (again, diags) = parse(&written);
        prop_assert!(diags.is_empty(), "{:?}\n{}", diags, written);
        prop_assert_eq!(&again, &cfg);
        for (i, original) in untouched.iter().enumerate() {
            if Some(i) != edited {
                prop_assert!(written.contains(original.as_str()));
            }
        }
        // Every comment survives, in order, also inside the edited section.
        let comments = |t: &str| -> Vec<String> {
            t.lines().filter(|l| is_comment(l)).map(str::to_string).collect()
        };
        prop_assert_eq!(comments(&written), comments(&text));
    }

    #[test]
    fn any_text_is_written_back_unchanged(text in "(\\PC|[\\n\\t\\r ]){0,200}") {
        let (cfg, _) = parse(&text);
        prop_assert_eq!(cfg.to_text(), text);
    }

    #[test]
    fn section_like_noise_never_panics_and_writes_back(
        lines in proptest::collection::vec(
            prop_oneof![
                Just(String::new()),
                Just("0".to_string()),
                Just(" ".to_string()),
                "[a-z:]{1,6}: ?[a-z:]{0,4}",
                "[ \\t]{1,2}[a-z#]{1,4}( [^\\n]{0,6})?",
                "#[^\\n]{0,5}",
                "[^\\n]{0,8}",
            ],
            0..30,
        ),
        final_newline in any::<bool>(),
    ) {
        let mut text = lines.join("\n");
        if final_newline {
            text.push('\n');
        }
        let (cfg, _) = parse(&text);
        prop_assert_eq!(cfg.to_text(), text.clone());
        if let Ok(strict) = parse_strict(&text) {
            prop_assert_eq!(strict.to_text(), text);
        }
    }

    #[test]
    fn strict_reads_what_the_writer_writes(model in model()) {
        // The Rust crate's subset: values on every key, unique keys and ids.
        let mut model = model;
        let mut ids = Vec::new();
        model.retain(|s| {
            let fresh = !ids.contains(&s.id);
            ids.push(s.id.clone());
            fresh
        });
        for s in &mut model {
            let mut keys = Vec::new();
            s.props.retain(|p| {
                let fresh = p.value.is_some() && !keys.contains(&p.key);
                keys.push(p.key.clone());
                fresh
            });
        }
        let text = SectionConfig::from(model.clone()).to_text();
        let strict = parse_strict(&text);
        prop_assert!(strict.is_ok(), "{:?}\n{}", strict, text);
        let strict = strict.unwrap();
        prop_assert_eq!(&strict.sections, &model);
        prop_assert_eq!(strict.to_text(), text);
    }
}
