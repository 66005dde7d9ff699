//! The management API: Heroku Connect's API v3 paths, methods, status codes and JSON
//! shapes (`shapes`), each route behind the role it needs. One table (`table`) lists the
//! routes with their roles; the router and the OpenAPI document (`openapi`, served at
//! `/api/openapi.json`) are both built from it. Handlers live in `handlers`
//! (OData services' in `odata`).
//!
//! | route | role |
//! |---|---|
//! | `GET /api/v3/connections[?app=&deep=true]`, `GET …/connections/{id}`, `…/{id}/mappings`, `…/{id}/errors`, `…/{id}/actions/export`, `GET /api/v3/mappings/{id}`, `…/{id}/errors`, `POST /api/v3/users/me/apps/{app}/auth` | view |
//! | `GET …/connections/{id}/schemas/{Object}`, `GET …/connections/{id}/notifications` | view |
//! | `POST …/connections/{id}/notifications/acknowledge` | operate |
//! | `POST …/connections/{id}/actions/pause`, `…/resume`, `…/restart`, `POST …/connections/{id}/errors/{log id}/actions/retry`, `…/ignore`, `POST …/mappings/{id}/actions/reload` | operate |
//! | `POST …/connections/{id}/actions/import`, `POST …/connections/{id}/mappings`, `DELETE /api/v3/mappings/{id}` | deploy |
//! | `POST /api/v3/connections`, `GET /api/v3/audit[?limit=]` | manage |
//! | `GET /api/v3/odata/services`, `GET …/odata/services/{id}` | view |
//! | `PATCH …/odata/services/{id}` (settings), `PUT`/`DELETE …/odata/services/{id}/resources/{schema.table}` | deploy |
//! | `PATCH …/odata/services/{id}` naming `enabled`, `POST …/odata/services/{id}/credentials/actions/reset` | manage |
//! | `POST …/connections/{id}/archives`, `GET /api/v3/archives/{id}` | archive (or operate and above) |
//!
//! Every change made here is appended to the audit trail with the token's name and the
//! configuration before and after.

mod archives;
mod extract;
mod handlers;
mod odata;
pub mod openapi;
pub mod shapes;
mod table;

pub use odata::access_url as odata_access_url;
pub use table::router;
