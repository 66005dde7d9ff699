//! Accepting Pub/Sub connections and routing gRPC calls.
//!
//! Each call's response is a body of gRPC frames followed by trailers carrying the
//! status; errors are sent as a response with no message and the status in the trailers,
//! plus Salesforce's own code in the `error-code` trailer when there is one. Connections
//! live in a `JoinSet` owned by [`serve`], so shutdown ends them all; a subscription runs
//! inside its response body, so it ends with its connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http2;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pgforce_pubsub_proto::{Code, FrameDecoder, encode_grpc_message, metadata, method};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{service, subscribe};
use crate::state::Shared;

/// A gRPC call's failure: status, message and Salesforce's error code, if any.
#[derive(Debug, Clone)]
pub struct Status {
    pub code: Code,
    pub message: String,
    pub error_code: Option<&'static str>,
}

impl Status {
    /// A status with a message; an `rpcId:` suffix is added as Salesforce does.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: format!("{} rpcId: {}", message.into(), rpc_id()),
            error_code: None,
        }
    }

    /// The trailers that carry this status.
    pub fn trailers(&self) -> HeaderMap {
        let mut trailers = HeaderMap::new();
        trailers.insert(metadata::GRPC_STATUS, HeaderValue::from(self.code.number()));
        if let Ok(value) = HeaderValue::from_str(&encode_grpc_message(&self.message)) {
            trailers.insert(metadata::GRPC_MESSAGE, value);
        }
        if let Some(code) = self.error_code {
            trailers.insert(metadata::ERROR_CODE, HeaderValue::from_static(code));
        }
        trailers
    }
}

/// Trailers of a successful call.
pub fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(metadata::GRPC_STATUS, HeaderValue::from(0u32));
    trailers
}

/// An id for one call, as Salesforce puts in `rpc_id` and error messages.
pub fn rpc_id() -> String {
    crate::uuid::random()
}

/// A response body: a stream of frames (messages, then trailers).
pub struct GrpcBody {
    frames: Pin<Box<dyn Stream<Item = Frame<Bytes>> + Send>>,
}

impl GrpcBody {
    /// A body from a stream of frames.
    pub fn new(frames: impl Stream<Item = Frame<Bytes>> + Send + 'static) -> Self {
        Self {
            frames: Box::pin(frames),
        }
    }

    /// One message, then OK.
    pub fn unary(message: Bytes) -> Self {
        Self::new(futures_util::stream::iter([
            Frame::data(message),
            Frame::trailers(ok_trailers()),
        ]))
    }

    /// No message, only the status.
    pub fn error(status: &Status) -> Self {
        Self::new(futures_util::stream::iter([Frame::trailers(
            status.trailers(),
        )]))
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames
            .as_mut()
            .poll_next(cx)
            .map(|frame| frame.map(Ok))
    }
}

/// A gRPC response with this body.
pub fn response(body: GrpcBody) -> Response<GrpcBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metadata::CONTENT_TYPE_GRPC),
    );
    response
}

/// Serves Pub/Sub on `listener` until `shutdown` completes.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    // Same identity as the HTTPS listener, but gRPC needs HTTP/2.
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_connection(shared, stream).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(route(shared, request).await) }
    });
    let _ = http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn route(shared: Arc<Shared>, request: Request<Incoming>) -> Response<GrpcBody> {
    let path = request.uri().path().to_owned();
    if let Err(status) = service::authenticate(&shared, request.headers()) {
        return response(GrpcBody::error(&status));
    }
    let body = request.into_body();
    let answer = match path.as_str() {
        method::SUBSCRIBE => return response(subscribe::start(shared, body)),
        method::GET_TOPIC => match read_unary(body).await {
            Ok(message) => service::get_topic(&shared, &message),
            Err(status) => Err(status),
        },
        method::GET_SCHEMA => match read_unary(body).await {
            Ok(message) => service::get_schema(&shared, &message),
            Err(status) => Err(status),
        },
        method::PUBLISH | method::PUBLISH_STREAM => match read_unary(body).await {
            Ok(message) => service::publish(&shared, &message),
            Err(status) => Err(status),
        },
        method::MANAGED_SUBSCRIBE => Err(Status::new(
            Code::Unimplemented,
            "ManagedSubscribe is not supported by the emulator; use Subscribe",
        )),
        other => Err(Status::new(
            Code::Unimplemented,
            format!("unknown method {other}"),
        )),
    };
    match answer {
        Ok(message) => response(GrpcBody::unary(message)),
        Err(status) => response(GrpcBody::error(&status)),
    }
}

/// Reads the next request message of a call; `Ok(None)` when the caller has finished.
pub async fn next_message(
    body: &mut Incoming,
    decoder: &mut FrameDecoder,
) -> Result<Option<Bytes>, Status> {
    loop {
        match decoder.next_message() {
            Ok(Some(message)) => return Ok(Some(message)),
            Ok(None) => {}
            Err(error) => return Err(Status::new(Code::Internal, error.to_string())),
        }
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
            }
            Some(Err(error)) => {
                return Err(Status::new(
                    Code::Cancelled,
                    format!("reading the request failed: {error}"),
                ));
            }
            None if decoder.has_partial() => {
                return Err(Status::new(
                    Code::Internal,
                    "the request ended inside a message",
                ));
            }
            None => return Ok(None),
        }
    }
}

/// The one request message of a unary call.
async fn read_unary(mut body: Incoming) -> Result<Bytes, Status> {
    let mut decoder = FrameDecoder::default();
    next_message(&mut body, &mut decoder)
        .await?
        .ok_or_else(|| Status::new(Code::InvalidArgument, "the request carries no message"))
}
