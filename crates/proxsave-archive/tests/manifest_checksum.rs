//! The manifest (`.metadata`) and checksum (`.sha256`) sidecars, against the bytes upstream's
//! Go code writes and the rules its decoder follows.

use std::io::{Read, Write};
use std::process::Command;

use proxsave_archive::checksum::{
    ChecksumError, Expectation, HashingReader, format_checksum_line, parse_checksum_file,
    resolve_expectation, sha256_of,
};
use proxsave_archive::manifest::{GoTime, Manifest, ManifestError, ManifestFormat};

const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA_A: &str = "9f2c4e0d1b7a6c3e5f8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6";

fn json(bytes: &[u8]) -> Manifest {
    Manifest::from_json(bytes).unwrap_or_else(|e| panic!("from_json: {e}"))
}

fn time(s: &str) -> GoTime {
    GoTime::parse(s).unwrap_or_else(|e| panic!("GoTime::parse({s}): {e}"))
}

/// Parses `text`, checks every field a caller cares about through `check`, and requires that
/// writing it back gives exactly `text` (what Go's `MarshalIndent` wrote).
fn assert_round_trip(text: &str, check: impl FnOnce(&Manifest)) {
    let m = json(text.as_bytes());
    check(&m);
    let out = m.to_json();
    assert_eq!(
        String::from_utf8_lossy(&out),
        text,
        "to_json must reproduce Go's bytes"
    );
    assert_eq!(
        json(&out),
        m,
        "to_json output must parse back to the same manifest"
    );
}

// ------------------------------------------------------------------------------------------------
// Round trips of manifests as Go writes them
// ------------------------------------------------------------------------------------------------

/// The complete example of archive-format.md §2.1 (bundled, passphrase-encrypted PVE node).
const EXAMPLE_PVE_CLUSTER: &str = r#"{
  "archive_path": "/opt/proxsave/backup/pve1.example.lan-backup-20260724-023000.tar.xz.age",
  "archive_size": 48213504,
  "sha256": "9f2c4e0d1b7a6c3e5f8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6",
  "created_at": "2026-07-24T02:30:00.512345678+02:00",
  "compression_type": "xz",
  "compression_level": 6,
  "compression_mode": "standard",
  "proxmox_type": "pve",
  "proxmox_targets": [
    "pve"
  ],
  "proxmox_version": "8.4.1",
  "pve_version": "8.4.1",
  "hostname": "pve1.example.lan",
  "script_version": "0.30.0",
  "encryption_mode": "age",
  "cluster_mode": "cluster",
  "passphrase_salt": "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff"
}"#;

#[test]
fn example_manifest_round_trips_byte_identical() {
    assert_round_trip(EXAMPLE_PVE_CLUSTER, |m| {
        assert_eq!(
            m.archive_path,
            "/opt/proxsave/backup/pve1.example.lan-backup-20260724-023000.tar.xz.age"
        );
        assert_eq!(m.archive_size, 48_213_504);
        assert_eq!(m.sha256, SHA_A);
        assert_eq!(
            m.created_at.to_go_string(),
            "2026-07-24T02:30:00.512345678+02:00"
        );
        assert_eq!(m.compression_type, "xz");
        assert_eq!(m.compression_level, 6);
        assert_eq!(m.compression_mode, "standard");
        assert_eq!(m.proxmox_type, "pve");
        assert_eq!(m.proxmox_targets, ["pve"]);
        assert_eq!(m.proxmox_version, "8.4.1");
        assert_eq!(m.pve_version, "8.4.1");
        assert_eq!(m.pbs_version, "");
        assert_eq!(m.hostname, "pve1.example.lan");
        assert_eq!(m.script_version, "0.30.0");
        assert_eq!(m.encryption_mode, "age");
        assert_eq!(m.cluster_mode, "cluster");
        assert_eq!(
            m.passphrase_salt,
            "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff"
        );
        assert!(m.is_encrypted());
        assert_eq!(
            m.archive_name(),
            Some("pve1.example.lan-backup-20260724-023000.tar.xz.age")
        );
        assert_eq!(m.display_target(), "PVE v8.4.1 (cluster)");
        assert_eq!(m.display_tool(), "Tool v0.30.0");
        assert_eq!(m.display_hostname(), "pve1.example.lan");
        assert_eq!(m.display_mode(), "ENCRYPTED");
        assert_eq!(m.display_compression(), "XZ");
        assert_eq!(m.created_at.display(), "2026-07-24 02:30:00");
    });
    assert!(
        !EXAMPLE_PVE_CLUSTER.ends_with('\n'),
        "Go writes no trailing newline"
    );
}

#[test]
fn standalone_pbs_manifest_without_omitempty_fields_round_trips() {
    // An unencrypted PBS backup from an old build: every omitempty field is empty, so Go
    // leaves them out; created_at in UTC with a trimmed fraction.
    let text = r#"{
  "archive_path": "/opt/proxsave/backup/pbs1.example.lan-backup-20260101-010203.tar.zst",
  "archive_size": 1048576,
  "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  "created_at": "2026-01-01T01:02:03.5Z",
  "compression_type": "zst",
  "compression_level": 3,
  "proxmox_type": "pbs",
  "hostname": "pbs1.example.lan"
}"#;
    assert_round_trip(text, |m| {
        assert_eq!(m.proxmox_type, "pbs");
        assert!(m.proxmox_targets.is_empty());
        assert_eq!(m.encryption_mode, "");
        assert!(!m.is_encrypted());
        assert_eq!(m.display_mode(), "PLAIN");
        assert_eq!(m.display_target(), "PBS");
        assert_eq!(m.display_tool(), "Tool unknown");
        assert_eq!(m.created_at.display(), "2026-01-01 01:02:03");
    });
}

#[test]
fn dual_manifest_round_trips() {
    let text = r#"{
  "archive_path": "/opt/proxsave/backup/hv1.lab-backup-20260315-220000.tar.gz",
  "archive_size": 734003200,
  "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  "created_at": "2026-03-15T22:00:00.000123-05:00",
  "compression_type": "pigz",
  "compression_level": 9,
  "compression_mode": "maximum",
  "proxmox_type": "dual",
  "proxmox_targets": [
    "pve",
    "pbs"
  ],
  "proxmox_version": "pve=8.4.1,pbs=3.4.2",
  "pve_version": "8.4.1",
  "pbs_version": "3.4.2",
  "hostname": "hv1.lab",
  "script_version": "0.30.0-beta7",
  "encryption_mode": "none",
  "cluster_mode": "standalone"
}"#;
    assert_round_trip(text, |m| {
        assert_eq!(m.proxmox_targets, ["pve", "pbs"]);
        assert_eq!(
            m.display_target(),
            "PVE+PBS vpve=8.4.1,pbs=3.4.2 (standalone)"
        );
        assert_eq!(m.display_tool(), "Tool v0.30.0-beta7");
        assert!(!m.is_encrypted());
        assert_eq!(m.created_at.display(), "2026-03-15 22:00:00");
    });
}

#[test]
fn decrypted_bundle_manifest_round_trips() {
    // What --decrypt writes into `<plain>.decrypted.bundle.tar`: the plaintext path, size and
    // hash, encryption_mode "none", the salt kept.
    let text = r#"{
  "archive_path": "/opt/proxsave/decrypt/pve01-backup-20240115-023000.tar.xz",
  "archive_size": 52428800,
  "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  "created_at": "2024-01-15T02:30:00.25+01:00",
  "compression_type": "xz",
  "compression_level": 6,
  "compression_mode": "standard",
  "proxmox_type": "pve",
  "proxmox_targets": [
    "pve"
  ],
  "proxmox_version": "8.1.4",
  "pve_version": "8.1.4",
  "hostname": "pve01",
  "script_version": "0.30.0",
  "encryption_mode": "none",
  "cluster_mode": "standalone",
  "passphrase_salt": "proxsave/age-passphrase/v2:00112233445566778899aabbccddeeff"
}"#;
    assert_round_trip(text, |m| {
        assert_eq!(m.encryption_mode, "none");
        assert!(!m.is_encrypted());
        assert_eq!(
            m.archive_name(),
            Some("pve01-backup-20240115-023000.tar.xz")
        );
        assert_eq!(m.display_target(), "PVE v8.1.4 (standalone)");
    });
}

#[test]
fn zero_manifest_is_written_like_go() {
    // `json.MarshalIndent(&Manifest{}, "", "  ")`.
    let expected = r#"{
  "archive_path": "",
  "archive_size": 0,
  "sha256": "",
  "created_at": "0001-01-01T00:00:00Z",
  "compression_type": "",
  "compression_level": 0,
  "proxmox_type": "",
  "hostname": ""
}"#;
    assert_eq!(
        String::from_utf8_lossy(&Manifest::default().to_json()),
        expected
    );
    assert_eq!(json(expected.as_bytes()), Manifest::default());
}

#[test]
fn go_escaping_of_hostname_and_path() {
    let m = Manifest {
        archive_path: "/srv/back\tups/a\"b\\c\n.tar".to_owned(),
        archive_size: -1,
        hostname: "pve<&>\u{2028}x\u{2029}\u{1}\u{8}\u{c}\r\u{7f}é".to_owned(),
        created_at: time("2026-07-24T02:30:00Z"),
        proxmox_targets: vec!["<pve>".to_owned()],
        ..Manifest::default()
    };
    // Written by hand from Go's encodeState.string rules (HTML-safe, Go >= 1.22): `<>&` and
    // U+2028/U+2029 as \u escapes, \b \f \n \r \t short, other controls \u00XX lower-case,
    // DEL and non-ASCII as is.
    let expected = "{\n  \"archive_path\": \"/srv/back\\tups/a\\\"b\\\\c\\n.tar\",\n  \"archive_size\": -1,\n  \"sha256\": \"\",\n  \"created_at\": \"2026-07-24T02:30:00Z\",\n  \"compression_type\": \"\",\n  \"compression_level\": 0,\n  \"proxmox_type\": \"\",\n  \"proxmox_targets\": [\n    \"\\u003cpve\\u003e\"\n  ],\n  \"hostname\": \"pve\\u003c\\u0026\\u003e\\u2028x\\u2029\\u0001\\b\\f\\r\u{7f}é\"\n}";
    assert_eq!(String::from_utf8_lossy(&m.to_json()), expected);
    assert_eq!(json(expected.as_bytes()), m);
}

#[test]
fn serde_serialize_has_the_same_shape_as_to_json() {
    // Our own `--json` outputs embed the manifest through serde; for plain text (nothing Go
    // escapes differently) it must read exactly like the sidecar.
    let m = json(EXAMPLE_PVE_CLUSTER.as_bytes());
    let pretty = serde_json::to_string_pretty(&m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pretty, EXAMPLE_PVE_CLUSTER);
    let zero = serde_json::to_string_pretty(&Manifest::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(zero.as_bytes(), Manifest::default().to_json());
}

#[test]
fn generated_manifests_round_trip_through_to_json() {
    // A small deterministic generator stands in for a property test: any manifest survives
    // to_json -> from_json, and to_json is a fixed point.
    let alphabet: Vec<char> =
        "aZ09 _-./:=,+<>&\"\\\t\n\r\u{0}\u{1f}\u{7f}\u{80}é☃\u{2028}\u{2029}\u{10ffff}😀"
            .chars()
            .collect();
    let mut rng = XorShift(0x5eed_1234_abcd_0042);
    let offsets = ["Z", "+02:00", "-09:30", "+00:00", "+14:00"];
    for _ in 0..500 {
        let mut s = || -> String {
            let len = rng.below(12);
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect()
        };
        let (a, b, c, d, e, f, g, h, i, j, k, l, n) = (
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
            s(),
        );
        let target_count = rng.below(3);
        let targets = (0..target_count)
            .map(|_| {
                let len = rng.below(6);
                (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect()
            })
            .collect();
        let frac = format!("{:09}", rng.below(1_000_000_000));
        let created = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac}{}",
            1 + rng.below(9999),
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60),
            offsets[rng.below(offsets.len() as u64) as usize]
        );
        let m = Manifest {
            archive_path: a,
            archive_size: rng.below(u64::MAX) as i64,
            sha256: b,
            created_at: time(&created),
            compression_type: c,
            compression_level: rng.below(23) as i64 - 1,
            compression_mode: d,
            proxmox_type: e,
            proxmox_targets: targets,
            proxmox_version: f,
            pve_version: g,
            pbs_version: h,
            hostname: i,
            script_version: j,
            encryption_mode: k,
            cluster_mode: l,
            passphrase_salt: n,
        };
        let out = m.to_json();
        let back = json(&out);
        assert_eq!(back, m, "{}", String::from_utf8_lossy(&out));
        assert_eq!(back.created_at.to_go_string(), m.created_at.to_go_string());
        assert_eq!(back.to_json(), out);
    }
}

// ------------------------------------------------------------------------------------------------
// GoTime
// ------------------------------------------------------------------------------------------------

#[test]
fn go_time_keeps_nanoseconds_and_offset() {
    let t = time("2026-07-24T02:30:00.512345678+02:00");
    assert_eq!(t.to_go_string(), "2026-07-24T02:30:00.512345678+02:00");
    assert_eq!(t.display(), "2026-07-24 02:30:00");
    assert!(!t.is_zero());
    let dt = t.0.unwrap_or_else(|| panic!("not zero"));
    assert_eq!(dt.offset().local_minus_utc(), 2 * 3600);
    assert_eq!(dt.timestamp(), 1_784_853_000);
    assert_eq!(dt.timestamp_subsec_nanos(), 512_345_678);
}

#[test]
fn go_time_trims_fraction_like_rfc3339nano() {
    let t = time("2026-07-24T02:30:00.51234+02:00");
    assert_eq!(t.to_go_string(), "2026-07-24T02:30:00.51234+02:00");
    assert_eq!(
        time("2026-07-24T02:30:00.512340000+02:00").to_go_string(),
        "2026-07-24T02:30:00.51234+02:00"
    );
    assert_eq!(
        time("2026-07-24T02:30:00.000000000+02:00").to_go_string(),
        "2026-07-24T02:30:00+02:00"
    );
}

#[test]
fn go_time_utc_is_written_with_z() {
    let z = time("2026-07-24T02:30:00Z");
    assert_eq!(z.to_go_string(), "2026-07-24T02:30:00Z");
    assert_eq!(z.display(), "2026-07-24 02:30:00");
    // Go re-emits a zero offset as "Z".
    let plus = time("2026-07-24T02:30:00+00:00");
    assert_eq!(plus.to_go_string(), "2026-07-24T02:30:00Z");
    assert_eq!(plus, z);
    // Same instant, other offset: equal instants, different text and wall clock.
    let cest = time("2026-07-24T04:30:00+02:00");
    assert_eq!(cest, z);
    assert_eq!(cest.display(), "2026-07-24 04:30:00");
    // Ordering is by instant, whatever the offsets; the zero time is the oldest.
    assert!(time("2026-07-24T03:30:00+02:00") < z);
    assert!(GoTime(None) < time("1970-01-01T00:00:00Z"));
    let mut v = [
        time("2026-01-01T00:00:00+05:00"),
        GoTime(None),
        time("2026-01-01T00:00:00-05:00"),
    ];
    v.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        v.map(|t| t.to_go_string()),
        [
            "2026-01-01T00:00:00-05:00",
            "2026-01-01T00:00:00+05:00",
            "0001-01-01T00:00:00Z"
        ]
    );
}

#[test]
fn go_time_zero() {
    let zero = time("0001-01-01T00:00:00Z");
    assert_eq!(zero, GoTime(None));
    assert_eq!(zero, GoTime::default());
    assert!(zero.is_zero());
    assert_eq!(zero.to_go_string(), "0001-01-01T00:00:00Z");
    assert_eq!(zero.display(), "unknown date");
    let m = json(br#"{"created_at": "0001-01-01T00:00:00Z"}"#);
    assert!(m.created_at.is_zero());
    assert_eq!(
        Manifest::default().created_at.to_go_string(),
        "0001-01-01T00:00:00Z"
    );
}

#[test]
fn go_time_refuses_non_rfc3339() {
    for bad in [
        "2026-07-24 02:30:00",
        "2026-07-24T02:30:00",
        "24/07/2026",
        "2026-07-24T02:30:00+2:00",
    ] {
        match GoTime::parse(bad) {
            Err(ManifestError::Time { value, .. }) => assert_eq!(value, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match Manifest::from_json(br#"{"created_at": "yesterday"}"#) {
        Err(ManifestError::Time { value, .. }) => assert_eq!(value, "yesterday"),
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// Go encoding/json leniency (and where Go fails)
// ------------------------------------------------------------------------------------------------

#[test]
fn unknown_keys_are_ignored() {
    let m = json(
        br#"{"hostname": "a", "future_key": {"nested": [1, {"x": null}]}, "another": [true], "n": 1.5e3}"#,
    );
    assert_eq!(
        m,
        Manifest {
            hostname: "a".to_owned(),
            ..Manifest::default()
        }
    );
}

#[test]
fn missing_keys_and_nulls_give_zero_values() {
    assert_eq!(json(b"{}"), Manifest::default());
    let m = json(
        br#"{"archive_path": null, "archive_size": null, "sha256": null, "created_at": null,
             "compression_level": null, "proxmox_targets": null, "hostname": "h"}"#,
    );
    assert_eq!(
        m,
        Manifest {
            hostname: "h".to_owned(),
            ..Manifest::default()
        }
    );
    // A top-level `null` is accepted by Go and leaves the zero manifest.
    assert_eq!(json(b" null "), Manifest::default());
}

#[test]
fn null_leaves_an_earlier_value_like_go() {
    let m = json(
        br#"{"hostname": "a", "hostname": null, "archive_size": 5, "ARCHIVE_SIZE": null,
             "created_at": "2026-07-24T02:30:00Z", "created_at": null,
             "proxmox_targets": ["pve", "pbs"], "proxmox_targets": [null]}"#,
    );
    assert_eq!(m.hostname, "a");
    assert_eq!(m.archive_size, 5);
    assert_eq!(m.created_at.to_go_string(), "2026-07-24T02:30:00Z");
    // Go decodes element 0 in place (null keeps "pve") and cuts the slice to one element.
    assert_eq!(m.proxmox_targets, ["pve"]);
    let m = json(br#"{"proxmox_targets": ["pve"], "proxmox_targets": null}"#);
    assert!(m.proxmox_targets.is_empty());
    let m = json(br#"{"proxmox_targets": [null, "pbs"]}"#);
    assert_eq!(m.proxmox_targets, ["", "pbs"]);
}

#[test]
fn case_folded_keys_match() {
    let m = json(
        format!(
            r#"{{"SHA256": "{SHA_A}", "Archive_Path": "/x/y.tar.xz", "ENCRYPTION_MODE": "AGE",
               "Proxmox_Targets": ["pbs"], "created_AT": "2026-07-24T02:30:00Z",
               "Archive_Size": 7}}"#
        )
        .as_bytes(),
    );
    assert_eq!(m.sha256, SHA_A);
    assert_eq!(m.archive_path, "/x/y.tar.xz");
    assert_eq!(m.archive_name(), Some("y.tar.xz"));
    assert_eq!(m.encryption_mode, "AGE");
    assert!(m.is_encrypted());
    assert_eq!(m.proxmox_targets, ["pbs"]);
    assert_eq!(m.archive_size, 7);
    assert!(!m.created_at.is_zero());
    // Go folds U+017F LATIN SMALL LETTER LONG S to 'S' too.
    assert_eq!(json("{\"\u{17f}ha256\": \"x\"}".as_bytes()).sha256, "x");
    // Folding is about case only: other spellings are unknown keys.
    assert_eq!(
        json(br#"{"archivePath": "/x", "archive-path": "/y"}"#),
        Manifest::default()
    );
}

#[test]
fn exact_and_folded_keys_apply_in_document_order_like_go() {
    // The exact key after the folded one: the exact key's value wins.
    let m = json(br#"{"SHA256": "folded", "sha256": "exact"}"#);
    assert_eq!(m.sha256, "exact");
    let m = json(br#"{"Hostname": "folded", "hostname": "exact", "HOSTNAME": null}"#);
    assert_eq!(m.hostname, "exact");
    // Go's decoder applies keys in document order; its exact-name preference only chooses
    // between struct fields whose names fold alike (the manifest has none). So a folded key
    // *after* the exact one overwrites it, as in Go.
    let m = json(br#"{"sha256": "exact", "SHA256": "folded-later"}"#);
    assert_eq!(m.sha256, "folded-later");
}

#[test]
fn wrong_type_names_the_key() {
    for (text, key) in [
        (r#"{"archive_size": "12"}"#, "archive_size"),
        (r#"{"Archive_Size": "12"}"#, "archive_size"),
        (r#"{"archive_size": 1.5}"#, "archive_size"),
        (r#"{"archive_size": 1e3}"#, "archive_size"),
        (r#"{"archive_size": 9223372036854775808}"#, "archive_size"),
        (r#"{"compression_level": true}"#, "compression_level"),
        (r#"{"hostname": 1}"#, "hostname"),
        (r#"{"sha256": ["x"]}"#, "sha256"),
        (r#"{"encryption_mode": {"age": true}}"#, "encryption_mode"),
        (r#"{"proxmox_targets": "pve"}"#, "proxmox_targets"),
        (r#"{"proxmox_targets": ["pve", 1]}"#, "proxmox_targets"),
        (r#"{"created_at": 1784853000}"#, "created_at"),
    ] {
        match Manifest::from_json(text.as_bytes()) {
            Err(ManifestError::WrongType { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: expected WrongType, got {other:?}"),
        }
    }
    let err = Manifest::from_json(br#"{"archive_size": "12"}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("archive_size") && err.contains("\"12\""),
        "{err}"
    );
}

#[test]
fn integers_parse_like_strconv() {
    let m = json(br#"{"archive_size": 9223372036854775807, "compression_level": -0}"#);
    assert_eq!(m.archive_size, i64::MAX);
    assert_eq!(m.compression_level, 0);
    let m = json(br#"{"archive_size": -9223372036854775808}"#);
    assert_eq!(m.archive_size, i64::MIN);
}

#[test]
fn syntax_errors_and_trailing_data_are_refused() {
    for text in [
        "{",
        r#"{"hostname": "a",}"#,
        r#"{"hostname": "a"} x"#,
        r#"{"hostname": "a"}{}"#,
        r#"{'hostname': 'a'}"#,
        "\u{feff}{}",
    ] {
        assert!(
            matches!(
                Manifest::from_json(text.as_bytes()),
                Err(ManifestError::Json { .. })
            ),
            "{text:?}"
        );
    }
    // Trailing JSON whitespace is fine.
    assert_eq!(json(b"{}\n\r\t "), Manifest::default());
    // Syntax errors come first, like Go (which validates before decoding).
    assert!(matches!(
        Manifest::from_json(br#"{"archive_size": "x", "hostname": }"#),
        Err(ManifestError::Json { .. })
    ));
    // The reason points at the spot.
    match Manifest::from_json(b"{\n  \"hostname\": \"a\"\n  \"sha256\": \"b\"\n}") {
        Err(ManifestError::Json { reason }) => assert!(reason.contains("line 3"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Not an object.
    assert!(matches!(
        Manifest::from_json(b"[1, 2]"),
        Err(ManifestError::Json { .. })
    ));
    assert!(matches!(
        Manifest::from_json(b" \n "),
        Err(ManifestError::Empty)
    ));
}

#[test]
fn invalid_utf8_in_strings_becomes_replacement_char() {
    let m = json(b"{\"hostname\": \"pve\xff1\"}");
    assert_eq!(m.hostname, "pve\u{fffd}1");
}

// ------------------------------------------------------------------------------------------------
// Legacy KEY=VALUE metadata
// ------------------------------------------------------------------------------------------------

const LEGACY_SAMPLE: &str = "\
# Proxmox backup metadata
# generated by proxmox-backup.sh

COMPRESSION_TYPE=xz
COMPRESSION_LEVEL=not-a-number
  COMPRESSION_LEVEL = 9
PROXMOX_TYPE=dual
BACKUP_TARGETS= pve , pbs,,pve
PROXMOX_TARGETS=pbs, dual
PROXMOX_VERSION=8.2/3.4
PVE_VERSION=8.2-1
PBS_VERSION=3.4-2
HOSTNAME=dual-node.example.lan\r
SCRIPT_VERSION=2.0.0
BACKUP_FILE=/opt/proxmox-backup/backup/dual-node-backup.tar.xz
INVALID_LINE
hostname=ignored-lower-case-key
";

#[test]
fn legacy_metadata_sample() {
    let m = Manifest::from_legacy(LEGACY_SAMPLE, "dual-node-backup-20240101-000000.tar.xz")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.compression_type, "xz");
    assert_eq!(m.compression_level, 9);
    assert_eq!(m.proxmox_type, "dual");
    assert_eq!(m.proxmox_targets, ["pve", "pbs", "dual"]);
    assert_eq!(m.proxmox_version, "8.2/3.4");
    assert_eq!(m.pve_version, "8.2-1");
    assert_eq!(m.pbs_version, "3.4-2");
    assert_eq!(m.hostname, "dual-node.example.lan");
    assert_eq!(m.script_version, "2.0.0");
    // Not in the file: plain, because the archive name does not end in .age.
    assert_eq!(m.encryption_mode, "plain");
    assert!(!m.is_encrypted());
    // Filled by the caller from the archive file.
    assert_eq!(m.archive_path, "");
    assert_eq!(m.archive_size, 0);
    assert_eq!(m.sha256, "");
    assert!(m.created_at.is_zero());
    assert_eq!(m.display_target(), "PVE+PBS+DUAL v8.2/3.4");
}

#[test]
fn legacy_encryption_default_from_archive_name() {
    let m = Manifest::from_legacy("COMPRESSION_TYPE=xz\n", "backup.tar.xz.age")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.encryption_mode, "age");
    assert!(m.is_encrypted());
    let m = Manifest::from_legacy("COMPRESSION_TYPE=xz\n", "backup.tar.xz")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.encryption_mode, "plain");
    // The suffix test is case-sensitive, as upstream's.
    let m = Manifest::from_legacy("COMPRESSION_TYPE=xz\n", "backup.tar.xz.AGE")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.encryption_mode, "plain");
    // A recorded mode is kept whatever the name says.
    let m = Manifest::from_legacy("ENCRYPTION_MODE=age\n", "backup.tar.xz")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.encryption_mode, "age");
}

#[test]
fn legacy_refuses_text_without_assignments() {
    assert!(matches!(
        Manifest::from_legacy("# only a comment\n\n", "a.tar"),
        Err(ManifestError::Empty)
    ));
    match Manifest::from_legacy("\nhello world\n", "a.tar") {
        Err(ManifestError::Legacy { line, .. }) => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    let long = format!("HOSTNAME={}\n", "x".repeat(70_000));
    assert!(matches!(
        Manifest::from_legacy(&long, "a.tar"),
        Err(ManifestError::Legacy { line: 1, .. })
    ));
}

#[test]
fn sidecar_prefers_json_and_falls_back_to_legacy() {
    let (m, format) = Manifest::parse_sidecar(EXAMPLE_PVE_CLUSTER.as_bytes(), "ignored.tar")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format, ManifestFormat::Json);
    assert_eq!(m.hostname, "pve1.example.lan");

    let (m, format) = Manifest::parse_sidecar(LEGACY_SAMPLE.as_bytes(), "x.tar.zst.age")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(format, ManifestFormat::Legacy);
    assert_eq!(m.hostname, "dual-node.example.lan");
    assert_eq!(m.encryption_mode, "age");

    // A truncated JSON manifest reports its JSON error, it does not become legacy.
    let truncated = &EXAMPLE_PVE_CLUSTER.as_bytes()[..200];
    assert!(matches!(
        Manifest::parse_sidecar(truncated, "a.tar"),
        Err(ManifestError::Json { .. })
    ));
    // A JSON manifest with a wrong type is not legacy either.
    assert!(matches!(
        Manifest::parse_sidecar(br#"{"archive_size": "12"}"#, "a.tar"),
        Err(ManifestError::WrongType { .. })
    ));
    // Neither JSON nor KEY=VALUE.
    assert!(matches!(
        Manifest::parse_sidecar(b"garbage", "a.tar"),
        Err(ManifestError::Unrecognized { .. })
    ));
    assert!(matches!(
        Manifest::parse_sidecar(b"\n  \n", "a.tar"),
        Err(ManifestError::Empty)
    ));
}

// ------------------------------------------------------------------------------------------------
// Display strings (upstream's backup_candidate_display.go)
// ------------------------------------------------------------------------------------------------

#[test]
fn display_strings_match_upstream() {
    let base = Manifest::default();
    assert_eq!(base.display_target(), "UNKNOWN");
    assert_eq!(base.display_tool(), "Tool unknown");
    assert_eq!(base.display_hostname(), "unknown host");
    assert_eq!(base.display_mode(), "PLAIN");
    assert_eq!(base.display_compression(), "");
    assert_eq!(base.created_at.display(), "unknown date");
    assert_eq!(base.archive_name(), None);

    let m = Manifest {
        proxmox_targets: vec!["pve".to_owned()],
        proxmox_version: "8.0".to_owned(),
        cluster_mode: "cluster".to_owned(),
        script_version: "1.2.3".to_owned(),
        ..Manifest::default()
    };
    assert_eq!(m.display_target(), "PVE v8.0 (cluster)");
    assert_eq!(m.display_tool(), "Tool v1.2.3");

    let cases = [
        // (targets, type, version, cluster, expected)
        (vec![], "pbs", "3.4.2", "", "PBS v3.4.2"),
        (vec![], "pve", "unknown", "", "PVE vunknown"),
        (vec![], "unknown", "", "", "UNKNOWN"),
        (
            vec![],
            "",
            "8.4.1",
            "Standalone ",
            "UNKNOWN v8.4.1 (standalone)",
        ),
        (
            vec!["pve", "pbs"],
            "dual",
            "pve=8.4.1,pbs=3.4.2",
            "",
            "PVE+PBS vpve=8.4.1,pbs=3.4.2",
        ),
        (vec!["pve"], "pve", "V8.4", "CLUSTER", "PVE V8.4 (cluster)"),
        (vec!["pve"], "pve", " 8.4 ", "single", "PVE v8.4"),
    ];
    for (targets, ty, version, cluster, expected) in cases {
        let m = Manifest {
            proxmox_targets: targets.into_iter().map(str::to_owned).collect(),
            proxmox_type: ty.to_owned(),
            proxmox_version: version.to_owned(),
            cluster_mode: cluster.to_owned(),
            ..Manifest::default()
        };
        assert_eq!(m.display_target(), expected);
    }
    for (version, expected) in [
        ("v0.30.0", "Tool v0.30.0"),
        ("V1", "Tool V1"),
        (" 0.30.0-beta7 ", "Tool v0.30.0-beta7"),
    ] {
        let m = Manifest {
            script_version: version.to_owned(),
            ..Manifest::default()
        };
        assert_eq!(m.display_tool(), expected);
    }
    let enc = |mode: &str| Manifest {
        encryption_mode: mode.to_owned(),
        ..Manifest::default()
    };
    assert!(enc(" Age ").is_encrypted());
    assert!(!enc("none").is_encrypted());
    assert!(!enc("plain").is_encrypted());
    assert!(!enc("age2").is_encrypted());
    let path = |p: &str| Manifest {
        archive_path: p.to_owned(),
        ..Manifest::default()
    };
    assert_eq!(path("x.tar.xz").archive_name(), Some("x.tar.xz"));
    assert_eq!(path("/a/b/x.tar/").archive_name(), Some("x.tar"));
    assert_eq!(path("/").archive_name(), None);
}

// ------------------------------------------------------------------------------------------------
// .sha256 files
// ------------------------------------------------------------------------------------------------

#[test]
fn checksum_file_sha256sum_output() {
    let line = format_checksum_line(ABC_SHA256, "pve1-backup-20260724-023000.tar.xz.age");
    assert_eq!(
        line,
        format!("{ABC_SHA256}  pve1-backup-20260724-023000.tar.xz.age\n")
    );
    assert_eq!(
        parse_checksum_file(line.as_bytes()).ok().as_deref(),
        Some(ABC_SHA256)
    );
    for text in [
        format!("{}  x.tar\n", ABC_SHA256.to_uppercase()),
        format!("   {ABC_SHA256}  x.tar\n"),
        format!("{ABC_SHA256}  x.tar\r\n"),
        format!("{ABC_SHA256}\r\n"),
        ABC_SHA256.to_owned(),
        format!("\t{ABC_SHA256} *x.tar\nsecond line ignored\n"),
        format!("{ABC_SHA256}  x.tar\n{}\n", "y".repeat(10_000)),
    ] {
        assert_eq!(
            parse_checksum_file(text.as_bytes()).ok().as_deref(),
            Some(ABC_SHA256),
            "{text:?}"
        );
    }
}

#[test]
fn checksum_file_errors() {
    let malformed = |bytes: &[u8]| {
        matches!(
            parse_checksum_file(bytes),
            Err(ChecksumError::Malformed { .. })
        )
    };
    // A first line longer than 4096 bytes.
    assert!(malformed(
        format!("{ABC_SHA256}  {}\n", "n".repeat(5000)).as_bytes()
    ));
    assert!(malformed("x".repeat(4097).as_bytes()));
    // Short, long, non-hex, empty, blank first line.
    assert!(malformed(b"abc123  x.tar\n"));
    assert!(malformed(format!("{ABC_SHA256}0  x.tar\n").as_bytes()));
    assert!(malformed(
        format!("{}g  x.tar\n", &ABC_SHA256[..63]).as_bytes()
    ));
    assert!(malformed(b""));
    assert!(malformed(b"\n"));
    assert!(malformed(format!("\n{ABC_SHA256}  x.tar\n").as_bytes()));
    // BSD-style output is not what upstream accepts either.
    assert!(malformed(
        format!("SHA256 (x.tar) = {ABC_SHA256}\n").as_bytes()
    ));
    let msg = parse_checksum_file(b"xyz\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("checksum file"), "{msg}");
}

#[test]
fn expectation_resolution_four_cases() {
    let both = resolve_expectation(Some(ABC_SHA256), Some(&ABC_SHA256.to_uppercase()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        both,
        Expectation {
            sha256: ABC_SHA256.to_owned(),
            from_file: Some(ABC_SHA256.to_owned()),
            from_manifest: Some(ABC_SHA256.to_owned()),
        }
    );

    let file_only = resolve_expectation(Some(ABC_SHA256), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file_only.sha256, ABC_SHA256);
    assert_eq!(file_only.from_manifest, None);
    assert_eq!(file_only.source(), "checksum file");

    let manifest_only = resolve_expectation(None, Some(&format!(" {ABC_SHA256}\n")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest_only.sha256, ABC_SHA256);
    assert_eq!(manifest_only.from_file, None);
    assert_eq!(manifest_only.source(), "manifest");

    match resolve_expectation(None, None) {
        Err(e @ ChecksumError::Missing) => {
            assert!(
                e.to_string()
                    .contains("refusing to use an unverifiable backup")
            )
        }
        other => panic!("{other:?}"),
    }
    // A blank manifest value counts as absent, as upstream.
    assert!(matches!(
        resolve_expectation(None, Some("  ")),
        Err(ChecksumError::Missing)
    ));

    match resolve_expectation(Some(ABC_SHA256), Some(SHA_A)) {
        Err(ChecksumError::Conflict { file, manifest }) => {
            assert_eq!(file, ABC_SHA256);
            assert_eq!(manifest, SHA_A);
        }
        other => panic!("{other:?}"),
    }
    match resolve_expectation(Some(ABC_SHA256), Some("not-a-checksum")) {
        Err(ChecksumError::Malformed { what, .. }) => assert_eq!(what, "manifest sha256"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        resolve_expectation(None, Some("abc")),
        Err(ChecksumError::Malformed { .. })
    ));
}

#[test]
fn mismatch_message_says_corrupt() {
    let e = resolve_expectation(None, Some(ABC_SHA256)).unwrap_or_else(|e| panic!("{e}"));
    let (actual, _) = sha256_of(&b"abd"[..]).unwrap_or_else(|e| panic!("{e}"));
    let err = e
        .verify(&actual)
        .err()
        .unwrap_or_else(|| panic!("must mismatch"));
    let text = err.to_string();
    assert!(
        text.contains(ABC_SHA256) && text.contains(&actual),
        "{text}"
    );
    assert!(
        text.contains("the backup is corrupt or was modified"),
        "{text}"
    );
}

// ------------------------------------------------------------------------------------------------
// Hashing
// ------------------------------------------------------------------------------------------------

#[test]
fn hashing_reader_known_vectors() {
    let (hex, n) = sha256_of(&b"abc"[..]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex, ABC_SHA256);
    assert_eq!(n, 3);
    let (hex, n) = sha256_of(std::io::empty()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(n, 0);

    let mut r = HashingReader::new(&b"abc"[..]);
    let mut one = [0u8; 1];
    r.read_exact(&mut one).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(HashingReader::bytes(&r), 1);
    assert_eq!(r.bytes_read(), 1);
    assert_eq!(r.get_ref().len(), 2);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap_or_else(|e| panic!("{e}"));
    let (hex, n, inner) = r.finish();
    assert_eq!((hex.as_str(), n, inner.len()), (ABC_SHA256, 3, 0));
}

/// Deterministic pseudo-random numbers (xorshift64), so a failure is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..len).map(|_| (rng.next() >> 24) as u8).collect()
}

#[test]
fn hashing_reader_agrees_with_sha256sum() {
    proxsave_testkit::require_tools!("sha256sum");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("archive.tar.xz.age");
    let data = noise(3 * 1024 * 1024 + 17);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&data))
        .unwrap_or_else(|e| panic!("{e}"));

    let out = proxsave_testkit::run(Command::new("sha256sum").arg(&path));
    let from_cli = parse_checksum_file(&out.stdout).unwrap_or_else(|e| panic!("{e}"));

    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let (hex, n) = sha256_of(file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex, from_cli);
    assert_eq!(n, data.len() as u64);

    // Through HashingReader with odd-sized reads, as a decompressor would pull.
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut reader = HashingReader::new(file);
    let mut buf = vec![0u8; 7919];
    let mut seen = Vec::with_capacity(data.len());
    loop {
        let got = reader.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        if got == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..got]);
    }
    assert_eq!(reader.bytes_read(), data.len() as u64);
    let (hex, n, _file) = reader.finish();
    assert_eq!((hex.as_str(), n), (from_cli.as_str(), data.len() as u64));
    assert!(
        seen == data,
        "the reader must pass the bytes through unchanged"
    );

    // And the whole chain a restore runs: sidecar + manifest -> expectation -> verify.
    let sidecar = format_checksum_line(&from_cli, "archive.tar.xz.age");
    let expectation = resolve_expectation(
        Some(&parse_checksum_file(sidecar.as_bytes()).unwrap_or_else(|e| panic!("{e}"))),
        Some(&from_cli.to_uppercase()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(expectation.verify(&hex).is_ok());
}
