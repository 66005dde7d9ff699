//! The Salesforce API client pgforce talks to Salesforce through.
//!
//! It owns OAuth (password, refresh token, JWT bearer, client credentials) and transparent
//! session refresh, the REST calls a sync engine makes (describe, query and queryAll as
//! streams, sObject Collections, single-record CRUD and upsert, getUpdated/getDeleted,
//! limits) and Bulk API 2.0 jobs, typed errors carrying Salesforce's `errorCode`, retries with backoff that never
//! duplicate a write, and API usage tracking. It knows nothing of Postgres, and never logs
//! tokens, passwords or record contents.
//!
//! Main types: [`Client`] (built from a [`ClientConfig`] with [`Credentials`]), [`Error`]
//! with [`ApiErrorCode`], [`rest::Record`], [`rest::query::QueryPage`],
//! [`rest::collections::SaveResult`] and [`rest::collections::WriteError`],
//! [`rest::describe::ObjectDescribe`].
//!
//! Partial results: an sObject Collections write (`create_records`, `update_records`,
//! `upsert_records`, `delete_records`) may take several calls, because records refused for
//! row locks are resent. If a later call fails, the records earlier calls wrote are still
//! written, so the write fails with a [`rest::collections::WriteError`] that carries, beside
//! the failed call's [`Error`], every record's outcome learned so far in request order, and
//! `None` for the records whose fate is unknown because they were in the failed call. An
//! unknown create whose call may have been applied ([`Error::may_have_been_applied`]) is in
//! doubt: check for it before sending it again; never just retry it.
//!
//! Layout:
//! - `client`: the call loop (concurrency, budget, refresh, retries); `auth`: token flows.
//! - `rest`: one module per resource family; `bulk`: Bulk API 2.0 query and ingest jobs.
//! - `hosts`: where credentials and tokens may be sent (Salesforce's hosts and the
//!   operator's); checked before every login, on every token answer and redirect.
//! - `error`, `retry`, `usage`, `config`, `soql`: supporting types.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod auth;
pub mod bulk;
mod client;
mod config;
mod error;
mod hosts;
pub mod rest;
mod retry;
pub mod soql;
pub mod streaming;
mod usage;

pub use auth::{
    CodeGrant, Session, authorize_url, exchange_authorization_code, org_id_of_identity_url,
    revoke_token, same_org,
};
pub use client::{Client, SendGuard};
pub use config::{
    ClientConfig, Credentials, DEFAULT_API_VERSION, PRODUCTION_LOGIN_URL, SANDBOX_LOGIN_URL,
};
pub use error::{ApiErrorCode, Error, RecordError, Result};
pub use hosts::{AllowedHosts, SALESFORCE_HOST_FAMILIES};
pub use retry::RetryPolicy;
pub use secrecy::SecretString;
pub use usage::{ApiUsage, parse_limit_info};
