//! ApiVersions: the versions of every API Strata implements.
//!
//! The crate leaves out tagged fields that hold their default (supported and finalized features,
//! the features epoch), which librdkafka 2.0.2 (Debian's kcat) needs: it mis-parses them.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::SUPPORTED;

pub fn response() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    response
}
