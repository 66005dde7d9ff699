//! Reading chosen records again and storing them as Salesforce has them now, whatever the
//! cursor says (reconcile's repair, and the reader's retry of rejected records after a
//! schema change), through the same statements polls use. Records that still do not fit
//! stay kept as rejected; those stored, or no longer in Salesforce, are forgotten.

use futures_util::TryStreamExt as _;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::catalog::rejected;
use pgforce_store::table::apply::{ApplyStatements, apply_records};
use pgforce_store::{OwnWrite, Session as Postgres};

use super::{Target, row_values, settle_rejected, text_of};
use crate::error::Result;

/// Reads the given records again from Salesforce and stores them. Returns how many were
/// stored.
pub async fn refresh_records(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    ids: &[String],
) -> Result<u64> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    let statements = ApplyStatements::new(&mapping.row_shape(target.schema)?);
    let mut stored = 0;
    // 200 Ids keep the SOQL text well under Salesforce's length limit.
    for chunk in ids.chunks(200) {
        let list: Vec<String> = chunk.iter().map(|id| soql::quote(id)).collect();
        let query = format!(
            "SELECT {} FROM {object} WHERE Id IN ({})",
            mapping.select_list(),
            list.join(", ")
        );
        let records: Vec<Record> = sf
            .query(&query)
            .try_collect()
            .await
            .map_err(|e| target.sf_error(e))?;
        let mut rows: Vec<Vec<Option<String>>> = Vec::with_capacity(records.len());
        let mut refused = Vec::new();
        for record in &records {
            match row_values(mapping, record) {
                Ok(values) => rows.push(values),
                Err(rejected) => refused.push(rejected),
            }
        }
        // Asked for and not answered: deleted since, nothing left to store.
        let gone: Vec<&str> = chunk
            .iter()
            .map(String::as_str)
            .filter(|id| !records.iter().any(|r| text_of(r, "Id") == Some(*id)))
            .collect();
        let tx = OwnWrite::on_table(target.schema, &mapping.table)
            .fenced(target.fence)
            .begin(pg)
            .await
            .map_err(|e| target.store_error(e))?;
        stored += apply_records(&tx, &statements, &rows)
            .await
            .map_err(|e| target.store_error(e))?;
        settle_rejected(&tx, target, &records, &rows, &refused).await?;
        rejected::forget(&*tx, target.mapping_id, &gone)
            .await
            .map_err(|e| target.store_error(e))?;
        tx.commit("refreshed records")
            .await
            .map_err(|e| target.store_error(e))?;
    }
    Ok(stored)
}
