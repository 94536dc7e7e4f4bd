//! `pve-double ETC_PVE STATE_FILE PVESH_ARGS...`: answers one `pvesh` call from the stateful
//! PVE API model of `proxsave_testkit::pve` (installed as `pvesh` by `PveDouble::install`).

use std::io::Write;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: pve-double ETC_PVE STATE_FILE [pvesh arguments...]");
        std::process::exit(2);
    }
    let out =
        proxsave_testkit::pve::model::run(Path::new(&args[0]), Path::new(&args[1]), &args[2..]);
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    std::process::exit(out.code);
}
