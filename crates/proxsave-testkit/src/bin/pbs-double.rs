//! `pbs-double ETC_PROXMOX_BACKUP ARGS...`: answers one `proxmox-backup-manager` call from
//! the stateful model of `proxsave_testkit::pbs` (installed by `PbsDouble::install`).

use std::io::Write;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: pbs-double ETC_PROXMOX_BACKUP [proxmox-backup-manager arguments...]");
        std::process::exit(2);
    }
    let out = proxsave_testkit::pbs::model::run(Path::new(&args[0]), &args[1..]);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    std::process::exit(out.code);
}
