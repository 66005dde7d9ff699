//! Reading through Bulk API 2.0, for objects and change sets too large for REST paging.
//!
//! Heroku Connect switches to Bulk above 10,000 records; so does pgforce (per mapping,
//! `bulk_threshold`). A query job runs the same SOQL the REST path would; its CSV pages
//! (25,000 records each: the page being copied and the next one are all that is held)
//! become either COPY text for an initial load, without a detour through JSON, or records
//! shaped as REST's for a poll, so the poll's matching, conflict and cursor logic stay the
//! same whichever API read them.

use pgforce_salesforce::Client as Salesforce;
use pgforce_salesforce::bulk::JobKind;
use pgforce_salesforce::bulk::csv::CsvPage;
use pgforce_salesforce::rest::Record;
use pgforce_store::catalog::mappings;
use pgforce_store::{MappingId, Session};

use crate::convert::{csv_to_json, misfit, push_copy_field};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::reader::RejectedRecord;

/// Records per results page.
pub(crate) const PAGE_RECORDS: u64 = 25_000;

/// Runs a query job to completion, telling the catalog which job the mapping waits on;
/// returns the job's Id and the calls it took.
pub(crate) async fn run_query_job(
    sf: &Salesforce,
    pg: &Session,
    mapping_id: MappingId,
    soql: &str,
    include_deleted: bool,
) -> Result<(String, u64), pgforce_salesforce::Error> {
    let job = sf.create_query_job(soql, include_deleted).await?;
    let activity = format!("bulk query job {}", job.id);
    if let Err(error) = mappings::set_activity(pg, mapping_id, &activity).await {
        tracing::warn!(error = %crate::error::chain(&error), "could not record the bulk job on the mapping");
    }
    let mut polls = 0;
    let done = sf
        .wait_for_job(JobKind::Query, &job.id, &mut |_| polls += 1)
        .await?;
    tracing::info!(job = %done.id, records = done.number_records_processed, "bulk query job complete");
    Ok((done.id, 1 + polls))
}

/// Checks that a result page has the mapping's columns, in order.
fn check_header(mapping: &Mapping, page: &CsvPage) -> Result<()> {
    let matches = page.header.len() == mapping.fields.len()
        && page
            .header
            .iter()
            .zip(&mapping.fields)
            .all(|(column, field)| column.eq_ignore_ascii_case(&field.api_name));
    if matches {
        Ok(())
    } else {
        Err(Error::config(
            &mapping.object,
            format!(
                "bulk result columns {:?} are not the mapping's fields ({})",
                page.header,
                mapping.select_list()
            ),
        ))
    }
}

/// A page as COPY text for the mapping's columns; rows whose values do not fit their
/// columns are left out and reported.
pub(crate) fn copy_text(
    mapping: &Mapping,
    page: &CsvPage,
    rejected: &mut Vec<RejectedRecord>,
) -> Result<(String, u64)> {
    check_header(mapping, page)?;
    let mut buffer = String::with_capacity(page.rows.len() * 256);
    let mut rows = 0;
    'rows: for row in &page.rows {
        for (text, field) in row.iter().zip(&mapping.fields) {
            // Empty is null: nothing to fit.
            if text.is_empty() {
                continue;
            }
            if let Some(reason) = misfit(text, field.pg_type) {
                rejected.push(RejectedRecord {
                    sfid: row.first().cloned().unwrap_or_default(),
                    field: field.api_name.clone(),
                    reason,
                });
                continue 'rows;
            }
        }
        for (i, text) in row.iter().enumerate() {
            if i > 0 {
                buffer.push('\t');
            }
            push_copy_field(&mut buffer, (!text.is_empty()).then_some(text.as_str()));
        }
        buffer.push('\n');
        rows += 1;
    }
    Ok((buffer, rows))
}

/// A page as records shaped like REST's (typed values, null for empty).
pub(crate) fn records(mapping: &Mapping, page: &CsvPage) -> Result<Vec<Record>> {
    check_header(mapping, page)?;
    Ok(page
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&mapping.fields)
                .map(|(text, field)| (field.api_name.clone(), csv_to_json(text, field.pg_type)))
                .collect()
        })
        .collect())
}
