use super::*;

fn section(text: &str) -> Section {
    let (cfg, diags) = proxsave_formats::section::parse(text);
    assert!(diags.is_empty(), "{diags:?}");
    cfg.sections.into_iter().next().expect("one section")
}

fn shown(c: &Call) -> String {
    c.to_string()
}

#[test]
fn a_new_storage_is_created_with_bare_flags_as_1_and_no_comment_argument() {
    let s = section(
        "dir: usb\n\tpath /mnt/usb\n\t# a note\n\tcontent backup\n\tdisable\n\tis_mountpoint 1\n\n",
    );
    let d = storage_def(&s, &Secrets::new());
    let StorageStep::Call(c, notes) = d.step(None) else {
        panic!("a call")
    };
    assert!(notes.is_empty());
    assert_eq!(
        shown(&c),
        "pvesh create /storage --storage=usb --type=dir --path=/mnt/usb --content=backup --disable=1 --is_mountpoint=1"
    );
    assert!(!shown(&c).contains("--#"));
}

#[test]
fn an_existing_storage_is_set_without_type_and_fixed_options_and_a_differing_fixed_one_is_reported()
{
    let s = section(
        "nfs: nas\n\texport /volume1/pve\n\tpath /mnt/pve/nas\n\tserver 192.168.1.10\n\tcontent backup\n\toptions vers=4.2\n\n",
    );
    let d = storage_def(&s, &Secrets::new());
    let here = json!({"storage": "nas", "type": "nfs", "export": "/volume1/pve", "path": "/mnt/pve/nas",
        "server": "192.168.1.99", "content": "backup,iso", "shared": 1, "digest": "abc", "bwlimit": "default=10"});
    let StorageStep::Call(c, notes) = d.step(Some(&here)) else {
        panic!("a call")
    };
    assert_eq!(
        shown(&c),
        "pvesh set /storage/nas --content=backup --options=vers=4.2 --delete=bwlimit"
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("`server`") && notes[0].contains("192.168.1.99"));
}

#[test]
fn a_storage_already_as_in_the_backup_is_left() {
    let s = section("dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n");
    let d = storage_def(&s, &Secrets::new());
    let here = json!({"storage": "local", "type": "dir", "path": "/var/lib/vz", "content": "backup,iso,vztmpl", "digest": "x"});
    assert!(matches!(d.step(Some(&here)), StorageStep::Unchanged(_)));
}

#[test]
fn a_type_mismatch_fails_that_storage() {
    let s = section("dir: local-lvm\n\tpath /srv/x\n\n");
    let d = storage_def(&s, &Secrets::new());
    let here =
        json!({"storage": "local-lvm", "type": "lvmthin", "vgname": "pve", "thinpool": "data"});
    let StorageStep::Failed(why) = d.step(Some(&here)) else {
        panic!("failed")
    };
    assert!(
        why.contains("lvmthin") && why.contains("local-lvm"),
        "{why}"
    );
}

#[test]
fn secrets_come_from_priv_storage_and_are_redacted() {
    let mut secrets = Secrets::new();
    secrets.insert("smb.pw".into(), b"password=Sm8!pass\n".to_vec());
    secrets.insert("pbs1.pw".into(), b"Pbs-pass-1\n".to_vec());
    let key =
        r#"{"kdf":null,"created":"2024-01-01T00:00:00Z","data":"AAAA","fingerprint":"aa:bb"}"#;
    secrets.insert("pbs1.enc".into(), format!("{key}\n").into_bytes());
    let cifs = storage_def(
        &section(
            "cifs: smb\n\tpath /mnt/pve/smb\n\tserver files\n\tshare backup\n\tusername bk\n\n",
        ),
        &secrets,
    );
    let c = cifs.upsert.create_call();
    assert!(
        shown(&c).ends_with("--username=bk --password=<redacted>"),
        "{c}"
    );
    assert!(
        c.params
            .iter()
            .any(|p| p.key == "password" && p.value == "Sm8!pass" && p.secret)
    );

    let pbs = storage_def(
        &section(
            "pbs: pbs1\n\tdatastore store1\n\tserver 10.0.0.30\n\tcontent backup\n\tencryption-key aa:bb\n\tfingerprint 3a:7c\n\tusername backup@pbs\n\n",
        ),
        &secrets,
    );
    let c = pbs.upsert.create_call();
    let s = shown(&c);
    assert!(
        !s.contains("Pbs-pass-1") && !s.contains("AAAA") && !s.contains("aa:bb"),
        "{s}"
    );
    assert!(s.contains("--fingerprint=3a:7c"), "{s}");
    assert!(s.contains("--password=<redacted>") && s.contains("--encryption-key=<redacted>"));
    assert!(
        c.params
            .iter()
            .any(|p| p.key == "encryption-key" && p.value == key)
    );
    // On set the secrets go too (they are not fixed).
    let here =
        json!({"storage": "pbs1", "type": "pbs", "datastore": "store1", "server": "10.0.0.30"});
    let StorageStep::Call(c, _) = pbs.step(Some(&here)) else {
        panic!("a call")
    };
    assert!(c.params.iter().any(|p| p.key == "encryption-key"));
    assert!(
        !c.params
            .iter()
            .any(|p| p.key == "server" || p.key == "type")
    );
}

#[test]
fn a_pbs_key_fingerprint_without_its_key_file_is_said() {
    let d = storage_def(
        &section("pbs: p\n\tdatastore s\n\tserver h\n\tencryption-key aa:bb\n\n"),
        &Secrets::new(),
    );
    assert!(!d.upsert.params.iter().any(|p| p.key == "encryption-key"));
    assert!(d.notes[0].contains("priv/storage/p.enc"));
}
