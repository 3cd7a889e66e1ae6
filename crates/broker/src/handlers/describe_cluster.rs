//! DescribeCluster: this broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Ctx};
use crate::broker::Broker;

pub fn handle(broker: &Broker, ctx: &Ctx, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let me = BrokerId(broker.config.broker_id);
    let (host, port) = broker.advertised_for(&ctx.listener);
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&broker.cluster_id))
        .with_controller_id(me)
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(i32::MIN)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(me)
            .with_host(str_bytes(host))
            .with_port(port as i32)])
}
