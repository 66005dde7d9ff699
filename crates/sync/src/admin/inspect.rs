//! What the sync left for people to look at: the writes Salesforce refused (and the
//! decisions on them), notifications, describes of the org's objects, the activity chart.

use pgforce_store::catalog::mappings;
use pgforce_store::catalog::notifications::{self, Filter, Notification};
use pgforce_store::trigger_log::queue::{self, FailedDecision, FailedWrite};
use pgforce_store::{ConnectionId, Ident, MappingId};
use serde_json::{Value, json};

use super::Admin;
use crate::call_budget::Viewer;
use crate::error::{Error, Result};

/// How far back the failed-writes lists look, as Heroku Connect's (hours).
const FAILED_WRITES_HOURS: f64 = 24.0;

/// At most this many failed writes are listed.
const FAILED_WRITES_SHOWN: i64 = 1000;

impl Admin {
    /// Changes Salesforce refused in the last 24 hours: a connection's, or one mapping's.
    pub async fn failed_writes(
        &self,
        connection: ConnectionId,
        mapping: Option<MappingId>,
    ) -> Result<Vec<FailedWrite>> {
        let pg = self.engine.session().await?;
        let row = self.engine.connection_row(&pg, connection).await?;
        let table = match mapping {
            Some(id) => Some(
                mappings::get(&*pg, id)
                    .await
                    .map_err(Error::catalog)?
                    .filter(|m| m.connection == connection)
                    .map(|m| m.table)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("no mapping with id {id} in connection {}", row.name),
                    })?,
            ),
            None => None,
        };
        let schema = Ident::new(&row.schema).map_err(Error::catalog)?;
        queue::failed_since(
            &*pg,
            &schema,
            table.as_deref(),
            FAILED_WRITES_HOURS,
            FAILED_WRITES_SHOWN,
        )
        .await
        .map_err(Error::catalog)
    }

    /// Sends a failed write of `connection` again, or ignores it, noting `who` decided.
    pub async fn decide_failed_write(
        &self,
        connection: ConnectionId,
        log_id: i64,
        decision: FailedDecision,
        who: &str,
    ) -> Result<()> {
        let pg = self.engine.session().await?;
        let view = self.engine.connection_row(&pg, connection).await?;
        let schema = Ident::new(&view.schema).map_err(Error::catalog)?;
        let decided = queue::decide_failed(&*pg, &schema, log_id, decision, who)
            .await
            .map_err(Error::catalog)?;
        if decided {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: format!("connection {} has no failed write {log_id}", view.name),
            })
        }
    }

    /// A connection's notifications, newest first, at most `limit`.
    pub async fn notifications(
        &self,
        connection: ConnectionId,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let pg = self.engine.session().await?;
        let view = self.engine.connection_row(&pg, connection).await?;
        notifications::list(&*pg, &view.name, filter, limit)
            .await
            .map_err(Error::catalog)
    }

    /// Acknowledges a connection's notifications; returns how many.
    pub async fn acknowledge_notifications(
        &self,
        connection: ConnectionId,
        filter: &Filter,
    ) -> Result<u64> {
        let pg = self.engine.session().await?;
        let view = self.engine.connection_row(&pg, connection).await?;
        notifications::acknowledge(&*pg, &view.name, filter)
            .await
            .map_err(Error::catalog)
    }

    /// An object's describe as Heroku Connect's `schemas/{Object}` shows it: name, label
    /// and fields (name, label, type, length, required, createable, updateable, unique,
    /// external id, references), asked of the connection's org now.
    /// Kept for [`super::views::DESCRIBE_FRESH`]; asking anew is charged to `viewer`.
    pub async fn describe_object(
        &self,
        connection: ConnectionId,
        object: &str,
        viewer: Viewer<'_>,
    ) -> Result<Value> {
        let key = (connection, object.to_owned());
        if let Some(shown) = self.engine.shared.views.describes.fresh(&key) {
            return Ok(shown);
        }
        let live = {
            let pg = self.engine.session().await?;
            let row = self.engine.connection_row(&pg, connection).await?;
            self.engine.live(&row)?.ok_or_else(|| Error::Connection {
                connection: row.name.clone(),
                problem: "this process has no credentials for it".to_owned(),
            })?
        };
        if !self.engine.shared.views.budget.spend(viewer) {
            return Err(Error::Exhausted {
                what: "this token's Salesforce calls for the hour (describes and counts it asked for); try again later".to_owned(),
            });
        }
        let describe = live
            .salesforce
            .describe(object)
            .await
            .map_err(|e| Error::salesforce(object, e))?;
        let fields: Vec<Value> = describe
            .fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "label": f.label,
                    "type": f.field_type.as_str(),
                    "length": f.length,
                    "required": !f.nillable && f.createable && !f.defaulted_on_create,
                    "createable": f.createable,
                    "updateable": f.updateable,
                    "unique": f.unique,
                    "external_id": f.external_id,
                    "reference_to": f.reference_to,
                })
            })
            .collect();
        let shown = json!({
            "name": describe.object.name,
            "label": describe.object.label,
            "fields": fields,
        });
        self.engine.shared.views.describes.keep(key, shown.clone());
        Ok(shown)
    }

    /// Records read and written per `bucket_minutes` over the last `hours`, oldest first:
    /// `(minutes ago the slice starts, read, written)`.
    pub async fn activity(&self, hours: u32, bucket_minutes: u32) -> Result<Vec<(i64, i64, i64)>> {
        let pg = self.engine.session().await?;
        pgforce_store::catalog::events::activity(&*pg, hours, bucket_minutes)
            .await
            .map_err(Error::catalog)
    }
}
