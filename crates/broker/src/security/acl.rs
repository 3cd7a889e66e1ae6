//! Kafka's ACL model: a binding is a resource pattern (type, name, LITERAL or PREFIXED) and an
//! entry (principal, host, operation, ALLOW or DENY). The numbers are the wire protocol's.
//!
//! Authorization (as Kafka's StandardAuthorizer): the ACLs that apply to a resource are the
//! LITERAL ones naming it, the LITERAL `*` ones, and the PREFIXED ones whose name starts it.
//! Of those, an entry matches when its principal is the client's (or `User:*`), its host the
//! client's address (or `*`), and its operation the one asked, `ALL`, or (for ALLOW only) one
//! that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS). A matching DENY refuses, whatever else matches; otherwise a matching
//! ALLOW permits. When no ACL applies to the resource at all, `allow.everyone.if.no.acl.found`
//! decides.

use std::collections::{BTreeSet, HashMap};

use super::store::{Decoder, Encoder};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $n:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $n),* }
            }
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($n => Some($name::$variant),)* _ => None }
            }
            /// Kafka's name (`TOPIC`, `PREFIXED`, `READ`, `ALLOW`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
            /// Parses Kafka's name as its tools accept it: `TRANSACTIONAL_ID`,
            /// `transactional-id`, `TransactionalId`.
            pub fn parse(text: &str) -> Option<$name> {
                let wanted = upper_snake(text);
                [$($name::$variant),*].into_iter().find(|v| v.name() == wanted)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// What an ACL protects.
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

wire_enum!(
    /// How an ACL's resource name matches.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// What a client does to a resource.
    AclOperation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

wire_enum!(
    /// Whether an ACL permits or refuses.
    PermissionType {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// `IdempotentWrite`, `idempotent-write`, `IDEMPOTENT_WRITE` -> `IDEMPOTENT_WRITE`.
fn upper_snake(text: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in text.trim().chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase();
        out.push(if c == '-' {
            '_'
        } else {
            c.to_ascii_uppercase()
        });
    }
    out
}

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclBinding {
    /// Why a binding cannot be stored (Kafka answers INVALID_REQUEST with this), if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Some(format!("Invalid resourceType {}", self.resource_type));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some(format!("Invalid patternType {}", self.pattern_type));
        }
        if matches!(self.operation, AclOperation::Any) {
            return Some(format!("Invalid operation {}", self.operation));
        }
        if matches!(self.permission, PermissionType::Any) {
            return Some(format!("Invalid permissionType {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".to_string());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => {
                return Some(format!(
                    "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
                    self.principal
                ))
            }
        }
        if self.host.is_empty() {
            return Some("Host should not be empty".to_string());
        }
        None
    }

    pub(super) fn encode(&self, e: &mut Encoder) {
        e.u8(self.resource_type.code() as u8);
        e.str(&self.resource_name);
        e.u8(self.pattern_type.code() as u8);
        e.str(&self.principal);
        e.str(&self.host);
        e.u8(self.operation.code() as u8);
        e.u8(self.permission.code() as u8);
    }

    pub(super) fn decode(d: &mut Decoder) -> Option<AclBinding> {
        Some(AclBinding {
            resource_type: ResourceType::from_code(d.u8()? as i8)?,
            resource_name: d.str()?,
            pattern_type: PatternType::from_code(d.u8()? as i8)?,
            principal: d.str()?,
            host: d.str()?,
            operation: AclOperation::from_code(d.u8()? as i8)?,
            permission: PermissionType::from_code(d.u8()? as i8)?,
        })
    }
}

/// Which bindings a DescribeAcls or DeleteAcls request means. None: any.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource_type =
            self.resource_type == ResourceType::Any || self.resource_type == b.resource_type;
        let pattern = match (self.pattern_type, &self.resource_name) {
            (PatternType::Any, None) => true,
            (PatternType::Any, Some(name)) => *name == b.resource_name,
            // MATCH: the bindings that would apply to the named resource.
            (PatternType::Match, None) => true,
            (PatternType::Match, Some(name)) => match b.pattern_type {
                PatternType::Literal => b.resource_name == *name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            },
            (wanted, name) => {
                wanted == b.pattern_type && name.as_ref().is_none_or(|n| *n == b.resource_name)
            }
        };
        let operation = self.operation == AclOperation::Any || self.operation == b.operation;
        let permission = self.permission == PermissionType::Any || self.permission == b.permission;
        resource_type
            && pattern
            && operation
            && permission
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
    }
}

/// What authorization needs of a binding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: PermissionType,
}

impl Entry {
    fn of(b: &AclBinding) -> Entry {
        Entry {
            principal: b.principal.clone(),
            host: b.host.clone(),
            operation: b.operation,
            permission: b.permission,
        }
    }

    fn applies(&self, principal: &str, host: &str, op: AclOperation) -> bool {
        if self.principal != principal && self.principal != WILDCARD_PRINCIPAL {
            return false;
        }
        if self.host != host && self.host != WILDCARD {
            return false;
        }
        if self.operation == op || self.operation == AclOperation::All {
            return true;
        }
        // Implied operations count for ALLOW only.
        self.permission == PermissionType::Allow
            && match op {
                AclOperation::Describe => matches!(
                    self.operation,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                AclOperation::DescribeConfigs => self.operation == AclOperation::AlterConfigs,
                _ => false,
            }
    }
}

/// Every ACL, indexed for authorization.
#[derive(Debug, Clone, Default)]
pub struct AclImage {
    bindings: BTreeSet<AclBinding>,
    /// LITERAL bindings (the `*` wildcard among them) by resource.
    literal: HashMap<(ResourceType, String), Vec<Entry>>,
    /// PREFIXED bindings by resource type and prefix.
    prefixed: HashMap<(ResourceType, String), Vec<Entry>>,
    /// The lengths of the prefixes present, per resource type: a lookup tries only those.
    prefix_lens: HashMap<ResourceType, BTreeSet<usize>>,
}

/// The outcome of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    /// No ACL applies to the resource.
    NoAcls,
}

impl Decision {
    /// What applicable ACLs (`any`) with an ALLOW and no DENY among them (`allowed`) decide.
    fn of(any: bool, allowed: bool) -> Decision {
        match (any, allowed) {
            (false, _) => Decision::NoAcls,
            (true, true) => Decision::Allowed,
            (true, false) => Decision::Denied,
        }
    }
}

impl AclImage {
    /// Adds a binding; false when it was there already.
    pub fn add(&mut self, b: AclBinding) -> bool {
        if self.bindings.contains(&b) {
            return false;
        }
        let key = (b.resource_type, b.resource_name.clone());
        match b.pattern_type {
            PatternType::Prefixed => {
                self.prefix_lens
                    .entry(b.resource_type)
                    .or_default()
                    .insert(b.resource_name.len());
                self.prefixed.entry(key).or_default().push(Entry::of(&b));
            }
            _ => self.literal.entry(key).or_default().push(Entry::of(&b)),
        }
        self.bindings.insert(b);
        true
    }

    /// Removes a binding; false when it was not there.
    pub fn remove(&mut self, b: &AclBinding) -> bool {
        if !self.bindings.remove(b) {
            return false;
        }
        let key = (b.resource_type, b.resource_name.clone());
        let index = match b.pattern_type {
            PatternType::Prefixed => &mut self.prefixed,
            _ => &mut self.literal,
        };
        let entry = Entry::of(b);
        if let Some(entries) = index.get_mut(&key) {
            entries.retain(|e| *e != entry);
            if entries.is_empty() {
                index.remove(&key);
                if b.pattern_type == PatternType::Prefixed {
                    let len = b.resource_name.len();
                    let still_used = self
                        .prefixed
                        .keys()
                        .any(|(t, p)| *t == b.resource_type && p.len() == len);
                    if !still_used {
                        if let Some(lens) = self.prefix_lens.get_mut(&b.resource_type) {
                            lens.remove(&len);
                        }
                    }
                }
            }
        }
        true
    }

    /// Every binding, in a stable order.
    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The bindings a filter selects.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(move |b| filter.matches(b))
    }

    /// Whether `principal` from `host` may do `op` on some resource of the type: an ALLOW that
    /// applies exists and no DENY applies to every name (a LITERAL `*` or an empty PREFIXED).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> Decision {
        let mut any = false;
        let mut allowed = false;
        for b in self
            .bindings
            .iter()
            .filter(|b| b.resource_type == resource_type)
        {
            any = true;
            let entry = Entry::of(b);
            if !entry.applies(principal, host, op) {
                continue;
            }
            let covers_all = (b.pattern_type == PatternType::Literal
                && b.resource_name == WILDCARD)
                || (b.pattern_type == PatternType::Prefixed && b.resource_name.is_empty());
            match b.permission {
                PermissionType::Deny if covers_all => return Decision::Denied,
                PermissionType::Allow => allowed = true,
                _ => {}
            }
        }
        Decision::of(any, allowed)
    }

    /// Whether `principal` from `host` may do `op` on the named resource.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        let mut any = false;
        let mut allowed = false;
        let mut consider = |entries: Option<&Vec<Entry>>| -> bool {
            for e in entries.into_iter().flatten() {
                any = true;
                if e.applies(principal, host, op) {
                    if e.permission == PermissionType::Deny {
                        return true;
                    }
                    allowed = true;
                }
            }
            false
        };
        fn lookup<'a>(
            index: &'a HashMap<(ResourceType, String), Vec<Entry>>,
            resource_type: ResourceType,
            name: &str,
        ) -> Option<&'a Vec<Entry>> {
            index.get(&(resource_type, name.to_string()))
        }
        if !self.literal.is_empty()
            && (consider(lookup(&self.literal, resource_type, name))
                || consider(lookup(&self.literal, resource_type, WILDCARD)))
        {
            return Decision::Denied;
        }
        if let Some(lens) = self.prefix_lens.get(&resource_type) {
            for &len in lens.iter().take_while(|l| **l <= name.len()) {
                if name.is_char_boundary(len)
                    && consider(lookup(&self.prefixed, resource_type, &name[..len]))
                {
                    return Decision::Denied;
                }
            }
        }
        Decision::of(any, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: AclOperation,
        permission: PermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    #[test]
    fn literal_prefixed_wildcard_deny_wins_and_implied_describe() {
        use AclOperation::*;
        use PatternType::*;
        use PermissionType::*;
        use ResourceType::*;
        let mut image = AclImage::default();
        assert!(image.add(acl(Topic, "orders", Literal, "User:alice", Read, Allow)));
        assert!(!image.add(acl(Topic, "orders", Literal, "User:alice", Read, Allow)));
        image.add(acl(Topic, "pay", Prefixed, "User:bob", Write, Allow));
        image.add(acl(Topic, "payroll", Literal, "User:bob", Write, Deny));
        image.add(acl(Group, "*", Literal, "User:*", Read, Allow));
        fn auth(
            image: &AclImage,
            p: &str,
            op: AclOperation,
            rt: ResourceType,
            n: &str,
        ) -> Decision {
            image.authorize(p, "10.0.0.1", op, rt, n)
        }
        assert_eq!(
            auth(&image, "User:alice", Read, Topic, "orders"),
            Decision::Allowed
        );
        assert_eq!(
            auth(&image, "User:alice", Describe, Topic, "orders"),
            Decision::Allowed
        );
        assert_eq!(
            auth(&image, "User:alice", Write, Topic, "orders"),
            Decision::Denied
        );
        assert_eq!(
            auth(&image, "User:bob", Read, Topic, "orders"),
            Decision::Denied
        );
        assert_eq!(
            auth(&image, "User:bob", Write, Topic, "payments"),
            Decision::Allowed
        );
        assert_eq!(
            auth(&image, "User:bob", Write, Topic, "payroll"),
            Decision::Denied
        );
        assert_eq!(
            auth(&image, "User:bob", Write, Topic, "pa"),
            Decision::NoAcls
        );
        assert_eq!(
            auth(&image, "User:carol", Read, Group, "g1"),
            Decision::Allowed
        );
        assert_eq!(
            auth(&image, "User:carol", Read, Topic, "other"),
            Decision::NoAcls
        );
        // A DENY of an operation does not deny the operations it would imply.
        image.add(acl(Topic, "orders", Literal, "User:alice", Write, Deny));
        assert_eq!(
            image.authorize("User:alice", "h", Describe, Topic, "orders"),
            Decision::Allowed
        );
        // Host restriction.
        let mut hosted = acl(Topic, "t", Literal, "User:alice", All, Allow);
        hosted.host = "10.0.0.9".into();
        image.add(hosted.clone());
        assert_eq!(
            auth(&image, "User:alice", Write, Topic, "t"),
            Decision::Denied
        );
        assert_eq!(
            image.authorize("User:alice", "10.0.0.9", Write, Topic, "t"),
            Decision::Allowed
        );
        assert!(image.remove(&hosted));
        assert!(!image.remove(&hosted));
        assert_eq!(
            auth(&image, "User:alice", Write, Topic, "t"),
            Decision::NoAcls
        );
        assert!(image.remove(&acl(Topic, "pay", Prefixed, "User:bob", Write, Allow)));
        assert_eq!(
            auth(&image, "User:bob", Write, Topic, "payments"),
            Decision::NoAcls
        );
        assert!(image.prefix_lens[&Topic].is_empty());
    }

    #[test]
    fn filters_select_as_kafka_does() {
        use AclOperation::*;
        use PatternType::*;
        use PermissionType::*;
        use ResourceType::*;
        let mut image = AclImage::default();
        image.add(acl(Topic, "orders", Literal, "User:alice", Read, Allow));
        image.add(acl(Topic, "*", Literal, "User:bob", Read, Allow));
        image.add(acl(Topic, "ord", Prefixed, "User:bob", Write, Allow));
        image.add(acl(Group, "orders", Literal, "User:bob", Read, Allow));
        let filter = |rt, name: Option<&str>, pattern| AclFilter {
            resource_type: rt,
            resource_name: name.map(str::to_string),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        };
        let count = |f: AclFilter| image.matching(&f).count();
        assert_eq!(count(filter(ResourceType::Any, None, PatternType::Any)), 4);
        assert_eq!(count(filter(Topic, Some("orders"), PatternType::Any)), 1);
        assert_eq!(count(filter(Topic, Some("orders"), Match)), 3);
        assert_eq!(count(filter(Topic, None, Prefixed)), 1);
        assert_eq!(count(filter(ResourceType::Any, Some("orders"), Literal)), 2);
        assert!(acl(Topic, "", Literal, "User:a", Read, Allow)
            .invalid()
            .is_some());
        assert!(acl(Topic, "x", Match, "User:a", Read, Allow)
            .invalid()
            .is_some());
        assert!(acl(Topic, "x", Literal, "alice", Read, Allow)
            .invalid()
            .is_some());
        assert!(acl(Topic, "x", Literal, "User:a", Read, Allow)
            .invalid()
            .is_none());
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(TransactionalId)
        );
        assert_eq!(
            AclOperation::parse("IdempotentWrite"),
            Some(IdempotentWrite)
        );
        assert_eq!(
            ResourceType::parse("TransactionalId"),
            Some(TransactionalId)
        );
        assert_eq!(AclOperation::parse("Reed"), None);
        assert_eq!(
            AclOperation::parse("idempotent_write"),
            Some(IdempotentWrite)
        );
    }
}
