//! Throughput and latency accounting shared by the perf tools, as Kafka's perf tests print it.
//!
//! A window covers one reporting interval; the totals keep an HDR histogram of every latency
//! (1 us to 1 h, 3 significant digits) for the final percentiles.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub const MB: f64 = 1024.0 * 1024.0;

#[derive(Debug)]
pub struct Window {
    pub start: Instant,
    pub count: u64,
    pub bytes: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
}

impl Window {
    pub fn new(start: Instant) -> Window {
        Window {
            start,
            count: 0,
            bytes: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
        }
    }
}

/// Latency and throughput of a run.
#[derive(Debug)]
pub struct Stats {
    pub start: Instant,
    pub count: u64,
    pub bytes: u64,
    pub latency_sum_us: u64,
    pub latency_max_us: u64,
    pub histogram: Histogram<u64>,
    window: Window,
    pub reporting_interval: Duration,
}

/// What a finished run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub latency_avg_ms: f64,
    pub latency_max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Stats {
    pub fn new(reporting_interval: Duration) -> Stats {
        let now = Instant::now();
        Stats {
            start: now,
            count: 0,
            bytes: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            window: Window::new(now),
            reporting_interval,
        }
    }

    /// Records one acknowledged record; returns a window line when an interval has passed.
    pub fn record(&mut self, latency: Duration, bytes: u64) -> Option<String> {
        let us = (latency.as_micros() as u64).max(1);
        self.count += 1;
        self.bytes += bytes;
        self.latency_sum_us += us;
        self.latency_max_us = self.latency_max_us.max(us);
        let _ = self.histogram.record(us.min(3_600_000_000));
        self.window.count += 1;
        self.window.bytes += bytes;
        self.window.latency_sum_us += us;
        self.window.latency_max_us = self.window.latency_max_us.max(us);
        if self.window.start.elapsed() >= self.reporting_interval {
            let line = window_line(&self.window);
            self.window = Window::new(Instant::now());
            return Some(line);
        }
        None
    }

    pub fn summary(&self) -> Summary {
        summarize(
            self.count,
            self.bytes,
            self.start.elapsed(),
            self.latency_sum_us,
            self.latency_max_us,
            &self.histogram,
        )
    }
}

pub fn summarize(
    count: u64,
    bytes: u64,
    elapsed: Duration,
    latency_sum_us: u64,
    latency_max_us: u64,
    histogram: &Histogram<u64>,
) -> Summary {
    let elapsed_s = elapsed.as_secs_f64().max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        records: count,
        bytes,
        elapsed_s,
        records_per_s: count as f64 / elapsed_s,
        mb_per_s: bytes as f64 / MB / elapsed_s,
        latency_avg_ms: if count == 0 {
            0.0
        } else {
            latency_sum_us as f64 / count as f64 / 1000.0
        },
        latency_max_ms: ms(latency_max_us),
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p95_ms: ms(histogram.value_at_quantile(0.95)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
    }
}

/// Kafka's periodic line: `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency.`
pub fn window_line(w: &Window) -> String {
    let elapsed = w.start.elapsed().as_secs_f64().max(1e-9);
    let avg = if w.count == 0 {
        0.0
    } else {
        w.latency_sum_us as f64 / w.count as f64 / 1000.0
    };
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
        w.count,
        w.count as f64 / elapsed,
        w.bytes as f64 / MB / elapsed,
        avg,
        w.latency_max_us as f64 / 1000.0
    )
}

/// Kafka's final line, with the percentiles.
pub fn final_line(s: &Summary) -> String {
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        s.records,
        s.records_per_s,
        s.mb_per_s,
        s.latency_avg_ms,
        s.latency_max_ms,
        s.p50_ms.round() as u64,
        s.p95_ms.round() as u64,
        s.p99_ms.round() as u64,
        s.p999_ms.round() as u64
    )
}

/// Kafka's ThroughputThrottler: sleeps so that `target_per_s` is not exceeded on average.
#[derive(Debug)]
pub struct Throttler {
    target_per_s: f64,
    start: Instant,
}

impl Throttler {
    pub fn new(target_per_s: f64) -> Throttler {
        Throttler {
            target_per_s,
            start: Instant::now(),
        }
    }
    /// Waits, if needed, before sending record number `sent` (counting from 0).
    pub fn throttle(&self, sent: u64) {
        if self.target_per_s <= 0.0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / self.target_per_s);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_lines_have_kafkas_shape() {
        let mut s = Stats::new(Duration::from_secs(3600));
        for i in 1..=1000u64 {
            s.record(Duration::from_micros(i * 100), 10);
        }
        let summary = s.summary();
        assert_eq!(summary.records, 1000);
        assert!(
            summary.p50_ms <= summary.p95_ms
                && summary.p95_ms <= summary.p99_ms
                && summary.p99_ms <= summary.p999_ms
        );
        assert!((summary.p50_ms - 50.0).abs() < 1.0, "{}", summary.p50_ms);
        let line = final_line(&summary);
        assert!(line.starts_with("1000 records sent, "), "{line}");
        assert!(line.ends_with(" ms 99.9th."), "{line}");
    }
}
