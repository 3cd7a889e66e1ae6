//! FindCoordinator: this broker coordinates every group (key type 0) and every transactional id
//! (key type 1); other key types are refused with INVALID_REQUEST.
//!
//! Besides consumer groups, librdkafka needs this API advertised before it will compress with
//! LZ4 (it takes FindCoordinator as the sign of a broker with KIP-57's LZ4 framing).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn lookup(
    broker: &Broker,
    ctx: &Ctx,
    key: &str,
    key_type: i8,
) -> Result<(BrokerId, StrBytes, i32), (ResponseError, String)> {
    let listener: &str = &ctx.listener;
    // DESCRIBE on the group or the transactional id.
    let refusal = match key_type {
        KEY_TYPE_GROUP => (!ctx.allowed(broker, AclOperation::Describe, ResourceType::Group, key))
            .then_some(ResponseError::GroupAuthorizationFailed),
        KEY_TYPE_TRANSACTION => (!ctx.allowed(
            broker,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            key,
        ))
        .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        _ => None,
    };
    if let Some(code) = refusal {
        return Err((code, code.to_string()));
    }
    if key_type == KEY_TYPE_TRANSACTION {
        // As Kafka, the transaction state topic is created when first asked for.
        broker
            .txns
            .log()
            .map_err(|e| (e, "The coordinator is not available.".to_string()))?;
    }
    if key_type == KEY_TYPE_GROUP || key_type == KEY_TYPE_TRANSACTION {
        let (host, port) = broker.advertised_for(listener);
        Ok((
            BrokerId(broker.config.broker_id),
            str_bytes(host),
            port as i32,
        ))
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!("Unknown coordinator key type {key_type}"),
        ))
    }
}

pub fn handle(broker: &Broker, ctx: &Ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        for key in req.coordinator_keys {
            let mut c = Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            match lookup(broker, ctx, &c.key, req.key_type) {
                Ok((node, host, port)) => {
                    c.node_id = node;
                    c.host = host;
                    c.port = port;
                }
                Err((code, message)) => {
                    c.error_code = code.code();
                    c.error_message = Some(str_bytes(message));
                }
            }
            response.coordinators.push(c);
        }
        return response;
    }
    match lookup(broker, ctx, &req.key, req.key_type) {
        Ok((node, host, port)) => {
            response.node_id = node;
            response.host = host;
            response.port = port;
        }
        Err((code, message)) => {
            response.error_code = code.code();
            response.node_id = BrokerId(-1);
            response.port = -1;
            if ctx.version >= 1 {
                response.error_message = Some(str_bytes(message));
            }
        }
    }
    response
}
