//! The authorizer: whether a principal may do an operation on a resource, from the ACLs in the
//! security store, `super.users` and `allow.everyone.if.no.acl.found` (Kafka's
//! StandardAuthorizer semantics, see [`super::acl`]). Without `authorizer.class.name`
//! everything is allowed, as in Kafka.

use std::sync::Arc;

use super::acl::{AclImage, AclOperation, Decision, ResourceType};
use super::store::SecurityStore;
use crate::config::security::AuthorizerConfig;

#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    store: Arc<SecurityStore>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig, store: Arc<SecurityStore>) -> Authorizer {
        Authorizer { config, store }
    }

    /// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED otherwise).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Whether `principal` may do `op` on some resource of the type (Kafka's
    /// `authorizeByResourceType`: an applicable ALLOW exists, and no DENY covers every name).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        self.decide(principal, |acls| {
            acls.authorize_any(principal, host, op, resource_type)
        })
    }

    /// Super users and a broker without an authorizer may do anything; otherwise the ACLs
    /// decide, and `allow.everyone.if.no.acl.found` where none applies.
    fn decide(&self, principal: &str, acls: impl FnOnce(&AclImage) -> Decision) -> bool {
        if !self.config.enabled || self.config.super_users.iter().any(|u| u == principal) {
            return true;
        }
        match acls(&self.store.image().acls) {
            Decision::Allowed => true,
            Decision::Denied => false,
            Decision::NoAcls => self.config.allow_everyone_if_no_acl_found,
        }
    }

    /// Whether `principal`, connected from `host` (an IP address), may do `op` on the resource.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(principal, |acls| {
            acls.authorize(principal, host, op, resource_type, name)
        })
    }
}
