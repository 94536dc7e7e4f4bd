//! Progress bars on standard error (only when it is a terminal).

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, WeakProgressBar};
use proxsave_archive::progress::Progress;

use crate::term;

/// A byte-count bar drawn by indicatif.
pub struct Bar {
    bar: ProgressBar,
}

impl Progress for Bar {
    fn start(&self, total: u64, label: &str) {
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(label.to_string());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The bars alive in this process, so any output can clear them first.
static LIVE: Mutex<Vec<WeakProgressBar>> = Mutex::new(Vec::new());
/// How many callers asked the bars to stay hidden (a prompt waiting for its answer).
static HIDDEN: Mutex<usize> = Mutex::new(0);

fn live() -> Vec<ProgressBar> {
    let mut l = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    l.retain(|w| w.upgrade().is_some());
    l.iter().filter_map(WeakProgressBar::upgrade).collect()
}

/// Clears every bar from the terminal and keeps it off until [`show`]: called before a
/// prompt or any message, so no bar text is left on (or drawn onto) a line of output.
pub fn hide() {
    let mut n = HIDDEN.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    let mut drawn = false;
    for b in live() {
        if !b.is_hidden() {
            drawn = true;
            b.set_draw_target(ProgressDrawTarget::hidden());
        }
    }
    if drawn {
        // A bar is one line and leaves the cursor at its end: go back to the start of that
        // line and erase it, so the next output starts on a clean line.
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[2K");
        let _ = err.flush();
    }
}

/// Undoes one [`hide`]: the bars are drawn again (below the output) at their next update.
pub fn show() {
    let mut n = HIDDEN.lock().unwrap_or_else(|e| e.into_inner());
    *n = n.saturating_sub(1);
    if *n == 0 {
        for b in live() {
            b.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

/// Runs `f` (which prints) with the bars cleared first and drawn again after it.
pub fn quiet<R>(f: impl FnOnce() -> R) -> R {
    hide();
    let r = f();
    show();
    r
}

/// A progress bar when standard error is a terminal, else nothing.
pub fn bar(verb: &str) -> Option<Arc<dyn Progress>> {
    if !term::stderr_is_tty() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!(
        "{verb} {{wide_msg}} {{bytes}}/{{total_bytes}} [{{bar:30}}] {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    if *HIDDEN.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(bar.downgrade());
    Some(Arc::new(Bar { bar }))
}
