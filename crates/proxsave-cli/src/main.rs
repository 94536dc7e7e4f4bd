//! `proxsave`: restore, verify, inspect and extract proxsave backups.
//!
//! Exit codes (stable): 0 success (also "completed with warnings"), 1 failure, 2 usage error
//! or a decision/key that is needed but was not given, 130 aborted by the user.

#![deny(unsafe_code)]

mod answers;
mod cli;
mod commands;
mod config;
mod console;
mod effects;
mod keys;
mod output;
mod progress;
mod sys;
mod term;
mod testhook;

// Linking the domain crates registers their categories (and appliers).
use proxsave_net as _;
use proxsave_pbs as _;
use proxsave_pve as _;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Errors that end the program with a specific exit code.
#[derive(Debug)]
pub enum Exit {
    /// Exit 1 with this message.
    Failure(anyhow::Error),
    /// Exit 2: usage error or missing decision.
    Usage(String),
    /// Exit 130: the user aborted.
    Aborted,
    /// Exit with this code, message already printed.
    Code(u8),
}

impl<E: Into<anyhow::Error>> From<E> for Exit {
    fn from(e: E) -> Self {
        Exit::Failure(e.into())
    }
}

/// Result type of the commands.
pub type CmdResult = Result<(), Exit>;

fn main() -> ExitCode {
    sys::tame_allocator();
    testhook::install();
    let cli = Cli::parse_with_aliases();
    let cancel = term::install_interrupt_handler();
    let result = match cli.command {
        Some(Command::Inspect(args)) => commands::inspect::run(args, &cancel),
        Some(Command::Verify(args)) => commands::verify::run(args, &cancel),
        Some(Command::Ls(args)) => commands::ls::run(args, &cancel),
        Some(Command::Cat(args)) => commands::cat::run(args, &cancel),
        Some(Command::Extract(args)) => commands::extract::run(args, &cancel),
        Some(Command::Decrypt(args)) => commands::decrypt::run(args, &cancel),
        Some(Command::List(args)) => commands::list::run(args),
        Some(Command::Restore(args)) => commands::restore::run(*args, &cancel),
        Some(Command::Diff(args)) => commands::diff::run(args, &cancel),
        Some(Command::Net(args)) => commands::net::run(args),
        Some(Command::Categories(args)) => commands::categories::run(args),
        Some(Command::GenerateAssets(args)) => commands::assets::run(args),
        None => Err(Exit::Usage(
            "no command given; see `proxsave --help`".to_string(),
        )),
    };
    // No bar left on the line the final message is written to.
    progress::hide();
    commands::rclone::cleanup();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Code(c)) => ExitCode::from(c),
        Err(Exit::Usage(msg)) => {
            eprintln!("proxsave: {msg}");
            ExitCode::from(2)
        }
        Err(Exit::Aborted) => {
            eprintln!("proxsave: aborted");
            ExitCode::from(130)
        }
        Err(Exit::Failure(e)) => {
            if cancel.is_cancelled() {
                eprintln!("proxsave: aborted");
                return ExitCode::from(130);
            }
            eprintln!("proxsave: error: {}", output::chain(&e));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_binary_sees_all_32_categories() {
        let all = proxsave_categories::registry();
        assert_eq!(
            all.len(),
            32,
            "{:?}",
            all.iter().map(|c| c.id).collect::<Vec<_>>()
        );
        let count = |k| all.iter().filter(|c| c.kind == k).count();
        assert_eq!(count(proxsave_categories::Kind::Pve), 11);
        assert_eq!(count(proxsave_categories::Kind::Pbs), 9);
        assert_eq!(count(proxsave_categories::Kind::Common), 12);
        let orders: Vec<u16> = all.iter().map(|c| c.order).collect();
        assert_eq!(orders, (1..=32).collect::<Vec<u16>>());
    }
}
