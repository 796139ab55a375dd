//! Progress of a long series of LLM requests: a bar on a terminal (done / total, rate, ETA,
//! answers refused so far), one log line per tenth of the work otherwise, so that a
//! profiling run of many minutes is never silent.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Counts finished items of one step (`label`: "item profiles", "re-ranking", …).
pub struct Progress {
    label: &'static str,
    total: u64,
    done: AtomicU64,
    refused: AtomicU64,
    start: Instant,
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr when it is a terminal, else log lines.
    pub fn new(label: &'static str, total: usize) -> Self {
        let bar = if std::io::stderr().is_terminal() && total > 0 {
            let pb = ProgressBar::new(total as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.set_prefix(label);
            pb.enable_steady_tick(Duration::from_secs(1));
            pb
        } else {
            ProgressBar::hidden()
        };
        Progress {
            label,
            total: total as u64,
            done: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            start: Instant::now(),
            bar,
        }
    }

    /// `n` more items finished, `refused` of them without a usable answer.
    pub fn advance(&self, n: usize, refused: usize) {
        let done = self.done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let refused = self.refused.fetch_add(refused as u64, Ordering::Relaxed) + refused as u64;
        if self.bar.is_hidden() {
            let every = self.total.div_ceil(10).max(1);
            let before = done - n as u64;
            if done / every > before / every || done == self.total {
                tracing::info!(
                    "{}",
                    status_line(self.label, done, self.total, refused, self.start.elapsed())
                );
            }
        } else {
            self.bar.inc(n as u64);
            self.bar.set_message(format!("{refused} refused"));
        }
    }

    /// (done, refused) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `item profiles: 40/150 done, 2 refused, 1.25/s, eta 88 s`.
pub(crate) fn status_line(
    label: &str,
    done: u64,
    total: u64,
    refused: u64,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 {
        format!("{:.0} s", total.saturating_sub(done) as f64 / rate)
    } else {
        "unknown".into()
    };
    format!("{label}: {done}/{total} done, {refused} refused, {rate:.2}/s, eta {eta}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_by_hand() {
        // 40 done in 32 s: 1.25 per second, 110 left: 88 s.
        assert_eq!(
            status_line("item profiles", 40, 150, 2, Duration::from_secs(32)),
            "item profiles: 40/150 done, 2 refused, 1.25/s, eta 88 s"
        );
        assert_eq!(
            status_line("x", 0, 5, 0, Duration::ZERO),
            "x: 0/5 done, 0 refused, 0.00/s, eta unknown"
        );
    }

    #[test]
    fn counts_add_up_from_many_threads() {
        let p = Progress::new("t", 400);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..100).for_each(|i| p.advance(1, usize::from(i % 10 == 0))));
            }
        });
        assert_eq!(p.counts(), (400, 40));
    }
}
