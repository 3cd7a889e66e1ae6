//! The authorizer's keys (`authorizer.class.name`, `super.users`,
//! `allow.everyone.if.no.acl.found`), with Kafka's names and defaults.

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
