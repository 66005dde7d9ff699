//! The engine's counters and histograms, and their rendering in Prometheus's text format.
//!
//! Counters live in this process and are fed by the events module, so an event's log
//! line, its `sync_events` row and its metrics never disagree. What is true of the
//! catalog rather than of this process (mapping states, queue sizes, lag, rejected
//! records, rows) is read at scrape time by [`crate::Engine::metrics`], so every process
//! on one catalog reports the same gauges and a restart loses nothing but counters, as
//! Prometheus expects of counters.
//!
//! Series are keyed by mapping id (and connection name for writers); the scrape names
//! them by connection and object from the catalog, so a renamed or removed mapping never
//! leaves a stale label behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pgforce_store::MappingId;
use pgforce_store::catalog::events::{EventKind, EventOutcome, SyncEvent};

/// Upper bounds (seconds) of the duration histograms' buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// A histogram of durations: counts per bucket (not cumulative), total and sum.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// One mapping's series for one kind of work (load, poll, write).
#[derive(Debug, Default, Clone)]
struct WorkSeries {
    records: u64,
    api_calls: u64,
    ok: u64,
    rejected: u64,
    errors: u64,
    duration: Histogram,
}

/// One connection's writer series.
#[derive(Debug, Default, Clone)]
struct WriterSeries {
    api_calls: u64,
    succeeded: u64,
    failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    work: BTreeMap<(MappingId, EventKind), WorkSeries>,
    writers: BTreeMap<String, WriterSeries>,
}

/// The engine's counters. Cheap to share; updates take a short lock.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a sync event. A writer pass's API calls are counted once per connection by
    /// [`Metrics::writer_pass`], not per mapping its event is reported for.
    pub(crate) fn event(&self, event: &SyncEvent) {
        let mut counters = self.counters();
        let series = counters
            .work
            .entry((event.mapping, event.kind))
            .or_default();
        series.records += event.records;
        if event.kind != EventKind::Write {
            series.api_calls += event.api_calls;
        }
        match event.outcome {
            EventOutcome::Ok => series.ok += 1,
            EventOutcome::Rejected => series.rejected += 1,
            EventOutcome::Error => series.errors += 1,
        }
        series.duration.observe(event.duration);
    }

    /// Counts a writer pass of `connection`.
    pub(crate) fn writer_pass(
        &self,
        connection: &str,
        api_calls: u64,
        succeeded: u64,
        failed: u64,
    ) {
        let mut counters = self.counters();
        let series = counters.writers.entry(connection.to_owned()).or_default();
        series.api_calls += api_calls;
        series.succeeded += succeeded;
        series.failed += failed;
    }

    /// A copy of the counters, for rendering without holding the lock.
    fn snapshot(&self) -> Counters {
        let counters = self.counters();
        Counters {
            work: counters.work.clone(),
            writers: counters.writers.clone(),
        }
    }
}

/// Who a mapping is, for labels.
#[derive(Debug, Clone)]
pub(crate) struct MappingLabels {
    pub connection: String,
    pub object: String,
}

/// Prometheus text (format 0.0.4) being written: families with their help and type, then
/// their samples.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// Adds a sample.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Writes the counters' families, naming mappings through `labels` (series of mappings
/// the catalog no longer has are left out).
pub(crate) fn render_counters(
    metrics: &Metrics,
    labels: &BTreeMap<MappingId, MappingLabels>,
    out: &mut Exposition,
) {
    let Counters { work, writers } = metrics.snapshot();
    let named: Vec<(&MappingLabels, EventKind, &WorkSeries)> = work
        .iter()
        .filter_map(|((mapping, kind), series)| Some((labels.get(mapping)?, *kind, series)))
        .collect();
    let work_labels = |who: &MappingLabels, kind: EventKind| {
        [
            ("connection", who.connection.clone()),
            ("object", who.object.clone()),
            ("kind", kind.as_str().to_owned()),
            ("direction", kind.direction().to_owned()),
        ]
    };

    out.family(
        "pgforce_records_total",
        "counter",
        "Records applied to Postgres (loads, polls) or written to Salesforce (writes).",
    );
    for (who, kind, series) in &named {
        let l = work_labels(who, *kind);
        sample(out, "pgforce_records_total", &l, series.records as f64);
    }

    out.family(
        "pgforce_sync_runs_total",
        "counter",
        "Loads, polls and writer passes by outcome (ok, rejected: some records refused or not stored, error).",
    );
    for (who, kind, series) in &named {
        let l = work_labels(who, *kind);
        for (outcome, n) in [
            ("ok", series.ok),
            ("rejected", series.rejected),
            ("error", series.errors),
        ] {
            let mut l = l.to_vec();
            l.push(("outcome", outcome.to_owned()));
            sample(out, "pgforce_sync_runs_total", &l, n as f64);
        }
    }

    out.family(
        "pgforce_sync_duration_seconds",
        "histogram",
        "How long loads, polls and writer passes took.",
    );
    for (who, kind, series) in &named {
        let l = work_labels(who, *kind);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(series.duration.buckets) {
            cumulative += n;
            let mut l = l.to_vec();
            l.push(("le", number(*bound)));
            sample(
                out,
                "pgforce_sync_duration_seconds_bucket",
                &l,
                cumulative as f64,
            );
        }
        let mut l_inf = l.to_vec();
        l_inf.push(("le", "+Inf".to_owned()));
        let h = &series.duration;
        sample(
            out,
            "pgforce_sync_duration_seconds_bucket",
            &l_inf,
            h.count as f64,
        );
        sample(out, "pgforce_sync_duration_seconds_sum", &l, h.sum);
        sample(
            out,
            "pgforce_sync_duration_seconds_count",
            &l,
            h.count as f64,
        );
    }

    out.family(
        "pgforce_salesforce_api_calls_total",
        "counter",
        "Salesforce API calls made by this process's readers (per mapping) and writers (per connection).",
    );
    for (who, kind, series) in &named {
        if *kind == EventKind::Write {
            continue;
        }
        let l = [
            ("connection", who.connection.clone()),
            ("object", who.object.clone()),
            ("direction", kind.direction().to_owned()),
        ];
        sample(
            out,
            "pgforce_salesforce_api_calls_total",
            &l,
            series.api_calls as f64,
        );
    }
    for (connection, series) in &writers {
        let l = [
            ("connection", connection.clone()),
            ("object", String::new()),
            ("direction", EventKind::Write.direction().to_owned()),
        ];
        sample(
            out,
            "pgforce_salesforce_api_calls_total",
            &l,
            series.api_calls as f64,
        );
    }

    out.family(
        "pgforce_write_changes_total",
        "counter",
        "Changes the writer sent, by result (succeeded, failed: refused by Salesforce).",
    );
    for (connection, series) in &writers {
        for (result, n) in [("succeeded", series.succeeded), ("failed", series.failed)] {
            let l = [
                ("connection", connection.clone()),
                ("result", result.to_owned()),
            ];
            sample(out, "pgforce_write_changes_total", &l, n as f64);
        }
    }
}

/// Adds a sample with owned label values.
pub(crate) fn sample(out: &mut Exposition, name: &str, labels: &[(&str, String)], value: f64) {
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    out.sample(name, &labels, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_integers_have_no_fraction() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[("name", "a \"b\"\\\nc")], 3.0);
        out.sample("x_total", &[], 0.25);
        assert_eq!(
            out.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{name=\"a \\\"b\\\"\\\\\\nc\"} 3\nx_total 0.25\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let metrics = Metrics::default();
        let mapping = MappingId::from(7);
        for ms in [3, 30, 30_000, 120_000] {
            metrics.event(&SyncEvent {
                mapping,
                object: "Account".to_owned(),
                kind: EventKind::Poll,
                records: 2,
                api_calls: 1,
                duration: Duration::from_millis(ms),
                outcome: EventOutcome::Ok,
                message: None,
            });
        }
        let labels = BTreeMap::from([(
            mapping,
            MappingLabels {
                connection: "main".to_owned(),
                object: "Account".to_owned(),
            },
        )]);
        let mut out = Exposition::default();
        render_counters(&metrics, &labels, &mut out);
        let text = out.finish();
        let line = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("pgforce_sync_duration_seconds_bucket")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .unwrap_or_default()
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(line("0.005"), "1", "{text}");
        assert_eq!(line("0.05"), "2", "{text}");
        assert_eq!(line("60"), "3", "{text}");
        assert_eq!(line("+Inf"), "4", "{text}");
        assert!(text.contains(
            "pgforce_records_total{connection=\"main\",object=\"Account\",kind=\"poll\",direction=\"sf_to_pg\"} 8"
        ), "{text}");
        assert!(text.contains("pgforce_sync_duration_seconds_count{connection=\"main\",object=\"Account\",kind=\"poll\",direction=\"sf_to_pg\"} 4"), "{text}");
    }
}
