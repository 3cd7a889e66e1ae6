//! DescribeCluster: this broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use kafka_protocol::ResponseError;

pub fn handle(broker: &Broker, ctx: &Ctx, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let me = BrokerId(broker.config.broker_id);
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
    let (host, port) = broker.advertised_for(&ctx.listener);
    let operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(broker, ResourceType::Cluster, CLUSTER_NAME)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(me)
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(operations)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(me)
            .with_host(str_bytes(host))
            .with_port(port as i32)])
}
