use super::*;
use proptest::prelude::*;

const SAMPLE: &str = "user:root@pam:1:0:::root@example.com:::
user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::
token:alice@pve!ci:0:1:CI token:

group:admins:alice@pve:Administrators:

pool:dev:Dev pool:100,101:local,nas-backup:

role:VMOperator:VM.Audit,VM.Console,VM.PowerMgmt:

acl:1:/:@admins:Administrator:
acl:1:/vms/100:alice@pve!ci:PVEVMUser:
";

#[test]
fn the_pve_example_parses_and_round_trips() {
    let (cfg, diags) = parse(SAMPLE);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(cfg.users.len(), 2);
    let alice = cfg.user("alice@pve").expect("alice");
    assert!(alice.enable);
    assert_eq!(alice.comment, "Ops: oncall");
    assert_eq!(alice.email, "alice@example.com");
    assert_eq!(cfg.tokens[0].tokenid, "alice@pve!ci");
    assert!(cfg.tokens[0].privsep);
    assert_eq!(cfg.groups[0].users, vec!["alice@pve"]);
    assert_eq!(cfg.pools[0].vms, vec!["100", "101"]);
    assert_eq!(cfg.pools[0].storage, vec!["local", "nas-backup"]);
    assert_eq!(cfg.roles[0].privs.len(), 3);
    assert_eq!(cfg.acls[1].members, vec!["alice@pve!ci"]);
    assert_eq!(cfg.to_text(), SAMPLE);
}

#[test]
fn enable_follows_perl_truth_and_trailing_fields_may_be_missing() {
    let (cfg, diags) = parse("user:a@pve:0\nuser:b@pve\nuser:c@pve:yes:\n");
    assert!(diags.is_empty());
    assert!(!cfg.users[0].enable);
    assert!(!cfg.users[1].enable);
    assert!(cfg.users[2].enable);
}

#[test]
fn bad_lines_are_named_and_skipped() {
    let text = "user:alice@pve:1:0::::::\nuser:nobody:1:0:\nuser:x@pve:1:soon:\nfoo:bar\nacl:1:vms:@g:R:\ngroup:a b:::\n";
    let (cfg, diags) = parse(text);
    assert_eq!(cfg.users.len(), 1);
    let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6]);
    assert!(
        diags[1].to_string().contains("expire `soon`"),
        "{}",
        diags[1]
    );
    assert!(diags[2].message.contains("unknown entry type `foo`"));
}

#[test]
fn a_changed_file_is_written_in_pve_order_keeping_unchanged_lines() {
    let (mut cfg, _) = parse(SAMPLE);
    cfg.users.retain(|u| u.userid != "root@pam");
    cfg.users.push(User {
        userid: "root@pam".into(),
        enable: true,
        email: "new@example.com".into(),
        ..User::default()
    });
    let out = cfg.to_text();
    assert_eq!(
        out,
        "user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::
token:alice@pve!ci:0:1:CI token:
user:root@pam:1:0:::new@example.com:::

group:admins:alice@pve:Administrators:

pool:dev:Dev pool:100,101:local,nas-backup:

role:VMOperator:VM.Audit,VM.Console,VM.PowerMgmt:

acl:1:/:@admins:Administrator:
acl:1:/vms/100:alice@pve!ci:PVEVMUser:
"
    );
    assert_eq!(parse(&out).0, cfg);
}

#[test]
fn text_escaping_examples() {
    assert_eq!(encode_text("Ops: oncall"), "Ops%3A oncall");
    assert_eq!(encode_text("50% off"), "50%25 off");
    assert_eq!(encode_text(" x "), "%20x%20");
    assert_eq!(encode_text("é"), "%C3%A9");
    assert_eq!(decode_text("Ops%3A%20oncall"), "Ops: oncall");
    assert_eq!(decode_text("100%"), "100%");
    assert_eq!(decode_text("%zz"), "%zz");
}

#[test]
fn split_list_as_pve() {
    assert_eq!(split_list(" a, b;c  d,,"), vec!["a", "b", "c", "d"]);
    assert_eq!(split_list("a\0b c"), vec!["a", "b c"]);
    assert!(split_list("").is_empty());
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn userid() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9._-]{0,10}", prop_oneof!["pam", "pve", "ldap1"])
        .prop_map(|(n, r)| format!("{n}@{r}"))
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,10}"
}

fn list(s: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(s, 0..4)
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn user() -> impl Strategy<Value = User> {
    (
        userid(),
        any::<bool>(),
        any::<u32>(),
        text(),
        text(),
        "[a-z0-9.@+-]{0,20}",
        text(),
        "[A-Za-z0-9,]{0,12}",
    )
        .prop_map(
            |(userid, enable, expire, firstname, lastname, email, comment, keys)| User {
                userid,
                enable,
                expire: u64::from(expire),
                firstname,
                lastname,
                email,
                comment,
                keys,
                original: Original(None),
            },
        )
}

fn cfg() -> impl Strategy<Value = UserCfg> {
    let token = (
        userid(),
        "[A-Za-z][A-Za-z0-9._-]{1,8}",
        any::<u32>(),
        any::<bool>(),
        text(),
    )
        .prop_map(|(u, t, expire, privsep, comment)| Token {
            tokenid: format!("{u}!{t}"),
            expire: u64::from(expire),
            privsep,
            comment,
            original: Original(None),
        });
    let group = (id(), list(userid()), text()).prop_map(|(groupid, users, comment)| Group {
        groupid,
        users,
        comment,
        original: Original(None),
    });
    let pool = (
        prop::collection::vec(id(), 1..4),
        text(),
        list("[1-9][0-9]{2,4}".prop_map(String::from)),
        list("[a-z][a-z0-9-]{0,6}[a-z0-9]".prop_map(String::from)),
    )
        .prop_map(|(parts, comment, vms, storage)| Pool {
            poolid: parts.join("/"),
            comment,
            vms,
            storage,
            original: Original(None),
        });
    let role = (
        id(),
        list("[A-Z][a-z]{1,5}\\.[A-Z][a-z]{1,6}".prop_map(String::from)),
    )
        .prop_map(|(roleid, privs)| Role {
            roleid,
            privs,
            original: Original(None),
        });
    let acl = (
        any::<bool>(),
        list("[a-z0-9]{1,6}".prop_map(String::from)),
        list(prop_oneof![userid(), id().prop_map(|g| format!("@{g}"))]),
        list(id()),
    )
        .prop_map(|(propagate, path, members, roles)| Acl {
            propagate,
            path: format!("/{}", path.join("/")),
            members,
            roles,
            original: Original(None),
        });
    (
        prop::collection::vec(user(), 0..5),
        prop::collection::vec(token, 0..4),
        prop::collection::vec(group, 0..3),
        prop::collection::vec(pool, 0..3),
        prop::collection::vec(role, 0..3),
        prop::collection::vec(acl, 0..4),
    )
        .prop_map(|(users, tokens, groups, pools, roles, acls)| UserCfg {
            users,
            tokens,
            groups,
            pools,
            roles,
            acls,
            original: Original(None),
        })
}

/// The model sorted as the writer orders it (the writer sorts, parsing keeps file order).
fn sorted(mut c: UserCfg) -> UserCfg {
    c.users.sort_by(|a, b| a.userid.cmp(&b.userid));
    c.groups.sort_by(|a, b| a.groupid.cmp(&b.groupid));
    c.pools.sort_by(|a, b| a.poolid.cmp(&b.poolid));
    c.roles.sort_by(|a, b| a.roleid.cmp(&b.roleid));
    c.acls
        .sort_by(|a, b| acl_path_key(&a.path).cmp(&acl_path_key(&b.path)));
    // Tokens follow their user, then the ones without a user.
    let users: Vec<String> = c.users.iter().map(|u| u.userid.clone()).collect();
    c.tokens.sort_by(|a, b| a.tokenid.cmp(&b.tokenid));
    let mut ordered = Vec::new();
    for u in &users {
        let (mine, rest): (Vec<Token>, Vec<Token>) =
            c.tokens.into_iter().partition(|t| t.user() == u);
        ordered.extend(mine);
        c.tokens = rest;
    }
    ordered.extend(c.tokens);
    c.tokens = ordered;
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(8), ..ProptestConfig::default() })]

    #[test]
    fn parse_of_write_is_the_model(c in cfg()) {
        let text = c.to_text();
        let (back, diags) = parse(&text);
        prop_assert!(diags.is_empty(), "{diags:?}\n{text}");
        prop_assert_eq!(sorted(back), sorted(c));
    }

    #[test]
    fn decode_of_encode_is_the_text(s in any::<String>()) {
        prop_assert_eq!(decode_text(&encode_text(&s)), s);
    }

    #[test]
    fn encoded_text_has_no_separator_percent_or_control(s in any::<String>()) {
        let e = encode_text(&s);
        prop_assert!(e.is_ascii());
        prop_assert!(!e.contains(':'));
        prop_assert!(!e.chars().any(|c| c.is_control()));
        prop_assert!(!e.starts_with(' ') && !e.ends_with(' '));
        // Every `%` starts an escape of two upper-case hex digits.
        let b = e.as_bytes();
        for (i, &x) in b.iter().enumerate() {
            if x == b'%' {
                prop_assert!(i + 2 < b.len());
                prop_assert!(b.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
                prop_assert!(b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
            }
        }
    }

    #[test]
    fn unchanged_files_round_trip_byte_for_byte(c in cfg(), noise in prop::collection::vec("[ \t]{0,2}(#x|user:bad|)[ \t]{0,2}", 0..3)) {
        let mut text = c.to_text();
        for n in &noise {
            text.push_str(n);
            text.push('\n');
        }
        let (parsed, _) = parse(&text);
        prop_assert_eq!(parsed.to_text(), text);
    }

    #[test]
    fn the_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let (c, _) = parse(&text);
        let _ = c.to_text();
    }
}
