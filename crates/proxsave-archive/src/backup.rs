//! One backup, whatever its layout: a `.bundle.tar`, or a raw archive with sidecars.
//!
//! [`Backup::open`] reads only the sidecars (manifest and checksum) and the bundle's member
//! headers; the archive data is read later, once, by [`crate::read`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bundle::{self, BundleLayout, Member};
use crate::checksum::{self, ChecksumError, Expectation};
use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::manifest::{GoTime, Manifest, ManifestFormat};

/// Largest sidecar (manifest or checksum file) read, in bytes.
pub const MAX_SIDECAR_BYTES: u64 = 1 << 20;

/// Where the archive bytes are.
#[derive(Clone, Debug)]
pub enum Layout {
    /// Inside a `.bundle.tar`.
    Bundle {
        /// The bundle's members.
        layout: BundleLayout,
    },
    /// A raw archive file with sidecars beside it.
    Raw {
        /// The archive file.
        archive: PathBuf,
        /// `<archive>.metadata` or `<archive>.manifest.json`, if present.
        metadata: Option<PathBuf>,
        /// `<archive>.sha256`, if present.
        checksum: Option<PathBuf>,
    },
}

/// Where the manifest came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestSource {
    /// JSON manifest (current upstream).
    Json,
    /// Bash-era `KEY=VALUE` metadata.
    Legacy,
    /// No manifest: facts were taken from the file name.
    Missing,
}

/// An opened backup; see the module docs.
#[derive(Clone, Debug)]
pub struct Backup {
    /// The path the backup was opened from (the bundle, or the raw archive).
    pub path: PathBuf,
    /// Where the bytes are.
    pub layout: Layout,
    /// The manifest (synthesised from the name when missing).
    pub manifest: Manifest,
    /// Where the manifest came from.
    pub manifest_source: ManifestSource,
    /// The value of the `.sha256` sidecar, if there is one.
    pub sidecar_sha256: Option<String>,
    /// Archive file name (bundle member name or raw file name).
    pub archive_name: String,
    /// Size of the stored archive (ciphertext if encrypted).
    pub stored_size: u64,
    /// Remarks about the layout (ignored members, odd names, size disagreements).
    pub warnings: Vec<String>,
}

impl Backup {
    /// Opens the backup at `path`: a `.bundle.tar`, a raw archive, or one of a raw
    /// archive's sidecars (`.metadata`, `.manifest.json`, `.sha256`).
    ///
    /// # Errors
    /// [`Error::NotABackup`], [`Error::Io`], [`Error::Bundle`], or a manifest/checksum
    /// sidecar that cannot be parsed.
    pub fn open(path: &Path) -> Result<Backup> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::NotABackup {
                path: path.to_path_buf(),
                reason: "not a regular file".into(),
            });
        }
        let name = file_name(path);
        if name.ends_with(".bundle.tar") {
            Self::open_bundle(path)
        } else {
            Self::open_raw(path)
        }
    }

    fn open_bundle(path: &Path) -> Result<Backup> {
        let layout = bundle::open(path)?;
        let mut warnings = layout.warnings.clone();
        let archive_name = layout.archive.name.clone();
        let (manifest, source) = match &layout.metadata {
            Some(m) => {
                let bytes = bundle::read_member(path, m, MAX_SIDECAR_BYTES)?;
                let (mut manifest, format) = Manifest::parse_sidecar(&bytes, &archive_name)?;
                if format == ManifestFormat::Legacy {
                    manifest.archive_path = archive_name.clone();
                    manifest.archive_size = layout.archive.size as i64;
                }
                (manifest, source_of(format))
            }
            None => {
                warnings.push("the bundle has no manifest; facts come from the file name".into());
                (
                    synthesise(&archive_name, layout.archive.size),
                    ManifestSource::Missing,
                )
            }
        };
        let sidecar_sha256 = match &layout.checksum {
            Some(m) => {
                let bytes = bundle::read_member(path, m, MAX_SIDECAR_BYTES)?;
                Some(checksum::parse_checksum_file(&bytes).map_err(Error::Checksum)?)
            }
            None => None,
        };
        let stored_size = layout.archive.size;
        let mut backup = Backup {
            path: path.to_path_buf(),
            layout: Layout::Bundle { layout },
            manifest,
            manifest_source: source,
            sidecar_sha256,
            archive_name,
            stored_size,
            warnings,
        };
        backup.finish_open();
        Ok(backup)
    }

    fn open_raw(path: &Path) -> Result<Backup> {
        let name = file_name(path);
        let archive = [".metadata", ".manifest.json", ".sha256"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .map_or_else(|| path.to_path_buf(), |base| path.with_file_name(base));
        let archive_meta = std::fs::metadata(&archive).map_err(|e| Error::io(&archive, e))?;
        let archive_name = file_name(&archive);
        let sibling = |suffix: &str| {
            let p = archive.with_file_name(format!("{archive_name}{suffix}"));
            p.is_file().then_some(p)
        };
        let metadata = sibling(".metadata").or_else(|| sibling(".manifest.json"));
        let checksum_path = sibling(".sha256");
        let mut warnings = Vec::new();
        let (manifest, source) = match &metadata {
            Some(p) => {
                let bytes = read_limited(p)?;
                let (mut manifest, format) = Manifest::parse_sidecar(&bytes, &archive_name)?;
                if format == ManifestFormat::Legacy {
                    manifest.archive_path = archive.display().to_string();
                    manifest.archive_size = archive_meta.len() as i64;
                    if let Ok(m) = std::fs::metadata(p).and_then(|m| m.modified()) {
                        manifest.created_at = GoTime::from_system_time(m);
                    }
                }
                (manifest, source_of(format))
            }
            None => {
                warnings.push(format!(
                    "no {archive_name}.metadata beside the archive; facts come from the file name"
                ));
                (
                    synthesise(&archive_name, archive_meta.len()),
                    ManifestSource::Missing,
                )
            }
        };
        let sidecar_sha256 = match &checksum_path {
            Some(p) => {
                Some(checksum::parse_checksum_file(&read_limited(p)?).map_err(Error::Checksum)?)
            }
            None => None,
        };
        let mut backup = Backup {
            path: archive.clone(),
            layout: Layout::Raw {
                archive,
                metadata,
                checksum: checksum_path,
            },
            manifest,
            manifest_source: source,
            sidecar_sha256,
            archive_name,
            stored_size: archive_meta.len(),
            warnings,
        };
        backup.finish_open();
        Ok(backup)
    }

    fn finish_open(&mut self) {
        if self.manifest_source == ManifestSource::Legacy
            && self.manifest.sha256.is_empty()
            && let Some(sha) = &self.sidecar_sha256
        {
            self.manifest.sha256 = sha.clone();
        }
        if self.manifest.archive_size > 0 && self.manifest.archive_size as u64 != self.stored_size {
            self.warnings.push(format!(
                "the archive is {} bytes but the manifest records {}",
                self.stored_size, self.manifest.archive_size
            ));
        }
        if let Some(recorded) = self.manifest.archive_name()
            && recorded != self.archive_name
        {
            self.warnings.push(format!(
                "the manifest describes {recorded} but the archive is named {}",
                self.archive_name
            ));
        }
    }

    /// The checksum the archive must have (from `.sha256` and/or the manifest).
    ///
    /// # Errors
    /// [`ChecksumError::Missing`] when neither exists, [`ChecksumError::Conflict`] when they
    /// disagree.
    pub fn expectation(&self) -> std::result::Result<Expectation, ChecksumError> {
        let manifest =
            (!self.manifest.sha256.trim().is_empty()).then_some(self.manifest.sha256.as_str());
        checksum::resolve_expectation(self.sidecar_sha256.as_deref(), manifest)
    }

    /// The name shown to users: the manifest's archive name, else the file name.
    pub fn display_name(&self) -> &str {
        self.manifest.archive_name().unwrap_or(&self.archive_name)
    }

    /// The archive name without `.age` (what a decrypted copy is called).
    pub fn plain_name(&self) -> String {
        self.archive_name
            .strip_suffix(".age")
            .unwrap_or(&self.archive_name)
            .to_string()
    }

    /// The compression the archive's name implies.
    pub fn compression_by_name(&self) -> Option<Compression> {
        Compression::from_archive_name(&self.plain_name())
    }

    /// True when the manifest (or, without one, the name) says the archive is encrypted.
    /// The read path trusts the data itself (the age header), not this.
    pub fn declared_encrypted(&self) -> bool {
        if self.manifest_source == ManifestSource::Missing {
            self.archive_name.ends_with(".age")
        } else {
            self.manifest.is_encrypted()
        }
    }

    /// Opens the stored archive bytes: a reader limited to the archive, and its length.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open_stored(&self) -> Result<(io::Take<File>, u64)> {
        let (path, offset) = self.stored_location();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(path, e))?;
        }
        Ok((file.take(self.stored_size), self.stored_size))
    }

    /// The file holding the archive bytes and the offset where they start.
    pub fn stored_location(&self) -> (&Path, u64) {
        match &self.layout {
            Layout::Bundle { layout } => (&self.path, layout.archive.offset),
            Layout::Raw { archive, .. } => (archive, 0),
        }
    }

    /// The bundle member of the archive, for bundles.
    pub fn archive_member(&self) -> Option<&Member> {
        match &self.layout {
            Layout::Bundle { layout } => Some(&layout.archive),
            Layout::Raw { .. } => None,
        }
    }

    /// SHA-256 of the stored archive bytes, in one separate read (used on error paths, and by
    /// `inspect`, which does not decrypt).
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Bundle`] when the data ends early.
    pub fn stored_sha256(&self) -> Result<String> {
        let (reader, len) = self.open_stored()?;
        let (hex, n) =
            checksum::sha256_of(reader).map_err(|e| Error::io(self.stored_location().0, e))?;
        if n != len {
            return Err(Error::Bundle {
                path: self.path.clone(),
                reason: format!("the archive ends after {n} of {len} bytes"),
            });
        }
        Ok(hex)
    }

    /// The kind of layout, for display: `bundle` or `raw`.
    pub fn layout_name(&self) -> &'static str {
        match self.layout {
            Layout::Bundle { .. } => "bundle",
            Layout::Raw { .. } => "raw",
        }
    }
}

fn source_of(format: ManifestFormat) -> ManifestSource {
    match format {
        ManifestFormat::Json => ManifestSource::Json,
        ManifestFormat::Legacy => ManifestSource::Legacy,
    }
}

fn synthesise(archive_name: &str, size: u64) -> Manifest {
    Manifest {
        archive_path: archive_name.to_string(),
        archive_size: size as i64,
        encryption_mode: if archive_name.ends_with(".age") {
            "age".into()
        } else {
            "none".into()
        },
        ..Manifest::default()
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = Vec::new();
    file.take(MAX_SIDECAR_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > MAX_SIDECAR_BYTES {
        return Err(Error::NotABackup {
            path: path.to_path_buf(),
            reason: format!("sidecar larger than {MAX_SIDECAR_BYTES} bytes"),
        });
    }
    Ok(buf)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
