//! `GET /limits`: the org's allocations, with live API usage.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value as Json, json};

use super::context::RequestContext;
use super::rest::json_response;

/// Fixed allocations reported beside the live API request counter (Developer Edition values).
const STATIC_LIMITS: [(&str, u64); 25] = [
    ("ConcurrentAsyncGetReportInstances", 200),
    ("ConcurrentSyncReportRuns", 20),
    ("DailyAsyncApexExecutions", 250_000),
    ("DailyBulkApiBatches", 15_000),
    ("DailyBulkApiRequests", 15_000),
    ("DailyBulkV2QueryFileStorageMB", 976_562),
    ("DailyBulkV2QueryJobs", 10_000),
    ("DailyDurableGenericStreamingApiEvents", 10_000),
    ("DailyDurableStreamingApiEvents", 10_000),
    ("DailyGenericStreamingApiEvents", 10_000),
    ("DailyStreamingApiEvents", 10_000),
    ("DailyWorkflowEmails", 405),
    ("DataStorageMB", 5),
    ("DurableStreamingApiConcurrentClients", 20),
    ("FileStorageMB", 20),
    ("HourlyAsyncReportRuns", 1200),
    ("HourlyDashboardRefreshes", 200),
    ("HourlyDashboardResults", 5000),
    ("HourlyDashboardStatuses", 999_999_999),
    ("HourlyODataCallout", 10_000),
    ("HourlySyncReportRuns", 500),
    ("HourlyTimeBasedWorkflow", 50),
    ("MassEmail", 10),
    ("SingleEmail", 15),
    ("StreamingApiConcurrentClients", 20),
];

/// The limits body.
pub fn limits(ctx: &RequestContext) -> Response {
    let (used, max) = ctx.shared.usage.snapshot();
    let mut body = Map::new();
    body.insert(
        "DailyApiRequests".to_owned(),
        json!({ "Max": max, "Remaining": max.saturating_sub(used) }),
    );
    for (name, max) in STATIC_LIMITS {
        body.insert(name.to_owned(), json!({ "Max": max, "Remaining": max }));
    }
    body.sort_keys();
    json_response(StatusCode::OK, &Json::Object(body))
}
