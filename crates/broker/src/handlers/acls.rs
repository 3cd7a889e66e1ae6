//! CreateAcls, DescribeAcls and DeleteAcls: ACLs kept in the security store (written durably
//! before the answer). Without an authorizer they answer SECURITY_DISABLED, as Kafka; creating
//! and deleting need ALTER on the cluster, describing DESCRIBE.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{
    AclBinding, AclFilter, AclOperation, PatternType, PermissionType, ResourceType, CLUSTER_NAME,
};

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn error(code: ResponseError, message: impl Into<String>) -> (i16, Option<StrBytes>) {
    (code.code(), Some(str_bytes(message)))
}

/// The filter of a DescribeAcls or DeleteAcls request, or why it is not one.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or(format!("Invalid resource type filter {resource_type}"))?,
        resource_name: resource_name.map(|n| n.to_string()),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or(format!("Invalid pattern type filter {pattern_type}"))?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: AclOperation::from_code(operation)
            .ok_or(format!("Invalid operation filter {operation}"))?,
        permission: PermissionType::from_code(permission)
            .ok_or(format!("Invalid permission type filter {permission}"))?,
    })
}

/// Why the client may not use the ACL APIs (no authorizer, or `op` on the cluster refused).
fn refusal(broker: &Broker, ctx: &Ctx, op: AclOperation) -> Option<(i16, Option<StrBytes>)> {
    if !broker.authorizer.enabled() {
        Some(error(ResponseError::SecurityDisabled, NO_AUTHORIZER))
    } else if !ctx.allowed(broker, op, ResourceType::Cluster, CLUSTER_NAME) {
        Some(error(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

pub fn create(broker: &Broker, ctx: &Ctx, req: CreateAclsRequest) -> CreateAclsResponse {
    let refusal = refusal(broker, ctx, AclOperation::Alter);
    let mut outcomes: Vec<Result<AclBinding, (i16, Option<StrBytes>)>> = req
        .creations
        .iter()
        .map(|c| {
            if let Some(e) = &refusal {
                return Err(e.clone());
            }
            let binding = (|| {
                Some(AclBinding {
                    resource_type: ResourceType::from_code(c.resource_type)?,
                    resource_name: c.resource_name.to_string(),
                    pattern_type: PatternType::from_code(c.resource_pattern_type)?,
                    principal: c.principal.to_string(),
                    host: c.host.to_string(),
                    operation: AclOperation::from_code(c.operation)?,
                    permission: PermissionType::from_code(c.permission_type)?,
                })
            })();
            let binding = binding.ok_or_else(|| {
                error(
                    ResponseError::InvalidRequest,
                    "Invalid ACL: an unknown enum value",
                )
            })?;
            match binding.invalid() {
                Some(reason) => Err(error(ResponseError::InvalidRequest, reason)),
                None => Ok(binding),
            }
        })
        .collect();
    let valid: Vec<AclBinding> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().cloned())
        .collect();
    if !valid.is_empty() {
        let written = broker.security.update(|image| {
            let mut changed = false;
            for b in valid {
                changed |= image.acls.add(b);
            }
            ((), changed)
        });
        if let Err(e) = written {
            tracing::error!(error = %e, "writing ACLs failed");
            for o in outcomes.iter_mut().filter(|o| o.is_ok()) {
                *o = Err(error(
                    ResponseError::KafkaStorageError,
                    "writing the ACL store failed",
                ));
            }
        }
    }
    CreateAclsResponse::default().with_results(
        outcomes
            .into_iter()
            .map(|o| match o {
                Ok(_) => AclCreationResult::default(),
                Err((code, message)) => AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(message),
            })
            .collect(),
    )
}

pub fn describe(broker: &Broker, ctx: &Ctx, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let response = DescribeAclsResponse::default();
    let refuse = |(code, message): (i16, Option<StrBytes>)| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    if let Some(e) = refusal(broker, ctx, AclOperation::Describe) {
        return refuse(e);
    }
    let f = match filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(reason) => return refuse(error(ResponseError::InvalidRequest, reason)),
    };
    let image = broker.security.image();
    let mut by_resource: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in image.acls.matching(&f) {
        by_resource
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    response.with_resources(
        by_resource
            .into_iter()
            .map(|((t, name, pattern), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(t.code())
                    .with_resource_name(str_bytes(name))
                    .with_pattern_type(pattern.code())
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub fn delete(broker: &Broker, ctx: &Ctx, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let refusal = refusal(broker, ctx, AclOperation::Alter);
    let filters: Vec<Result<AclFilter, (i16, Option<StrBytes>)>> = req
        .filters
        .iter()
        .map(|f| match &refusal {
            Some(e) => Err(e.clone()),
            None => filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
            .map_err(|reason| error(ResponseError::InvalidRequest, reason)),
        })
        .collect();
    // Every filter matches against the ACLs as they were before the request.
    let deleted = broker.security.update(|image| {
        let before = image.acls.clone();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| match f {
                Ok(f) => before.matching(f).cloned().collect(),
                Err(_) => Vec::new(),
            })
            .collect();
        let mut changed = false;
        for b in matched.iter().flatten() {
            changed |= image.acls.remove(b);
        }
        (matched, changed)
    });
    let results = match deleted {
        Ok(matched) => filters
            .into_iter()
            .zip(matched)
            .map(|(f, bindings)| match f {
                Err((code, message)) => DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(message),
                Ok(_) => DeleteAclsFilterResult::default().with_matching_acls(
                    bindings
                        .into_iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(str_bytes(b.resource_name))
                                .with_pattern_type(b.pattern_type.code())
                                .with_principal(str_bytes(b.principal))
                                .with_host(str_bytes(b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                ),
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "writing ACLs failed");
            let (code, message) = error(
                ResponseError::KafkaStorageError,
                "writing the ACL store failed",
            );
            filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect()
        }
    };
    DeleteAclsResponse::default().with_filter_results(results)
}
