//! `reconcile` as an engine operation: compare each selected mapping's Salesforce records
//! with its rows, keep the counts on the mapping, and on request repair what differs —
//! sending queued changes itself when no running writer holds the connection.

use pgforce_store::Access;
use pgforce_store::catalog::connections;
use pgforce_store::catalog::mappings;

use super::Engine;
use crate::error::{Error, Result};
use crate::reader::Target;
use crate::reconcile::{Drift, Repair, compare, record, repair};
use crate::writer::{Pass, drain_here};

/// Which mappings to reconcile, and whether to repair them.
#[derive(Debug, Clone, Default)]
pub struct ReconcileRequest {
    /// Only this connection (default: every connection this process can run).
    pub connection: Option<String>,
    /// Only these objects (API names, any case; default: every mapping).
    pub objects: Vec<String>,
    /// Fix what differs.
    pub repair: bool,
}

/// What reconciling one mapping found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingReconcile {
    /// The connection.
    pub connection: String,
    /// The mapped object.
    pub object: String,
    /// How the two sides differed.
    pub drift: Drift,
    /// What the repair did, when one ran.
    pub repaired: Option<Repair>,
    /// How they differ after the repair.
    pub after: Option<Drift>,
}

impl MappingReconcile {
    /// Whether both sides agree (after the repair, when one ran).
    pub fn is_clean(&self) -> bool {
        self.after.as_ref().unwrap_or(&self.drift).is_clean()
    }
}

impl Engine {
    /// Reconciles the selected mappings; `on_report` sees each one as it is done.
    pub async fn reconcile(
        &self,
        request: &ReconcileRequest,
        mut on_report: impl FnMut(&MappingReconcile) + Send,
    ) -> Result<Vec<MappingReconcile>> {
        let mut pg = self.session().await?;
        let catalog = Error::catalog;
        let names: Vec<String> = match &request.connection {
            Some(name) => vec![name.clone()],
            None => connections::list(&*pg)
                .await
                .map_err(catalog)?
                .into_iter()
                .filter(|row| self.configuration(row).is_some())
                .map(|row| row.name)
                .collect(),
        };
        let mut reports = Vec::new();
        for name in names {
            let (row, live) = self.live_connection(&pg, &name).await?;
            let rows = mappings::list(&*pg, Some(row.id)).await.map_err(catalog)?;
            let selected = rows.iter().filter(|m| {
                request.objects.is_empty()
                    || request
                        .objects
                        .iter()
                        .any(|o| o.eq_ignore_ascii_case(&m.object))
            });
            let mut resolved = Vec::new();
            for mapping_row in selected {
                resolved.push(self.live_mapping(&live, mapping_row).await?);
            }
            let writable: Vec<_> = self
                .live_mappings(&live, &rows)
                .await?
                .into_iter()
                .filter(|m| m.spec.access == Access::ReadWrite)
                .collect();
            let policy = live.config.write_policy();
            for live_mapping in &resolved {
                let target = Target {
                    schema: &live.schema,
                    mapping: &live_mapping.mapping,
                    mapping_id: live_mapping.row.id,
                    fence: None,
                };
                let drift = compare(&live.salesforce, &pg, &target).await?;
                record(&pg, live_mapping.row.id, &drift).await?;
                let mut report = MappingReconcile {
                    connection: name.clone(),
                    object: live_mapping.mapping.object.clone(),
                    drift,
                    repaired: None,
                    after: None,
                };
                if request.repair && !report.drift.is_clean() {
                    let done = repair(&live.salesforce, &mut pg, &target, &report.drift).await?;
                    if done.requeued > 0 {
                        let pass =
                            Pass::new(&live.salesforce, &live.schema, &policy, &writable, &[]);
                        let url = &self.shared.database_url;
                        let timing = self.shared.options.lease;
                        if !drain_here(pass, &mut pg, url, &name, timing).await? {
                            tracing::info!(connection = %name, "a running pgforce writes this connection; it sends the queued changes");
                        }
                    }
                    let after = compare(&live.salesforce, &pg, &target).await?;
                    record(&pg, live_mapping.row.id, &after).await?;
                    report.repaired = Some(done);
                    report.after = Some(after);
                }
                on_report(&report);
                reports.push(report);
            }
        }
        Ok(reports)
    }

    /// Every mapping of `rows` checked against the org.
    async fn live_mappings(
        &self,
        live: &super::setup::LiveConnection,
        rows: &[pgforce_store::catalog::mappings::MappingRow],
    ) -> Result<Vec<crate::mapping::Mapping>> {
        let mut resolved = Vec::with_capacity(rows.len());
        for row in rows {
            resolved.push(self.live_mapping(live, row).await?.mapping);
        }
        Ok(resolved)
    }
}
