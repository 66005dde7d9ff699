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
//! [`rest::collections::SaveResult`], [`rest::describe::ObjectDescribe`].
//!
//! Layout:
//! - `client`: the call loop (concurrency, budget, refresh, retries); `auth`: token flows.
//! - `rest`: one module per resource family; `bulk`: Bulk API 2.0 query and ingest jobs.
//! - `error`, `retry`, `usage`, `config`, `soql`: supporting types.

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod auth;
pub mod bulk;
mod client;
mod config;
mod error;
pub mod rest;
mod retry;
pub mod soql;
mod usage;

pub use auth::Session;
pub use client::Client;
pub use config::{
    ClientConfig, Credentials, DEFAULT_API_VERSION, PRODUCTION_LOGIN_URL, SANDBOX_LOGIN_URL,
};
pub use error::{ApiErrorCode, Error, RecordError, Result};
pub use retry::RetryPolicy;
pub use secrecy::SecretString;
pub use usage::{ApiUsage, parse_limit_info};
