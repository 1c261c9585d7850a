//! Progress of long work: a bar on a terminal (stderr), and otherwise a
//! `tracing` line every few seconds, so logs under systemd stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress display for `total` units of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    unit: &'static str,
    start: Instant,
    last: Mutex<(Instant, u64, String)>,
}

impl Progress {
    /// A display counting `unit`s up to `total`.
    pub fn new(total: u64, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            total,
            unit,
            start: Instant::now(),
            last: Mutex::new((Instant::now(), 0, String::new())),
        }
    }

    /// Sets the count done.
    pub fn set(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
        if let Ok(mut l) = self.last.lock() {
            l.1 = done;
            if l.0.elapsed() >= Duration::from_secs(5) {
                l.0 = Instant::now();
                self.log(done, &l.2);
            }
        }
    }

    /// Sets the message shown beside the count.
    pub fn message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
        if let Ok(mut l) = self.last.lock() {
            l.2 = msg.to_string();
        }
    }

    fn log(&self, done: u64, msg: &str) {
        if self.bar.is_none() {
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(
                done,
                total = self.total,
                unit = self.unit,
                per_sec = format!("{rate:.0}"),
                "{msg}"
            );
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        } else if let Ok(l) = self.last.lock() {
            self.log(l.1, &l.2);
        }
    }
}
