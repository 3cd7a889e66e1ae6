//! The authorizer's keys (`authorizer.class.name`, `super.users`,
//! `allow.everyone.if.no.acl.found`), the quota window (`quota.window.num`,
//! `quota.window.size.seconds`) and the connection limits (`max.connections`,
//! `max.connections.per.ip`, `max.connections.per.ip.overrides`, `max.connection.creation.rate`),
//! with Kafka's names and defaults.

use super::*;

/// The authorizer class names accepted: Kafka's KRaft authorizer and its older ZooKeeper one,
/// both of which mean Strata's ACL authorizer.
pub const AUTHORIZER_CLASSES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// Whether and how requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` is set: ACLs are checked.
    pub enabled: bool,
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`
    pub allow_everyone_if_no_acl_found: bool,
}

pub(super) fn parse_authorizer(
    get: &dyn Fn(&str) -> String,
) -> Result<AuthorizerConfig, ConfigError> {
    let class = get("authorizer.class.name");
    let class = class.trim();
    if !class.is_empty() && !AUTHORIZER_CLASSES.contains(&class) {
        return Err(invalid(
            "authorizer.class.name",
            class,
            format!(
                "Class {class} cannot be found (Strata's ACL authorizer is named {})",
                AUTHORIZER_CLASSES.join(" or ")
            ),
        ));
    }
    let raw = get("super.users");
    let mut super_users = Vec::new();
    for user in raw.split(';').map(str::trim).filter(|u| !u.is_empty()) {
        match user.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                super_users.push(user.to_string())
            }
            _ => {
                return Err(invalid(
                    "super.users",
                    &raw,
                    format!("{user} is not a principal of the form User:<name>"),
                ))
            }
        }
    }
    Ok(AuthorizerConfig {
        enabled: !class.is_empty(),
        super_users,
        allow_everyone_if_no_acl_found: parse_bool(
            "allow.everyone.if.no.acl.found",
            &get("allow.everyone.if.no.acl.found"),
        )?,
    })
}

pub(super) fn parse_quota_window(
    get: &dyn Fn(&str) -> String,
) -> Result<crate::security::quota::QuotaWindow, ConfigError> {
    Ok(crate::security::quota::QuotaWindow {
        samples: int_at_least(get, "quota.window.num", 2)? as usize,
        sample_ms: int_at_least(get, "quota.window.size.seconds", 1)? as u64 * 1000,
    })
}

/// Limits on connections, broker-wide and per client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max.connections`: open connections over all listeners.
    pub max_connections: u64,
    /// `max.connections.per.ip`
    pub max_per_ip: u64,
    /// `max.connections.per.ip.overrides`: `host:count,...` (an address or a host name).
    pub per_ip_overrides: BTreeMap<String, u64>,
    /// `max.connection.creation.rate`: new connections per second, broker-wide.
    pub max_creation_rate: u64,
}

pub(super) fn parse_connection_limits(
    get: &dyn Fn(&str) -> String,
) -> Result<ConnectionLimits, ConfigError> {
    let raw = get("max.connections.per.ip.overrides");
    let mut per_ip_overrides = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .rsplit_once(':')
            .and_then(|(host, n)| Some((host.trim(), n.trim().parse::<u64>().ok()?)));
        match parsed {
            Some((host, n)) if !host.is_empty() => {
                per_ip_overrides.insert(host.to_string(), n);
            }
            _ => {
                return Err(invalid(
                    "max.connections.per.ip.overrides",
                    &raw,
                    format!("{entry} is not host:count"),
                ))
            }
        }
    }
    Ok(ConnectionLimits {
        max_connections: int_at_least(get, "max.connections", 0)? as u64,
        max_per_ip: int_at_least(get, "max.connections.per.ip", 0)? as u64,
        per_ip_overrides,
        max_creation_rate: int_at_least(get, "max.connection.creation.rate", 0)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizer_keys_are_read_with_kafkas_defaults() {
        let get = |values: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                values
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| {
                        if k == "allow.everyone.if.no.acl.found" {
                            "false".into()
                        } else {
                            String::new()
                        }
                    })
            }
        };
        let off = parse_authorizer(&get(&[])).unwrap();
        assert!(!off.enabled);
        let on = parse_authorizer(&get(&[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("super.users", "User:admin; User:CN=ops,O=corp"),
        ]))
        .unwrap();
        assert!(on.enabled && !on.allow_everyone_if_no_acl_found);
        assert_eq!(on.super_users, ["User:admin", "User:CN=ops,O=corp"]);
        let e =
            parse_authorizer(&get(&[("authorizer.class.name", "com.example.Mine")])).unwrap_err();
        assert!(e.to_string().contains("com.example.Mine"), "{e}");
        assert!(parse_authorizer(&get(&[("super.users", "admin")])).is_err());
    }
}
