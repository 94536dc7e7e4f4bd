//! `proxsave`: restore, verify, inspect and extract proxsave backups.
//!
//! Exit codes (stable): 0 success (also "completed with warnings"), 1 failure, 2 usage error
//! or a decision/key that is needed but was not given, 130 aborted by the user.

mod cli;
mod commands;
mod config;
mod keys;
mod output;
mod progress;
mod term;

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
        None => Err(Exit::Usage(
            "no command given; see `proxsave --help`".to_string(),
        )),
    };
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
