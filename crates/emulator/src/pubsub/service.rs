//! The `eventbus.v1.PubSub` service: the unary calls (`GetTopic`, `GetSchema`, `Publish`),
//! the streams (`Subscribe` in `subscribe`, `PublishStream`, `ManagedSubscribe`) and call
//! authentication.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use pgforce_pubsub_proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest,
    PublishResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest, metadata, pub_sub_server,
};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status, Streaming};

use super::schema::EventSchema;
use super::server::{rpc_id, status};
use super::subscribe;
use super::topic::{self, Topic, TopicError};
use crate::state::Shared;

/// A stream of responses, as tonic sends them.
type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Checks a call's metadata: a live access token, an instance URL, and the org's id as
/// `tenantid` (15 or 18 characters).
pub fn authenticate(shared: &Shared, metadata: &MetadataMap) -> Result<(), Status> {
    let value = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let unauthenticated = |message: String| status(Code::Unauthenticated, message);
    let token = value(metadata::ACCESS_TOKEN)
        .ok_or_else(|| unauthenticated("missing accesstoken metadata".to_owned()))?;
    if value(metadata::INSTANCE_URL).is_none() {
        return Err(unauthenticated("missing instanceurl metadata".to_owned()));
    }
    let tenant = value(metadata::TENANT_ID)
        .ok_or_else(|| unauthenticated("missing tenantid metadata".to_owned()))?;
    if shared.sessions().check(token).is_none() {
        return Err(unauthenticated(
            "the access token is invalid or expired".to_owned(),
        ));
    }
    let org_id = shared.org().org_id();
    if tenant != org_id && tenant != &org_id[..15] {
        return Err(unauthenticated(format!(
            "tenantid {tenant} is not this org's id"
        )));
    }
    Ok(())
}

/// The status for a refused topic.
pub fn topic_status(error: &TopicError) -> Status {
    match error {
        TopicError::NotFound(_) => status(Code::NotFound, error.message()),
        TopicError::Unsupported(_) => status(Code::Unimplemented, error.message()),
    }
}

/// The status for an event schema apache-avro refused (a bug of the emulator).
pub fn schema_status(object: &str, error: &apache_avro::Error) -> Status {
    status(
        Code::Internal,
        format!("the change event schema of {object} cannot be built: {error}"),
    )
}

/// The Pub/Sub service of one emulator.
pub struct PubSub {
    shared: Arc<Shared>,
}

impl PubSub {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// `Publish` (and each `PublishStream` request): Change Data Capture topics refuse
    /// publishing, and platform events are not supported by the emulator.
    fn publish_one(&self, request: &PublishRequest) -> Result<PublishResponse, Status> {
        let org = self.shared.org();
        match topic::resolve(org.schema(), &request.topic_name) {
            Ok(_) => Err(status(
                Code::PermissionDenied,
                format!(
                    "topic {} is a Change Data Capture topic: it cannot be published to",
                    request.topic_name
                ),
            )),
            Err(TopicError::Unsupported(name)) if name.starts_with("/event/") => Err(status(
                Code::Unimplemented,
                format!("publishing platform events ({name}) is not supported by the emulator"),
            )),
            Err(error) => Err(topic_status(&error)),
        }
    }
}

#[tonic::async_trait]
impl pub_sub_server::PubSub for PubSub {
    /// `GetTopic`: Change Data Capture topics can be subscribed to, never published on.
    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let request = request.into_inner();
        let org = self.shared.org();
        let schema = org.schema();
        let topic = topic::resolve(schema, &request.topic_name).map_err(|e| topic_status(&e))?;
        let schema_id = match topic {
            Topic::Entity(index) => {
                let object = schema.object(index);
                EventSchema::of(object)
                    .map_err(|e| schema_status(&object.name, &e))?
                    .id
            }
            // Events of several objects, each with its own schema.
            Topic::AllChanges => String::new(),
        };
        Ok(Response::new(TopicInfo {
            topic_name: request.topic_name,
            tenant_guid: org.org_id(),
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id: rpc_id(),
        }))
    }

    /// `GetSchema`: the schema of any object's change events, by id.
    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let request = request.into_inner();
        let org = self.shared.org();
        for object in org.schema().objects() {
            let schema = EventSchema::of(object).map_err(|e| schema_status(&object.name, &e))?;
            if schema.id == request.schema_id {
                return Ok(Response::new(SchemaInfo {
                    schema_json: schema.json,
                    schema_id: schema.id,
                    rpc_id: rpc_id(),
                }));
            }
        }
        Err(status(
            Code::NotFound,
            format!("schema {} not found", request.schema_id),
        ))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        self.publish_one(request.get_ref()).map(Response::new)
    }

    type PublishStreamStream = Responses<PublishResponse>;

    /// `PublishStream`: each request answered as `Publish` answers it; the first refusal
    /// ends the stream.
    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests.message().await?.ok_or_else(|| {
            status(
                Code::InvalidArgument,
                "the request stream carries no message",
            )
        })?;
        let answer = self.publish_one(&first)?;
        Ok(Response::new(Box::pin(futures_util::stream::iter([Ok(
            answer,
        )]))))
    }

    type SubscribeStream = Responses<FetchResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let stream = subscribe::start(Arc::clone(&self.shared), request.into_inner());
        Ok(Response::new(Box::pin(stream)))
    }

    type ManagedSubscribeStream = Responses<ManagedFetchResponse>;

    async fn managed_subscribe(
        &self,
        _request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        Err(status(
            Code::Unimplemented,
            "ManagedSubscribe is not supported by the emulator; use Subscribe",
        ))
    }
}
