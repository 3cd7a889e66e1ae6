//! InitProducerId for idempotent producers: a new producer id, or (KIP-360) the same id with its
//! epoch bumped when the producer presents its current id and epoch. Transactional ids need the
//! transaction coordinator, which is not implemented yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub fn handle(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        Some("") => {
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        }
        Some(_) => {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response;
        }
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
