//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, answered by the
//! group coordinator (`crate::group`). JoinGroup and SyncGroup may wait for other members: their
//! answers are pending slots completed when the group moves on.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::group::{JoinArgs, JoinOutcome, Reply, SyncOutcome};
use crate::security::acl::{AclOperation, ResourceType};
use crate::wire::{ConnectionError, Slot};

fn code(e: Option<ResponseError>) -> i16 {
    e.map(|e| e.code()).unwrap_or(0)
}

fn opt_str(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

fn join_response(ctx: &Ctx, o: JoinOutcome) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(code(o.error))
        .with_generation_id(o.generation)
        .with_leader(str_bytes(o.leader))
        .with_member_id(str_bytes(o.member_id))
        .with_members(
            o.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_metadata(metadata);
                    if ctx.version >= 5 {
                        m.group_instance_id = instance.map(str_bytes);
                    }
                    m
                })
                .collect(),
        );
    if ctx.version >= 7 {
        r.protocol_type = o.protocol_type.map(str_bytes);
    }
    r.protocol_name = match (ctx.version >= 7, o.protocol_name) {
        (true, name) => name.map(str_bytes),
        // Before v7 the name is not nullable.
        (false, name) => Some(str_bytes(name.unwrap_or_default())),
    };
    if ctx.version >= 9 {
        r.skip_assignment = o.skip_assignment;
    }
    r
}

fn sync_response(ctx: &Ctx, o: SyncOutcome) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default()
        .with_error_code(code(o.error))
        .with_assignment(o.assignment);
    if ctx.version >= 5 {
        r.protocol_type = o.protocol_type.map(str_bytes);
        r.protocol_name = o.protocol_name.map(str_bytes);
    }
    r
}

/// Answers now, or spawns a task that answers when the coordinator does.
fn reply<T, R>(
    ctx: Ctx,
    reply: Reply<T>,
    make: fn(&Ctx, T) -> R,
    gone: T,
) -> Result<Slot, ConnectionError>
where
    T: Send + 'static,
    R: kafka_protocol::protocol::Encodable
        + kafka_protocol::protocol::HeaderVersion
        + super::ResponseErrors
        + 'static,
{
    match reply {
        Reply::Now(o) => Ok(Slot::Ready(Some(ctx.encode(&make(&ctx, o))?))),
        Reply::Later(rx) => Ok(Slot::Pending(tokio::spawn(async move {
            let o = rx.await.unwrap_or(gone);
            ctx.encode_later(&make(&ctx, o))
        }))),
    }
}

/// READ on the group, which every classic group API needs.
fn group_refused(broker: &Broker, ctx: &Ctx, group: &str) -> bool {
    !ctx.allowed(broker, AclOperation::Read, ResourceType::Group, group)
}

pub fn join(broker: &Broker, ctx: Ctx, req: JoinGroupRequest) -> Result<Slot, ConnectionError> {
    if group_refused(broker, &ctx, &req.group_id) {
        let refused = JoinOutcome {
            error: Some(ResponseError::GroupAuthorizationFailed),
            generation: -1,
            member_id: req.member_id.to_string(),
            ..Default::default()
        };
        return reply(ctx, Reply::Now(refused.clone()), join_response, refused);
    }
    let args = JoinArgs {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: opt_str(&req.group_instance_id),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if ctx.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let member_id = args.member_id.clone();
    let outcome = broker.groups.join(args);
    let gone = JoinOutcome {
        error: Some(ResponseError::UnknownMemberId),
        generation: -1,
        member_id,
        ..Default::default()
    };
    reply(ctx, outcome, join_response, gone)
}

pub fn sync(broker: &Broker, ctx: Ctx, req: SyncGroupRequest) -> Result<Slot, ConnectionError> {
    if group_refused(broker, &ctx, &req.group_id) {
        let refused = SyncOutcome {
            error: Some(ResponseError::GroupAuthorizationFailed),
            ..Default::default()
        };
        return reply(ctx, Reply::Now(refused.clone()), sync_response, refused);
    }
    let outcome = broker.groups.sync(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.protocol_type.as_deref(),
        req.protocol_name.as_deref(),
        req.assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    );
    let gone = SyncOutcome {
        error: Some(ResponseError::UnknownMemberId),
        ..Default::default()
    };
    reply(ctx, outcome, sync_response, gone)
}

pub fn heartbeat(broker: &Broker, ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    if group_refused(broker, ctx, &req.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let error = broker.groups.heartbeat(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code(error))
}

pub fn leave(broker: &Broker, ctx: &Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_str(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    if group_refused(broker, ctx, &req.group_id) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    match broker.groups.leave(&req.group_id, &members) {
        Err(e) => response.error_code = e.code(),
        Ok(errors) if ctx.version >= 3 => {
            response.members = members
                .into_iter()
                .zip(errors)
                .map(|((id, instance), e)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(code(e))
                })
                .collect();
        }
        Ok(errors) => response.error_code = code(errors.into_iter().next().flatten()),
    }
    response
}
