//! Progress bars on standard error (only when it is a terminal).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    Some(Arc::new(Bar { bar }))
}
