//! A benchmark report: rows of named figures, printed as a table and written as JSON.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One measured figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// How the figure was obtained (median of N runs, etc.).
    pub note: String,
}

/// A scenario's results.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub machine: String,
    pub rows: Vec<Row>,
}

impl Report {
    /// An empty report for a scenario.
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            machine: machine_description(),
            rows: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn add(&mut self, name: &str, value: f64, unit: &str, note: &str) {
        self.rows.push(Row {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            note: note.to_owned(),
        });
    }

    /// Prints the report as a table.
    #[allow(clippy::print_stdout)]
    pub fn print(&self) {
        println!("\n{} — {}", self.scenario, self.machine);
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(10);
        for row in &self.rows {
            println!(
                "  {:<width$}  {:>14.2} {:<10} {}",
                row.name, row.value, row.unit, row.note
            );
        }
    }

    /// Writes the report as JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let json = serde_json::to_string_pretty(self).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }
}

fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / 1024 / 1024));
    format!("{cores} cores{memory}, {}", std::env::consts::ARCH)
}

/// The median of some samples (0 for none).
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2.0
    } else {
        samples[mid]
    }
}

/// The p-th percentile (0–100) of some samples, nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Percent-encodes a query-string value (SOQL in URLs).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A size from `/proc/self/status` (`VmRSS`, `VmHWM`, …) in bytes, 0 when unreadable.
pub fn proc_status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_owned))
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The emulator administrator's password-flow credentials.
pub fn emulator_credentials() -> pgforce_salesforce::Credentials {
    pgforce_salesforce::Credentials::Password {
        client_id: "pgforce".to_owned(),
        client_secret: pgforce_salesforce::SecretString::from("pgforce"),
        username: "admin@example.com".to_owned(),
        password: pgforce_salesforce::SecretString::from("pgforce"),
    }
}
