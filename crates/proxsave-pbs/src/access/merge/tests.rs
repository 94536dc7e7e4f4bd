use super::*;
use proptest::prelude::*;

const SECRETS: &[&str] = &[
    "$5$backupsalt$alicehash",
    "$5$hostsalt$roothash",
    "$5$tok$alicecihash",
    "$5$tok$roottokhash",
    "$5$tok$oldroottok",
    "JBSWY3DPEHPK3PXP",
    "ROOTTOTPSECRET",
];

fn backup() -> AcTexts {
    AcTexts::default()
        .with(
            AcFile::UserCfg,
            "user: root@pam\n\tcomment Superuser\n\tenable 0\n\n\
             token: root@pam!old\n\tenable 1\n\n\
             user: alice@pbs\n\tcomment Alice\n\temail alice@example.com\n\n\
             token: alice@pbs!ci\n\tcomment CI\n\n\
             user: bob@ldap1\n\tenable 1\n",
        )
        .with(
            AcFile::Acl,
            "acl:1:/:alice@pbs:Admin\nacl:1:/:root@pam!old:Admin\n\
             acl:1:/datastore/store1:alice@pbs!ci,bob@ldap1:DatastoreBackup\n",
        )
        .with(
            AcFile::Domains,
            "ldap: ldap1\n\tbase-dn dc=example,dc=com\n\tserver1 ldap.example.com\n\tuser-attr uid\n",
        )
        .with(
            AcFile::TokenShadow,
            r#"{"alice@pbs!ci":"$5$tok$alicecihash","root@pam!old":"$5$tok$oldroottok"}"#,
        )
        .with(AcFile::Shadow, "{\n  \"alice@pbs\": \"$5$backupsalt$alicehash\"\n}")
        .with(
            AcFile::Tfa,
            r#"{"users":{"alice@pbs":{"totp":[{"secret":"JBSWY3DPEHPK3PXP"}]}},"webauthn":{"rp":"old.example.com"}}"#,
        )
}

fn host() -> AcTexts {
    AcTexts::default()
        .with(
            AcFile::UserCfg,
            "user: root@pam\n\tcomment Superuser\n\tenable 1\n\n\
             token: root@pam!mon\n\tcomment monitoring\n\n\
             user: carol@pbs\n\tenable 1\n\n\
             token: carol@pbs!x\n",
        )
        .with(AcFile::Acl, "acl:1:/:root@pam!mon,carol@pbs:Audit\n")
        .with(
            AcFile::TokenShadow,
            r#"{"root@pam!mon":"$5$tok$roottokhash","carol@pbs!x":"$5$tok$carol"}"#,
        )
        .with(
            AcFile::Tfa,
            r#"{"users":{"root@pam":{"totp":[{"secret":"ROOTTOTPSECRET"}]}}}"#,
        )
}

fn after(m: &Merged, f: AcFile) -> String {
    m.file(f).and_then(|x| x.after.clone()).unwrap_or_default()
}

#[test]
fn merge_keeps_this_hosts_root_and_other_objects() {
    let m = merge(&backup(), &host(), Mode::Merge).expect("merge");
    let u = after(&m, AcFile::UserCfg);
    assert_eq!(
        u,
        "user: root@pam\n\tcomment Superuser\n\tenable 1\n\n\
         token: root@pam!mon\n\tcomment monitoring\n\n\
         user: carol@pbs\n\tenable 1\n\n\
         token: carol@pbs!x\n\n\
         user: alice@pbs\n\tcomment Alice\n\temail alice@example.com\n\n\
         token: alice@pbs!ci\n\tcomment CI\n\n\
         user: bob@ldap1\n\tenable 1\n"
    );
    // carol's token has no property (PBS writes a bare section): kept as it is.
    assert!(!u.contains("root@pam!old"));
    let acl = after(&m, AcFile::Acl);
    assert_eq!(
        acl,
        "acl:1:/:root@pam!mon,carol@pbs:Audit\nacl:1:/:alice@pbs:Admin\n\
         acl:1:/datastore/store1:alice@pbs!ci,bob@ldap1:DatastoreBackup\n"
    );
    let ts = after(&m, AcFile::TokenShadow);
    assert!(
        ts.contains("root@pam!mon") && ts.contains("carol@pbs!x") && ts.contains("alice@pbs!ci")
    );
    assert!(!ts.contains("oldroottok"));
    let tfa = parse_tfa(&after(&m, AcFile::Tfa)).unwrap();
    assert_eq!(tfa.users.len(), 2);
    assert!(after(&m, AcFile::Tfa).contains("ROOTTOTPSECRET"));
    // This host has no realm-wide settings: the backup's come.
    assert!(tfa.settings.contains_key("webauthn"));
    assert_eq!(
        after(&m, AcFile::Shadow),
        "{\n  \"alice@pbs\": \"$5$backupsalt$alicehash\"\n}"
    );
    let dom = after(&m, AcFile::Domains);
    assert!(dom.starts_with("ldap: ldap1\n"));
}

#[test]
fn clean_removes_what_the_backup_lacks_but_never_root() {
    let m = merge(&backup(), &host(), Mode::Clean).expect("merge");
    let u = after(&m, AcFile::UserCfg);
    assert!(
        u.starts_with("user: root@pam\n\tcomment Superuser\n\tenable 1\n\ntoken: root@pam!mon\n")
    );
    assert!(!u.contains("carol"));
    let notes = m.file(AcFile::UserCfg).unwrap().notes.join("\n");
    assert!(
        notes.contains("users of this host not in the backup removed (clean): carol@pbs"),
        "{notes}"
    );
    assert!(notes.contains("tokens of this host not in the backup removed (clean): carol@pbs!x"));
    assert_eq!(
        after(&m, AcFile::Acl),
        "acl:1:/:root@pam!mon:Audit\nacl:1:/:alice@pbs:Admin\n\
         acl:1:/datastore/store1:alice@pbs!ci,bob@ldap1:DatastoreBackup\n"
    );
    let ts = parse_secret_map(&after(&m, AcFile::TokenShadow)).unwrap();
    let keys: Vec<&str> = ts.keys().map(String::as_str).collect();
    assert_eq!(keys, ["alice@pbs!ci", "root@pam!mon"]);
}

#[test]
fn notes_and_diags_never_show_a_secret() {
    for mode in [Mode::Merge, Mode::Clean] {
        let m = merge(&backup(), &host(), mode).expect("merge");
        let shown = format!(
            "{}\n{}",
            m.files
                .iter()
                .flat_map(|f| f.notes.clone())
                .collect::<Vec<_>>()
                .join("\n"),
            m.diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let json = serde_json::to_string(&m).unwrap();
        for s in SECRETS {
            assert!(!shown.contains(s), "{s} in {shown}");
            assert!(!json.contains(s), "{s} in {json}");
        }
    }
}

#[test]
fn a_result_without_an_enabled_administrator_is_refused() {
    let host = AcTexts::default().with(AcFile::UserCfg, "user: root@pam\n\tenable 0\n");
    let b = AcTexts::default().with(AcFile::UserCfg, "user: alice@pbs\n\tenable 1\n");
    assert_eq!(
        merge(&b, &host, Mode::Clean).unwrap_err(),
        MergeError::NoAdministrator
    );
    // An enabled user with Admin on / (propagating) is enough.
    let b2 = b.clone().with(AcFile::Acl, "acl:1:/:alice@pbs:Admin\n");
    assert!(merge(&b2, &host, Mode::Clean).is_ok());
    // Not propagating, or on a sub-path, or the user disabled: refused.
    for acl in [
        "acl:0:/:alice@pbs:Admin\n",
        "acl:1:/datastore:alice@pbs:Admin\n",
    ] {
        let b3 = b.clone().with(AcFile::Acl, acl);
        assert!(merge(&b3, &host, Mode::Clean).is_err(), "{acl}");
    }
    let b4 = AcTexts::default()
        .with(AcFile::UserCfg, "user: alice@pbs\n\tenable 0\n")
        .with(AcFile::Acl, "acl:1:/:alice@pbs:Admin\n");
    assert!(merge(&b4, &host, Mode::Clean).is_err());
    // The backup's disabled root@pam never disables this host's (implicit) one.
    let b5 = AcTexts::default().with(AcFile::UserCfg, "user: root@pam\n\tenable 0\n");
    let m = merge(&b5, &AcTexts::default(), Mode::Clean).expect("implicit root");
    assert_eq!(after(&m, AcFile::UserCfg), "");
}

#[test]
fn bad_lines_are_dropped_and_named_the_rest_applies() {
    let b = AcTexts::default()
        .with(
            AcFile::Acl,
            "acl:1:/:alice@pbs:Admin\nacl:1:/:bob@pbs:SuperUser\n",
        )
        .with(
            AcFile::UserCfg,
            "user: alice@pbs\n\tpassword x\n\nuser: bob@pbs\n",
        );
    let m = merge(&b, &AcTexts::default(), Mode::Merge).expect("merge");
    assert_eq!(after(&m, AcFile::Acl), "acl:1:/:alice@pbs:Admin\n");
    let d: Vec<String> = m.diags.iter().map(ToString::to_string).collect();
    assert!(
        d.contains(
            &"the backup's etc/proxmox-backup/acl.cfg line 2: unknown role `SuperUser` (skipped)"
                .to_string()
        ),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|x| x.contains("user.cfg line 1") && x.contains("password")),
        "{d:?}"
    );
}

#[test]
fn unreadable_json_is_left_as_it_is() {
    let b = AcTexts::default().with(AcFile::TokenShadow, "{not json");
    let m = merge(&b, &host(), Mode::Merge).expect("merge");
    let f = m.file(AcFile::TokenShadow).unwrap();
    assert!(f.after.is_none() && !f.changes());
    let b = AcTexts::default().with(AcFile::TokenShadow, "{}");
    let h = AcTexts::default().with(AcFile::TokenShadow, "[1,2]");
    let f = merge(&b, &h, Mode::Clean).unwrap();
    assert!(f.files[0].after.is_none());
    assert!(f.files[0].notes[0].contains("root@pam's entries could not be kept"));
}

#[test]
fn an_unchanged_host_is_not_rewritten() {
    let h = host();
    let m = merge(&h, &h, Mode::Merge).expect("merge");
    for f in &m.files {
        assert!(!f.changes(), "{:?}: {:?}", f.file, f.after);
    }
    let m = merge(&backup(), &host(), Mode::Merge).unwrap();
    let mut second = AcTexts::default();
    for f in AcFile::ALL {
        second.set(
            f,
            m.file(f)
                .and_then(|x| x.after.clone())
                .or_else(|| host().get(f).map(str::to_string)),
        );
    }
    for mode in [Mode::Merge] {
        let again = merge(&backup(), &second, mode).unwrap();
        for f in &again.files {
            assert!(!f.changes(), "second run changes {:?}", f.file);
        }
    }
}

proptest! {
    /// Whatever the backup holds, this host's root@pam section, tokens and secrets stay.
    #[test]
    fn root_of_this_host_always_survives(
        users in proptest::collection::vec(("(root|a|b)@(pam|pbs)", any::<bool>()), 0..5),
        tokens in proptest::collection::vec("(root@pam|a@pbs)!(t1|t2)", 0..4),
        clean in any::<bool>(),
    ) {
        let mut text = String::new();
        for (u, en) in &users {
            text.push_str(&format!("user: {u}\n\tenable {}\n\n", u8::from(*en)));
        }
        for t in &tokens {
            text.push_str(&format!("token: {t}\n\tcomment x\n\n"));
        }
        let shadow: String = format!("{{{}}}", tokens.iter().map(|t| format!("\"{t}\":\"h\"")).collect::<Vec<_>>().join(","));
        let b = AcTexts::default()
            .with(AcFile::UserCfg, &text)
            .with(AcFile::TokenShadow, &shadow)
            .with(AcFile::Acl, "acl:1:/:a@pbs:Admin\n");
        let mode = if clean { Mode::Clean } else { Mode::Merge };
        let m = merge(&b, &host(), mode).expect("root@pam of this host is enabled");
        // What PBS reads afterwards: the file written, or this host's (an empty one is not).
        let u = m
            .file(AcFile::UserCfg)
            .and_then(|x| x.after.clone().or_else(|| x.before.clone()))
            .unwrap_or_default();
        prop_assert!(u.starts_with("user: root@pam\n\tcomment Superuser\n\tenable 1\n\ntoken: root@pam!mon\n"));
        prop_assert_eq!(u.matches("root@pam").count(), 2);
        let ts = parse_secret_map(&after(&m, AcFile::TokenShadow)).unwrap();
        prop_assert_eq!(ts.get("root@pam!mon").map(String::as_str), Some("$5$tok$roottokhash"));
        prop_assert!(ts.keys().filter(|k| k.starts_with("root@pam")).count() == 1);
        // What PBS reads back is valid section config.
        prop_assert!(proxsave_formats::section::parse_strict(&u).is_ok());
    }
}

#[test]
fn an_empty_or_unreadable_staged_file_is_not_written_and_is_named() {
    let junk = AcTexts::default()
        .with(AcFile::UserCfg, "")
        .with(AcFile::Acl, "# only a comment\nnot an acl line\n")
        .with(AcFile::Domains, "this is not a section config\n")
        .with(AcFile::Shadow, "  \n");
    for mode in [Mode::Merge, Mode::Clean] {
        let m = merge(&junk, &host(), mode).expect("merge");
        for f in [
            AcFile::UserCfg,
            AcFile::Acl,
            AcFile::Domains,
            AcFile::Shadow,
        ] {
            let x = m.file(f).unwrap();
            assert!(x.after.is_none() && !x.changes(), "{f:?}");
            assert!(x.notes[0].starts_with("left as it is: "), "{:?}", x.notes);
        }
        let d: Vec<String> = m.diags.iter().map(ToString::to_string).collect();
        assert!(
            d.contains(
                &"the backup's etc/proxmox-backup/user.cfg: the backup's file is empty: not written (skipped)"
                    .to_string()
            ),
            "{d:?}"
        );
        assert!(
            d.contains(
                &"the backup's etc/proxmox-backup/acl.cfg: no line of the backup's file reads as acl.cfg: not written (skipped)"
                    .to_string()
            ),
            "{d:?}"
        );
    }
}
