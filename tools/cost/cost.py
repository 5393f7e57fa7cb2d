#!/usr/bin/env python3
"""Dollars per 1,000 calls, per scenario, from the request counts local/tests/cost/ measured.

    cargo test -p ringback-local --test cost        # writes target/cost-counts.json
    python3 tools/cost/cost.py                      # prices from docs/prices-us-east-1.json

The counts are measured; the Lambda durations, log volume and client polling are assumptions
(docs/cost.md), printed with the result and replaceable: --durations FILE takes a JSON object
{"call-initiator": ms, "webhook": ms, ...} (e.g. the cold-start benchmark's warm p50 or p99),
--polls the status GETs a client makes per call. Python 3 standard library only.
"""

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Billed duration of one warm invocation, ms (Lambda bills in 1 ms steps). ASSUMPTIONS, to be
# replaced by measured figures: see docs/cost.md for where each comes from.
DURATIONS_MS = {
    "call-initiator": 500,  # waits for Vapi's POST /call, plus 3-4 DynamoDB writes and one send
    "webhook": 15,  # one GetItem, one conditional PutItem, sometimes one SendMessage
    "call-status": 8,  # one GetItem
    "enrichment-vapi": 250,  # a batch that asks Vapi GET /call/{id}, then writes 3-5 items
    "enrichment": 15,  # a batch that settles without Vapi (duplicate first job, watchdog skip)
    "cleanup": 300,  # 65 index queries (17 unfinished, 48 revival) and one Vapi listing per run
}
LOG_BYTES_PER_INVOCATION = 2048  # platform START/REPORT lines, app JSON lines, EMF metrics
CLEANUP_INTERVAL_S = 300  # CleanupSchedule rate(5 minutes)
RESULT_TTL_S = 1800  # ResultTtlSeconds: the reconciliation window
RECONCILE_MIN_AGE_S = 60  # shared/src/service/cleanup.rs RECONCILE_MIN_AGE
ESM_IDLE_POLLERS = 5  # Lambda keeps ~5 long polls (20 s) on an idle queue with MaximumConcurrency set
ESM_QUEUES = 2  # template.yaml: EnrichmentQueue and PushQueue, an event source each
MONTH_S = 30 * 24 * 3600
HOURS_PER_MONTH = 730
GB = 1024**3


def price(prices, key):
    return prices["prices"][key]["value"]


def per_call(s, prices, args, durations):
    """Dollars for one call of scenario `s`, by line."""
    inv = s["lambda_invocations"]
    vapi_gets = s["vapi"]["requests"].get("GET /call/{id}", 0)
    enr_vapi = min(inv["enrichment"], vapi_gets)
    enr_plain = inv["enrichment"] - enr_vapi
    polls = args.polls
    poll = s["status_get_x2"]
    poll_rru = sum(v for k, v in poll["units"].items() if k.startswith("read ")) / 2

    invocations = inv["call-initiator"] + inv["webhook"] + inv["enrichment"] + polls
    ms = (
        inv["call-initiator"] * durations["call-initiator"]
        + inv["webhook"] * durations["webhook"]
        + enr_vapi * durations["enrichment-vapi"]
        + enr_plain * durations["enrichment"]
        + polls * durations["call-status"]
    )
    gb_s = args.memory_mb / 1024 * ms / 1000
    api_requests = inv["call-initiator"] + inv["webhook"] + polls

    # DynamoDB: units the store reported, plus what it does not report: a write refused by its
    # condition still costs its units (at least 1 per KB of the item), and the cleanup reads each
    # call once per run while the call is in its reconciliation window.
    max_item = max(s["dynamodb"]["max_item_bytes"].values() or [1024])
    failed_wru = s["dynamodb_failed_writes"] * max(1, math.ceil(max_item / 1024))
    wru = s["dynamodb_wru_tables"] + s["dynamodb_wru_indexes"] + failed_wru
    reconcile_runs = (RESULT_TTL_S - RECONCILE_MIN_AGE_S) / CLEANUP_INTERVAL_S
    rru = s["dynamodb_rru"] + polls * poll_rru + reconcile_runs * 1.0

    sqs = sum(s["sqs"].values())
    arch = "lambda_gb_second_" + args.arch
    lines = {
        "lambda requests": invocations * price(prices, "lambda_requests_per_million") / 1e6,
        "lambda duration": gb_s * price(prices, arch),
        "api gateway": api_requests * price(prices, "apigw_http_api_requests_per_million") / 1e6,
        "dynamodb writes": wru
        * price(prices, "dynamodb_ondemand_write_request_units_per_million")
        / 1e6,
        "dynamodb reads": rru * price(prices, "dynamodb_ondemand_read_request_units_per_million") / 1e6,
        "sqs": sqs * price(prices, "sqs_standard_requests_per_million") / 1e6,
        "logs": invocations
        * args.log_bytes
        / GB
        * price(prices, "cloudwatch_logs_ingestion_per_gb"),
    }
    # Stored for good: the provider row is overwritten per provider, the interaction log is one
    # row per call (DynamoDB adds 100 bytes per item). Dollars per month of keeping it.
    stored = s["stored"].get("ringback-interaction-logs", {}).get("total_bytes", 0) + 100
    storage_month = stored / GB * price(prices, "dynamodb_storage_gb_month")
    facts = {
        "invocations": invocations,
        "gb_s": gb_s,
        "api": api_requests,
        "wru": wru,
        "rru": rru,
        "sqs": sqs,
        "storage_month": storage_month,
    }
    return lines, facts


def fixed_monthly(counts, prices, args, durations):
    """Dollars a month whatever the traffic: the cleanup schedule and Lambda's idle SQS pollers."""
    runs = MONTH_S / CLEANUP_INTERVAL_S
    c = counts.get("cleanup_run") or {}
    # The measured run saw one call in its window: its one GetItem is charged per call above.
    run_rru = c.get("dynamodb_rru", 9.5) - 1.0
    arch = "lambda_gb_second_" + args.arch
    cleanup_lambda = runs * (
        price(prices, "lambda_requests_per_million") / 1e6
        + args.memory_mb / 1024 * durations["cleanup"] / 1000 * price(prices, arch)
    )
    cleanup_reads = runs * run_rru * price(prices, "dynamodb_ondemand_read_request_units_per_million") / 1e6
    cleanup_logs = runs * args.log_bytes / GB * price(prices, "cloudwatch_logs_ingestion_per_gb")
    polls = ESM_QUEUES * ESM_IDLE_POLLERS * (MONTH_S / 20)
    esm = polls * price(prices, "sqs_standard_requests_per_million") / 1e6
    return {
        "cleanup lambda": cleanup_lambda,
        "cleanup reads": cleanup_reads,
        "cleanup logs": cleanup_logs,
        "idle SQS polling": esm,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default=ROOT / "target" / "cost-counts.json", type=Path)
    ap.add_argument("--prices", default=ROOT / "docs" / "prices-us-east-1.json", type=Path)
    ap.add_argument("--durations", type=Path, help="JSON object of billed ms per invocation kind")
    ap.add_argument("--arch", choices=["x86_64", "arm64"], default="arm64")  # template.yaml's default
    ap.add_argument("--memory-mb", type=int, default=256, help="template.yaml MemorySize")
    ap.add_argument("--polls", type=int, default=1, help="status GETs a client makes per call")
    ap.add_argument("--log-bytes", type=int, default=LOG_BYTES_PER_INVOCATION)
    args = ap.parse_args()

    try:
        counts = json.loads(args.counts.read_text())
    except FileNotFoundError:
        sys.exit(f"{args.counts}: run `cargo test -p ringback-local --test cost` first")
    prices = json.loads(args.prices.read_text())
    durations = dict(DURATIONS_MS)
    if args.durations:
        durations.update(json.loads(args.durations.read_text()))

    print(f"counts: {args.counts} ({counts.get('generated_at', '?')})")
    print(f"prices: {args.prices} (taken {prices.get('taken', '?')}, {prices['region']})")
    print(
        f"assumed: {args.arch}, {args.memory_mb} MB, {args.polls} status GET(s) per call, "
        f"{args.log_bytes} log bytes per invocation, billed ms per invocation {durations}"
    )
    print()
    heads = ["λ req", "λ GB-s", "API GW", "DDB W", "DDB R", "SQS", "logs"]
    print(f"{'$ per 1,000 calls':<19}" + "".join(f"{h:>9}" for h in heads) + f"{'total':>9}")
    totals = {}
    for name, s in counts["scenarios"].items():
        lines, facts = per_call(s, prices, args, durations)
        total = sum(lines.values())
        totals[name] = (lines, facts, total)
        print(
            f"{name:<19}"
            + "".join(f"{v * 1000:>9.4f}" for v in lines.values())
            + f"{total * 1000:>9.4f}"
        )

    fixed = fixed_monthly(counts, prices, args, durations)
    fixed_total = sum(fixed.values())
    print()
    print("fixed, whatever the traffic ($ a month): "
          + ", ".join(f"{k} {v:.3f}" for k, v in fixed.items())
          + f"; total {fixed_total:.2f}")

    lines, facts, total = totals.get("answered") or next(iter(totals.values()))
    print(
        "answered call: "
        f"{facts['invocations']} invocations, {facts['gb_s']:.4f} GB-s, {facts['api']} API requests, "
        f"{facts['wru']:.1f} WRU, {facts['rru']:.1f} RRU, {facts['sqs']} SQS requests; "
        f"its interaction log costs ${facts['storage_month'] * 1000:.5f} a month per 1,000 calls kept"
    )

    # An always-on server replaces the Lambdas and API Gateway; DynamoDB, SQS and logs stay.
    replaced = lines["lambda requests"] + lines["lambda duration"] + lines["api gateway"]
    replaced_fixed = fixed["cleanup lambda"]
    servers = {
        "t4g.small on-demand": price(prices, "ec2_t4g_small_on_demand_hour") * HOURS_PER_MONTH,
        "Fargate 0.25 vCPU / 0.5 GB": (
            0.25 * price(prices, "fargate_linux_x86_vcpu_hour")
            + 0.5 * price(prices, "fargate_linux_x86_gb_hour")
        )
        * HOURS_PER_MONTH,
    }
    print()
    print(f"always on (per month, {HOURS_PER_MONTH} h) vs the Lambda + API Gateway part of an "
          f"answered call (${replaced * 1000:.4f} per 1,000 calls):")
    for name, monthly in servers.items():
        breakeven = (monthly - replaced_fixed) / replaced if replaced > 0 else float("inf")
        print(
            f"  {name:<28} ${monthly:7.2f}/month  break-even {breakeven:,.0f} calls/month "
            f"({breakeven / 30:,.0f} a day)"
        )


if __name__ == "__main__":
    main()
