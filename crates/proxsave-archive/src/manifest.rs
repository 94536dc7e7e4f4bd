//! The backup manifest: the `.metadata` sidecar (and its twin `.manifest.json`).
//!
//! proxsave writes the manifest with Go's `json.MarshalIndent(m, "", "  ")` and reads it back
//! with `json.Unmarshal`, which is far more forgiving than a strict serde derive: keys match
//! case-insensitively, unknown keys are ignored, missing keys and `null` leave the zero value.
//! [`Manifest::from_json`] reproduces that leniency (and the cases where Go *does* fail), and
//! [`Manifest::to_json`] reproduces Go's bytes exactly, so a manifest we rewrite (for example
//! in a decrypted bundle) is indistinguishable from one written by upstream.
//!
//! Bash-era backups carry `KEY=VALUE` text instead of JSON; [`Manifest::from_legacy`] reads it
//! and [`Manifest::parse_sidecar`] picks the right parser.
//!
//! ```
//! use proxsave_archive::manifest::{Manifest, ManifestFormat};
//!
//! let text = br#"{"archive_path": "/opt/proxsave/backup/pve1-backup-20260724-023000.tar.xz.age",
//!                 "created_at": "2026-07-24T02:30:00+02:00", "encryption_mode": "age",
//!                 "proxmox_type": "pve", "proxmox_version": "8.4.1", "cluster_mode": "cluster"}"#;
//! let (m, format) = Manifest::parse_sidecar(text, "pve1-backup-20260724-023000.tar.xz.age")?;
//! assert_eq!(format, ManifestFormat::Json);
//! assert!(m.is_encrypted());
//! assert_eq!(m.display_target(), "PVE v8.4.1 (cluster)");
//! assert_eq!(m.created_at.display(), "2026-07-24 02:30:00");
//! # Ok::<(), proxsave_archive::manifest::ManifestError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Errors reading a manifest.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not syntactically valid JSON (or not a JSON object).
    #[error("manifest is not valid JSON: {reason}")]
    Json {
        /// What the JSON parser reported, with line and column when known.
        reason: String,
    },
    /// A known key holds a value of the wrong JSON type (Go's `UnmarshalTypeError`).
    #[error("manifest key \"{key}\" must be {expected}, found {found}")]
    WrongType {
        /// The manifest key, spelled as upstream writes it (e.g. `archive_size`).
        key: String,
        /// The JSON type the key must have.
        expected: &'static str,
        /// What was found instead.
        found: String,
    },
    /// A legacy `KEY=VALUE` metadata file could not be read.
    #[error("legacy metadata, line {line}: {reason}")]
    Legacy {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A timestamp is not an RFC 3339 time as Go accepts it.
    #[error("invalid time {value:?}: {reason}")]
    Time {
        /// The text that was given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The sidecar is empty (or whitespace only).
    #[error("manifest is empty")]
    Empty,
    /// The sidecar is neither a JSON manifest nor legacy `KEY=VALUE` metadata.
    #[error("not a proxsave manifest: not JSON ({json}) and not KEY=VALUE metadata ({legacy})")]
    Unrecognized {
        /// Why the JSON parser refused it.
        json: String,
        /// Why the legacy parser refused it.
        legacy: String,
    },
}

// ------------------------------------------------------------------------------------------------
// GoTime
// ------------------------------------------------------------------------------------------------

/// Go `time.Time` as proxsave writes it: RFC3339 with the producer's offset; zero time = "0001-01-01T00:00:00Z".
///
/// `GoTime(None)` is Go's zero time. A parsed time keeps the producer's UTC offset, so
/// [`display`](GoTime::display) shows the wall-clock time of the host that made the backup and
/// [`to_go_string`](GoTime::to_go_string) gives back the same text Go would write. Equality,
/// ordering and hashing compare instants (as chrono does), not offsets; the zero time sorts
/// first, so sorting candidates newest-first is `b.created_at.cmp(&a.created_at)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoTime(pub Option<DateTime<FixedOffset>>);

/// The text Go's `encoding/json` writes for a zero `time.Time`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Go's zero instant, 0001-01-01T00:00:00Z, as seconds since the Unix epoch.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

impl GoTime {
    /// A time from the local clock (e.g. a legacy sidecar's mtime), in UTC.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let utc: chrono::DateTime<chrono::Utc> = t.into();
        GoTime(Some(utc.fixed_offset()))
    }

    /// Parses any RFC3339 time as Go's `time.Time.UnmarshalJSON` accepts it.
    ///
    /// Accepted: `YYYY-MM-DDTHH:MM:SS`, an optional `.` and one or more fraction digits (digits
    /// past the ninth are truncated, as Go does), then `Z` or `±hh:mm`. Fields are range-checked
    /// like Go (day within the month, hour 0–23, offset hour 0–23, no leap second). The zero time
    /// (`0001-01-01T00:00:00Z`, or the same instant with a `+00:00`/`-00:00` offset) gives
    /// `GoTime(None)`.
    pub fn parse(s: &str) -> Result<Self, ManifestError> {
        parse_rfc3339(s)
            .map_err(|reason| ManifestError::Time {
                value: s.to_owned(),
                reason: reason.to_owned(),
            })
            .map(|dt| {
                if dt.timestamp() == GO_ZERO_UNIX
                    && dt.timestamp_subsec_nanos() == 0
                    && dt.offset().local_minus_utc() == 0
                {
                    GoTime(None)
                } else {
                    GoTime(Some(dt))
                }
            })
    }

    /// Exactly Go's RFC3339Nano: trailing fractional zeros trimmed (no '.' if zero), "Z" for a zero offset, else ±hh:mm.
    ///
    /// The zero time gives [`GO_ZERO_TIME`]. (Go refuses to marshal years outside 0–9999; such a
    /// value cannot come from [`GoTime::parse`] and is written with as many digits as it needs.)
    pub fn to_go_string(&self) -> String {
        let Some(dt) = self.0 else {
            return GO_ZERO_TIME.to_owned();
        };
        let local = dt.naive_local();
        let mut out = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
            local.second()
        );
        // chrono reports a leap second as nanosecond >= 1e9; Go has no leap seconds.
        let nanos = local.nanosecond().min(999_999_999);
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        let offset = dt.offset().local_minus_utc();
        if offset == 0 {
            out.push('Z');
        } else {
            // As Go: whole minutes (truncated toward zero), sign taken from the minutes.
            let minutes = offset / 60;
            out.push(if minutes < 0 { '-' } else { '+' });
            let minutes = minutes.unsigned_abs();
            out.push_str(&format!("{:02}:{:02}", minutes / 60, minutes % 60));
        }
        out
    }

    /// "2006-01-02 15:04:05" in its own offset, or "unknown date".
    pub fn display(&self) -> String {
        match self.0 {
            Some(dt) if !self.is_zero() => {
                let local = dt.naive_local();
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    local.year(),
                    local.month(),
                    local.day(),
                    local.hour(),
                    local.minute(),
                    local.second()
                )
            }
            _ => "unknown date".to_owned(),
        }
    }

    /// True for Go's zero time (the instant 0001-01-01T00:00:00Z, whatever its offset).
    pub fn is_zero(&self) -> bool {
        match self.0 {
            None => true,
            Some(dt) => dt.timestamp() == GO_ZERO_UNIX && dt.timestamp_subsec_nanos() == 0,
        }
    }
}

impl fmt::Display for GoTime {
    /// Writes [`GoTime::to_go_string`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_go_string())
    }
}

impl serde::Serialize for GoTime {
    /// Serialises as the Go string ([`GoTime::to_go_string`]).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_go_string())
    }
}

/// Go's `parseRFC3339` (the strict path of `time.Time.UnmarshalJSON`, Go >= 1.20).
fn parse_rfc3339(s: &str) -> Result<DateTime<FixedOffset>, &'static str> {
    const SHAPE: &str =
        "expected RFC 3339 like 2006-01-02T15:04:05Z or 2006-01-02T15:04:05.5+02:00";
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(SHAPE);
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if !(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':') {
        return Err(SHAPE);
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0, 4),
        num(5, 7),
        num(8, 10),
        num(11, 13),
        num(14, 16),
        num(17, 19),
    ) else {
        return Err(SHAPE);
    };
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    // `year` has four digits, so it always fits an i32.
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or("day out of range")?;
    if hour > 23 {
        return Err("hour out of range");
    }
    if min > 59 {
        return Err("minute out of range");
    }
    if sec > 59 {
        return Err("second out of range");
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        // Go keeps the first nine digits and ignores the rest.
        for i in 0..9 {
            let d = if i < digits {
                u32::from(rest[1 + i] - b'0')
            } else {
                0
            };
            nanos = nanos * 10 + d;
        }
        rest = &rest[1 + digits..];
    }
    let offset_secs = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i32::from(a - b'0') * 10 + i32::from(b - b'0'))
            };
            let (Some(oh), Some(om)) = (two(*h1, *h2), two(*m1, *m2)) else {
                return Err(SHAPE);
            };
            if oh > 23 {
                return Err("timezone hour out of range");
            }
            if om > 59 {
                return Err("timezone minute out of range");
            }
            let secs = (oh * 60 + om) * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return Err(SHAPE),
    };
    let offset = FixedOffset::east_opt(offset_secs).ok_or("timezone out of range")?;
    let naive = date
        .and_hms_nano_opt(hour, min, sec, nanos)
        .ok_or("time out of range")?;
    naive
        .and_local_timezone(offset)
        .single()
        .ok_or("time out of range")
}

// ------------------------------------------------------------------------------------------------
// Manifest
// ------------------------------------------------------------------------------------------------

/// The archive manifest upstream writes next to (and into the bundle with) every archive.
///
/// Fields are in upstream's struct order and carry upstream's JSON names. `Serialize` writes
/// the same keys, omitting the same empty fields as Go, with `created_at` as its Go string; for
/// Go's exact bytes use [`Manifest::to_json`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    /// Absolute path of the archive on the host that made it (not the bundle).
    pub archive_path: String,
    /// Size in bytes of the stored archive (the ciphertext when encrypted).
    pub archive_size: i64,
    /// Lower-case hex SHA-256 of the stored archive bytes.
    pub sha256: String,
    /// Start of the backup run, with the producer's UTC offset.
    pub created_at: GoTime,
    /// Effective compression: `xz`, `gz`, `pigz`, `bz2`, `lzma`, `zst`, `none`.
    pub compression_type: String,
    /// Normalised compression level.
    pub compression_level: i64,
    /// `fast`, `standard`, `maximum`, `ultra` (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression_mode: String,
    /// `pve`, `pbs`, `dual` or `unknown`.
    pub proxmox_type: String,
    /// `["pve"]`, `["pbs"]` or `["pve","pbs"]` (may be empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxmox_targets: Vec<String>,
    /// PVE or PBS version, `pve=X,pbs=Y` for dual, `unknown` if undetected (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub proxmox_version: String,
    /// PVE version, e.g. `8.4.1` (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pve_version: String,
    /// PBS version, e.g. `3.4.2` (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pbs_version: String,
    /// FQDN of the host that made the backup.
    pub hostname: String,
    /// proxsave version without the `v` (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub script_version: String,
    /// `age` when encrypted; `none` (or legacy `plain`) otherwise (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub encryption_mode: String,
    /// `cluster` or `standalone` for PVE backups (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_mode: String,
    /// Per-installation passphrase salt `proxsave/age-passphrase/v2:<hex>` (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub passphrase_salt: String,
}

/// Which syntax a sidecar was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestFormat {
    /// The JSON manifest every Go version writes.
    Json,
    /// Bash-era `KEY=VALUE` metadata.
    Legacy,
}

impl Manifest {
    /// Go encoding/json leniency: unknown keys ignored; missing keys and `null` → zero value; key
    /// matching case-insensitive; a value of the wrong JSON type → [`ManifestError::WrongType`]
    /// naming the key (Go fails too); trailing non-whitespace after the object → error.
    ///
    /// Precisely as Go's `json.Unmarshal` into upstream's struct:
    /// - Keys are matched with Go's case folding (so `SHA256`, `Archive_Path`, even `ſha256`
    ///   with U+017F match). Go prefers an exact-case match only when choosing between struct
    ///   *fields* whose names fold alike, which upstream's struct has none of; the *keys* of the
    ///   document are applied in order, exact or folded alike, so when a key is repeated its last
    ///   non-null value wins (`{"SHA256":"a","sha256":"b"}` gives `b`, and so does
    ///   `{"sha256":"a","SHA256":"b"}`).
    /// - `null` leaves the value as it was (an earlier occurrence of the key, or the zero
    ///   value); for `proxmox_targets` it empties the list.
    /// - Syntax errors anywhere are reported before type errors, as Go validates first; the
    ///   first type error in document order is returned.
    /// - A top-level `null` is accepted and gives the zero manifest (Go does the same).
    /// - Invalid UTF-8 inside strings is replaced with U+FFFD, as Go does.
    ///
    /// Known remaining differences, none of which Go itself ever writes: Go fails on escapes
    /// inside `created_at` and accepts lone-surrogate `\uD800` escapes; this parser does the
    /// opposite. Nesting deeper than 128 levels (in ignored keys too) is refused.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Err(ManifestError::Empty);
        }
        let text: Cow<'_, [u8]> = match std::str::from_utf8(bytes) {
            Ok(_) => Cow::Borrowed(bytes),
            Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).into_owned().into_bytes()),
        };
        let mut de = serde_json::Deserializer::from_slice(&text);
        let top = de
            .deserialize_any(TopVisitor)
            .and_then(|top| de.end().map(|()| top))
            .map_err(|e| ManifestError::Json {
                reason: e.to_string(),
            })?;
        match top {
            Top::Null => Ok(Manifest::default()),
            Top::Other(kind) => Err(ManifestError::Json {
                reason: format!("expected a JSON object, found {kind}"),
            }),
            Top::Object(entries) => {
                let mut m = Manifest::default();
                for (field, raw) in entries {
                    m.apply(field, raw)?;
                }
                Ok(m)
            }
        }
    }

    /// Legacy Bash-era KEY=VALUE text (§2.2). `archive_name` is used for the encryption default
    /// (empty ENCRYPTION_MODE → "age" if it ends ".age" else "plain"). Caller fills path/size/sha/created_at.
    ///
    /// As upstream: lines are trimmed; blank lines and `#` comments are skipped; a line is split
    /// at its first `=` and key and value are trimmed; keys are case-sensitive; unknown keys and
    /// lines without `=` are ignored; an unparsable `COMPRESSION_LEVEL` is ignored;
    /// `BACKUP_TARGETS`/`PROXMOX_TARGETS` are comma lists whose trimmed, non-empty, not yet seen
    /// entries are appended; a repeated key overwrites. Like Go's line scanner, a line of 64 KiB
    /// or more is an error.
    ///
    /// Stricter than upstream (which accepts any text, even an empty file): at least one line
    /// must have the shape `NAME=VALUE` with `NAME` made of ASCII letters, digits and `_`;
    /// otherwise the result is [`ManifestError::Empty`] (no content lines) or
    /// [`ManifestError::Legacy`] naming the first line that is not `KEY=VALUE`.
    pub fn from_legacy(text: &str, archive_name: &str) -> Result<Manifest, ManifestError> {
        const MAX_LINE: usize = 64 * 1024;
        let mut m = Manifest::default();
        let mut assignments = 0usize;
        let mut first_other: Option<usize> = None;
        for (idx, raw_line) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            if raw_line.len() >= MAX_LINE {
                return Err(ManifestError::Legacy {
                    line: line_no,
                    reason: format!("line is longer than {} bytes", MAX_LINE - 1),
                });
            }
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                first_other.get_or_insert(line_no);
                continue;
            };
            let key = key.trim();
            let value = value.trim();
            if is_legacy_key(key) {
                assignments += 1;
            } else {
                first_other.get_or_insert(line_no);
            }
            match key {
                "COMPRESSION_TYPE" => m.compression_type = value.to_owned(),
                "COMPRESSION_LEVEL" => {
                    if let Some(level) = go_atoi(value) {
                        m.compression_level = level;
                    }
                }
                "PROXMOX_TYPE" => m.proxmox_type = value.to_owned(),
                "BACKUP_TARGETS" | "PROXMOX_TARGETS" => {
                    for target in value.split(',').map(str::trim) {
                        if !target.is_empty() && !m.proxmox_targets.iter().any(|t| t == target) {
                            m.proxmox_targets.push(target.to_owned());
                        }
                    }
                }
                "PROXMOX_VERSION" => m.proxmox_version = value.to_owned(),
                "PVE_VERSION" => m.pve_version = value.to_owned(),
                "PBS_VERSION" => m.pbs_version = value.to_owned(),
                "HOSTNAME" => m.hostname = value.to_owned(),
                "SCRIPT_VERSION" => m.script_version = value.to_owned(),
                "ENCRYPTION_MODE" => m.encryption_mode = value.to_owned(),
                _ => {}
            }
        }
        if assignments == 0 {
            return Err(match first_other {
                Some(line) => ManifestError::Legacy {
                    line,
                    reason: "expected KEY=VALUE".to_owned(),
                },
                None => ManifestError::Empty,
            });
        }
        if m.encryption_mode.is_empty() {
            m.encryption_mode = if archive_name.ends_with(".age") {
                "age"
            } else {
                "plain"
            }
            .to_owned();
        }
        Ok(m)
    }

    /// JSON first; legacy only if JSON parsing fails and the text looks like KEY=VALUE lines.
    ///
    /// Text that starts (after whitespace) like JSON — `{`, `[`, `"` — is never read as legacy,
    /// so a truncated or corrupt JSON manifest reports its JSON error instead of turning into
    /// an almost empty legacy manifest. When both parsers refuse the text the error is
    /// [`ManifestError::Unrecognized`] with both reasons, as upstream reports them.
    pub fn parse_sidecar(
        bytes: &[u8],
        archive_name: &str,
    ) -> Result<(Manifest, ManifestFormat), ManifestError> {
        let json_err = match Manifest::from_json(bytes) {
            Ok(m) => return Ok((m, ManifestFormat::Json)),
            Err(ManifestError::Empty) => return Err(ManifestError::Empty),
            Err(e) => e,
        };
        let text = String::from_utf8_lossy(bytes);
        if text.trim_start().starts_with(['{', '[', '"']) {
            return Err(json_err);
        }
        match Manifest::from_legacy(&text, archive_name) {
            Ok(m) => Ok((m, ManifestFormat::Legacy)),
            Err(legacy_err) => Err(ManifestError::Unrecognized {
                json: json_err.to_string(),
                legacy: legacy_err.to_string(),
            }),
        }
    }

    /// Byte-identical to Go `json.MarshalIndent(m, "", "  ")`: struct field order, omitempty on compression_mode,
    /// proxmox_targets (empty), proxmox_version, pve_version, pbs_version, script_version, encryption_mode,
    /// cluster_mode, passphrase_salt; no trailing newline; Go string escaping (`<` `>` `&` → \u003c \u003e \u0026,
    /// U+2028/U+2029 → \u2028/\u2029, \n \r \t \b \f short escapes (Go ≥1.22), other controls \u00XX).
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = GoObjectWriter::new();
        w.string("archive_path", &self.archive_path, false);
        w.int("archive_size", self.archive_size);
        w.string("sha256", &self.sha256, false);
        w.string("created_at", &self.created_at.to_go_string(), false);
        w.string("compression_type", &self.compression_type, false);
        w.int("compression_level", self.compression_level);
        w.string("compression_mode", &self.compression_mode, true);
        w.string("proxmox_type", &self.proxmox_type, false);
        w.string_list("proxmox_targets", &self.proxmox_targets);
        w.string("proxmox_version", &self.proxmox_version, true);
        w.string("pve_version", &self.pve_version, true);
        w.string("pbs_version", &self.pbs_version, true);
        w.string("hostname", &self.hostname, false);
        w.string("script_version", &self.script_version, true);
        w.string("encryption_mode", &self.encryption_mode, true);
        w.string("cluster_mode", &self.cluster_mode, true);
        w.string("passphrase_salt", &self.passphrase_salt, true);
        w.finish()
    }

    /// True when `encryption_mode`, trimmed, is `age` (any case) — upstream's only test.
    pub fn is_encrypted(&self) -> bool {
        self.encryption_mode.trim().eq_ignore_ascii_case("age")
    }

    /// Basename of `archive_path` (the name upstream shows and prompts with), `None` if empty.
    ///
    /// Trailing slashes are ignored; a path of slashes only also gives `None`.
    pub fn archive_name(&self) -> Option<&str> {
        let trimmed = self.archive_path.trim_end_matches('/');
        let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
        (!base.is_empty()).then_some(base)
    }

    /// Upstream display strings (§7.3): e.g. "PVE v8.4.1 (cluster)", "PVE+PBS vpve=8.4.1,pbs=3.4.2", "UNKNOWN".
    ///
    /// Targets joined with `+` (else `proxmox_type`, else `UNKNOWN`) upper-cased, then
    /// ` v<proxmox_version>` when a version is recorded (upstream's quirks kept: `vunknown`,
    /// `vpve=…,pbs=…`), then ` (cluster)` / ` (standalone)`. Control and format characters
    /// from the manifest are removed (see [`Manifest::display_hostname`]).
    pub fn display_target(&self) -> String {
        let joined = if !self.proxmox_targets.is_empty() {
            self.proxmox_targets.join("+")
        } else if !self.proxmox_type.is_empty() {
            self.proxmox_type.clone()
        } else {
            String::new()
        };
        let joined = joined.trim();
        let mut out = if joined.is_empty() || joined == "unknown target" {
            "UNKNOWN".to_owned()
        } else {
            go_to_upper(joined)
        };
        let version = self.proxmox_version.trim();
        if !version.is_empty() {
            out.push(' ');
            if !starts_with_v(version) {
                out.push('v');
            }
            out.push_str(version);
        }
        let cluster = self.cluster_mode.trim().to_lowercase();
        if cluster == "cluster" || cluster == "standalone" {
            out.push_str(&format!(" ({cluster})"));
        }
        scrub_display(&out)
    }

    /// "Tool v0.30.0" / "Tool unknown"
    ///
    /// A `v` is added unless the recorded version already starts with one.
    pub fn display_tool(&self) -> String {
        let version = self.script_version.trim();
        if version.is_empty() {
            return "Tool unknown".to_owned();
        }
        let v = if starts_with_v(version) { "" } else { "v" };
        scrub_display(&format!("Tool {v}{version}"))
    }

    /// The trimmed hostname, or "unknown host".
    ///
    /// Like every `display_*` string, it is safe to print on a terminal: C0/C1 control
    /// characters and DEL are removed (newline and tab become spaces) and Unicode format
    /// characters (bidi overrides, zero-width) are dropped, as upstream's display sanitiser
    /// does. (Upstream also removes the printable tail of ANSI escape sequences; here only
    /// the ESC that makes them effective is removed.)
    pub fn display_hostname(&self) -> String {
        let host = self.hostname.trim();
        if host.is_empty() {
            return "unknown host".to_owned();
        }
        scrub_display(host)
    }

    /// "ENCRYPTED" or "PLAIN".
    pub fn display_mode(&self) -> &'static str {
        if self.is_encrypted() {
            "ENCRYPTED"
        } else {
            "PLAIN"
        }
    }

    /// `compression_type` trimmed and upper-cased (e.g. "XZ"), empty if not recorded.
    pub fn display_compression(&self) -> String {
        scrub_display(&go_to_upper(self.compression_type.trim()))
    }

    /// Applies one decoded JSON value to the field it names, with Go's semantics.
    fn apply(&mut self, field: Field, raw: Raw) -> Result<(), ManifestError> {
        let key = field.name();
        match field {
            Field::ArchivePath => set_string(&mut self.archive_path, key, raw),
            Field::ArchiveSize => set_int(&mut self.archive_size, key, raw),
            Field::Sha256 => set_string(&mut self.sha256, key, raw),
            Field::CreatedAt => match raw {
                Raw::Null => Ok(()),
                Raw::Str(s) => {
                    self.created_at = GoTime::parse(&s)?;
                    Ok(())
                }
                other => Err(wrong_type(key, "a string (RFC 3339 time)", &other)),
            },
            Field::CompressionType => set_string(&mut self.compression_type, key, raw),
            Field::CompressionLevel => set_int(&mut self.compression_level, key, raw),
            Field::CompressionMode => set_string(&mut self.compression_mode, key, raw),
            Field::ProxmoxType => set_string(&mut self.proxmox_type, key, raw),
            Field::ProxmoxTargets => match raw {
                Raw::Null => {
                    self.proxmox_targets.clear();
                    Ok(())
                }
                Raw::Array(items) => {
                    let len = items.len();
                    // Go decodes element i into the existing element i, so a `null` element
                    // keeps what an earlier occurrence of the key put there.
                    for (i, item) in items.into_iter().enumerate() {
                        if i == self.proxmox_targets.len() {
                            self.proxmox_targets.push(String::new());
                        }
                        match item {
                            Raw::Null => {}
                            Raw::Str(s) => self.proxmox_targets[i] = s,
                            other => {
                                return Err(wrong_type(key, "an array of strings", &other));
                            }
                        }
                    }
                    self.proxmox_targets.truncate(len);
                    Ok(())
                }
                other => Err(wrong_type(key, "an array of strings", &other)),
            },
            Field::ProxmoxVersion => set_string(&mut self.proxmox_version, key, raw),
            Field::PveVersion => set_string(&mut self.pve_version, key, raw),
            Field::PbsVersion => set_string(&mut self.pbs_version, key, raw),
            Field::Hostname => set_string(&mut self.hostname, key, raw),
            Field::ScriptVersion => set_string(&mut self.script_version, key, raw),
            Field::EncryptionMode => set_string(&mut self.encryption_mode, key, raw),
            Field::ClusterMode => set_string(&mut self.cluster_mode, key, raw),
            Field::PassphraseSalt => set_string(&mut self.passphrase_salt, key, raw),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Manifest {
    /// Go-lenient decoding, with the rules of [`Manifest::from_json`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(TopVisitor)? {
            Top::Null => Ok(Manifest::default()),
            Top::Other(kind) => Err(de::Error::custom(format_args!(
                "expected a manifest object, found {kind}"
            ))),
            Top::Object(entries) => {
                let mut m = Manifest::default();
                for (field, raw) in entries {
                    m.apply(field, raw).map_err(de::Error::custom)?;
                }
                Ok(m)
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// JSON decoding with Go semantics
// ------------------------------------------------------------------------------------------------

/// The manifest's keys, in upstream's struct order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    ArchivePath,
    ArchiveSize,
    Sha256,
    CreatedAt,
    CompressionType,
    CompressionLevel,
    CompressionMode,
    ProxmoxType,
    ProxmoxTargets,
    ProxmoxVersion,
    PveVersion,
    PbsVersion,
    Hostname,
    ScriptVersion,
    EncryptionMode,
    ClusterMode,
    PassphraseSalt,
}

const FIELDS: [Field; 17] = [
    Field::ArchivePath,
    Field::ArchiveSize,
    Field::Sha256,
    Field::CreatedAt,
    Field::CompressionType,
    Field::CompressionLevel,
    Field::CompressionMode,
    Field::ProxmoxType,
    Field::ProxmoxTargets,
    Field::ProxmoxVersion,
    Field::PveVersion,
    Field::PbsVersion,
    Field::Hostname,
    Field::ScriptVersion,
    Field::EncryptionMode,
    Field::ClusterMode,
    Field::PassphraseSalt,
];

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::ArchivePath => "archive_path",
            Field::ArchiveSize => "archive_size",
            Field::Sha256 => "sha256",
            Field::CreatedAt => "created_at",
            Field::CompressionType => "compression_type",
            Field::CompressionLevel => "compression_level",
            Field::CompressionMode => "compression_mode",
            Field::ProxmoxType => "proxmox_type",
            Field::ProxmoxTargets => "proxmox_targets",
            Field::ProxmoxVersion => "proxmox_version",
            Field::PveVersion => "pve_version",
            Field::PbsVersion => "pbs_version",
            Field::Hostname => "hostname",
            Field::ScriptVersion => "script_version",
            Field::EncryptionMode => "encryption_mode",
            Field::ClusterMode => "cluster_mode",
            Field::PassphraseSalt => "passphrase_salt",
        }
    }

    /// Go's key lookup: exact name, else equal under `foldName`.
    fn from_key(key: &str) -> Option<Field> {
        FIELDS.into_iter().find(|f| go_fold_eq(key, f.name()))
    }
}

/// Whether `key` equals the ASCII field `name` under Go's `foldName` (simple Unicode case
/// folding to the smallest rune of the orbit). The only non-ASCII runes whose fold is ASCII
/// are U+017F LATIN SMALL LETTER LONG S (→ `S`) and U+212A KELVIN SIGN (→ `K`).
fn go_fold_eq(key: &str, name: &str) -> bool {
    let fold = |c: char| -> Option<u8> {
        match c {
            '\u{017F}' => Some(b'S'),
            '\u{212A}' => Some(b'K'),
            c if c.is_ascii() => Some((c as u8).to_ascii_uppercase()),
            _ => None,
        }
    };
    let mut chars = key.chars();
    for n in name.bytes() {
        match chars.next().and_then(fold) {
            Some(k) if k == n.to_ascii_uppercase() => {}
            _ => return false,
        }
    }
    chars.next().is_none()
}

/// One JSON value of a known key, kept just long enough to apply Go's typing rules.
#[derive(Debug)]
enum Raw {
    Null,
    Bool,
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Array(Vec<Raw>),
    Object,
}

impl Raw {
    fn describe(&self) -> String {
        match self {
            Raw::Null => "null".to_owned(),
            Raw::Bool => "a boolean".to_owned(),
            Raw::Int(i) => format!("the number {i}"),
            Raw::Uint(u) => format!("the number {u}"),
            Raw::Float(f) => format!("the number {f}"),
            Raw::Str(s) => format!("the string {s:?}"),
            Raw::Array(_) => "an array".to_owned(),
            Raw::Object => "an object".to_owned(),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Bool)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Raw>()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Object)
    }
}

/// The top-level JSON value: the manifest object's known keys in document order.
enum Top {
    Null,
    Object(Vec<(Field, Raw)>),
    Other(&'static str),
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest JSON object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match Field::from_key(&key) {
                Some(field) => entries.push((field, map.next_value::<Raw>()?)),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Object(entries))
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Raw) -> ManifestError {
    ManifestError::WrongType {
        key: key.to_owned(),
        expected,
        found: found.describe(),
    }
}

fn set_string(slot: &mut String, key: &str, raw: Raw) -> Result<(), ManifestError> {
    match raw {
        Raw::Null => Ok(()),
        Raw::Str(s) => {
            *slot = s;
            Ok(())
        }
        other => Err(wrong_type(key, "a string", &other)),
    }
}

/// Go decodes an integer field with `strconv.ParseInt` of the literal: no fraction, no
/// exponent, within int64.
fn set_int(slot: &mut i64, key: &str, raw: Raw) -> Result<(), ManifestError> {
    const EXPECTED: &str = "an integer (int64)";
    match raw {
        Raw::Null => Ok(()),
        Raw::Int(i) => {
            *slot = i;
            Ok(())
        }
        Raw::Uint(u) => match i64::try_from(u) {
            Ok(i) => {
                *slot = i;
                Ok(())
            }
            Err(_) => Err(wrong_type(key, EXPECTED, &Raw::Uint(u))),
        },
        // serde_json reports the literal `-0` as the float -0.0; Go parses it as 0.
        Raw::Float(f) if f == 0.0 && f.is_sign_negative() => {
            *slot = 0;
            Ok(())
        }
        other => Err(wrong_type(key, EXPECTED, &other)),
    }
}

// ------------------------------------------------------------------------------------------------
// JSON encoding with Go's bytes
// ------------------------------------------------------------------------------------------------

/// Writes one object the way Go's `MarshalIndent(v, "", "  ")` lays it out.
struct GoObjectWriter {
    out: String,
    empty: bool,
}

impl GoObjectWriter {
    fn new() -> Self {
        GoObjectWriter {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, name: &str) {
        self.out.push_str(if self.empty { "\n  " } else { ",\n  " });
        self.empty = false;
        push_go_json_string(&mut self.out, name);
        self.out.push_str(": ");
    }

    fn string(&mut self, name: &str, value: &str, omitempty: bool) {
        if omitempty && value.is_empty() {
            return;
        }
        self.key(name);
        push_go_json_string(&mut self.out, value);
    }

    fn int(&mut self, name: &str, value: i64) {
        self.key(name);
        self.out.push_str(&value.to_string());
    }

    /// A `[]string` with `omitempty`: omitted when empty.
    fn string_list(&mut self, name: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        self.key(name);
        self.out.push('[');
        for (i, v) in values.iter().enumerate() {
            self.out.push_str(if i == 0 { "\n    " } else { ",\n    " });
            push_go_json_string(&mut self.out, v);
        }
        self.out.push_str("\n  ]");
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push_str(if self.empty { "}" } else { "\n}" });
        self.out.into_bytes()
    }
}

/// Appends `s` as a JSON string with Go's `encoding/json` escaping (HTML-safe, Go >= 1.22).
pub(crate) fn push_go_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ------------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------------

/// A legacy key worth counting as a `KEY=VALUE` line: ASCII letters, digits, `_`, not
/// starting with a digit.
fn is_legacy_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, within int64.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `strings.HasPrefix(strings.ToLower(v), "v")`.
fn starts_with_v(v: &str) -> bool {
    v.starts_with(['v', 'V'])
}

/// Go's `strings.ToUpper`, which maps rune by rune (simple case mapping): a character whose
/// full upper case is several characters (e.g. `ß`) is kept as is.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Makes a manifest-derived string safe for one terminal line: C0 controls, DEL and C1
/// controls are dropped (newline and tab become spaces) and Unicode format characters
/// (category Cf: zero-width, bidi overrides and isolates, BOM, tags) are dropped.
fn scrub_display(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\t' => Some(' '),
            c if c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) => None,
            c if is_format_char(c) => None,
            c => Some(c),
        })
        .collect()
}

/// Unicode general category Cf (Unicode 15).
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> GoTime {
        match GoTime::parse(s) {
            Ok(t) => t,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn rfc3339_accepts_what_go_accepts() {
        for (input, go_out) in [
            (
                "2026-07-24T02:30:00.512345678+02:00",
                "2026-07-24T02:30:00.512345678+02:00",
            ),
            ("2026-07-24T02:30:00.5+02:00", "2026-07-24T02:30:00.5+02:00"),
            (
                "2026-07-24T02:30:00.500+02:00",
                "2026-07-24T02:30:00.5+02:00",
            ),
            ("2026-07-24T02:30:00.000Z", "2026-07-24T02:30:00Z"),
            // Go keeps nine digits and drops the rest.
            (
                "2026-07-24T02:30:00.1234567891234Z",
                "2026-07-24T02:30:00.123456789Z",
            ),
            ("2026-07-24T02:30:00-00:00", "2026-07-24T02:30:00Z"),
            ("2026-07-24T02:30:00-09:30", "2026-07-24T02:30:00-09:30"),
            ("2024-02-29T23:59:59+23:59", "2024-02-29T23:59:59+23:59"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999999Z",
            ),
        ] {
            assert_eq!(t(input).to_go_string(), go_out, "{input}");
        }
    }

    #[test]
    fn rfc3339_rejects_what_go_rejects() {
        for bad in [
            "",
            "2026-07-24",
            "2026-07-24 02:30:00Z",
            "2026-07-24t02:30:00Z",
            "2026-07-24T02:30:00z",
            "2026-07-24T02:30:00",
            "2026-07-24T2:30:00Z",
            "2026-07-24T02:30:00,5Z",
            "2026-07-24T02:30:00.Z",
            "2026-07-24T02:30:60Z",
            "2026-07-24T24:00:00Z",
            "2026-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-07-24T02:30:00+24:00",
            "2026-07-24T02:30:00+02:60",
            "2026-07-24T02:30:00+0200",
            "2026-07-24T02:30:00+02:00 ",
            " 2026-07-24T02:30:00Z",
            "+2026-07-24T02:30:00Z",
        ] {
            assert!(
                matches!(GoTime::parse(bad), Err(ManifestError::Time { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn zero_time_with_an_offset_is_zero_but_keeps_its_text() {
        let z = t("0001-01-01T01:00:00+01:00");
        assert!(z.is_zero());
        assert_eq!(z.display(), "unknown date");
        assert_eq!(z.to_go_string(), "0001-01-01T01:00:00+01:00");
        assert_eq!(t("0001-01-01T00:00:00+00:00"), GoTime(None));
        assert_eq!(t("0001-01-01T00:00:00-00:00"), GoTime(None));
    }

    #[test]
    fn go_fold_matches_like_encoding_json() {
        assert!(go_fold_eq("SHA256", "sha256"));
        assert!(go_fold_eq("Archive_Path", "archive_path"));
        assert!(go_fold_eq("\u{17f}ha256", "sha256"));
        assert!(!go_fold_eq("sha256 ", "sha256"));
        assert!(!go_fold_eq("sha25", "sha256"));
        assert!(!go_fold_eq("archive-path", "archive_path"));
        assert!(!go_fold_eq("ſha256x", "sha256"));
        assert_eq!(Field::from_key("CREATED_AT"), Some(Field::CreatedAt));
        assert_eq!(Field::from_key("createdAt"), None);
    }

    #[test]
    fn go_string_escaping() {
        let mut s = String::new();
        push_go_json_string(
            &mut s,
            "a\"b\\c<d>e&f\u{2028}g\u{2029}h\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}é☃",
        );
        assert_eq!(
            s,
            "\"a\\\"b\\\\c\\u003cd\\u003ee\\u0026f\\u2028g\\u2029h\\n\\r\\t\\b\\f\\u0000\\u001f\u{7f}é☃\""
        );
    }

    #[test]
    fn atoi_like_go() {
        assert_eq!(go_atoi("6"), Some(6));
        assert_eq!(go_atoi("+6"), Some(6));
        assert_eq!(go_atoi("-6"), Some(-6));
        assert_eq!(go_atoi(""), None);
        assert_eq!(go_atoi("6.0"), None);
        assert_eq!(go_atoi("1_000"), None);
        assert_eq!(go_atoi("99999999999999999999"), None);
    }

    #[test]
    fn display_scrub_removes_terminal_controls() {
        let m = Manifest {
            hostname: "pve\u{1b}]0;pwned\u{7}host\u{9b}\u{202e}x\ty".to_owned(),
            script_version: "1.2.3\u{1b}[2J".to_owned(),
            ..Manifest::default()
        };
        assert_eq!(m.display_hostname(), "pve]0;pwnedhostx y");
        assert_eq!(m.display_tool(), "Tool v1.2.3[2J");
    }

    #[test]
    fn to_upper_is_rune_by_rune() {
        assert_eq!(go_to_upper("pve+pbs"), "PVE+PBS");
        assert_eq!(go_to_upper("straße"), "STRAßE");
        assert_eq!(go_to_upper("über"), "ÜBER");
    }
}
