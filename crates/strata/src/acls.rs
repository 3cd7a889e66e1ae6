//! `strata acls`: kafka-acls.sh over the Kafka protocol (CreateAcls, DescribeAcls, DeleteAcls),
//! with its flags and output: `--add`, `--remove` and `--list`; principals and hosts to allow
//! or deny; `--operation`s; resources `--topic`, `--group`, `--cluster`, `--transactional-id`
//! with `--resource-pattern-type`; and the `--producer` / `--consumer` conveniences. `--remove`
//! does not ask for confirmation (`--force` is accepted).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_broker::security::acl::{
    AclOperation, PatternType, PermissionType, ResourceType, CLUSTER_NAME,
};

use crate::client::{error_text, Client};

#[derive(Debug, Args)]
pub struct AclsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*).
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// Add the ACLs.
    #[arg(long)]
    pub add: bool,
    /// Remove the ACLs matching.
    #[arg(long)]
    pub remove: bool,
    /// List the ACLs matching (all when no resource is named).
    #[arg(long)]
    pub list: bool,
    /// Principals allowed (`User:alice`).
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// Principals denied.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// Hosts allowed (default: `*` when principals are allowed).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Hosts denied (default: `*` when principals are denied).
    #[arg(long)]
    pub deny_host: Vec<String>,
    /// With --list: only this principal's ACLs.
    #[arg(long)]
    pub principal: Vec<String>,
    /// Operations (Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All); default All.
    #[arg(long)]
    pub operation: Vec<String>,
    /// Topics (`*` for all).
    #[arg(long)]
    pub topic: Vec<String>,
    /// Consumer groups (`*` for all).
    #[arg(long)]
    pub group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// Transactional ids (`*` for all).
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// LITERAL or PREFIXED to add; ANY or MATCH also to list or remove.
    #[arg(long, default_value = "LITERAL")]
    pub resource_pattern_type: String,
    /// The ACLs a producer needs: WRITE, DESCRIBE and CREATE on the topics (and WRITE,
    /// DESCRIBE on --transactional-id, IDEMPOTENT_WRITE on the cluster with --idempotent).
    #[arg(long)]
    pub producer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster.
    #[arg(long)]
    pub idempotent: bool,
    /// The ACLs a consumer needs: READ and DESCRIBE on the topics, READ on the group.
    #[arg(long)]
    pub consumer: bool,
    /// Do not ask for confirmation (none is asked).
    #[arg(long)]
    pub force: bool,
}

type Resource = (ResourceType, String);

fn resources(args: &AclsArgs) -> Vec<Resource> {
    let mut out: Vec<Resource> = Vec::new();
    out.extend(args.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
    out.extend(args.group.iter().map(|g| (ResourceType::Group, g.clone())));
    out.extend(
        args.transactional_id
            .iter()
            .map(|t| (ResourceType::TransactionalId, t.clone())),
    );
    if args.cluster {
        out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    out
}

fn operations(args: &AclsArgs) -> Result<Vec<AclOperation>> {
    if args.operation.is_empty() {
        return Ok(vec![AclOperation::All]);
    }
    args.operation
        .iter()
        .map(|o| AclOperation::parse(o).with_context(|| format!("unknown operation {o}")))
        .collect()
}

/// The operations of each resource the command means: the --producer and --consumer
/// conveniences, or --operation on every resource.
fn resource_operations(args: &AclsArgs) -> Result<BTreeMap<Resource, Vec<AclOperation>>> {
    use AclOperation::*;
    let mut out: BTreeMap<Resource, Vec<AclOperation>> = BTreeMap::new();
    if args.producer || args.consumer {
        if args.consumer && args.group.is_empty() {
            bail!("With --consumer you must specify a --group");
        }
        for (t, name) in resources(args) {
            let ops: &[AclOperation] = match t {
                ResourceType::Topic if args.producer && args.consumer => {
                    &[Write, Describe, Create, Read]
                }
                ResourceType::Topic if args.producer => &[Write, Describe, Create],
                ResourceType::Topic => &[Read, Describe],
                ResourceType::TransactionalId if args.producer => &[Write, Describe],
                ResourceType::Group if args.consumer => &[Read],
                _ => &[],
            };
            if !ops.is_empty() {
                out.entry((t, name)).or_default().extend_from_slice(ops);
            }
        }
        if args.producer && args.idempotent {
            out.entry((ResourceType::Cluster, CLUSTER_NAME.to_string()))
                .or_default()
                .push(IdempotentWrite);
        }
        return Ok(out);
    }
    let ops = operations(args)?;
    for r in resources(args) {
        out.insert(r, ops.clone());
    }
    Ok(out)
}

/// (principal, host, permission) entries of an --add.
fn entries(args: &AclsArgs) -> Result<Vec<(String, String, PermissionType)>> {
    let mut out = Vec::new();
    for (principals, hosts, permission) in [
        (
            &args.allow_principal,
            &args.allow_host,
            PermissionType::Allow,
        ),
        (&args.deny_principal, &args.deny_host, PermissionType::Deny),
    ] {
        let hosts: Vec<String> = if hosts.is_empty() {
            vec!["*".to_string()]
        } else {
            hosts.clone()
        };
        for p in principals {
            if !p.contains(':') {
                bail!("Could not parse principal from `{p}` (expected Type:name, e.g. User:alice)");
            }
            for h in &hosts {
                out.push((p.clone(), h.clone(), permission));
            }
        }
    }
    Ok(out)
}

fn pattern_text(t: ResourceType, name: &str, p: PatternType) -> String {
    format!("ResourcePattern(resourceType={t}, name={name}, patternType={p})")
}

fn entry_text(principal: &str, host: &str, op: i8, permission: i8) -> String {
    format!(
        "(principal={principal}, host={host}, operation={}, permissionType={})",
        AclOperation::from_code(op).map_or("UNKNOWN", |o| o.name()),
        PermissionType::from_code(permission).map_or("UNKNOWN", |p| p.name()),
    )
}

/// One entry as kafka-acls.sh prints it, indented under its resource.
fn print_entry(principal: &str, host: &str, op: i8, permission: i8) {
    println!(" \t{} ", entry_text(principal, host, op, permission));
}

/// Prints the ACLs of each resource matching the filter, as kafka-acls.sh does.
async fn list(
    client: &mut Client,
    resource: Option<&Resource>,
    pattern: PatternType,
    principal: Option<&str>,
) -> Result<()> {
    let (rt, name) = match resource {
        Some((t, n)) => (*t, Some(n.clone())),
        None => (ResourceType::Any, None),
    };
    let pattern = if resource.is_none() {
        PatternType::Any
    } else {
        pattern
    };
    let response = client
        .send(
            DescribeAclsRequest::default()
                .with_resource_type_filter(rt.code())
                .with_resource_name_filter(name.map(StrBytes::from_string))
                .with_pattern_type_filter(pattern.code())
                .with_principal_filter(principal.map(|p| StrBytes::from_string(p.to_string())))
                .with_host_filter(None)
                .with_operation(AclOperation::Any.code())
                .with_permission_type(PermissionType::Any.code()),
        )
        .await?;
    if response.error_code != 0 {
        bail!(
            "Error while listing ACLs: {}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    for r in response.resources {
        let (Some(t), Some(p)) = (
            ResourceType::from_code(r.resource_type),
            PatternType::from_code(r.pattern_type),
        ) else {
            continue;
        };
        println!(
            "Current ACLs for resource `{}`: ",
            pattern_text(t, r.resource_name.as_str(), p)
        );
        for a in r.acls {
            print_entry(&a.principal, &a.host, a.operation, a.permission_type);
        }
        println!();
    }
    Ok(())
}

pub async fn run(args: AclsArgs) -> Result<()> {
    if [args.add, args.remove, args.list]
        .iter()
        .filter(|b| **b)
        .count()
        != 1
    {
        bail!("Command must include exactly one action: --list, --add, --remove.");
    }
    let pattern = PatternType::parse(&args.resource_pattern_type).with_context(|| {
        format!(
            "unknown resource pattern type {}",
            args.resource_pattern_type
        )
    })?;
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    if args.list {
        let principal = args.principal.first().map(String::as_str);
        let named = resources(&args);
        if named.is_empty() {
            return list(&mut client, None, pattern, principal).await;
        }
        for r in &named {
            list(&mut client, Some(r), pattern, principal).await?;
        }
        return Ok(());
    }
    let by_resource = resource_operations(&args)?;
    if by_resource.is_empty() {
        bail!("You must specify one of: --topic, --cluster, --group, --transactional-id");
    }
    if args.add {
        if !matches!(pattern, PatternType::Literal | PatternType::Prefixed) {
            bail!(
                "A '--resource-pattern-type' value of '{pattern}' is not valid when adding acls."
            );
        }
        let entries = entries(&args)?;
        if entries.is_empty() {
            bail!("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.");
        }
        for ((t, name), ops) in &by_resource {
            let mut creations = Vec::new();
            println!(
                "Adding ACLs for resource `{}`: ",
                pattern_text(*t, name, pattern)
            );
            for (principal, host, permission) in &entries {
                for op in ops {
                    println!(
                        " \t{} ",
                        entry_text(principal, host, op.code(), permission.code())
                    );
                    creations.push(
                        AclCreation::default()
                            .with_resource_type(t.code())
                            .with_resource_name(StrBytes::from_string(name.clone()))
                            .with_resource_pattern_type(pattern.code())
                            .with_principal(StrBytes::from_string(principal.clone()))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_operation(op.code())
                            .with_permission_type(permission.code()),
                    );
                }
            }
            println!();
            let response = client
                .send(CreateAclsRequest::default().with_creations(creations))
                .await?;
            for r in response.results {
                if r.error_code != 0 {
                    bail!(
                        "Error while adding ACLs: {}",
                        error_text(r.error_code, r.error_message.as_ref())
                    );
                }
            }
        }
        for r in by_resource.keys() {
            list(&mut client, Some(r), pattern, None).await?;
        }
        return Ok(());
    }
    // --remove: the named entries, or every ACL of the resources when none is named.
    let entries = entries(&args)?;
    for ((t, name), ops) in &by_resource {
        let mut filters = Vec::new();
        let base = DeleteAclsFilter::default()
            .with_resource_type_filter(t.code())
            .with_resource_name_filter(Some(StrBytes::from_string(name.clone())))
            .with_pattern_type_filter(pattern.code());
        if entries.is_empty() {
            filters.push(
                base.clone()
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(AclOperation::Any.code())
                    .with_permission_type(PermissionType::Any.code()),
            );
        }
        for (principal, host, permission) in &entries {
            for op in ops {
                filters.push(
                    base.clone()
                        .with_principal_filter(Some(StrBytes::from_string(principal.clone())))
                        .with_host_filter(Some(StrBytes::from_string(host.clone())))
                        .with_operation(op.code())
                        .with_permission_type(permission.code()),
                );
            }
        }
        println!(
            "Removing ACLs for resource `{}`: ",
            pattern_text(*t, name, pattern)
        );
        let response = client
            .send(DeleteAclsRequest::default().with_filters(filters))
            .await?;
        for r in response.filter_results {
            if r.error_code != 0 {
                bail!(
                    "Error while removing ACLs: {}",
                    error_text(r.error_code, r.error_message.as_ref())
                );
            }
            for a in r.matching_acls {
                print_entry(&a.principal, &a.host, a.operation, a.permission_type);
            }
        }
        println!();
    }
    for r in by_resource.keys() {
        list(&mut client, Some(r), pattern, None).await?;
    }
    Ok(())
}
