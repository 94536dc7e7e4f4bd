//! `proxsave verify`: read everything, write nothing, exit 0 only if the backup is sound.

use proxsave_archive::ops::{self, VerifyReport};
use proxsave_archive::progress::CancelToken;
use proxsave_archive::read::StreamOptions;

use crate::cli::VerifyArgs;
use crate::commands::{open_backup, print_warnings};
use crate::output::{human_bytes, print_json};
use crate::{CmdResult, Exit, keys, progress};

pub fn run(args: VerifyArgs, cancel: &CancelToken) -> CmdResult {
    let backup = open_backup(&args.backup)?;
    let label = backup.display_name().to_string();
    let bar = progress::bar("verify");
    let report: VerifyReport = keys::with_key(&args.key, &label, |key, unlock| {
        let opts = StreamOptions {
            key: Some(key),
            unlock: Some(unlock),
            progress: bar.clone(),
            threaded: true,
        };
        ops::verify(&backup, &opts, cancel)
    })
    .inspect_err(|_| {
        if let Some(b) = &bar {
            b.finish();
        }
    })?;
    let sound = report.is_sound();
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            backup: String,
            sound: bool,
            #[serde(flatten)]
            report: &'a VerifyReport,
        }
        print_json(
            "verify",
            &Out {
                backup: args.backup.display().to_string(),
                sound,
                report: &report,
            },
        )?;
    } else {
        let s = &report.stream;
        let e = &report.entries;
        print_warnings(&s.warnings);
        println!("Backup:      {}", args.backup.display());
        println!(
            "Checksum:    OK  {} ({} stored bytes)",
            s.sha256, s.stored_bytes
        );
        println!(
            "Encryption:  {}",
            if s.encrypted {
                "age, decrypted and authenticated"
            } else {
                "none"
            }
        );
        println!(
            "Archive:     OK  {} data, tar stream of {} ({} entries)",
            s.compression.name(),
            human_bytes(s.tar_bytes),
            e.total
        );
        if e.refused == 0 {
            println!("Entries:     OK  every entry passes the extraction safety rules");
        } else {
            println!(
                "Entries:     {} of {} would be REFUSED by the extraction safety rules:",
                e.refused, e.total
            );
            for r in e.refused_entries() {
                println!("  {}: {}", r.name, r.reason.as_deref().unwrap_or(""));
            }
        }
        for w in &e.warnings {
            eprintln!("warning: {w}");
        }
        if sound {
            println!("Result:      the backup is sound");
        } else {
            println!("Result:      the backup is NOT sound");
        }
    }
    if sound { Ok(()) } else { Err(Exit::Code(1)) }
}
