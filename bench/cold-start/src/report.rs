//! Turns the runs of each binary into the table: medians with their p10–p90 spread, and each
//! figure's ratio to the hello-world baseline measured in the same rounds.

use std::fmt::Write as _;
use std::time::Duration;

/// One cold start of one binary.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Spawn to the first `GET /next`.
    pub init: Option<Duration>,
    /// Spawn to the first `POST /response` (or `/error`).
    pub first_response: Option<Duration>,
    /// Peak resident set (`VmHWM`) in KiB, read just before the process was killed.
    pub peak_rss_kib: Option<u64>,
    /// How the first invocation ended, in a few words (`201`, `ok`, `error: …`, `timeout`).
    pub result: String,
    /// Whether the run completed its first invocation (a response or an invocation error); a
    /// smoke run fails when any run did not.
    pub responded: bool,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median and p10–p90 of the values present.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
}

impl Spread {
    pub fn of(values: impl Iterator<Item = f64>) -> Option<Self> {
        let mut sorted: Vec<f64> = values.collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            median: percentile(&sorted, 50.0),
            p10: percentile(&sorted, 10.0),
            p90: percentile(&sorted, 90.0),
        })
    }
}

/// The figures of one binary.
pub struct Figures {
    pub name: String,
    pub runs: usize,
    pub init_ms: Option<Spread>,
    pub first_response_ms: Option<Spread>,
    pub peak_rss_mib: Option<Spread>,
    pub results: Vec<(String, usize)>,
}

impl Figures {
    pub fn of(name: &str, samples: &[Sample]) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut results: Vec<(String, usize)> = Vec::new();
        for sample in samples {
            match results.iter_mut().find(|(r, _)| *r == sample.result) {
                Some((_, n)) => *n += 1,
                None => results.push((sample.result.clone(), 1)),
            }
        }
        Figures {
            name: name.to_owned(),
            runs: samples.len(),
            init_ms: Spread::of(samples.iter().filter_map(|s| s.init).map(ms)),
            first_response_ms: Spread::of(samples.iter().filter_map(|s| s.first_response).map(ms)),
            peak_rss_mib: Spread::of(
                samples
                    .iter()
                    .filter_map(|s| s.peak_rss_kib)
                    .map(|kib| kib as f64 / 1024.0),
            ),
            results,
        }
    }
}

fn cell(spread: Option<Spread>, decimals: usize) -> String {
    match spread {
        Some(s) => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            s.median,
            s.p10,
            s.p90,
            d = decimals
        ),
        None => "n/a".to_owned(),
    }
}

fn ratio(value: Option<Spread>, baseline: Option<Spread>) -> String {
    match (value, baseline) {
        (Some(v), Some(b)) if b.median > 0.0 => format!("{:.2}×", v.median / b.median),
        _ => "n/a".to_owned(),
    }
}

/// A Markdown table, baseline first, so it can be pasted into `docs/benchmarks.md` as it is.
pub fn table(baseline: &Figures, functions: &[Figures], adapters: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| function | init ms, median (p10–p90) | init × base | init + first invoke ms ({adapters}) | × base | peak RSS MiB | × base | first invoke (runs) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for figures in std::iter::once(baseline).chain(functions) {
        let results = figures
            .results
            .iter()
            .map(|(r, n)| format!("{r} ({n}/{})", figures.runs))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            figures.name,
            cell(figures.init_ms, 2),
            ratio(figures.init_ms, baseline.init_ms),
            cell(figures.first_response_ms, 2),
            ratio(figures.first_response_ms, baseline.first_response_ms),
            cell(figures.peak_rss_mib, 1),
            ratio(figures.peak_rss_mib, baseline.peak_rss_mib),
            results,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_twenty_values() {
        let spread = Spread::of((1..=20).map(f64::from)).unwrap();
        assert_eq!(spread.median, 10.0);
        assert_eq!(spread.p10, 2.0);
        assert_eq!(spread.p90, 18.0);
    }

    #[test]
    fn missing_figures_say_so_instead_of_a_zero() {
        let samples = vec![Sample {
            init: None,
            first_response: None,
            peak_rss_kib: None,
            result: "exited before /next".into(),
            responded: false,
        }];
        let figures = Figures::of("f", &samples);
        let base = Figures::of(
            "hello-world",
            &[Sample {
                init: Some(Duration::from_millis(2)),
                first_response: Some(Duration::from_millis(3)),
                peak_rss_kib: Some(2048),
                result: "ok".into(),
                responded: true,
            }],
        );
        let table = table(&base, &[figures], "memory");
        assert!(table.contains("| f | n/a | n/a |"), "{table}");
        assert!(
            table.contains("| hello-world | 2.00 (2.00–2.00) | 1.00× |"),
            "{table}"
        );
        assert!(table.contains("exited before /next (1/1)"), "{table}");
    }
}
