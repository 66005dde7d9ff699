//! `GET /query`, `GET /queryAll` and their `nextRecordsUrl` continuations.

use std::sync::Arc;

use axum::http::StatusCode;

use super::context::RequestContext;
use super::rest::{ApiResult, raw_json_response};
use crate::error::ApiError;
use crate::query::render::Page;
use crate::query::{self, Cursor, render};

/// Salesforce's default and largest query batch.
const DEFAULT_BATCH_SIZE: usize = 2000;
/// The smallest batch size Salesforce honours.
const MIN_BATCH_SIZE: usize = 200;
/// The request header that asks for another batch size.
const QUERY_OPTIONS_HEADER: &str = "sforce-query-options";

fn batch_size(ctx: &RequestContext) -> usize {
    ctx.headers
        .get(QUERY_OPTIONS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|part| {
                let (key, value) = part.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| value.trim().parse().ok())
                    .flatten()
            })
        })
        .map_or(DEFAULT_BATCH_SIZE, |n: usize| {
            n.clamp(MIN_BATCH_SIZE, DEFAULT_BATCH_SIZE)
        })
}

/// Runs the query in `q` and answers its first page.
pub fn start(ctx: &RequestContext, include_deleted: bool) -> ApiResult {
    let text = ctx
        .param("q")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
        })?;
    let org = ctx.shared.org();
    let bound =
        query::bind(org.schema(), text).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let rows = query::execute(&org, &bound, include_deleted);
    if bound.count_only {
        drop(org);
        return Ok(raw_json_response(
            StatusCode::OK,
            format!(
                "{{\"totalSize\":{},\"done\":true,\"records\":[]}}",
                rows.len()
            ),
        ));
    }
    let batch = batch_size(ctx);
    let total = rows.len();
    let projection = Arc::new(bound.projection);
    let mut out = String::with_capacity(256 * total.min(batch) + 64);
    if total <= batch {
        let page = Page {
            object: bound.object,
            rows: &rows,
            projection: &projection,
            total_size: total,
            next_records_url: None,
            api_version: &ctx.version,
        };
        render::write_page(&mut out, &org, &page);
    } else {
        let rows: Arc<[u64]> = rows.into();
        let max_per_user = ctx
            .shared
            .faults()
            .max_open_cursors_per_user
            .and_then(|max| usize::try_from(max).ok());
        let locator = ctx.shared.cursors().open(
            ctx.user,
            (bound.object, Arc::clone(&rows), Arc::clone(&projection)),
            batch,
            max_per_user,
        );
        let next = format!("{}/query/{locator}-{batch}", ctx.data_prefix());
        let page = Page {
            object: bound.object,
            rows: &rows[..batch],
            projection: &projection,
            total_size: total,
            next_records_url: Some(&next),
            api_version: &ctx.version,
        };
        render::write_page(&mut out, &org, &page);
    }
    drop(org);
    ctx.shared.stats.record_records(0, total.min(batch) as u64);
    Ok(raw_json_response(StatusCode::OK, out))
}

/// Answers the page a `nextRecordsUrl` points at.
pub fn more(ctx: &RequestContext, locator_and_offset: &str) -> ApiResult {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (locator, offset) = locator_and_offset.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if ctx.faults.release_cursor {
        // Released as when its user opened too many: the look-up below fails as it does
        // for every released cursor.
        ctx.shared.cursors().release(locator);
    }
    let cursor: Arc<Cursor> = ctx.shared.cursors().get(locator).ok_or_else(invalid)?;
    if offset >= cursor.rows.len() {
        return Err(invalid());
    }
    let end = (offset + cursor.batch_size).min(cursor.rows.len());
    let next =
        (end < cursor.rows.len()).then(|| format!("{}/query/{locator}-{end}", ctx.data_prefix()));
    let org = ctx.shared.org();
    let mut out = String::with_capacity(256 * (end - offset) + 64);
    let page = Page {
        object: cursor.object,
        rows: &cursor.rows[offset..end],
        projection: &cursor.projection,
        total_size: cursor.rows.len(),
        next_records_url: next.as_deref(),
        api_version: &ctx.version,
    };
    render::write_page(&mut out, &org, &page);
    drop(org);
    ctx.shared.stats.record_records(0, (end - offset) as u64);
    Ok(raw_json_response(StatusCode::OK, out))
}
