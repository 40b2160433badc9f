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

/// Progress of parallel blob transfers (push, pull): a bar per blob on a
/// terminal, a line per finished blob otherwise.
pub struct Transfers {
    multi: Option<indicatif::MultiProgress>,
    bars: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
    quiet: bool,
}

impl Transfers {
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Transfers {
            multi,
            bars: Default::default(),
            quiet,
        }
    }
}

impl estiba_registry::client::ProgressSink for Transfers {
    fn start(&self, id: &str, total: u64) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(ProgressBar::new(total));
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} {bar:30} {bytes}/{total_bytes} {msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(id.to_string());
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.insert(id.to_string(), bar);
    }

    fn advance(&self, id: &str, bytes: u64) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = bars.get(id) {
            bar.inc(bytes);
        }
    }

    fn finish(&self, id: &str, note: &str) {
        let bar = {
            let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
            bars.remove(id)
        };
        match (bar, &self.multi) {
            (Some(bar), _) => bar.finish_with_message(note.to_string()),
            (None, Some(multi)) => {
                let _ = multi.println(format!("{id}: {note}"));
            }
            (None, None) if !self.quiet => eprintln!("{id}: {note}"),
            (None, None) => {}
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
