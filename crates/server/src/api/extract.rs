//! Request parts the handlers take — query parameters, path segments, the body — with
//! every rejection answered in the API's JSON error shape (axum's own rejections are plain
//! text), naming what was wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// Query parameters, deserialised into `T`.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| Self(params))
            .map_err(|rejection| {
                Problem::bad_request(format!("query parameters: {}", rejection.body_text()))
            })
    }
}

/// Path parameters, deserialised into `T`.
#[derive(Debug)]
pub struct Segments<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Segments<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(params)| Self(params))
            .map_err(|rejection| Problem::bad_request(format!("path: {}", rejection.body_text())))
    }
}

/// The body as text (it must be UTF-8; handlers parse the JSON themselves, to name what
/// is wrong in it).
#[derive(Debug)]
pub struct Body(pub String);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                Problem::bad_request(format!("body: {}", rejection.body_text()))
            })?;
        String::from_utf8(bytes.to_vec())
            .map(Self)
            .map_err(|e| Problem::bad_request(format!("body: not UTF-8 ({e})")))
    }
}
