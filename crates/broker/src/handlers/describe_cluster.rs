//! DescribeCluster: the brokers (this one when alone, the registered ones in a cluster) and
//! the controller clients are told of.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use kafka_protocol::ResponseError;

pub fn handle(broker: &Broker, ctx: &Ctx, req: DescribeClusterRequest) -> DescribeClusterResponse {
    if !ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_controller_id(BrokerId(-1))
            .with_cluster_authorized_operations(i32::MIN);
    }
    let operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(broker, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(operations)
        .with_brokers(
            broker
                .brokers_for(&ctx.listener)
                .into_iter()
                .map(|(id, host, port, rack)| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(id))
                        .with_host(str_bytes(host))
                        .with_port(port as i32)
                        .with_rack(rack.map(str_bytes))
                })
                .collect(),
        )
}
