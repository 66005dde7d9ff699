//! The unary calls (`GetTopic`, `GetSchema`, `Publish`) and call authentication.

use bytes::Bytes;
use hyper::header::HeaderMap;
use pgforce_pubsub_proto::{
    Code, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest, encode_message, metadata,
};

use super::schema::EventSchema;
use super::server::{Status, rpc_id};
use super::topic::{self, Topic, TopicError};
use crate::state::Shared;

/// Checks a call's metadata: a live access token, an instance URL, and the org's id as
/// `tenantid` (15 or 18 characters).
pub fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), Status> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let unauthenticated = |message: String| Status::new(Code::Unauthenticated, message);
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
        TopicError::NotFound(_) => Status::new(Code::NotFound, error.message()),
        TopicError::Unsupported(_) => Status::new(Code::Unimplemented, error.message()),
    }
}

fn decode<M: prost::Message + Default>(message: &Bytes) -> Result<M, Status> {
    M::decode(message.clone()).map_err(|error| {
        Status::new(
            Code::InvalidArgument,
            format!("the request is not a valid message: {error}"),
        )
    })
}

/// `GetTopic`: Change Data Capture topics can be subscribed to, never published on.
pub fn get_topic(shared: &Shared, message: &Bytes) -> Result<Bytes, Status> {
    let request: TopicRequest = decode(message)?;
    let org = shared.org();
    let schema = org.schema();
    let topic = topic::resolve(schema, &request.topic_name).map_err(|e| topic_status(&e))?;
    let schema_id = match topic {
        Topic::Entity(object) => EventSchema::of(schema.object(object)).id,
        // Events of several objects, each with its own schema.
        Topic::AllChanges => String::new(),
    };
    Ok(encode_message(&TopicInfo {
        topic_name: request.topic_name,
        tenant_guid: org.org_id(),
        can_publish: false,
        can_subscribe: true,
        schema_id,
        rpc_id: rpc_id(),
    }))
}

/// `GetSchema`: the schema of any object's change events, by id.
pub fn get_schema(shared: &Shared, message: &Bytes) -> Result<Bytes, Status> {
    let request: SchemaRequest = decode(message)?;
    let org = shared.org();
    let found = org
        .schema()
        .objects()
        .iter()
        .map(EventSchema::of)
        .find(|s| s.id == request.schema_id);
    match found {
        Some(schema) => Ok(encode_message(&SchemaInfo {
            schema_json: schema.json,
            schema_id: schema.id,
            rpc_id: rpc_id(),
        })),
        None => Err(Status::new(
            Code::NotFound,
            format!("schema {} not found", request.schema_id),
        )),
    }
}

/// `Publish` (and `PublishStream`): Change Data Capture topics refuse publishing, and
/// platform events are not supported by the emulator.
pub fn publish(shared: &Shared, message: &Bytes) -> Result<Bytes, Status> {
    let request: pgforce_pubsub_proto::PublishRequest = decode(message)?;
    let org = shared.org();
    match topic::resolve(org.schema(), &request.topic_name) {
        Ok(_) => Err(Status::new(
            Code::PermissionDenied,
            format!(
                "topic {} is a Change Data Capture topic: it cannot be published to",
                request.topic_name
            ),
        )),
        Err(TopicError::Unsupported(name)) if name.starts_with("/event/") => Err(Status::new(
            Code::Unimplemented,
            format!("publishing platform events ({name}) is not supported by the emulator"),
        )),
        Err(error) => Err(topic_status(&error)),
    }
}
