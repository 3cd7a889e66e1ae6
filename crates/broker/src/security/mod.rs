//! Security: the listeners' TLS transport, SASL authentication, the durable store of
//! credentials, ACLs and quotas, the authorizer and the quota manager.

pub mod sasl;
pub mod tls;
