use super::*;

const LIVE_USER: &str = "user:root@pam:1:0:::root@host.example:::
token:root@pam!monitor:0:1:live monitor:

acl:1:/:root@pam!monitor:PVEAuditor:
";

const BACKUP_USER: &str = "user:root@pam:0:0::::::
user:alice@pve:1:0:Alice:Smith:alice@example.com:Ops%3A%20oncall::
token:alice@pve!ci:0:1:CI token:
token:root@pam!old:0:1::

group:admins:alice@pve,root@pam:Administrators:

pool:dev:Dev pool:100,101:local:

role:VMOperator:VM.Audit,VM.Console:

acl:1:/:@admins,root@pam:Administrator:
acl:1:/vms/100:alice@pve!ci,root@pam!old:PVEVMUser:
acl:0:/storage:root@pam:PVEDatastoreAdmin:
";

fn sides(backup: AcTexts, live: AcTexts) -> Merged {
    merge(&backup, &live).expect("merges")
}

fn after(m: &Merged, f: AcFile) -> String {
    m.files
        .iter()
        .find(|x| x.file == f)
        .and_then(|x| x.after.clone())
        .expect("file merged")
}

/// Scenario 25: the live root line stays, alice comes back, root is never disabled, no
/// ACL is written for root@pam, and PVE's grammar reads the result cleanly.
#[test]
fn scenario_25_user_cfg_keeps_live_root_and_restores_alice() {
    let m = sides(
        AcTexts {
            user_cfg: Some(BACKUP_USER.into()),
            ..AcTexts::default()
        },
        AcTexts {
            user_cfg: Some(LIVE_USER.into()),
            ..AcTexts::default()
        },
    );
    let out = after(&m, AcFile::UserCfg);
    let (cfg, diags) = user_cfg::parse(&out);
    assert!(diags.is_empty(), "{diags:?}\n{out}");
    assert!(m.diags.is_empty(), "{:?}", m.diags);
    let roots: Vec<&User> = cfg.users.iter().filter(|u| u.userid == ROOT).collect();
    assert_eq!(roots.len(), 1, "{out}");
    assert!(roots[0].enable);
    assert_eq!(roots[0].email, "root@host.example");
    assert!(
        out.contains("user:root@pam:1:0:::root@host.example:::\n"),
        "{out}"
    );
    let alice = cfg.user("alice@pve").expect("alice");
    assert!(alice.enable);
    assert_eq!(alice.comment, "Ops: oncall");
    // Tokens: alice's from the backup, root's from this host, the backup's root token gone.
    let tokens: Vec<&str> = cfg.tokens.iter().map(|t| t.tokenid.as_str()).collect();
    assert_eq!(tokens, vec!["alice@pve!ci", "root@pam!monitor"]);
    // No ACL member root@pam; the backup's root token out of its ACL; the live token ACL kept.
    for acl in &cfg.acls {
        assert!(!acl.members.iter().any(|m| m == ROOT), "{out}");
        assert!(!acl.members.iter().any(|m| m == "root@pam!old"), "{out}");
    }
    assert!(out.contains("acl:1:/:@admins:Administrator:\n"), "{out}");
    assert!(
        out.contains("acl:1:/vms/100:alice@pve!ci:PVEVMUser:\n"),
        "{out}"
    );
    assert!(
        out.contains("acl:1:/:root@pam!monitor:PVEAuditor:\n"),
        "{out}"
    );
    assert!(
        !out.contains("/storage"),
        "an ACL left with no member is dropped: {out}"
    );
    // Groups, pools, roles come back as they were.
    assert!(out.contains("group:admins:alice@pve,root@pam:Administrators:\n"));
    assert!(out.contains("pool:dev:Dev pool:100,101:local:\n"));
    assert!(out.contains("role:VMOperator:VM.Audit,VM.Console:\n"));
    let notes = &m.files[0].notes;
    assert!(
        notes
            .iter()
            .any(|n| n == "root@pam: this host's user line kept (enabled)"),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n == "users added from the backup: alice@pve"),
        "{notes:?}"
    );
}

#[test]
fn a_host_without_root_line_gets_pve_default_enabled_root() {
    let m = sides(
        AcTexts {
            user_cfg: Some(BACKUP_USER.into()),
            ..AcTexts::default()
        },
        AcTexts::default(),
    );
    let (cfg, _) = user_cfg::parse(&after(&m, AcFile::UserCfg));
    assert!(cfg.user(ROOT).expect("root").enable);
}

#[test]
fn no_enabled_administrator_is_refused_naming_the_file() {
    let live = "user:root@pam:0:0::::::\n";
    let backup = "user:bob@pve:1:0::::::\nacl:1:/:bob@pve:PVEAuditor:\n";
    let err = merge(
        &AcTexts {
            user_cfg: Some(backup.into()),
            ..AcTexts::default()
        },
        &AcTexts {
            user_cfg: Some(live.into()),
            ..AcTexts::default()
        },
    )
    .expect_err("refused");
    assert_eq!(
        err,
        MergeError::NoAdministrator {
            file: "etc/pve/user.cfg"
        }
    );
    assert!(
        err.to_string().starts_with("etc/pve/user.cfg: refused"),
        "{err}"
    );
    // An enabled administrator through a group is enough.
    let backup = "user:bob@pve:1:0::::::\ngroup:adm:bob@pve::\nacl:1:/:@adm:Administrator:\n";
    assert!(
        merge(
            &AcTexts {
                user_cfg: Some(backup.into()),
                ..AcTexts::default()
            },
            &AcTexts {
                user_cfg: Some(live.into()),
                ..AcTexts::default()
            },
        )
        .is_ok()
    );
}

#[test]
fn bad_lines_are_named_and_the_rest_applies() {
    let backup = "user:alice@pve:1:0::::::\nuser:broken:1:0:\nfoo:bar:\n";
    let m = sides(
        AcTexts {
            user_cfg: Some(backup.into()),
            ..AcTexts::default()
        },
        AcTexts::default(),
    );
    let shown: Vec<String> = m.diags.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "the backup's etc/pve/user.cfg line 2: user `broken`: not a valid user id (skipped)",
            "the backup's etc/pve/user.cfg line 3: unknown entry type `foo` (skipped)",
        ]
    );
    assert!(after(&m, AcFile::UserCfg).contains("user:alice@pve:1:0::::::\n"));
}

/// Scenario 26: alice's hash restored, the backup's root hash never written.
#[test]
fn scenario_26_shadow_drops_backup_root() {
    let m = sides(
        AcTexts {
            shadow: Some("alice@pve:$5$a$b:\nroot@pam:$5$bogus$x:\n".into()),
            ..AcTexts::default()
        },
        AcTexts {
            shadow: Some("".into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(after(&m, AcFile::Shadow), "alice@pve:$5$a$b:\n");
    let m = sides(
        AcTexts {
            shadow: Some("alice@pve:$5$a$b:\nroot@pam:$5$bogus$x:\n".into()),
            ..AcTexts::default()
        },
        AcTexts {
            shadow: Some("root@pam:$5$live$y:\n".into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(
        after(&m, AcFile::Shadow),
        "alice@pve:$5$a$b:\nroot@pam:$5$live$y:\n"
    );
}

/// Scenario 27: tokens and TFA: alice from the backup, root@pam from this host.
#[test]
fn scenario_27_tokens_and_tfa() {
    let m = sides(
        AcTexts {
            token: Some(
                "alice@pve!ci 11111111-1111-1111-1111-111111111111\nroot@pam!old 22222222-2222-2222-2222-222222222222\n"
                    .into(),
            ),
            tfa: Some(
                r#"{"users":{"alice@pve":{"totp":[{"id":"a1"}]},"root@pam":{"totp":[{"id":"backup-root"}]}},"webauthn":{"rp":"old"}}"#
                    .into(),
            ),
            ..AcTexts::default()
        },
        AcTexts {
            token: Some("root@pam!monitor 33333333-3333-3333-3333-333333333333\n".into()),
            tfa: Some(r#"{"users":{"root@pam":{"totp":[{"id":"live-root"}]}}}"#.into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(
        after(&m, AcFile::Token),
        "alice@pve!ci 11111111-1111-1111-1111-111111111111\nroot@pam!monitor 33333333-3333-3333-3333-333333333333\n"
    );
    let tfa_out: serde_json::Value = serde_json::from_str(&after(&m, AcFile::Tfa)).expect("json");
    assert_eq!(tfa_out["users"]["alice@pve"]["totp"][0]["id"], "a1");
    assert_eq!(tfa_out["users"]["root@pam"]["totp"][0]["id"], "live-root");
    assert_eq!(tfa_out["webauthn"]["rp"], "old");
}

#[test]
fn tfa_of_mixed_shapes_is_left_alone_and_legacy_merges() {
    let m = sides(
        AcTexts {
            tfa: Some(r#"{"users":{"alice@pve":{}}}"#.into()),
            ..AcTexts::default()
        },
        AcTexts {
            tfa: Some("root@pam:oath:e30=\n".into()),
            ..AcTexts::default()
        },
    );
    assert!(!m.files[0].changes());
    assert!(m.files[0].notes[0].starts_with("left as it is"));
    let m = sides(
        AcTexts {
            tfa: Some("alice@pve:oath:e30=\nroot@pam:oath:YmFja3Vw\n".into()),
            ..AcTexts::default()
        },
        AcTexts {
            tfa: Some("root@pam:oath:bGl2ZQ==\n".into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(
        after(&m, AcFile::Tfa),
        "alice@pve:oath:e30=\nroot@pam:oath:bGl2ZQ==\n"
    );
}

#[test]
fn domains_keep_backup_realms_and_live_pam_pve() {
    let backup = "pam: pam\n\tcomment old pam\n\npve: pve\n\tcomment Proxmox VE authentication server\n\nldap: corp\n\tbase_dn dc=corp\n\tserver1 ldap.corp\n\n";
    let live = "pve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\npam: pam\n\tcomment Linux PAM standard authentication\n\n";
    let m = sides(
        AcTexts {
            domains: Some(backup.into()),
            ..AcTexts::default()
        },
        AcTexts {
            domains: Some(live.into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(
        after(&m, AcFile::Domains),
        "pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\nldap: corp\n\tbase_dn dc=corp\n\tserver1 ldap.corp\n\n"
    );
    // A backup without pam/pve gets the defaults; an unchanged backup stays byte for byte.
    let m = sides(
        AcTexts {
            domains: Some("ldap: corp\n\tbase_dn dc=corp\n".into()),
            ..AcTexts::default()
        },
        AcTexts::default(),
    );
    let out = after(&m, AcFile::Domains);
    assert!(out.contains("pam: pam\n\tcomment Linux PAM standard authentication\n"));
    assert!(out.contains("pve: pve\n"));
    let m = sides(
        AcTexts {
            domains: Some(live.into()),
            ..AcTexts::default()
        },
        AcTexts {
            domains: Some(live.into()),
            ..AcTexts::default()
        },
    );
    assert!(!m.files[0].changes());
}

#[test]
fn only_files_of_the_backup_are_merged_and_equal_files_are_not_written() {
    let same = "alice@pve:$5$a$b:\n";
    let m = sides(
        AcTexts {
            shadow: Some(same.into()),
            ..AcTexts::default()
        },
        AcTexts {
            shadow: Some(same.into()),
            token: Some("root@pam!x1 1\n".into()),
            ..AcTexts::default()
        },
    );
    assert_eq!(m.files.len(), 1);
    assert!(!m.files[0].changes());
}

#[test]
fn a_backup_user_cfg_without_one_readable_line_is_left_alone() {
    let m = sides(
        AcTexts {
            user_cfg: Some("dir: local\n\tpath /var/lib/vz\n".into()),
            ..AcTexts::default()
        },
        AcTexts {
            user_cfg: Some(LIVE_USER.into()),
            ..AcTexts::default()
        },
    );
    assert!(!m.files[0].changes());
    assert_eq!(
        m.files[0].notes,
        vec!["left as it is: no line of the backup's file reads as user.cfg"]
    );
    assert_eq!(m.diags.len(), 2);
}

#[test]
fn a_safe_run_keeps_this_host_s_pool_lines() {
    let mut backup = AcTexts::default();
    backup.set(
        AcFile::UserCfg,
        Some("user:root@pam:1:0:::::::\nuser:ann@pve:1:0:::::::\n\npool:web:Backup web:100,101:local:\npool:db:Backup db:102::\n".into()),
    );
    let mut live = AcTexts::default();
    live.set(
        AcFile::UserCfg,
        Some("user:root@pam:1:0:::::::\n\npool:web:Node web:100::\npool:ops:::\n".into()),
    );
    let merged = |keep| {
        let m = merge_with(
            &backup,
            &live,
            MergeOptions {
                keep_host_pools: keep,
            },
        )
        .unwrap();
        m.files[0].after.clone().unwrap()
    };
    let kept = merged(true);
    assert!(kept.contains("pool:web:Node web:100::"), "{kept}");
    assert!(kept.contains("pool:ops:::"), "{kept}");
    assert!(!kept.contains("Backup web"), "{kept}");
    assert!(kept.contains("pool:db:Backup db:102::"), "{kept}");
    assert!(kept.contains("user:ann@pve:"), "{kept}");
    let replaced = merged(false);
    assert!(
        replaced.contains("pool:web:Backup web:100,101:local:"),
        "{replaced}"
    );
    assert!(!replaced.contains("pool:ops"), "{replaced}");
}
