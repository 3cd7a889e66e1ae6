//! Security: the listeners' TLS transport, SASL authentication (PLAIN, SCRAM), the durable
//! store of credentials, ACLs and quotas, and the authorizer.

pub mod acl;
pub mod authorizer;
pub mod connections;
pub mod oauth;
pub mod principal;
pub mod quota;
pub mod sasl;
pub mod sasl_client;
pub mod scram;
pub mod store;
pub mod tls;
