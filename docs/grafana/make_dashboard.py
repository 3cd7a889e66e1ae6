#!/usr/bin/env python3
"""Writes docs/grafana/strata.json, the Grafana dashboard of Strata's Prometheus metrics.

Run it after changing the panels below; crates/strata/tests/metrics.rs checks that every
query names a metric the broker exports.
"""
import json
import os

RATE = "[$__rate_interval]"
SEL = '{instance=~"$instance"}'


def sel(extra=""):
    """The instance selector, with more matchers."""
    if extra:
        return '{instance=~"$instance",' + extra + "}"
    return SEL


PRODUCE_FETCH = sel('api=~"Produce|Fetch"')
FIRST_TIER = sel('tier="first"')
ONGOING = sel('state="Ongoing"')


def panel(title, targets, unit="short", kind="timeseries", description="", stack=False):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "stacking": {"mode": "normal" if stack else "none"},
        }
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom"}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return p


def quantile(q, metric, by):
    return (
        f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{SEL}{RATE})))"
    )


ROWS = [
    (
        "Cluster health",
        [
            panel("Partitions", [(f"sum(strata_partitions{SEL})", "partitions")], kind="stat"),
            panel("Leaders", [(f"sum(strata_leader_partitions{SEL})", "leaders")], kind="stat"),
            panel(
                "Under-replicated partitions",
                [(f"sum(strata_under_replicated_partitions{SEL})", "under-replicated")],
                kind="stat",
            ),
            panel(
                "Under min ISR",
                [(f"sum(strata_under_min_isr_partitions{SEL})", "under min ISR")],
                kind="stat",
            ),
            panel(
                "Offline partitions",
                [(f"sum(strata_offline_partitions{SEL})", "offline")],
                kind="stat",
            ),
            panel(
                "Offline log directories",
                [(f"sum(strata_offline_log_dirs{SEL})", "offline dirs")],
                kind="stat",
            ),
            panel(
                "Active controller",
                [(f"max by (instance) (strata_active_controller{SEL})", "{{instance}}")],
                kind="stat",
            ),
        ],
    ),
    (
        "Requests",
        [
            panel(
                "Requests per second by API",
                [(f"sum by (api) (rate(strata_requests_total{SEL}{RATE}))", "{{api}}")],
                unit="reqps",
            ),
            panel(
                "Request latency p99 by API",
                [(quantile(0.99, "strata_request_duration_seconds", "api"), "{{api}}")],
                unit="s",
                description="From a request's arrival to its response's last byte: long polls and acks=all waits included.",
            ),
            panel(
                "Produce and fetch latency p50 / p99",
                [
                    (
                        f"histogram_quantile(0.5, sum by (api, le) (rate(strata_request_duration_seconds_bucket{PRODUCE_FETCH}{RATE})))",
                        "{{api}} p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (api, le) (rate(strata_request_duration_seconds_bucket{PRODUCE_FETCH}{RATE})))",
                        "{{api}} p99",
                    ),
                ],
                unit="s",
            ),
            panel(
                "Errors per second by API and error",
                [
                    (
                        f"sum by (api, error) (rate(strata_request_errors_total{SEL}{RATE}))",
                        "{{api}} {{error}}",
                    ),
                    (
                        f"sum by (listener) (rate(strata_invalid_requests_total{SEL}{RATE}))",
                        "invalid requests on {{listener}}",
                    ),
                ],
                unit="reqps",
            ),
            panel(
                "Waiting requests (purgatory)",
                [(f"sum by (operation) (strata_purgatory_size{SEL})", "{{operation}}")],
            ),
            panel(
                "Quota throttling",
                [
                    (
                        f"sum by (quota) (rate(strata_throttle_time_seconds_count{SEL}{RATE}))",
                        "throttled {{quota}}",
                    ),
                    (
                        f"sum by (quota) (rate(strata_throttle_time_seconds_sum{SEL}{RATE}))",
                        "throttle seconds/s {{quota}}",
                    ),
                ],
            ),
        ],
    ),
    (
        "Traffic",
        [
            panel(
                "Bytes in per topic",
                [(f"sum by (topic) (rate(strata_topic_bytes_in_total{SEL}{RATE}))", "{{topic}}")],
                unit="Bps",
                stack=True,
            ),
            panel(
                "Bytes out per topic (consumers)",
                [(f"sum by (topic) (rate(strata_topic_bytes_out_total{SEL}{RATE}))", "{{topic}}")],
                unit="Bps",
                stack=True,
            ),
            panel(
                "Records in per topic",
                [
                    (
                        f"sum by (topic) (rate(strata_topic_records_in_total{SEL}{RATE}))",
                        "{{topic}}",
                    )
                ],
                unit="rps",
                stack=True,
            ),
            panel(
                "Replication bytes out (to followers)",
                [
                    (
                        f"sum by (instance) (rate(strata_replication_bytes_out_total{SEL}{RATE}))",
                        "{{instance}}",
                    )
                ],
                unit="Bps",
            ),
        ],
    ),
    (
        "Connections and security",
        [
            panel(
                "Open connections by listener",
                [(f"sum by (listener) (strata_connections{SEL})", "{{listener}}")],
            ),
            panel(
                "Connections opened / closed per second",
                [
                    (
                        f"sum by (listener) (rate(strata_connections_created_total{SEL}{RATE}))",
                        "opened {{listener}}",
                    ),
                    (
                        f"sum by (listener) (rate(strata_connections_closed_total{SEL}{RATE}))",
                        "closed {{listener}}",
                    ),
                ],
            ),
            panel(
                "Authentications per second",
                [
                    (
                        f"sum by (listener, mechanism) (rate(strata_successful_authentications_total{SEL}{RATE}))",
                        "ok {{listener}} {{mechanism}}",
                    ),
                    (
                        f"sum by (listener, mechanism) (rate(strata_failed_authentications_total{SEL}{RATE}))",
                        "failed {{listener}} {{mechanism}}",
                    ),
                ],
            ),
        ],
    ),
    (
        "Storage and tiers",
        [
            panel(
                "First tier: used / capacity",
                [
                    (
                        f"sum by (dir) (strata_tier_used_bytes{FIRST_TIER}) / sum by (dir) (strata_tier_capacity_bytes{FIRST_TIER})",
                        "{{dir}}",
                    )
                ],
                unit="percentunit",
                description="Against storage.migrate.threshold: the migrator moves segments down above it (less the band).",
            ),
            panel(
                "Tier usage",
                [
                    (f"sum by (tier) (strata_tier_used_bytes{SEL})", "used {{tier}}"),
                    (f"sum by (tier) (strata_tier_capacity_bytes{SEL})", "capacity {{tier}}"),
                ],
                unit="bytes",
            ),
            panel(
                "Tier traffic",
                [
                    (
                        f"sum by (tier) (rate(strata_tier_written_bytes_total{SEL}{RATE}))",
                        "written {{tier}}",
                    ),
                    (
                        f"sum by (tier) (rate(strata_tier_read_bytes_total{SEL}{RATE}))",
                        "read {{tier}}",
                    ),
                ],
                unit="Bps",
            ),
            panel(
                "Segments per tier",
                [(f"sum by (tier) (strata_tier_segments{SEL})", "{{tier}}")],
            ),
            panel(
                "Migrations",
                [
                    (
                        f"sum by (direction) (rate(strata_migrations_total{SEL}{RATE}))",
                        "moved {{direction}}",
                    ),
                    (f"sum(strata_migrations_in_flight{SEL})", "in flight"),
                    (f"sum(rate(strata_migrations_failed_total{SEL}{RATE}))", "failed"),
                    (f"sum(rate(strata_migrations_cancelled_total{SEL}{RATE}))", "cancelled"),
                ],
            ),
            panel(
                "Migration throughput",
                [(f"sum(rate(strata_migration_bytes_total{SEL}{RATE}))", "bytes moved")],
                unit="Bps",
            ),
            panel(
                "PMEM pool files",
                [(f"sum by (state) (strata_pmem_pool_files{SEL})", "{{state}}")],
            ),
            panel(
                "Log size",
                [(f"sum by (instance) (strata_log_bytes{SEL})", "{{instance}}")],
                unit="bytes",
            ),
            panel(
                "Log flush latency p50 / p99",
                [
                    (quantile(0.5, "strata_log_flush_duration_seconds", "instance"), "p50 {{instance}}"),
                    (quantile(0.99, "strata_log_flush_duration_seconds", "instance"), "p99 {{instance}}"),
                ],
                unit="s",
            ),
        ],
    ),
    (
        "Consumer groups, transactions, compaction",
        [
            panel(
                "Consumer group lag",
                [
                    (
                        f"sum by (group, topic) (strata_consumer_group_lag{SEL})",
                        "{{group}} {{topic}}",
                    )
                ],
                description="Records between each group's committed offset and the high watermark, from the group's coordinator.",
            ),
            panel(
                "Consumer groups by state",
                [(f"sum by (state) (strata_consumer_groups{SEL})", "{{state}}")],
            ),
            panel(
                "Transactions",
                [
                    (
                        f"sum by (result) (rate(strata_transactions_ended_total{SEL}{RATE}))",
                        "{{result}}/s",
                    ),
                    (
                        f"sum(strata_transactions{ONGOING})",
                        "ongoing",
                    ),
                ],
            ),
            panel(
                "Log cleaner",
                [
                    (f"max(strata_cleaner_max_dirty_ratio{SEL})", "max dirty ratio"),
                    (
                        f"sum(rate(strata_cleaner_records_removed_total{SEL}{RATE}))",
                        "records removed/s",
                    ),
                    (f"sum(rate(strata_cleaner_failures_total{SEL}{RATE}))", "failures/s"),
                ],
            ),
            panel(
                "Log cleaner I/O",
                [
                    (f"sum(rate(strata_cleaner_read_bytes_total{SEL}{RATE}))", "read"),
                    (f"sum(rate(strata_cleaner_written_bytes_total{SEL}{RATE}))", "written"),
                ],
                unit="Bps",
            ),
        ],
    ),
]


def dashboard():
    panels = []
    y = 0
    next_id = 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        for p in row:
            w, h = (24 // 7 if p["type"] == "stat" else 8), (4 if p["type"] == "stat" else 8)
            if x + w > 24:
                x = 0
                y += h
            p["id"] = next_id
            next_id += 1
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            panels.append(p)
        y += 8
    return {
        "title": "Strata",
        "uid": "strata-broker",
        "description": "Strata brokers: requests, traffic, connections, partitions, tiers, groups.",
        "tags": ["strata", "kafka"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Data source",
                },
                {
                    "name": "instance",
                    "type": "query",
                    "label": "Broker",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(strata_partitions, instance)",
                    "definition": "label_values(strata_partitions, instance)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strata.json")
    with open(out, "w") as f:
        json.dump(dashboard(), f, indent=2)
        f.write("\n")
    print(f"wrote {out}")
