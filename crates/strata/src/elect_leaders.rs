//! `strata elect-leaders` (kafka-leader-election.sh): asks the controller for preferred or
//! unclean leader elections (ElectLeaders), for one partition, a topic's, those of a JSON file
//! (`{"partitions": [{"topic": "t", "partition": 0}]}`), or every partition; prints Kafka's
//! lines and fails when some partition could not be elected.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::*;

use crate::client::{error_name, error_text, Client};

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Election {
    Preferred,
    Unclean,
}

#[derive(Debug, Args)]
pub struct ElectLeadersArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*).
    #[arg(long = "admin.config", alias = "command-config")]
    pub admin_config: Option<std::path::PathBuf>,
    /// PREFERRED or UNCLEAN.
    #[arg(long, value_enum)]
    pub election_type: Election,
    /// The topic whose partitions to elect (with --partition, one of them).
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partition: Option<i32>,
    /// Every partition of the cluster.
    #[arg(long)]
    pub all_topic_partitions: bool,
    /// A JSON file naming the partitions: {"partitions": [{"topic": "t", "partition": 0}]}.
    #[arg(long)]
    pub path_to_json_file: Option<std::path::PathBuf>,
}

/// The partitions asked for; None for every partition.
async fn asked(args: &ElectLeadersArgs, client: &mut Client) -> Result<Option<Vec<(String, i32)>>> {
    let given = [
        args.topic.is_some(),
        args.all_topic_partitions,
        args.path_to_json_file.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        bail!("give exactly one of --topic, --all-topic-partitions and --path-to-json-file");
    }
    if args.partition.is_some() && args.topic.is_none() {
        bail!("--partition needs --topic");
    }
    if args.all_topic_partitions {
        return Ok(None);
    }
    if let Some(path) = &args.path_to_json_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
        let partitions = json["partitions"]
            .as_array()
            .ok_or_else(|| anyhow!("the file has no \"partitions\" array"))?;
        return partitions
            .iter()
            .map(|p| {
                Ok((
                    p["topic"]
                        .as_str()
                        .ok_or_else(|| anyhow!("a partition without \"topic\""))?
                        .to_string(),
                    p["partition"]
                        .as_i64()
                        .ok_or_else(|| anyhow!("a partition without \"partition\""))?
                        as i32,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some);
    }
    let topic = args.topic.clone().unwrap_or_default();
    if let Some(p) = args.partition {
        return Ok(Some(vec![(topic, p)]));
    }
    // Every partition of the topic, as Metadata tells.
    let metadata: MetadataResponse = client
        .send(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(topic.clone().into()))),
            ])))
        .await?;
    let t = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow!("no metadata for {topic}"))?;
    if t.error_code != 0 {
        bail!("{topic}: {}", error_text(t.error_code, None));
    }
    Ok(Some(
        t.partitions
            .iter()
            .map(|p| (topic.clone(), p.partition_index))
            .collect(),
    ))
}

pub async fn run(args: ElectLeadersArgs) -> Result<()> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.admin_config.as_deref()).await?;
    let partitions = asked(&args, &mut client).await?;
    let (name, code) = match args.election_type {
        Election::Preferred => ("PREFERRED", 0),
        Election::Unclean => ("UNCLEAN", 1),
    };
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (t, p) in partitions.iter().flatten() {
        match topics.iter_mut().find(|x| x.topic.0.as_str() == t) {
            Some(x) => x.partitions.push(*p),
            None => topics.push(
                TopicPartitions::default()
                    .with_topic(TopicName(t.clone().into()))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    let request = ElectLeadersRequest::default()
        .with_election_type(code)
        .with_topic_partitions(partitions.is_some().then_some(topics))
        .with_timeout_ms(30_000);
    let response: ElectLeadersResponse = client.send(request).await?;
    if response.error_code != 0 {
        bail!("{}", error_text(response.error_code, None));
    }
    let (mut done, mut noop, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for t in &response.replica_election_results {
        for p in &t.partition_result {
            let tp = format!("{}-{}", t.topic.0, p.partition_id);
            if p.error_code == 0 {
                done.push(tp);
            } else if error_name(p.error_code).as_deref() == Some("ElectionNotNeeded") {
                noop.push(tp);
            } else {
                failed.push((tp, error_text(p.error_code, p.error_message.as_ref())));
            }
        }
    }
    if !done.is_empty() {
        println!(
            "Successfully completed leader election ({name}) for partitions {}",
            done.join(", ")
        );
    }
    if !noop.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            noop.join(", ")
        );
    }
    for (tp, error) in &failed {
        println!("Error completing leader election ({name}) for partition: {tp}: {error}");
    }
    if !failed.is_empty() {
        bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}
