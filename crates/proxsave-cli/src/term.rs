//! Terminal facts and the Ctrl+C handler.

use std::io::IsTerminal;

use proxsave_archive::progress::CancelToken;

/// Installs the SIGINT/SIGTERM handler: the first signal asks the running operation to stop
/// (it cleans up and the program exits 130); a second one exits at once.
pub fn install_interrupt_handler() -> CancelToken {
    let token = CancelToken::new();
    let handler_token = token.clone();
    let _ = ctrlc::set_handler(move || {
        if handler_token.is_cancelled() {
            std::process::exit(130);
        }
        handler_token.cancel();
    });
    token
}

/// True when standard input is a terminal (prompts are allowed).
pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// True when standard error is a terminal (progress bars are drawn).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Reads a secret from the terminal without echo.
pub fn prompt_secret(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}
