//! DescribeUserScramCredentials and AlterUserScramCredentials: SCRAM credentials kept in the
//! security store, with Kafka's checks (DESCRIBE or ALTER on the cluster; iterations between
//! 4096 and 16384; a user altered once per request). A client sends the salted password, never
//! the password; the broker keeps StoredKey and ServerKey derived from it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::security::scram::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

pub fn describe(
    broker: &Broker,
    ctx: &Ctx,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let response = DescribeUserScramCredentialsResponse::default();
    if !ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return response
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let image = broker.security.image();
    let mut by_user: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
    for ((user, mechanism), c) in &image.scram {
        by_user.entry(user).or_default().push(
            CredentialInfo::default()
                .with_mechanism(mechanism.type_id())
                .with_iterations(c.iterations),
        );
    }
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => by_user
            .into_iter()
            .map(|(user, infos)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user))
                    .with_credential_infos(infos)
            })
            .collect(),
        Some(users) => {
            let mut seen = BTreeSet::new();
            let duplicates: BTreeSet<String> = users
                .iter()
                .filter(|u| !seen.insert(u.name.to_string()))
                .map(|u| u.name.to_string())
                .collect();
            let mut answered = BTreeSet::new();
            users
                .iter()
                .filter(|u| answered.insert(u.name.to_string()))
                .map(|u| {
                    let name = u.name.as_str();
                    let result = DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
                    if duplicates.contains(name) {
                        result
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(str_bytes(
                                "Cannot describe SCRAM credentials for the same user twice in a single request",
                            )))
                    } else if let Some(infos) = by_user.get(name) {
                        result.with_credential_infos(infos.clone())
                    } else {
                        result
                            .with_error_code(ResponseError::ResourceNotFound.code())
                            .with_error_message(Some(str_bytes(
                                "Attempt to describe a user credential that does not exist",
                            )))
                    }
                })
                .collect()
        }
    };
    response.with_results(results)
}

/// One user's change.
enum Change {
    Delete(ScramMechanism),
    Upsert {
        mechanism: ScramMechanism,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

pub fn alter(
    broker: &Broker,
    ctx: &Ctx,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let result = |user: &str, error: Option<(ResponseError, &str)>| {
        let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
        match error {
            Some((code, message)) => r
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
            None => r,
        }
    };
    let names = req
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(req.upsertions.iter().map(|u| u.name.to_string()));
    if !ctx.allowed(
        broker,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        let users: BTreeSet<String> = names.collect();
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .iter()
                .map(|u| {
                    result(
                        u,
                        Some((
                            ResponseError::ClusterAuthorizationFailed,
                            "Cluster authorization failed.",
                        )),
                    )
                })
                .collect(),
        );
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    let mut errors: BTreeMap<String, (ResponseError, &str)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(u, _)| {
            (
                u.clone(),
                (
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                ),
            )
        })
        .collect();
    let mut changes: Vec<(String, Change)> = Vec::new();
    let mechanism_of = |id: i8| ScramMechanism::from_type_id(id);
    for d in &req.deletions {
        let user = d.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        match (user.is_empty(), mechanism_of(d.mechanism)) {
            (true, _) => {
                errors.insert(
                    user,
                    (
                        ResponseError::UnacceptableCredential,
                        "Username must not be empty",
                    ),
                );
            }
            (_, None) => {
                errors.insert(
                    user,
                    (
                        ResponseError::UnsupportedSaslMechanism,
                        "Unknown SCRAM mechanism",
                    ),
                );
            }
            (_, Some(m)) => changes.push((user, Change::Delete(m))),
        }
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        let error = match mechanism_of(u.mechanism) {
            _ if user.is_empty() => Some((
                ResponseError::UnacceptableCredential,
                "Username must not be empty",
            )),
            None => Some((
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism",
            )),
            Some(_) if u.iterations < MIN_ITERATIONS => {
                Some((ResponseError::UnacceptableCredential, "Too few iterations"))
            }
            Some(_) if u.iterations > MAX_ITERATIONS => {
                Some((ResponseError::UnacceptableCredential, "Too many iterations"))
            }
            Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Some((
                ResponseError::UnacceptableCredential,
                "Salt and salted password must not be empty",
            )),
            Some(mechanism) => {
                changes.push((
                    user.clone(),
                    Change::Upsert {
                        mechanism,
                        iterations: u.iterations,
                        salt: u.salt.to_vec(),
                        salted_password: u.salted_password.to_vec(),
                    },
                ));
                None
            }
        };
        if let Some(e) = error {
            errors.insert(user, e);
        }
    }
    let applied = broker.security.update(|image| {
        let mut outcome = Vec::new();
        let mut changed = false;
        for (user, change) in changes {
            match change {
                Change::Delete(m) => {
                    if image.scram.remove(&(user.clone(), m)).is_some() {
                        changed = true;
                        outcome.push((user, None));
                    } else {
                        outcome.push((
                            user,
                            Some((
                                ResponseError::ResourceNotFound,
                                "Attempt to delete a user credential that does not exist",
                            )),
                        ));
                    }
                }
                Change::Upsert {
                    mechanism,
                    iterations,
                    salt,
                    salted_password,
                } => {
                    let credential = mechanism.credential(salt, &salted_password, iterations);
                    image.scram.insert((user.clone(), mechanism), credential);
                    changed = true;
                    outcome.push((user, None));
                }
            }
        }
        (outcome, changed)
    });
    let mut results: Vec<AlterUserScramCredentialsResult> = match applied {
        Ok(outcome) => outcome.iter().map(|(u, e)| result(u, *e)).collect(),
        Err(e) => {
            tracing::error!(error = %e, "writing SCRAM credentials failed");
            counts
                .keys()
                .filter(|u| !errors.contains_key(*u))
                .map(|u| {
                    result(
                        u,
                        Some((
                            ResponseError::KafkaStorageError,
                            "writing the credential store failed",
                        )),
                    )
                })
                .collect()
        }
    };
    results.extend(errors.iter().map(|(u, e)| result(u, Some(*e))));
    AlterUserScramCredentialsResponse::default().with_results(results)
}
