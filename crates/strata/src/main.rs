//! `strata`: the broker and its tools in one binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strata::{
    acls, cluster, configs, console, delete_records, dump_log, elect_leaders, groups, log_dirs,
    metadata_quorum, perf, reassign, storage, tiers, topics, transactions,
};
use strata_broker::{Broker, BrokerConfig, Server};
use strata_storage::io::RealIo;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "A Kafka-compatible event-streaming broker on tiered storage",
    // `strata --override k=v` runs the broker as `strata server --override k=v` does.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The broker's options, for `strata` without a command (`server` is the default).
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (the default).
    Server(ServerArgs),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    Topics(topics::TopicsArgs),
    /// Add, list and remove ACLs (kafka-acls.sh).
    Acls(acls::AclsArgs),
    /// Describe and alter topic and broker configs, with their sources (kafka-configs.sh).
    Configs(configs::ConfigsArgs),
    /// List, describe (with lag), delete consumer groups and reset their offsets
    /// (kafka-consumer-groups.sh).
    Groups(groups::GroupsArgs),
    /// List and describe transactions and producers, find and abort hanging transactions
    /// (kafka-transactions.sh).
    Transactions(transactions::TransactionsArgs),
    /// Measure producing to any Kafka broker (kafka-producer-perf-test.sh).
    #[command(name = "producer-perf")]
    ProducerPerf(perf::producer::ProducerPerfArgs),
    /// Measure consuming from any Kafka broker (kafka-consumer-perf-test.sh).
    #[command(name = "consumer-perf")]
    ConsumerPerf(perf::consumer::ConsumerPerfArgs),
    /// Many producer or consumer clients at once, with JSON results and an SVG chart.
    Bench(perf::bench::BenchArgs),
    /// Where every segment lives: tiers, usage, migrations under way (reads the directories).
    Tiers(tiers::TiersArgs),
    /// The cluster at a glance: brokers, racks, controller, quorum lag.
    Cluster(cluster::ClusterArgs),
    /// Elect preferred (or, for offline partitions, any live) replicas as leaders
    /// (kafka-leader-election.sh).
    #[command(name = "elect-leaders")]
    ElectLeaders(elect_leaders::ElectLeadersArgs),
    /// Move partitions' replicas between brokers: generate, execute, verify, cancel and list
    /// reassignments (kafka-reassign-partitions.sh).
    Reassign(reassign::ReassignArgs),
    /// Describe the metadata quorum: leader, epoch, voters' progress (kafka-metadata-quorum.sh).
    #[command(name = "metadata-quorum")]
    MetadataQuorum(metadata_quorum::MetadataQuorumArgs),
    /// Format storage for a node of a cluster, make cluster ids (kafka-storage.sh).
    Storage(storage::StorageArgs),
    /// Decode segment files (.log, .index, .timeindex) offline (kafka-dump-log.sh).
    #[command(name = "dump-log")]
    DumpLog(dump_log::DumpLogArgs),
    /// Describe each broker's log directories and the partitions in them (kafka-log-dirs.sh).
    #[command(name = "log-dirs")]
    LogDirs(log_dirs::LogDirsArgs),
    /// Delete the records of partitions below given offsets (kafka-delete-records.sh).
    #[command(name = "delete-records")]
    DeleteRecords(delete_records::DeleteRecordsArgs),
    /// Produce the lines of stdin (kafka-console-producer.sh).
    #[command(name = "console-producer")]
    ConsoleProducer(console::ConsoleProducerArgs),
    /// Print a topic's records (kafka-console-consumer.sh).
    #[command(name = "console-consumer")]
    ConsoleConsumer(console::ConsoleConsumerArgs),
}

#[derive(Debug, clap::Args, Default)]
struct ServerArgs {
    /// The broker's config file, in Kafka's server.properties format.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Override a config key: `--override key=value` (repeatable).
    #[arg(long = "override")]
    overrides: Vec<String>,
    /// Validate the configuration (keys, values, listeners, TLS keys and certificates) and
    /// exit: 0 when the broker would start with it, 1 with the reason otherwise.
    #[arg(long)]
    check_config: bool,
}

/// Log lines on stderr: text, or one JSON object a line (`log.format=json`, the broker's).
fn init_logging(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=off".into()),
        )
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn main() {
    let cli = Cli::parse();
    // The broker logs as its config says, once it has read it.
    if !matches!(cli.command, None | Some(Command::Server(_))) {
        init_logging(false);
        // A tool whose output goes to a closed pipe (`strata tiers | head`) ends quietly, as
        // Unix tools do. The broker keeps ignoring SIGPIPE: a client's closed socket is an
        // error to handle, not a reason to die.
        // SAFETY: restores a signal's default disposition; no other thread is running yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        None => run_server(cli.server),
        Some(Command::Server(args)) => run_server(args),
        Some(Command::Topics(args)) => runtime().and_then(|rt| rt.block_on(topics::run(args))),
        Some(Command::Acls(args)) => runtime().and_then(|rt| rt.block_on(acls::run(args))),
        Some(Command::Configs(args)) => runtime().and_then(|rt| rt.block_on(configs::run(args))),
        Some(Command::Groups(args)) => runtime().and_then(|rt| rt.block_on(groups::run(args))),
        Some(Command::Transactions(args)) => {
            runtime().and_then(|rt| rt.block_on(transactions::run(args)))
        }
        Some(Command::ProducerPerf(args)) => perf::producer::run(args).map(|_| ()),
        Some(Command::ConsumerPerf(args)) => perf::consumer::run(args).map(|_| ()),
        Some(Command::Bench(args)) => perf::bench::run(args),
        Some(Command::DumpLog(args)) => dump_log::run(args),
        Some(Command::Tiers(args)) => tiers::run(args),
        Some(Command::Storage(args)) => storage::run(args),
        Some(Command::Cluster(args)) => runtime().and_then(|rt| rt.block_on(cluster::run(args))),
        Some(Command::ElectLeaders(args)) => {
            runtime().and_then(|rt| rt.block_on(elect_leaders::run(args)))
        }
        Some(Command::Reassign(args)) => runtime().and_then(|rt| rt.block_on(reassign::run(args))),
        Some(Command::ConsoleProducer(args)) => console::run_producer(args),
        Some(Command::ConsoleConsumer(args)) => console::run_consumer(args),
        Some(Command::LogDirs(args)) => runtime().and_then(|rt| rt.block_on(log_dirs::run(args))),
        Some(Command::DeleteRecords(args)) => {
            runtime().and_then(|rt| rt.block_on(delete_records::run(args)))
        }
        Some(Command::MetadataQuorum(args)) => {
            runtime().and_then(|rt| rt.block_on(metadata_quorum::run(args)))
        }
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run_server(args: ServerArgs) -> Result<()> {
    let config_path = match args.config {
        Some(p) => Some(p),
        None => {
            let default = PathBuf::from("config/server.properties");
            default.exists().then_some(default)
        }
    };
    let load = || BrokerConfig::load(config_path.as_deref(), &args.overrides);
    if args.check_config {
        init_logging(false);
        return check_config(&load()?, config_path.as_deref());
    }
    // Read once unheard to learn the log format, then again with logging on, so that its
    // warnings (unknown keys) are logged in that format.
    let quiet =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), load)?;
    init_logging(quiet.log_json);
    let config = load()?;
    let rt = runtime()?;
    rt.block_on(async move {
        let broker = Broker::open(config, Arc::new(RealIo)).context("cannot start the broker")?;
        broker
            .start_quorum(Arc::new(RealIo))
            .await
            .context("cannot start the metadata quorum")?;
        if let Some(addr) = controller_only(&broker) {
            return serve_controller(broker, addr).await;
        }
        let server = Server::bind(broker.clone())
            .await
            .context("cannot bind the listener")?;
        let registration = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.keep_registered().await })
        };
        let following = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.follow_image().await })
        };
        let replicating = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.replicate().await })
        };
        let addr = server.local_addr()?;
        tracing::info!(%addr, cluster_id = %broker.cluster_id, "Strata broker started");
        let signalled = signals();
        // Tools and tests read this line to find the (first listener's) port; it is the only
        // line on stdout (a reader may stop reading after it).
        println!("listening on {addr}");
        for (name, protocol, addr) in server.local_addrs()? {
            tracing::info!(listener = %name, protocol, %addr, "listening");
        }
        if let Some(metrics_addr) = broker.config.metrics_listener {
            strata_broker::metrics::install(metrics_addr, &broker.config)
                .map_err(|e| anyhow::anyhow!("cannot serve metrics on {metrics_addr}: {e}"))?;
            tokio::spawn(strata_broker::metrics::publish(broker.clone()));
            tracing::info!(%metrics_addr, "Prometheus metrics at /metrics");
        }
        if let Some(console_addr) = broker.config.console_listener {
            let listener = strata_broker::console::bind(console_addr)
                .await
                .with_context(|| format!("cannot serve the console on {console_addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "web console at /");
            tokio::spawn(strata_broker::console::serve(broker.clone(), listener));
        }
        let stop = server.shutdown_handle();
        let serving = tokio::spawn(server.run());
        let failed = tokio::select! {
            _ = signalled => false,
            _ = broker.all_dirs_offline() => true,
        };
        if failed {
            tracing::error!(
                log_dirs = ?broker.config.log_dirs,
                "shutting down: every log directory has failed"
            );
        } else {
            tracing::info!("shutting down");
        }
        registration.abort();
        following.abort();
        if !failed {
            broker.controlled_shutdown().await;
        }
        replicating.abort();
        if let Some(replication) = broker.replication() {
            replication.shutdown();
        }
        let _ = stop.send(true);
        let _ = serving.await;
        if let Some(quorum) = broker.quorum() {
            quorum.shutdown().await;
        }
        let logs = broker.clone();
        tokio::task::spawn_blocking(move || logs.shutdown()).await??;
        if failed {
            anyhow::bail!("every log directory failed; their logs are recovered at the next start");
        }
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

/// `strata server --check-config`: what reading the file checked, then what the broker would
/// read at its start (each TLS listener's key and certificates, the inter-broker TLS
/// material); nothing is bound or written.
fn check_config(config: &BrokerConfig, path: Option<&std::path::Path>) -> Result<()> {
    for listener in &config.listeners {
        if let Some(tls) = &listener.tls {
            strata_broker::security::tls::acceptor(tls)
                .map_err(|e| anyhow::anyhow!("listener {}: {e}", listener.name))?;
        }
    }
    if let Some(tls) = config
        .inter_broker_client
        .as_ref()
        .and_then(|c| c.tls.as_ref().map(|t| (t, c.verify_hostname)))
    {
        strata_broker::security::tls::connector(tls.0, tls.1).map_err(|e| {
            anyhow::anyhow!(
                "inter-broker listener {}: {e}",
                config.inter_broker_listener
            )
        })?;
    }
    let role = match &config.quorum {
        None => "a broker alone".to_string(),
        Some(q) => format!(
            "node {} of a cluster ({})",
            config.broker_id,
            match (q.roles.broker, q.roles.controller) {
                (true, true) => "broker,controller",
                (true, false) => "broker",
                _ => "controller",
            }
        ),
    };
    let listeners = config.listeners.len()
        + usize::from(config.quorum.as_ref().is_some_and(|q| q.listener.is_some()));
    println!(
        "{}: valid ({role}, {listeners} listener{})",
        path.map_or("the defaults".to_string(), |p| p.display().to_string()),
        if listeners == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The controller listener of a node whose only role is `controller`.
fn controller_only(broker: &Broker) -> Option<String> {
    let quorum = broker.config.quorum.as_ref()?;
    if quorum.roles.broker {
        return None;
    }
    quorum
        .listener
        .as_ref()
        .map(|l| format!("{}:{}", l.host, l.port))
}

/// A controller-only node: it keeps its replica of the metadata log and decides as the active
/// controller when elected, and serves no clients (it has no listener but the controller's).
async fn serve_controller(broker: Arc<Broker>, addr: String) -> Result<()> {
    let signalled = signals();
    tracing::info!(%addr, cluster_id = %broker.cluster_id, "Strata controller started");
    println!("listening on {addr}");
    signalled.await;
    tracing::info!("shutting down");
    if let Some(quorum) = broker.quorum() {
        quorum.shutdown().await;
    }
    tokio::task::spawn_blocking(move || broker.shutdown()).await??;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// SIGINT or SIGTERM, both caught from the moment this is called (not first polled): a
/// signal that comes right after the broker said it listens is a clean shutdown, not a kill.
fn signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
}
