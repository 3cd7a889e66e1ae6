//! The error codes a response carries, at every level (Kafka's `errorCounts`), for the
//! request metrics.

use kafka_protocol::messages::*;

/// A response whose error codes can be listed.
pub trait ResponseErrors {
    /// Calls `f` with each error code in the response (0s included).
    fn error_codes(&self, f: &mut dyn FnMut(i16));
}

/// Responses with one error code, at the top.
macro_rules! top_level {
    ($($t:ty),* $(,)?) => {$(
        impl ResponseErrors for $t {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code)
            }
        }
    )*};
}

top_level!(
    AddOffsetsToTxnResponse,
    ApiVersionsResponse,
    ConsumerGroupHeartbeatResponse,
    DescribeClusterResponse,
    EndTxnResponse,
    HeartbeatResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    ListGroupsResponse,
    ListPartitionReassignmentsResponse,
    ListTransactionsResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
    SyncGroupResponse,
);

/// Responses with an error code per entry of a list (and perhaps one at the top): the
/// macro's arms are `Type: top? list.field`, `Type: list > inner` for two levels.
macro_rules! listed {
    ($t:ty: $list:ident) => {
        impl ResponseErrors for $t {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                self.$list.iter().for_each(|e| f(e.error_code));
            }
        }
    };
    ($t:ty: top $list:ident) => {
        impl ResponseErrors for $t {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code);
                self.$list.iter().for_each(|e| f(e.error_code));
            }
        }
    };
    ($t:ty: $list:ident > $inner:ident) => {
        impl ResponseErrors for $t {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                for e in &self.$list {
                    e.$inner.iter().for_each(|i| f(i.error_code));
                }
            }
        }
    };
    ($t:ty: top $list:ident > $inner:ident) => {
        impl ResponseErrors for $t {
            fn error_codes(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code);
                for e in &self.$list {
                    e.$inner.iter().for_each(|i| f(i.error_code));
                }
            }
        }
    };
}

listed!(AlterClientQuotasResponse: entries);
listed!(AlterConfigsResponse: responses);
listed!(IncrementalAlterConfigsResponse: responses);
listed!(AlterPartitionReassignmentsResponse: top responses > partitions);
listed!(AlterUserScramCredentialsResponse: results);
listed!(ConsumerGroupDescribeResponse: groups);
listed!(CreateAclsResponse: results);
listed!(CreatePartitionsResponse: results);
listed!(CreateTopicsResponse: topics);
listed!(DeleteGroupsResponse: results);
listed!(DeleteRecordsResponse: topics > partitions);
listed!(DeleteTopicsResponse: responses);
listed!(DescribeConfigsResponse: results);
listed!(DescribeGroupsResponse: groups);
listed!(DescribeLogDirsResponse: top results);
listed!(DescribeProducersResponse: topics > partitions);
listed!(DescribeQuorumResponse: top topics > partitions);
listed!(DescribeTransactionsResponse: transaction_states);
listed!(DescribeUserScramCredentialsResponse: top results);
listed!(ElectLeadersResponse: top replica_election_results > partition_result);
listed!(FindCoordinatorResponse: top coordinators);
listed!(LeaveGroupResponse: top members);
listed!(ListOffsetsResponse: topics > partitions);
listed!(OffsetCommitResponse: topics > partitions);
listed!(OffsetDeleteResponse: top topics > partitions);
listed!(OffsetForLeaderEpochResponse: topics > partitions);
listed!(ProduceResponse: responses > partition_responses);
listed!(TxnOffsetCommitResponse: topics > partitions);

impl ResponseErrors for AddPartitionsToTxnResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for topic in &self.results_by_topic_v3_and_below {
            topic
                .results_by_partition
                .iter()
                .for_each(|p| f(p.partition_error_code));
        }
        for t in &self.results_by_transaction {
            for topic in &t.topic_results {
                topic
                    .results_by_partition
                    .iter()
                    .for_each(|p| f(p.partition_error_code));
            }
        }
    }
}

impl ResponseErrors for DeleteAclsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for r in &self.filter_results {
            f(r.error_code);
            r.matching_acls.iter().for_each(|a| f(a.error_code));
        }
    }
}

impl ResponseErrors for DescribeAclsResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrors for DescribeClientQuotasResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code)
    }
}

impl ResponseErrors for MetadataResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.topics {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for OffsetFetchResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
        for g in &self.groups {
            f(g.error_code);
            for t in &g.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
    }
}

impl ResponseErrors for WriteTxnMarkersResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for m in &self.markers {
            for t in &m.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
    }
}
