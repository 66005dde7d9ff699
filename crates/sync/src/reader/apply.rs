//! Reading chosen records again and storing them as Salesforce has them now, whatever the
//! cursor says (reconcile's repair), through the same statements polls use.

use futures_util::TryStreamExt as _;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::table::apply::{ApplyStatements, apply_records};
use pgforce_store::{OwnWrite, Session as Postgres};

use super::{Target, row_values};
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
        let rows: Vec<Vec<Option<String>>> = records
            .iter()
            .filter_map(|record| row_values(mapping, record).ok())
            .collect();
        let tx = OwnWrite::on_table(target.schema, &mapping.table)
            .begin(pg)
            .await
            .map_err(|e| target.store_error(e))?;
        stored += apply_records(&tx, &statements, &rows)
            .await
            .map_err(|e| target.store_error(e))?;
        tx.commit("refreshed records")
            .await
            .map_err(|e| target.store_error(e))?;
    }
    Ok(stored)
}
