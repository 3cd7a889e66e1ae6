//! ListGroups, DescribeGroups and DeleteGroups.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub fn list(broker: &Broker, ctx: &Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let mut response = ListGroupsResponse::default();
    // DESCRIBE on the cluster lists every group; otherwise the groups the client may describe.
    let all = ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    for g in broker.groups.list() {
        if !all
            && !ctx.allowed(
                broker,
                AclOperation::Describe,
                ResourceType::Group,
                &g.group_id,
            )
        {
            continue;
        }
        if !states.is_empty() && !states.contains(&g.state.to_ascii_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == g.group_type) {
            continue;
        }
        let mut listed = ListedGroup::default()
            .with_group_id(GroupId(str_bytes(g.group_id)))
            .with_protocol_type(str_bytes(g.protocol_type));
        if ctx.version >= 4 {
            listed.group_state = str_bytes(g.state);
        }
        if ctx.version >= 5 {
            listed.group_type = str_bytes(g.group_type);
        }
        response.groups.push(listed);
    }
    response
}

pub fn describe(broker: &Broker, ctx: &Ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for id in req.groups {
        let mut described = DescribedGroup::default().with_group_id(id.clone());
        if !ctx.allowed(broker, AclOperation::Describe, ResourceType::Group, &id) {
            described.error_code = ResponseError::GroupAuthorizationFailed.code();
            response.groups.push(described);
            continue;
        }
        if req.include_authorized_operations {
            described.authorized_operations =
                ctx.authorized_operations(broker, ResourceType::Group, &id);
        }
        if !broker.groups.owns(&id) {
            described.error_code = ResponseError::NotCoordinator.code();
            response.groups.push(described);
            continue;
        }
        match broker.groups.describe(&id) {
            Some(g) => {
                described.group_state = str_bytes(g.state);
                described.protocol_type = str_bytes(g.protocol_type);
                described.protocol_data = str_bytes(g.protocol);
                described.members = g
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut d = DescribedGroupMember::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_client_id(str_bytes(m.client_id))
                            .with_client_host(str_bytes(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment);
                        if ctx.version >= 4 {
                            d.group_instance_id = m.instance_id.map(str_bytes);
                        }
                        d
                    })
                    .collect();
            }
            None if ctx.version >= 6 => {
                described.error_code = ResponseError::GroupIdNotFound.code();
                described.error_message = Some(str_bytes(format!("Group {} not found.", &*id)));
                described.group_state = str_bytes("Dead");
            }
            None => described.group_state = str_bytes("Dead"),
        }
        response.groups.push(described);
    }
    response
}

pub fn delete(broker: &Broker, ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for id in req.groups_names {
        let error = if ctx.allowed(broker, AclOperation::Delete, ResourceType::Group, &id) {
            broker.groups.delete_group(&id)
        } else {
            Some(ResponseError::GroupAuthorizationFailed)
        };
        response.results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error.map(|e| e.code()).unwrap_or(0)),
        );
    }
    response
}
