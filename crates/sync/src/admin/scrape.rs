//! [`Engine::metrics`]: the engine's counters plus gauges read from the catalog at scrape
//! time, in Prometheus's text format (served at `/metrics` by `pgforce run`).
//!
//! A scrape comes every few seconds from every Prometheus watching, so it costs the same
//! few catalog reads at 1 and at 1,000 mappings: every mapping's state in one read, row
//! estimates from Postgres's statistics in one (no mapped table is scanned), rejected
//! records in one, and the trigger-log queue per connection. `pgforce status` counts
//! exactly; metrics estimate (see `docs/monitoring.md`).

use std::collections::BTreeMap;

use pgforce_store::catalog::{archive, connections, rejected, status};
use pgforce_store::table::rows;

use super::status::{Counted, connection_statuses, mapping_status, writer_statuses};
use super::{Admin, MappingStatus, Status};
use crate::error::{Error, Result};
use crate::metrics::{self, Exposition, MappingLabels, sample};

impl Admin {
    /// Every metric, in Prometheus's text format (version 0.0.4).
    ///
    /// Counters (records, runs, durations, API calls, written changes) are this process's
    /// since it started; gauges (states, rows, rejected records, lag, queues, the org's
    /// API allocation) are read now, so every process on one catalog reports the same.
    pub async fn metrics(&self) -> Result<String> {
        let status = self.scrape_status().await?;
        let labels: BTreeMap<_, _> = status
            .mappings
            .iter()
            .map(|m| {
                let who = MappingLabels {
                    connection: m.connection.clone(),
                    object: m.object.clone(),
                };
                (m.id, who)
            })
            .collect();
        let mut out = Exposition::default();
        metrics::render_counters(self.engine.shared.bus.metrics(), &labels, &mut out);
        mapping_gauges(&status, &mut out);
        writer_gauges(&status, &mut out);
        connection_gauges(&status, &mut out);
        let archives = {
            let pg = self.engine.session().await?;
            archive::totals(&*pg).await.map_err(Error::catalog)?
        };
        archive_gauges(&archives, &mut out);
        self.api_usage_gauges(&mut out);
        Ok(out.finish())
    }

    /// What the gauges show, in a fixed number of catalog reads plus one per connection
    /// with a writer: row counts are estimates, and no Salesforce call is made.
    async fn scrape_status(&self) -> Result<Status> {
        let pg = self.engine.session().await?;
        let catalog = Error::catalog;
        let connection_rows = connections::list(&*pg).await.map_err(catalog)?;
        let reports = status::mappings(&*pg).await.map_err(catalog)?;
        let tables: Vec<(String, String)> = reports
            .iter()
            .map(|r| (r.schema.clone(), r.table.clone()))
            .collect();
        let estimates = rows::estimates(&*pg, &tables).await.map_err(catalog)?;
        let rejected = rejected::counts(&*pg).await.map_err(catalog)?;
        let mappings = reports
            .into_iter()
            .map(|report| {
                let counted = Counted {
                    postgres_count: estimates
                        .get(&(report.schema.clone(), report.table.clone()))
                        .copied(),
                    rejected: rejected.get(&report.id).copied().unwrap_or_default(),
                    ..Counted::default()
                };
                mapping_status(report, counted)
            })
            .collect();
        Ok(Status {
            connections: connection_statuses(connection_rows),
            mappings,
            writers: writer_statuses(&pg, 0).await?,
        })
    }

    /// The org's API allocation as each connection's client last saw it.
    fn api_usage_gauges(&self, out: &mut Exposition) {
        let usage = self.engine.api_usage();
        out.family(
            "pgforce_salesforce_api_requests_used",
            "gauge",
            "API requests the org has used in the last 24 hours, as Salesforce last reported (Sforce-Limit-Info).",
        );
        for (connection, usage) in &usage {
            sample(
                out,
                "pgforce_salesforce_api_requests_used",
                &[("connection", connection.clone())],
                usage.used as f64,
            );
        }
        out.family(
            "pgforce_salesforce_api_requests_limit",
            "gauge",
            "The org's daily API request allocation, as Salesforce last reported.",
        );
        for (connection, usage) in &usage {
            sample(
                out,
                "pgforce_salesforce_api_requests_limit",
                &[("connection", connection.clone())],
                usage.limit as f64,
            );
        }
    }
}

/// Per mapping: state, pause, rows, rejected records, time since it was last in sync,
/// whether change events keep it fresh.
fn mapping_gauges(status: &Status, out: &mut Exposition) {
    let who = |m: &MappingStatus| {
        vec![
            ("connection", m.connection.clone()),
            ("object", m.object.clone()),
        ]
    };
    out.family(
        "pgforce_mapping_state",
        "gauge",
        "1 for each mapping's current state (Heroku Connect's names).",
    );
    for m in &status.mappings {
        let mut labels = who(m);
        labels.push(("state", m.state.as_str().to_owned()));
        sample(out, "pgforce_mapping_state", &labels, 1.0);
    }
    out.family(
        "pgforce_mapping_paused",
        "gauge",
        "1 when an operator paused the mapping or its connection.",
    );
    for m in &status.mappings {
        sample(
            out,
            "pgforce_mapping_paused",
            &who(m),
            f64::from(u8::from(m.paused)),
        );
    }
    out.family(
        "pgforce_postgres_rows",
        "gauge",
        "Rows in each mapping's table, estimated from Postgres's statistics (reltuples after an analyze, else the live-row count); no table is scanned.",
    );
    for m in &status.mappings {
        if let Some(rows) = m.postgres_count {
            sample(out, "pgforce_postgres_rows", &who(m), rows as f64);
        }
    }
    out.family(
        "pgforce_rejected_records",
        "gauge",
        "Records read from Salesforce that could not be stored, kept to retry.",
    );
    for m in &status.mappings {
        sample(out, "pgforce_rejected_records", &who(m), m.rejected as f64);
    }
    out.family(
        "pgforce_change_events_active",
        "gauge",
        "1 while change events keep the mapping fresh (transport pubsub or cometd); 0 with transport none while it is polled only.",
    );
    for m in &status.mappings {
        let mut labels = who(m);
        let transport = m.events_transport.clone();
        labels.push((
            "transport",
            transport.clone().unwrap_or_else(|| "none".to_owned()),
        ));
        sample(
            out,
            "pgforce_change_events_active",
            &labels,
            f64::from(u8::from(transport.is_some())),
        );
    }
    out.family(
        "pgforce_seconds_since_last_sync",
        "gauge",
        "Seconds since each mapping was last in sync with Salesforce (its last successful load or poll).",
    );
    for m in &status.mappings {
        if let Some(seconds) = m.seconds_since_sync {
            sample(
                out,
                "pgforce_seconds_since_last_sync",
                &who(m),
                seconds as f64,
            );
        }
    }
}

/// Per connection with read-write mappings: trigger-log rows by state and the writer's lag.
fn writer_gauges(status: &Status, out: &mut Exposition) {
    out.family(
        "pgforce_trigger_log_rows",
        "gauge",
        "Live trigger-log rows by state: NEW (waiting), PENDING (being sent), HELD (behind a refused insert), FAILED.",
    );
    for w in &status.writers {
        let q = &w.queue;
        for (state, n) in [
            ("NEW", q.new),
            ("PENDING", q.pending),
            ("HELD", q.held),
            ("FAILED", q.failed),
        ] {
            let labels = [
                ("connection", w.connection.clone()),
                ("state", state.to_owned()),
            ];
            sample(out, "pgforce_trigger_log_rows", &labels, n as f64);
        }
    }
    out.family(
        "pgforce_oldest_unsent_change_seconds",
        "gauge",
        "Age of the oldest change not sent to Salesforce yet (0 when none waits): the writer's lag.",
    );
    for w in &status.writers {
        let seconds = w.queue.oldest_unsent_seconds.unwrap_or(0);
        sample(
            out,
            "pgforce_oldest_unsent_change_seconds",
            &[("connection", w.connection.clone())],
            seconds as f64,
        );
    }
}

/// Per connection: 1 for its current state (IDLE, PAUSED_API_LIMIT, …).
fn connection_gauges(status: &Status, out: &mut Exposition) {
    out.family(
        "pgforce_connection_state",
        "gauge",
        "1 for each connection's current state (a PAUSED_* state names an org-wide condition).",
    );
    for c in &status.connections {
        let labels = [
            ("connection", c.name.clone()),
            ("state", c.state.as_str().to_owned()),
        ];
        sample(out, "pgforce_connection_state", &labels, 1.0);
    }
}

/// Archive jobs' records by step, and jobs by state, read from the catalog (so every
/// process reports the same, and the totals survive restarts: jobs are never deleted).
fn archive_gauges(totals: &[archive::Totals], out: &mut Exposition) {
    out.family(
        "pgforce_archive_records_total",
        "counter",
        "Records archive jobs moved, by step: copied into the archive, verified, deleted in Salesforce, refused by Salesforce, restored by unarchive.",
    );
    for t in totals {
        for (step, n) in [
            ("copied", t.selected),
            ("verified", t.verified),
            ("deleted", t.deleted),
            ("refused", t.failed),
            ("restored", t.restored),
        ] {
            let labels = [
                ("connection", t.connection.clone()),
                ("object", t.object.clone()),
                ("step", step.to_owned()),
            ];
            sample(out, "pgforce_archive_records_total", &labels, n as f64);
        }
    }
    out.family("pgforce_archive_jobs", "gauge", "Archive jobs by state.");
    for t in totals {
        for (state, n) in &t.jobs {
            let labels = [
                ("connection", t.connection.clone()),
                ("object", t.object.clone()),
                ("state", state.clone()),
            ];
            sample(out, "pgforce_archive_jobs", &labels, *n as f64);
        }
    }
}
