//! InitProducerId: for an idempotent producer a new producer id, or (KIP-360) the same id with
//! its epoch bumped when the producer presents its current id and epoch; for a transactional id,
//! the transaction coordinator's answer (its producer id, the previous holder fenced).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::txn::fenced_for;
use super::Ctx;
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub fn handle(broker: &Broker, ctx: &Ctx, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        Some("") => {
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        }
        Some(id)
            if !ctx.allowed(
                broker,
                AclOperation::Write,
                ResourceType::TransactionalId,
                id,
            ) =>
        {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response;
        }
        Some(id) => {
            let expected = (req.producer_id.0 >= 0 && req.producer_epoch >= 0)
                .then_some((req.producer_id.0, req.producer_epoch));
            match broker
                .txns
                .init_producer_id(id, req.transaction_timeout_ms, expected)
            {
                Ok((pid, epoch)) => {
                    response.producer_id = ProducerId(pid);
                    response.producer_epoch = epoch;
                }
                Err(e) => response.error_code = fenced_for(ctx.version, 4, e).code(),
            }
            return response;
        }
    }
    // An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    if !ctx.allowed(
        broker,
        AclOperation::IdempotentWrite,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) && !broker.authorizer.authorize_any(
        &ctx.principal,
        ctx.host(),
        AclOperation::Write,
        ResourceType::Topic,
    ) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        response.producer_id = req.producer_id;
        response.producer_epoch = req.producer_epoch + 1;
        return response;
    }
    match broker.next_producer_id() {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            response.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    response
}
