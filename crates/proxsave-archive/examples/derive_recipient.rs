//! Prints the age recipient proxsave derives from a passphrase and salt, so tools and the
//! example generator can encrypt for a passphrase the way upstream does.
//!
//! `cargo run -q -p proxsave-archive --example derive_recipient -- PASSPHRASE [SALT]`
//! (SALT defaults to `proxsave/age-passphrase/v1`).

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(passphrase) = args.next() else {
        eprintln!("usage: derive_recipient PASSPHRASE [SALT]");
        std::process::exit(2);
    };
    let salt = args
        .next()
        .unwrap_or_else(|| proxsave_archive::key::SALT_V1.to_string());
    let identity = proxsave_archive::key::derive_identity(&passphrase, &salt);
    println!("{}", identity.to_public());
}
