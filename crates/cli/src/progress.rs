//! Progress for long work (load, build): a bar on a terminal, plain lines
//! otherwise (logs, CI).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

/// The first `n/N` in a line such as `STEP 3/14: RUN make`.
fn fraction(line: &str) -> Option<(u64, u64)> {
    line.split_whitespace().find_map(|w| {
        let (n, total) = w.trim_end_matches(':').split_once('/')?;
        Some((n.parse().ok()?, total.parse().ok()?))
    })
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}") {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar, quiet }
    }

    pub fn line(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                if let Some((n, total)) = fraction(line) {
                    bar.set_length(total);
                    bar.set_position(n);
                }
                bar.set_message(line.to_string());
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(fraction("STEP 3/14: RUN make"), Some((3, 14)));
        assert_eq!(fraction("Loading layer 1/2 abc"), Some((1, 2)));
        assert_eq!(fraction(" --> Using cache"), None);
        assert_eq!(fraction("COPY a/b /c"), None);
    }
}
