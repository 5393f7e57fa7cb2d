#!/usr/bin/env python3
"""Assertions on template.yaml that cfn-lint and `sam validate --lint` do not make.

Both linters accept, for example, `FunctionResponseTypes: [ReportBatchFailures]`, `Runtime: provided.al2099`,
`dynamodb:TransactWriteItems` (not an IAM action) and a circular dependency between an HTTP API and a function
that reads the API's URL (measured on these tools' pinned versions, and again here). Those are the values that decide whether
the deployed system keeps its promises (api.md §4-§6), so they are asserted here, one printed line per check.

    python tests/template/check_template.py [--template template.yaml]
    python tests/template/check_template.py --self-test   # proves each check can fail

Exit status: 0 when every check passes, 1 when one fails, 2 on a usage or parse error.
Needs PyYAML; the circular-dependency check also needs samtranslator (installed with aws-sam-cli) and is
reported as failed when samtranslator is missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------------
# What the template must say (api.md §2, §5, §6 and the deployment brief)
# --------------------------------------------------------------------------------------------------

# logical id -> (cargo binary, routes as (METHOD, path), required env vars)
FUNCTIONS: dict[str, dict[str, Any]] = {
    "WebhookFunction": {
        "bin": "webhook",
        "routes": {("POST", "/api/v1/vapi/webhook"), ("POST", "/api/v1/vapi/calls/{callId}/replay")},
        "env": {"CALLS_TABLE", "ENRICHMENT_QUEUE_URL", "ENRICHMENT_DELAYS", "RESULT_TTL_SECONDS",
                "MAX_WEBHOOK_BYTES", "VAPI_WEBHOOK_SECRET", "RUST_LOG", "EVENTS_TABLE",
                "EVENT_RETENTION_DAYS", "CALL_INDEX_TABLE", "API_TOKEN", "API_AUTH"},
        "tables": {"CallsTable", "EventsTable", "CallIndexTable"},
        "read_only": False,
    },
    "CallStatusFunction": {
        "bin": "call-status",
        "routes": {("GET", "/api/v1/vapi/calls/{callId}"), ("GET", "/api/v1/vapi/calls/{callId}/events"),
                   ("GET", "/api/v1/vapi/calls"), ("GET", "/health"),
                   ("GET", "/openapi.json"), ("GET", "/api/v1/vapi/stats")},
        "env": {"CALLS_TABLE", "API_TOKEN", "API_AUTH", "RUST_LOG", "EVENTS_TABLE", "CALL_INDEX_TABLE",
                "ENRICHMENT_QUEUE_URL", "ENRICHMENT_DLQ_URL"},
        "tables": {"CallsTable", "EventsTable", "CallIndexTable"},
        "read_only": True,
    },
    "CallInitiatorFunction": {
        "bin": "call-initiator",
        "routes": {("POST", "/api/v1/vapi/calls"), ("POST", "/api/v1/vapi/callbacks/{eventId}/redeliver"),
                   ("DELETE", "/api/v1/vapi/calls/{callId}")},
        "env": {"CALLS_TABLE", "ENRICHMENT_QUEUE_URL", "VAPI_API_KEY", "VAPI_BASE_URL", "VAPI_PHONE_NUMBER_ID",
                "DEPLOYMENT_ID", "VAPI_WEBHOOK_URL", "VAPI_WEBHOOK_SECRET", "API_TOKEN", "WATCHDOG_DELAY_SECONDS",
                "RESULT_TTL_SECONDS", "RUST_LOG", "EVENTS_TABLE", "CALLBACK_SIGNING_SECRET", "CALL_INDEX_TABLE",
                "PROVIDERS_TABLE", "INTERACTION_LOGS_TABLE"},
        "tables": {"CallsTable", "EventsTable", "CallIndexTable", "ProvidersTable", "InteractionLogsTable"},
        "read_only": False,
    },
    "EnrichmentFunction": {
        "bin": "enrichment",
        "routes": set(),
        "env": {"CALLS_TABLE", "PROVIDERS_TABLE", "INTERACTION_LOGS_TABLE", "ENRICHMENT_QUEUE_URL",
                "ENRICHMENT_DELAYS", "RESULT_TTL_SECONDS", "VAPI_API_KEY", "VAPI_BASE_URL", "RUST_LOG",
                "EVENTS_TABLE", "EVENT_RETENTION_DAYS", "CALLBACK_RETRY_DELAYS", "CALLBACK_SIGNING_SECRET",
                "CALL_INDEX_TABLE", "EVENT_BUS_NAME"},
        "tables": {"CallsTable", "ProvidersTable", "InteractionLogsTable", "EventsTable", "CallIndexTable"},
        "read_only": False,
    },
    "CleanupFunction": {
        "bin": "cleanup",
        "routes": set(),
        "env": {"CALLS_TABLE", "PROVIDERS_TABLE", "INTERACTION_LOGS_TABLE", "ENRICHMENT_QUEUE_URL",
                "RESULT_TTL_SECONDS", "ENRICHMENT_DELAYS", "VAPI_API_KEY", "VAPI_BASE_URL",
                "VAPI_PHONE_NUMBER_ID", "DEPLOYMENT_ID", "RUST_LOG", "EVENTS_TABLE", "EVENT_RETENTION_DAYS",
                "CALLBACK_RETRY_DELAYS", "CALLBACK_SIGNING_SECRET", "CALL_INDEX_TABLE", "EVENT_BUS_NAME"},
        "tables": {"CallsTable", "ProvidersTable", "InteractionLogsTable", "EventsTable", "CallIndexTable"},
        "read_only": False,
    },
}
TABLES = {"CallsTable", "ProvidersTable", "InteractionLogsTable", "EventsTable", "CallIndexTable"}
SECRET_ENV = {"VAPI_API_KEY", "VAPI_WEBHOOK_SECRET", "VAPI_WEBHOOK_SECRET_PREVIOUS", "API_TOKEN",
              "CALLBACK_SIGNING_SECRET"}
# Kept webhooks and pushed events (api.md §8): exactly what each function may do on the events table,
# per resource, and no more (shared/src/adapters/dynamodb/{events,archive}.rs). The webhook keeps each
# delivery (a TransactWriteItems of the tally's UpdateItem and the body's PutItem; the tally read
# with GetItem for a re-send) and its replay reads them back (Query); the enrichment makes events and records attempts (PushStore::create/get/
# record_attempt); the cleanup makes the call.failed event of a call it settles (create/get);
# call-status lists a call's history (consistent Query on the table); the call-initiator's
# redelivery finds the event's call through the by-event-id index, reads the event and reopens it
# (PushStore::find/get/reopen).
# Every write that adds to a call's history holds its erasure mark absent (ConditionCheckItem); an
# erase (the call-initiator's DELETE, the cleanup finishing one) writes the mark, Queries the call's
# items and deletes them (BatchWriteItem).
EVENTS_GRANTS: dict[str, dict[str, set[str]]] = {
    "EnrichmentFunction": {"EventsTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                           "dynamodb:ConditionCheckItem"}},
    "CallStatusFunction": {"EventsTable": {"dynamodb:Query"},
                           "EventsTable/index/by-open-state": {"dynamodb:Query"}},
    "CallInitiatorFunction": {"EventsTable": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem",
                                              "dynamodb:Query", "dynamodb:BatchWriteItem"},
                              "EventsTable/index/by-event-id": {"dynamodb:Query"}},
    "WebhookFunction": {"EventsTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                        "dynamodb:Query", "dynamodb:ConditionCheckItem"}},
    "CleanupFunction": {"EventsTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem",
                                        "dynamodb:Query", "dynamodb:BatchWriteItem"}},
}
# The functions that sign or accept callbacks: they alone hold CALLBACK_SIGNING_SECRET (PushConfig).
PUSH_SECRET_HOLDERS = {"EnrichmentFunction", "CallInitiatorFunction", "CleanupFunction"}
# The call index (shared/src/adapters/dynamodb/call_index.rs): its GSIs as index -> HASH attribute
# (RANGE is sortKey for all), and what each function may do on it: the functions that write call
# records write summaries (PutItem, nothing else); the call-status function lists (Query on the
# indexes, BatchGetItem of the summaries); nobody scans it.
CALL_INDEX_GSIS = {"by-service-request": "serviceRequestId", "by-provider": "providerId",
                   "by-data-status": "dataStatusShard", "by-outcome": "outcomeShard", "by-time": "timeShard"}
# Summary writers also move the counts by state (UpdateItem) and read a summary's state they do not
# know (GetItem); an erase (and the initiator's undo) deletes the summary.
COUNTING = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"}
CALL_INDEX_ACTIONS = {
    "WebhookFunction": COUNTING,
    "CallInitiatorFunction": COUNTING | {"dynamodb:DeleteItem"},
    "EnrichmentFunction": COUNTING,
    # its revival reads unfinished summaries older than the TTL (shared/src/service/revive.rs)
    "CleanupFunction": COUNTING | {"dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem"},
    "CallStatusFunction": {"dynamodb:Query", "dynamodb:BatchGetItem"},
}
DYNAMO_READ = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
               "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"}
# Real IAM action names for the two services the functions touch. Anything else is a typo or an API name
# that is not an IAM action (dynamodb:TransactWriteItems is authorised as Put/Update/Delete/ConditionCheckItem).
KNOWN_ACTIONS = DYNAMO_READ | {
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
    "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "events:PutEvents",
}
ALLOWED_POLICY_TEMPLATES = {"EnrichmentFunction": {"SQSPollerPolicy"}}
EMF_ALARMS = {  # metric name -> required dimensions (as a dict) on an alarm in namespace Ringback
    "WebhooksRejected": {},
    "CallsSettledByCleanup": {},
    "EnrichmentOutcome": {"outcome": "fetch_failed"},
    "PersistRefused": {},
    "CallsAdoptedByCleanup": {},
    "ReconciliationFailed": {},
    "CallsRevivedByCleanup": {},
    "RevivalFailed": {},
    "CallbackDeadLettered": {},
    "CallbackAttempts": {"state": "pending"},
}


# --------------------------------------------------------------------------------------------------
# YAML with CloudFormation short-form tags (!Ref, !Sub, !GetAtt, ...), loaded as the long form
# --------------------------------------------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    pass


def _cfn_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(text: str) -> dict[str, Any]:
    doc = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(doc, dict) or "Resources" not in doc:
        raise ValueError("not a CloudFormation template (no Resources)")
    return doc


# --------------------------------------------------------------------------------------------------
# Helpers over the long form
# --------------------------------------------------------------------------------------------------

SUB_VAR = re.compile(r"\$\{(?!!)([A-Za-z0-9_:]+)(?:\.([A-Za-z0-9_.]+))?\}")


def references(node: Any) -> set[str]:
    """Logical ids (and parameter names) a node refers to through Ref, GetAtt or Sub."""
    out: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                out.add(target)
            elif key == "Fn::Sub":
                text, extra = (value[0], value[1]) if isinstance(value, list) else (value, {})
                if isinstance(text, str):
                    out |= {m.group(1) for m in SUB_VAR.finditer(text)} - set(extra or {})
                out |= references(extra)
            else:
                out |= references(value)
    elif isinstance(node, list):
        for item in node:
            out |= references(item)
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources_of_type(t: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if isinstance(v, dict) and v.get("Type") == type_name}


def fn_prop(t: dict[str, Any], logical_id: str, name: str) -> Any:
    """A function property, falling back to Globals.Function (how SAM applies them)."""
    props = t["Resources"].get(logical_id, {}).get("Properties", {}) or {}
    if name in props:
        return props[name]
    return ((t.get("Globals") or {}).get("Function") or {}).get(name)


def fn_env(t: dict[str, Any], logical_id: str) -> dict[str, Any]:
    glob = (((t.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    own = ((t["Resources"][logical_id].get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
    return {**glob, **own}


def is_get_att(node: Any, logical_id: str, attr: str) -> bool:
    return isinstance(node, dict) and node.get("Fn::GetAtt") == [logical_id, attr]


def workspace_binaries() -> set[str]:
    """Binary names of the workspace's function crates (package name, or [[bin]] names)."""
    bins: set[str] = set()
    for manifest in sorted((REPO / "functions").glob("*/Cargo.toml")):
        data = tomllib.loads(manifest.read_text())
        listed = [b.get("name") for b in data.get("bin", []) if isinstance(b, dict)]
        if listed:
            bins |= {b for b in listed if b}
        elif "package" in data:
            bins.add(data["package"]["name"])
    return bins


# --------------------------------------------------------------------------------------------------
# Checks. Each returns None when it holds, or a sentence saying what is wrong.
# --------------------------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    run: Callable[[dict[str, Any]], str | None]


CHECKS: list[Check] = []


def check(name: str) -> Callable[[Callable[[dict[str, Any]], str | None]], Callable[[dict[str, Any]], str | None]]:
    def register(fn: Callable[[dict[str, Any]], str | None]) -> Callable[[dict[str, Any]], str | None]:
        CHECKS.append(Check(name, fn))
        return fn
    return register


@check("the five functions exist, each a rust-cargolambda build of its workspace binary")
def _functions(t: dict[str, Any]) -> str | None:
    funcs = resources_of_type(t, "AWS::Serverless::Function")
    if set(funcs) != set(FUNCTIONS):
        return f"functions are {sorted(funcs)}, expected {sorted(FUNCTIONS)}"
    problems = []
    bins = workspace_binaries()
    for lid, spec in FUNCTIONS.items():
        meta = funcs[lid].get("Metadata") or {}
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{lid}: Metadata.BuildMethod is {meta.get('BuildMethod')!r}")
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if binary != spec["bin"]:
            problems.append(f"{lid}: BuildProperties.Binary is {binary!r}, expected {spec['bin']!r}")
        elif bins and binary not in bins:
            problems.append(f"{lid}: no crate under functions/ builds a binary named {binary!r}")
        if fn_prop(t, lid, "Handler") != "bootstrap":
            problems.append(f"{lid}: Handler is {fn_prop(t, lid, 'Handler')!r}, expected 'bootstrap'")
        if fn_prop(t, lid, "CodeUri") != ".":
            problems.append(f"{lid}: CodeUri is {fn_prop(t, lid, 'CodeUri')!r}, expected '.' (the workspace root)")
    return "; ".join(problems) or None


@check("every function runs on provided.al2023, on the Architecture parameter (default arm64)")
def _runtime(t: dict[str, Any]) -> str | None:
    problems = []
    param = (t.get("Parameters") or {}).get("Architecture") or {}
    if param.get("Default") != "arm64" or sorted(param.get("AllowedValues") or []) != ["arm64", "x86_64"]:
        problems.append(f"parameter Architecture must allow arm64 and x86_64 and default to arm64, is {param!r}")
    for lid in FUNCTIONS:
        if fn_prop(t, lid, "Runtime") != "provided.al2023":
            problems.append(f"{lid}: Runtime is {fn_prop(t, lid, 'Runtime')!r}")
        if fn_prop(t, lid, "Architectures") != [{"Ref": "Architecture"}]:
            problems.append(f"{lid}: Architectures is {fn_prop(t, lid, 'Architectures')!r}, not [!Ref Architecture]")
    return "; ".join(problems) or None


@check("every function logs in JSON format")
def _json_logs(t: dict[str, Any]) -> str | None:
    bad = []
    for lid in FUNCTIONS:
        own = ((t["Resources"][lid].get("Properties") or {}).get("LoggingConfig")) or {}
        glob = fn_prop(t, "__none__", "LoggingConfig") or {}
        if {**glob, **own}.get("LogFormat") != "JSON":
            bad.append(lid)
    return f"LogFormat is not JSON for {bad}" if bad else None


@check("every function has the environment variables its code requires (api.md §6)")
def _env(t: dict[str, Any]) -> str | None:
    problems = []
    for lid, spec in FUNCTIONS.items():
        missing = spec["env"] - set(fn_env(t, lid))
        if missing:
            problems.append(f"{lid} lacks {sorted(missing)}")
    return "; ".join(problems) or None


@check("timing settings (RESULT_TTL_SECONDS, ENRICHMENT_DELAYS, WATCHDOG_DELAY_SECONDS) agree in every function")
def _timing(t: dict[str, Any]) -> str | None:
    # The webhook and the call-initiator compute deadlines that the cleanup and the enrichment act on:
    # one function with another value would settle calls early or never (ringback::config::Timing).
    problems = []
    for var in ("RESULT_TTL_SECONDS", "ENRICHMENT_DELAYS", "WATCHDOG_DELAY_SECONDS"):
        values = {lid: repr(fn_env(t, lid).get(var)) for lid in FUNCTIONS if lid != "CallStatusFunction"}
        if len(set(values.values())) != 1 or "None" in values.values():
            problems.append(f"{var} differs: {values}")
    return "; ".join(problems) or None


@check("routes: each HTTP route is served by the function the contract (docs/api.md) gives it")
def _routes(t: dict[str, Any]) -> str | None:
    problems = []
    apis = set(resources_of_type(t, "AWS::Serverless::HttpApi"))
    for lid, spec in FUNCTIONS.items():
        events = (t["Resources"][lid].get("Properties") or {}).get("Events") or {}
        routes = set()
        for ev in events.values():
            if ev.get("Type") == "HttpApi":
                p = ev.get("Properties") or {}
                routes.add((str(p.get("Method", "")).upper(), p.get("Path")))
                api = p.get("ApiId", {}).get("Ref") if isinstance(p.get("ApiId"), dict) else None
                if api not in apis:
                    problems.append(f"{lid}: route {p.get('Path')} is not on a declared AWS::Serverless::HttpApi")
        if routes != spec["routes"]:
            problems.append(f"{lid}: routes {sorted(routes)}, expected {sorted(spec['routes'])}")
    return "; ".join(problems) or None


@check("routes: the deployed API is what openapi.json documents (every operation but ringback-local's own)")
def _documented_routes(t: dict[str, Any]) -> str | None:
    doc = json.loads((REPO / "openapi.json").read_text())
    documented = {(m.upper(), path) for path, item in doc["paths"].items() for m, op in item.items()
                  if "local" not in op.get("tags", [])}
    deployed = set()
    for res in t["Resources"].values():
        for ev in ((res.get("Properties") or {}).get("Events") or {}).values():
            if ev.get("Type") == "HttpApi":
                p = ev.get("Properties") or {}
                deployed.add((str(p.get("Method", "")).upper(), p.get("Path")))
    problems = []
    if documented - deployed:
        problems.append(f"documented but not deployed: {sorted(documented - deployed)}")
    if deployed - documented:
        problems.append(f"deployed but not documented: {sorted(deployed - documented)}")
    return "; ".join(problems) or None


# The queues the enrichment function consumes, each with its own event source and concurrency: push
# jobs apart from enrichment jobs, so that a receiver that hangs never holds an enrichment batch.
CONSUMED_QUEUES = {"EnrichmentQueue": "EnrichmentMaxConcurrency", "PushQueue": "PushMaxConcurrency"}
# The functions that queue push jobs (make events, redeliver them), and where they must send them.
PUSH_JOB_SENDERS = {"EnrichmentFunction", "CallInitiatorFunction", "CleanupFunction"}


@check("the SQS events report batch item failures (ReportBatchItemFailures), batches of 10, bounded concurrency; "
       "push jobs have their own queue and event source")
def _sqs_event(t: dict[str, Any]) -> str | None:
    events = (t["Resources"]["EnrichmentFunction"].get("Properties") or {}).get("Events") or {}
    sqs = [e for e in events.values() if e.get("Type") == "SQS"]
    problems = []
    queues = []
    for e in sqs:
        p = e.get("Properties") or {}
        q = p.get("Queue")
        name = q["Fn::GetAtt"][0] if isinstance(q, dict) and "Fn::GetAtt" in q else repr(q)
        queues.append(name)
        if not any(is_get_att(q, lid, "Arn") for lid in CONSUMED_QUEUES):
            problems.append(f"Queue is {q!r}, expected !GetAtt of one of {sorted(CONSUMED_QUEUES)}")
        if p.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
            problems.append(f"{name}: FunctionResponseTypes is {p.get('FunctionResponseTypes')!r}")
        if p.get("BatchSize") != 10:
            problems.append(f"{name}: BatchSize is {p.get('BatchSize')!r}, expected 10")
        want = {"Ref": CONSUMED_QUEUES.get(name)}
        if (p.get("ScalingConfig") or {}).get("MaximumConcurrency") != want:
            problems.append(f"{name}: ScalingConfig.MaximumConcurrency is not {want!r} (Vapi rate limits; "
                            "pushes bounded apart from enrichment)")
    if sorted(queues) != sorted(CONSUMED_QUEUES):
        problems.append(f"EnrichmentFunction consumes {sorted(queues)}, expected {sorted(CONSUMED_QUEUES)}")
    for lid in PUSH_JOB_SENDERS:
        got = fn_env(t, lid).get("PUSH_QUEUE_URL")
        if got != {"Ref": "PushQueue"}:
            problems.append(f"{lid}: PUSH_QUEUE_URL is {got!r}, expected !Ref PushQueue (push jobs on their own queue)")
    for lid in FUNCTIONS:
        if lid != "EnrichmentFunction":
            evs = (t["Resources"][lid].get("Properties") or {}).get("Events") or {}
            if any(e.get("Type") == "SQS" for e in evs.values()):
                problems.append(f"{lid} also consumes an SQS queue")
    return "; ".join(problems) or None


@check("the cleanup function runs on the CleanupSchedule schedule")
def _schedule(t: dict[str, Any]) -> str | None:
    events = (t["Resources"]["CleanupFunction"].get("Properties") or {}).get("Events") or {}
    sched = [e for e in events.values() if e.get("Type") in ("Schedule", "ScheduleV2")]
    if len(sched) != 1:
        return f"CleanupFunction has {len(sched)} schedule events, expected 1"
    expr = (sched[0].get("Properties") or {}).get("Schedule") or (sched[0].get("Properties") or {}).get(
        "ScheduleExpression")
    if expr != {"Ref": "CleanupSchedule"}:
        return f"schedule is {expr!r}, expected !Ref CleanupSchedule"
    default = (t.get("Parameters") or {}).get("CleanupSchedule", {}).get("Default", "")
    if not re.fullmatch(r"(rate\(\d+ (minute|minutes|hour|hours)\)|cron\(.+\))", str(default)):
        return f"CleanupSchedule default {default!r} is not a schedule expression"
    return None


@check("calls table: key callId (S), TTL on expiresAt enabled, PITR, SSE")
def _calls_table(t: dict[str, Any]) -> str | None:
    res = t["Resources"].get("CallsTable")
    if not res or res.get("Type") != "AWS::DynamoDB::Table":
        return "CallsTable is missing or not an AWS::DynamoDB::Table"
    p = res.get("Properties") or {}
    problems = []
    if p.get("KeySchema") != [{"AttributeName": "callId", "KeyType": "HASH"}]:
        problems.append(f"KeySchema is {p.get('KeySchema')!r}")
    ttl = p.get("TimeToLiveSpecification") or {}
    if ttl.get("AttributeName") != "expiresAt" or ttl.get("Enabled") is not True:
        problems.append(f"TimeToLiveSpecification is {ttl!r}, expected expiresAt enabled")
    if p.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append("BillingMode is not PAY_PER_REQUEST")
    if (p.get("SSESpecification") or {}).get("SSEEnabled") is not True:
        problems.append("SSE is not enabled")
    return "; ".join(problems) or None


@check("calls table: GSI unfinished-by-deadline on unfinishedShard (S) / deadline (N)")
def _gsi(t: dict[str, Any]) -> str | None:
    p = (t["Resources"].get("CallsTable") or {}).get("Properties") or {}
    gsis = {g.get("IndexName"): g for g in p.get("GlobalSecondaryIndexes") or []}
    g = gsis.get("unfinished-by-deadline")
    if not g:
        return f"no GSI named unfinished-by-deadline (found {sorted(gsis)})"
    want = [{"AttributeName": "unfinishedShard", "KeyType": "HASH"},
            {"AttributeName": "deadline", "KeyType": "RANGE"}]
    if g.get("KeySchema") != want:
        return f"KeySchema is {g.get('KeySchema')!r}"
    types = {a["AttributeName"]: a["AttributeType"] for a in p.get("AttributeDefinitions") or []}
    if types.get("unfinishedShard") != "S" or types.get("deadline") != "N":
        return f"attribute types are {types!r}, expected unfinishedShard S and deadline N"
    return None


@check("call index table: key callId, no TTL, retained, five KEYS_ONLY GSIs on sortKey")
def _call_index_table(t: dict[str, Any]) -> str | None:
    res = t["Resources"].get("CallIndexTable")
    if not res or res.get("Type") != "AWS::DynamoDB::Table":
        return "CallIndexTable is missing or not an AWS::DynamoDB::Table"
    p = res.get("Properties") or {}
    problems = []
    if p.get("KeySchema") != [{"AttributeName": "callId", "KeyType": "HASH"}]:
        problems.append(f"KeySchema is {p.get('KeySchema')!r}")
    if p.get("TimeToLiveSpecification"):
        problems.append("it has a TTL: summaries must outlive the call records")
    if res.get("DeletionPolicy") != "Retain" or res.get("UpdateReplacePolicy") != "Retain":
        problems.append("not retained (DeletionPolicy/UpdateReplacePolicy Retain): calls would become unfindable")
    types = {a["AttributeName"]: a["AttributeType"] for a in p.get("AttributeDefinitions") or []}
    gsis = {g.get("IndexName"): g for g in p.get("GlobalSecondaryIndexes") or []}
    if set(gsis) != set(CALL_INDEX_GSIS):
        problems.append(f"GSIs are {sorted(gsis)}, expected {sorted(CALL_INDEX_GSIS)}")
    for name, hash_key in CALL_INDEX_GSIS.items():
        g = gsis.get(name) or {}
        want = [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": "sortKey", "KeyType": "RANGE"}]
        if g and g.get("KeySchema") != want:
            problems.append(f"{name} KeySchema is {g.get('KeySchema')!r}")
        if g and (g.get("Projection") or {}).get("ProjectionType") != "KEYS_ONLY":
            problems.append(f"{name} is not KEYS_ONLY")
        if types.get(hash_key) != "S":
            problems.append(f"{hash_key} is not defined as S")
    if types.get("sortKey") != "S":
        problems.append("sortKey is not defined as S")
    return "; ".join(problems) or None


@check("call index IAM: record writers PutItem summaries and UpdateItem their counts (GetItem a summary whose state they do not know; the initiator and the cleanup also DeleteItem, to undo or erase; the cleanup also reads, to revive), call-status only Query/BatchGetItem, no Scan")
def _call_index_iam(t: dict[str, Any]) -> str | None:
    problems = []
    for lid, allowed in CALL_INDEX_ACTIONS.items():
        statements, _ = _statements(t, lid)
        granted: set[str] = set()
        for st in statements:
            if st.get("Effect") != "Allow" or "CallIndexTable" not in references(as_list(st.get("Resource", []))):
                continue
            granted |= {str(a) for a in as_list(st.get("Action", []))}
        if granted != allowed:
            problems.append(f"{lid} is granted {sorted(granted)} on the call index, expected {sorted(allowed)}")
    return "; ".join(problems) or None


@check("providers and interaction-logs tables: keys as in api.md §5, point-in-time recovery on every table")
def _other_tables(t: dict[str, Any]) -> str | None:
    want = {
        "ProvidersTable": [{"AttributeName": "providerId", "KeyType": "HASH"}],
        "InteractionLogsTable": [{"AttributeName": "requestId", "KeyType": "HASH"},
                                 {"AttributeName": "callId", "KeyType": "RANGE"}],
    }
    problems = []
    for lid, keys in want.items():
        p = (t["Resources"].get(lid) or {}).get("Properties") or {}
        if p.get("KeySchema") != keys:
            problems.append(f"{lid} KeySchema is {p.get('KeySchema')!r}")
    for lid in TABLES:
        p = (t["Resources"].get(lid) or {}).get("Properties") or {}
        if (p.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{lid} has no point-in-time recovery")
    return "; ".join(problems) or None


@check("events table: callId (S) + sk (S), TTL on expiresAt, sparse GSIs by-event-id on eventId (S) and by-open-state on openState (S), KEYS_ONLY")
def _events_table(t: dict[str, Any]) -> str | None:
    # The same shape as ensure_events_table (shared/src/adapters/dynamodb/tables.rs), which the local
    # runner and the tests use: a difference would only show once deployed.
    res = t["Resources"].get("EventsTable")
    if not res or res.get("Type") != "AWS::DynamoDB::Table":
        return "EventsTable is missing or not an AWS::DynamoDB::Table"
    p = res.get("Properties") or {}
    problems = []
    if p.get("KeySchema") != [{"AttributeName": "callId", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}]:
        problems.append(f"KeySchema is {p.get('KeySchema')!r}")
    types = {a.get("AttributeName"): a.get("AttributeType") for a in p.get("AttributeDefinitions") or []}
    if types != {"callId": "S", "sk": "S", "eventId": "S", "openState": "S"}:
        problems.append(f"AttributeDefinitions are {types!r}, expected callId, sk, eventId and openState as S")
    ttl = p.get("TimeToLiveSpecification") or {}
    if ttl.get("AttributeName") != "expiresAt" or ttl.get("Enabled") is not True:
        problems.append(f"TimeToLiveSpecification is {ttl!r}, expected expiresAt enabled (EVENT_RETENTION_DAYS)")
    gsis = {g.get("IndexName"): g for g in p.get("GlobalSecondaryIndexes") or []}
    for name, hash_key in (("by-event-id", "eventId"), ("by-open-state", "openState")):
        g = gsis.get(name)
        if not g:
            problems.append(f"no GSI named {name} (found {sorted(gsis)})")
            continue
        if g.get("KeySchema") != [{"AttributeName": hash_key, "KeyType": "HASH"}]:
            problems.append(f"{name} KeySchema is {g.get('KeySchema')!r}")
        if (g.get("Projection") or {}).get("ProjectionType") != "KEYS_ONLY":
            problems.append(f"{name} Projection is {g.get('Projection')!r}, expected KEYS_ONLY")
    if p.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append("BillingMode is not PAY_PER_REQUEST")
    if (p.get("SSESpecification") or {}).get("SSEEnabled") is not True:
        problems.append("SSE is not enabled")
    return "; ".join(problems) or None


@check("pushes: CALLBACK_SIGNING_SECRET only while Callbacks=on (default off), only where used; EVENTS_TABLE wired")
def _pushes(t: dict[str, Any]) -> str | None:
    # A dynamic reference to a key the secret lacks fails the deploy: stacks whose secret predates pushes
    # must keep deploying, so the reference is made only under a condition on Callbacks, off by default.
    problems = []
    param = (t.get("Parameters") or {}).get("Callbacks") or {}
    if param.get("Default") != "off" or sorted(param.get("AllowedValues") or []) != ["off", "on"]:
        problems.append(f"parameter Callbacks must allow off and on and default to off, is {param!r}")
    conditions = t.get("Conditions") or {}
    for lid in FUNCTIONS:
        env = fn_env(t, lid)
        if env.get("CALLBACK_HOSTS", "deployment") != "deployment":
            problems.append(f"{lid} sets CALLBACK_HOSTS={env['CALLBACK_HOSTS']!r} (loopback receivers are "
                            "for the local runner only; deployments call public hosts)")
        if "EVENTS_TABLE" in env and env["EVENTS_TABLE"] != {"Ref": "EventsTable"}:
            problems.append(f"{lid}: EVENTS_TABLE is {env['EVENTS_TABLE']!r}, expected !Ref EventsTable")
        if "CALLBACK_SIGNING_SECRET" not in env:
            continue
        if lid not in PUSH_SECRET_HOLDERS:
            problems.append(f"{lid} holds CALLBACK_SIGNING_SECRET but neither signs nor checks callbacks")
        if "EVENTS_TABLE" not in env:
            problems.append(f"{lid} has CALLBACK_SIGNING_SECRET without EVENTS_TABLE (PushConfig requires both)")
        value = env["CALLBACK_SIGNING_SECRET"]
        branches = value.get("Fn::If") if isinstance(value, dict) else None
        if not (isinstance(branches, list) and len(branches) == 3 and branches[2] == {"Ref": "AWS::NoValue"}):
            problems.append(f"{lid}: CALLBACK_SIGNING_SECRET is not !If [<Callbacks=on>, <secret>, !Ref AWS::NoValue]")
            continue
        cond = conditions.get(branches[0])
        if cond != {"Fn::Equals": [{"Ref": "Callbacks"}, "on"]}:
            problems.append(f"{lid}: CALLBACK_SIGNING_SECRET's condition {branches[0]!r} is {cond!r}, "
                            "expected !Equals [!Ref Callbacks, \"on\"]")
    enr = fn_env(t, "EnrichmentFunction")
    for var, ref in (("EVENT_RETENTION_DAYS", "EventRetentionDays"), ("CALLBACK_RETRY_DELAYS", "CallbackRetryDelays")):
        if enr.get(var) != {"Ref": ref}:
            problems.append(f"EnrichmentFunction: {var} is {enr.get(var)!r}, expected !Ref {ref}")
    return "; ".join(problems) or None


def _resource_key(r: Any) -> str:
    """A statement's resource as 'Table' or 'Table/index/Name' (for GetAtt Arn / Sub of it), else its repr."""
    if isinstance(r, dict) and isinstance(r.get("Fn::GetAtt"), list) and r["Fn::GetAtt"][1:] == ["Arn"]:
        return str(r["Fn::GetAtt"][0])
    text = r.get("Fn::Sub") if isinstance(r, dict) else None
    m = re.fullmatch(r"\$\{(\w+)\.Arn\}(/index/[\w.*-]+)", text) if isinstance(text, str) else None
    return f"{m.group(1)}{m.group(2)}" if m else repr(r)


@check("IAM: the events table's grants are exactly what each function's push code does (least privilege)")
def _events_iam(t: dict[str, Any]) -> str | None:
    problems = []
    for lid in FUNCTIONS:
        granted: dict[str, set[str]] = {}
        statements, _ = _statements(t, lid)
        for st in statements:
            if st.get("Effect") != "Allow":
                continue
            actions = {str(a) for a in as_list(st.get("Action", []))}
            for r in as_list(st.get("Resource", [])):
                if "EventsTable" in references(r):
                    granted.setdefault(_resource_key(r), set()).update(actions)
        want = EVENTS_GRANTS.get(lid, {})
        if granted != want:
            shown = {k: sorted(v) for k, v in granted.items()}
            problems.append(f"{lid} is granted {shown} on the events table, expected "
                            f"{ {k: sorted(v) for k, v in want.items()} }")
    return "; ".join(problems) or None


# Each consumed queue and its dead-letter queue, and the alarm on the latter.
DEAD_LETTERS = {"EnrichmentQueue": "EnrichmentDeadLetterQueue", "PushQueue": "PushDeadLetterQueue"}


@check("enrichment and push queues: RedrivePolicy to their DLQ with maxReceiveCount >= 5; DLQ keeps messages "
       "14 days and is alarmed when not empty")
def _redrive(t: dict[str, Any]) -> str | None:
    problems = []
    for queue, dlq_id in DEAD_LETTERS.items():
        q = (t["Resources"].get(queue) or {}).get("Properties") or {}
        rp = q.get("RedrivePolicy") or {}
        if not is_get_att(rp.get("deadLetterTargetArn"), dlq_id, "Arn"):
            problems.append(f"{queue}: deadLetterTargetArn is {rp.get('deadLetterTargetArn')!r}")
        try:
            if int(rp.get("maxReceiveCount", 0)) < 5:
                problems.append(f"{queue}: maxReceiveCount is {rp.get('maxReceiveCount')!r}, expected >= 5")
        except (TypeError, ValueError):
            problems.append(f"{queue}: maxReceiveCount is {rp.get('maxReceiveCount')!r}")
        dlq = (t["Resources"].get(dlq_id) or {}).get("Properties") or {}
        if dlq.get("MessageRetentionPeriod") != 1209600:
            problems.append(f"{dlq_id} MessageRetentionPeriod is {dlq.get('MessageRetentionPeriod')!r}, "
                            "expected 1209600")
        alarmed = any(
            r.get("Type") == "AWS::CloudWatch::Alarm"
            and (r.get("Properties") or {}).get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and any(is_get_att(d.get("Value"), dlq_id, "QueueName")
                    for d in as_list((r.get("Properties") or {}).get("Dimensions") or []))
            for r in t["Resources"].values()
        )
        if not alarmed:
            problems.append(f"{dlq_id} has no not-empty alarm")
    return "; ".join(problems) or None


@check("enrichment and push queues: VisibilityTimeout >= 6 x the enrichment function's Timeout")
def _visibility(t: dict[str, Any]) -> str | None:
    problems = []
    timeout = fn_prop(t, "EnrichmentFunction", "Timeout")
    for queue in CONSUMED_QUEUES:
        vis = ((t["Resources"].get(queue) or {}).get("Properties") or {}).get("VisibilityTimeout")
        if not isinstance(vis, int) or not isinstance(timeout, int):
            problems.append(f"{queue}: VisibilityTimeout {vis!r} and Timeout {timeout!r} must be literal numbers")
        elif vis < 6 * timeout:
            problems.append(f"{queue}: VisibilityTimeout {vis} < 6 x Timeout {timeout} = {6 * timeout}")
    return "; ".join(problems) or None


def _statements(t: dict[str, Any], lid: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The inline statements of a function's Policies, and the names of the SAM policy templates it uses."""
    policies = as_list((t["Resources"][lid].get("Properties") or {}).get("Policies") or [])
    statements: list[dict[str, Any]] = []
    templates: list[str] = []
    for pol in policies:
        if isinstance(pol, dict) and "Statement" in pol:
            statements += as_list(pol["Statement"])
        elif isinstance(pol, dict):
            templates += list(pol)
        else:  # a managed policy name or ARN
            templates.append(str(pol))
    return statements, templates


@check("IAM: each function's policy names only real actions, no wildcards, only the tables it uses")
def _iam(t: dict[str, Any]) -> str | None:
    problems = []
    for lid, spec in FUNCTIONS.items():
        statements, templates = _statements(t, lid)
        extra = set(templates) - ALLOWED_POLICY_TEMPLATES.get(lid, set())
        if extra:
            problems.append(f"{lid} uses policy templates/managed policies {sorted(extra)} (use scoped statements)")
        tables_used: set[str] = set()
        for st in statements:
            if st.get("Effect") != "Allow":
                continue
            actions = {str(a) for a in as_list(st.get("Action", []))}
            unknown = actions - KNOWN_ACTIONS
            if unknown:
                problems.append(f"{lid}: unknown or wildcard actions {sorted(unknown)}")
            res = as_list(st.get("Resource", []))
            if any(r == "*" for r in res):
                problems.append(f"{lid}: Resource '*' in statement {st.get('Sid', '?')}")
            refs = references(res)
            used = refs & TABLES
            tables_used |= used
            if any(a.startswith("dynamodb:") for a in actions) and not used:
                problems.append(f"{lid}: DynamoDB statement {st.get('Sid', '?')} names no table of the stack")
            # Only the enrichment consumer may also send to the dead-letter queue (it parks poison bodies);
            # only the functions that queue push jobs may send to the push queue.
            # The call-status function reads both queues' depths (GET /stats).
            dlq_users = {"EnrichmentFunction", "CallStatusFunction"}
            queues = ({"EnrichmentQueue"} | ({"EnrichmentDeadLetterQueue"} if lid in dlq_users else set())
                      | ({"PushQueue"} if lid in PUSH_JOB_SENDERS else set()))
            if any(a.startswith("sqs:") for a in actions) and refs - queues:
                problems.append(f"{lid}: SQS statement {st.get('Sid', '?')} names {sorted(refs)}")
            if spec["read_only"] and actions - DYNAMO_READ - {"sqs:GetQueueAttributes"}:
                writes = sorted(actions - DYNAMO_READ - {"sqs:GetQueueAttributes"})
                problems.append(f"{lid} must be read-only but is granted {writes}")
        if tables_used - spec["tables"]:
            problems.append(f"{lid} references tables it does not use: {sorted(tables_used - spec['tables'])}")
        if "CallsTable" not in tables_used:
            problems.append(f"{lid} has no access to the calls table")
    return "; ".join(problems) or None


@check("secrets: only Secrets Manager dynamic references, no secret parameter with a default, no NoEcho values")
def _secrets(t: dict[str, Any]) -> str | None:
    problems = []
    secretish = re.compile(r"(secret|token|apikey|api_key|password|credential)", re.I)
    for name, p in (t.get("Parameters") or {}).items():
        holds_a_name = re.search(r"(Name|Arn|Revision|Rotation)$", name) is not None
        if secretish.search(name) and not holds_a_name:
            problems.append(f"parameter {name} looks like it holds a secret value")
        if p.get("NoEcho"):
            problems.append(f"parameter {name} is NoEcho (secret values belong in Secrets Manager)")
    for lid in FUNCTIONS:
        for var, value in fn_env(t, lid).items():
            if var not in SECRET_ENV:
                if secretish.search(var) and not var.endswith(("_PARAM", "_REVISION", "_URL")):
                    problems.append(f"{lid}: {var} looks like a secret but is not one of {sorted(SECRET_ENV)}")
                continue
            if isinstance(value, dict) and "Fn::If" in value:
                value = value["Fn::If"][1]
            text = value.get("Fn::Sub") if isinstance(value, dict) else value
            if not (isinstance(text, str) and text.startswith("{{resolve:secretsmanager:")
                    and text.endswith(f":SecretString:{var}}}}}")):
                problems.append(f"{lid}: {var} is {value!r}, not a Secrets Manager reference to key {var}")
    return "; ".join(problems) or None


@check("the call-initiator's VAPI_WEBHOOK_URL is the webhook route of an API in this stack")
def _webhook_url(t: dict[str, Any]) -> str | None:
    value = fn_env(t, "CallInitiatorFunction").get("VAPI_WEBHOOK_URL")
    text = value.get("Fn::Sub") if isinstance(value, dict) else None
    if not isinstance(text, str):
        return f"VAPI_WEBHOOK_URL is {value!r}, expected a !Sub of the API's URL"
    m = re.fullmatch(r"https://\$\{(\w+)\}\.execute-api\.\$\{AWS::Region\}\.\$\{AWS::URLSuffix\}(/\S*)", text)
    if not m:
        return f"VAPI_WEBHOOK_URL {text!r} is not https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/path"
    api, path = m.groups()
    ev = [e.get("Properties") or {} for e in
          ((t["Resources"]["WebhookFunction"].get("Properties") or {}).get("Events") or {}).values()]
    if not any((p.get("ApiId") or {}).get("Ref") == api and p.get("Path") == path for p in ev):
        return f"VAPI_WEBHOOK_URL points at {api}{path}, which is not the webhook function's route"
    out = ((t.get("Outputs") or {}).get("WebhookUrl") or {}).get("Value")
    if out != value:
        return f"Output WebhookUrl {out!r} differs from VAPI_WEBHOOK_URL {value!r}"
    return None


@check("alarms: DLQ not empty, Errors of every function, EMF metrics in namespace Ringback")
def _alarms(t: dict[str, Any]) -> str | None:
    alarms = list(resources_of_type(t, "AWS::CloudWatch::Alarm").values())
    props = [a.get("Properties") or {} for a in alarms]
    problems = []

    def dims(p: dict[str, Any]) -> dict[str, Any]:
        return {d["Name"]: d["Value"] for d in p.get("Dimensions") or []}

    if not any(p.get("MetricName") == "ApproximateNumberOfMessagesVisible" and p.get("Namespace") == "AWS/SQS"
               and is_get_att(dims(p).get("QueueName"), "EnrichmentDeadLetterQueue", "QueueName")
               and p.get("Threshold") == 0 and p.get("ComparisonOperator") == "GreaterThanThreshold"
               for p in props):
        problems.append("no alarm on the DLQ's ApproximateNumberOfMessagesVisible > 0")
    covered = {dims(p).get("FunctionName", {}).get("Ref") for p in props
               if p.get("Namespace") == "AWS/Lambda" and p.get("MetricName") == "Errors"}
    for p in props:  # a metric-math alarm covering several functions also counts
        for m in p.get("Metrics") or []:
            stat = (m.get("MetricStat") or {}).get("Metric") or {}
            if stat.get("MetricName") == "Errors":
                covered |= {d["Value"].get("Ref") for d in stat.get("Dimensions") or [] if isinstance(d["Value"], dict)}
    if set(FUNCTIONS) - covered:
        problems.append(f"no Errors alarm for {sorted(set(FUNCTIONS) - covered)}")
    for metric, want_dims in EMF_ALARMS.items():
        if not any(p.get("Namespace") == "Ringback" and p.get("MetricName") == metric and dims(p) == want_dims
                   for p in props):
            problems.append(f"no alarm on Ringback/{metric} with dimensions {want_dims}")
    for lid, a in resources_of_type(t, "AWS::CloudWatch::Alarm").items():
        p = a.get("Properties") or {}
        if "AlarmActions" not in p:
            problems.append(f"{lid} has no AlarmActions (wire it to AlarmTopicArn)")
    return "; ".join(problems) or None


@check("CORS: the client API lets ConsoleOrigins' pages send the console's headers, without credentials; "
       "the webhook API allows no browser")
def _cors(t: dict[str, Any]) -> str | None:
    res = t["Resources"]
    if "CorsConfiguration" in (res.get("WebhookApi", {}).get("Properties") or {}):
        return "WebhookApi has a CorsConfiguration: only Vapi calls it"
    cors = (res.get("HttpApi", {}).get("Properties") or {}).get("CorsConfiguration")
    branches = cors.get("Fn::If") if isinstance(cors, dict) else None
    if not (isinstance(branches, list) and len(branches) == 3 and branches[0] == "ConsoleCors"
            and branches[2] == {"Ref": "AWS::NoValue"}):
        return "HttpApi CorsConfiguration must be !If [ConsoleCors, {...}, !Ref AWS::NoValue]"
    conf = branches[1]
    if conf.get("AllowOrigins") != {"Ref": "ConsoleOrigins"}:
        return "AllowOrigins must be the ConsoleOrigins parameter"
    if conf.get("AllowCredentials"):
        return "AllowCredentials: the console sends a bearer token, never cookies"
    headers = {h.lower() for h in conf.get("AllowHeaders") or []}
    needed = {"authorization", "content-type", "idempotency-key", "if-none-match"}
    if not needed <= headers:
        return f"AllowHeaders lacks {sorted(needed - headers)} (the console sends them)"
    if "etag" not in {h.lower() for h in conf.get("ExposeHeaders") or []}:
        return "ExposeHeaders must include etag (the console polls with If-None-Match)"
    return None


@check("outputs: ApiUrl, WebhookUrl, table names, queue URLs")
def _outputs(t: dict[str, Any]) -> str | None:
    want = {"ApiUrl", "WebhookUrl", "CallsTableName", "CallIndexTableName", "ProvidersTableName",
            "InteractionLogsTableName", "EventsTableName", "EnrichmentQueueUrl", "EnrichmentDeadLetterQueueUrl"}
    missing = want - set(t.get("Outputs") or {})
    return f"missing outputs {sorted(missing)}" if missing else None


@check("events/env.json gives each function exactly the variables the template declares; API events match the routes")
def _events(t: dict[str, Any]) -> str | None:
    import json

    events_dir = REPO / "events"
    problems = []
    try:
        local_env = json.loads((events_dir / "env.json").read_text())
    except (OSError, ValueError) as e:
        return f"cannot read events/env.json: {e}"
    deploy_only = {"SECRETS_REVISION", "VAPI_WEBHOOK_SECRET_PREVIOUS", "VAPI_ASSISTANT_ID"}
    for lid in FUNCTIONS:
        missing = set(fn_env(t, lid)) - deploy_only - set(local_env.get(lid) or {})
        if missing:
            problems.append(f"events/env.json {lid} lacks {sorted(missing)}")
        # sam local passes only the variables a function declares; anything else here is silently dropped.
        ignored = set(local_env.get(lid) or {}) - set(fn_env(t, lid))
        if ignored:
            problems.append(f"events/env.json {lid} sets {sorted(ignored)}, which the template does not declare "
                            "(sam local would ignore them)")
    for lid in set(local_env) - set(FUNCTIONS):
        problems.append(f"events/env.json has {lid}, which is not a function of the template")
    routes = {f"{m} {p}" for spec in FUNCTIONS.values() for m, p in spec["routes"]}
    for path in sorted(events_dir.glob("*.json")):
        try:
            event = json.loads(path.read_text())
        except ValueError as e:
            problems.append(f"{path.name} is not JSON: {e}")
            continue
        if isinstance(event, dict) and event.get("version") == "2.0":
            if event.get("routeKey") not in routes:
                problems.append(f"{path.name}: routeKey {event.get('routeKey')!r} is not a route of the template")
            if (event.get("requestContext") or {}).get("routeKey") != event.get("routeKey"):
                problems.append(f"{path.name}: requestContext.routeKey differs from routeKey")
    return "; ".join(problems) or None


@check("every !Ref / !GetAtt / ${...} names a parameter, resource or pseudo parameter")
def _dangling(t: dict[str, Any]) -> str | None:
    known = set(t.get("Parameters") or {}) | set(t["Resources"])
    bad = set()
    for lid, res in t["Resources"].items():
        for ref in references(res.get("Properties") or {}):
            if not ref.startswith("AWS::") and ref not in known:
                bad.add(f"{lid}->{ref}")
    return f"dangling references {sorted(bad)}" if bad else None


def _translate(t: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform  # installed with aws-sam-cli

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its "unpublished metrics" warnings are noise

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    sam = copy.deepcopy(t)
    for res in sam["Resources"].values():  # the translator wants S3 code locations, not a build folder
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = "s3://bucket/key"
    glob = (sam.get("Globals") or {}).get("Function") or {}
    if "CodeUri" in glob:
        glob["CodeUri"] = "s3://bucket/key"
    params = {k: v.get("Default", "x") for k, v in (sam.get("Parameters") or {}).items()}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(sam, params, NoManagedPolicies())


def find_cycle(resources: dict[str, Any]) -> list[str] | None:
    graph = {}
    for lid, res in resources.items():
        deps = references(res.get("Properties") or {}) | set(as_list(res.get("DependsOn") or []))
        graph[lid] = sorted(d for d in deps if d in resources and d != lid)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@check("no circular dependency after the SAM transform (CloudFormation rejects one; the linters do not see it)")
def _cycles(t: dict[str, Any]) -> str | None:
    try:
        out = _translate(t)
    except ImportError:
        return "samtranslator is not installed (it comes with aws-sam-cli)"
    except Exception as e:  # noqa: BLE001 - any translation error is a finding
        return f"the SAM transform failed: {e}"
    cycle = find_cycle(out["Resources"])
    return f"circular dependency: {' -> '.join(cycle)}" if cycle else None


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------

@dataclass
class Result:
    passed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_checks(t: dict[str, Any]) -> Result:
    r = Result()
    for c in CHECKS:
        try:
            problem = c.run(copy.deepcopy(t))
        except Exception as e:  # noqa: BLE001 - a malformed template fails the check, it does not crash the run
            problem = f"check crashed on this template: {type(e).__name__}: {e}"
        if problem:
            r.failed.append((c.name, problem))
        else:
            r.passed.append(c.name)
    return r


# Mutations of the real template's text, each of which must make at least the named check fail.
# A mutation whose target text is no longer in the template fails the self-test, so the list stays in step.
MUTATIONS: list[tuple[str, list[tuple[str, str]], str]] = [
    # (description, [(old text, new text), ...], check that must fail)
    ("enum typo in FunctionResponseTypes",
     [("- ReportBatchItemFailures", "- ReportBatchFailures")], "the SQS events report"),
    ("unsupported runtime",
     [("Runtime: provided.al2023", "Runtime: provided.al2099")], "every function runs on provided.al2023"),
    ("functions pinned to x86_64 again",
     [("Architectures: [!Ref Architecture]", "Architectures: [x86_64]")], "every function runs on provided.al2023"),
    ("x86_64 as the default architecture",
     [("    Default: arm64\n", "    Default: x86_64\n")], "every function runs on provided.al2023"),
    ("TTL on the wrong attribute",
     [("AttributeName: expiresAt", "AttributeName: expires_at")], "calls table: key callId"),
    ("GSI renamed",
     [("IndexName: unfinished-by-deadline", "IndexName: unfinished")], "calls table: GSI"),
    ("redrive after 2 receives",
     [("maxReceiveCount: 5", "maxReceiveCount: 2")], "enrichment and push queues: RedrivePolicy"),
    ("visibility timeout shorter than 6 x timeout",
     [("VisibilityTimeout: 180", "VisibilityTimeout: 60")], "enrichment and push queues: VisibilityTimeout"),
    ("call-status granted the providers table",
     [("                - !Sub ${CallsTable.Arn}/index/*\n            - Sid: CallIndexRead",
       "                - !GetAtt ProvidersTable.Arn\n            - Sid: CallIndexRead")], "IAM:"),
    ("call-status granted a write",
     [("            - Sid: CallsTableRead\n              Effect: Allow\n              Action:\n",
       "            - Sid: CallsTableRead\n              Effect: Allow\n              Action:\n"
       "                - dynamodb:PutItem\n")], "IAM:"),
    ("TransactWriteItems used as an IAM action",
     [("dynamodb:ConditionCheckItem # TransactWriteItems", "dynamodb:TransactWriteItems")], "IAM:"),
    ("webhook secret as a plain parameter with a default",
     [("  SecretsRevision:\n",
       "  WebhookSecret:\n    Type: String\n    Default: dev-webhook-secret\n  SecretsRevision:\n")], "secrets:"),
    ("webhook secret as a plain value",
     [('VAPI_WEBHOOK_SECRET: !Sub "{{resolve:secretsmanager:${SecretsName}:SecretString:VAPI_WEBHOOK_SECRET}}"',
       "VAPI_WEBHOOK_SECRET: dev-webhook-secret")], "secrets:"),
    ("wrong binary name",
     [("Binary: call-status", "Binary: callstatus")], "the five functions exist"),
    ("a new setting the local env file does not have",
     [("MAX_WEBHOOK_BYTES: !Ref MaxWebhookBytes\n",
       "MAX_WEBHOOK_BYTES: !Ref MaxWebhookBytes\n          WEBHOOK_NEW_SETTING: x\n")], "events/env.json"),
    ("a variable the local env file sets that the template does not declare (sam local drops it)",
     [("        AWS_ENDPOINT_URL: !If [HasLocalEndpoint, !Ref AwsEndpointUrl, !Ref AWS::NoValue]\n", "")],
     "events/env.json"),
    ("one function with its own watchdog delay",
     [("          DEPLOYMENT_ID: !Select [2, !Split ['/', !Ref AWS::StackId]]\n"
       "          SECRETS_REVISION: !Ref SecretsRevision\n",
       "          DEPLOYMENT_ID: !Select [2, !Split ['/', !Ref AWS::StackId]]\n"
       "          SECRETS_REVISION: !Ref SecretsRevision\n"
       "          WATCHDOG_DELAY_SECONDS: 60\n")],
     "timing settings"),
    ("events table without its TTL",
     [("        AttributeName: expiresAt # EventRetentionDays after the event is made\n        Enabled: true\n",
       "        AttributeName: expiresAt # EventRetentionDays after the event is made\n        Enabled: false\n")],
     "events table:"),
    ("events table without its by-event-id index",
     [("IndexName: by-event-id", "IndexName: by-event")], "events table:"),
    ("events table without the index GET /stats counts open pushed events on",
     [("        - IndexName: by-open-state\n", "        - IndexName: by-open\n")], "events table:"),
    ("call-status cannot count the open pushed events",
     [("              Resource: !Sub ${EventsTable.Arn}/index/by-open-state\n",
       "              Resource: !Sub ${EventsTable.Arn}/index/by-event-id\n")], "IAM: the events table"),
    ("events index projecting every attribute",
     [("ProjectionType: KEYS_ONLY # the call id is a key", "ProjectionType: ALL # the call id is a key")],
     "events table:"),
    ("call-status granted a write on the events table",
     [("              Action: dynamodb:Query\n              Resource: !GetAtt EventsTable.Arn\n",
       "              Action: [dynamodb:Query, dynamodb:PutItem]\n              Resource: !GetAtt EventsTable.Arn\n")],
     "IAM: the events table"),
    ("call-status granted a write on the events table (the read-only rule)",
     [("              Action: dynamodb:Query\n              Resource: !GetAtt EventsTable.Arn\n",
       "              Action: [dynamodb:Query, dynamodb:PutItem]\n              Resource: !GetAtt EventsTable.Arn\n")],
     "IAM: each function"),
    ("the redelivery Query widened from the index to every index",
     [("Resource: !Sub ${EventsTable.Arn}/index/by-event-id", "Resource: !Sub ${EventsTable.Arn}/index/*")],
     "IAM: the events table"),
    ("the enrichment cannot record delivery attempts (no UpdateItem on the events table)",
     [("                - dynamodb:ConditionCheckItem\n                - dynamodb:UpdateItem\n              Resource: !GetAtt EventsTable.Arn\n",
       "                - dynamodb:ConditionCheckItem\n              Resource: !GetAtt EventsTable.Arn\n")],
     "IAM: the events table"),
    ("the signing secret resolved whatever Callbacks says (breaks deploys whose secret lacks the key)",
     [("          CALLBACK_SIGNING_SECRET: !If\n            - PushesOn\n            - !Sub \"{{resolve:secretsmanager:${SecretsName}:SecretString:CALLBACK_SIGNING_SECRET}}\"\n            - !Ref AWS::NoValue\n",
       "          CALLBACK_SIGNING_SECRET: !Sub \"{{resolve:secretsmanager:${SecretsName}:SecretString:CALLBACK_SIGNING_SECRET}}\"\n")],
     "pushes:"),
    ("pushes on by default",
     [('    AllowedValues: ["off", "on"]\n    Default: "off"\n    Description: >-\n      "on" pushes',
       '    AllowedValues: ["off", "on"]\n    Default: "on"\n    Description: >-\n      "on" pushes')],
     "pushes:"),
    ("push jobs back on the enrichment queue",
     [("          PUSH_QUEUE_URL: !Ref PushQueue\n", "          PUSH_QUEUE_URL: !Ref EnrichmentQueue\n")],
     "the SQS events"),
    ("the push queue's event source sharing enrichment's concurrency",
     [("              MaximumConcurrency: !Ref PushMaxConcurrency\n",
       "              MaximumConcurrency: !Ref EnrichmentMaxConcurrency\n")],
     "the SQS events"),
    ("the push dead-letter queue without its alarm",
     [("          Value: !GetAtt PushDeadLetterQueue.QueueName\n", "          Value: PushDeadLetterQueue\n")],
     "enrichment and push queues: RedrivePolicy"),
    ("the webhook allowed to send push jobs",
     [("              Resource: !GetAtt EnrichmentQueue.Arn\n      Events:\n        Webhook:\n",
       "              Resource:\n                - !GetAtt EnrichmentQueue.Arn\n                - !GetAtt PushQueue.Arn\n"
       "      Events:\n        Webhook:\n")],
     "IAM:"),
    ("loopback callbacks allowed in a deployment",
     [("          EVENT_RETENTION_DAYS: !Ref EventRetentionDays\n",
       "          EVENT_RETENTION_DAYS: !Ref EventRetentionDays\n          CALLBACK_HOSTS: local\n")],
     "pushes:"),
    ("the timeline route missing",
     [("            Path: /api/v1/vapi/calls/{callId}/events\n", "            Path: /api/v1/vapi/calls/{callId}/history\n")],
     "routes:"),
    ("the dead-letter alarm on a metric the code does not emit",
     [("MetricName: CallbackDeadLettered", "MetricName: CallbacksDeadLettered")], "alarms:"),
    ("a call index that expires",
     [("      KeySchema:\n        - AttributeName: callId\n          KeyType: HASH\n      # KEYS_ONLY",
         "      TimeToLiveSpecification:\n        AttributeName: expiresAt\n        Enabled: true\n"
         "      KeySchema:\n        - AttributeName: callId\n          KeyType: HASH\n      # KEYS_ONLY")],
     "call index table"),
    ("a search index renamed",
     [("        - IndexName: by-time\n", "        - IndexName: by-created\n")], "call index table"),
    ("the call index deleted with the stack",
     [("    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n    Properties:\n      BillingMode: PAY_PER_REQUEST\n"
       "      AttributeDefinitions:\n        - AttributeName: callId\n          AttributeType: S\n"
       "        - AttributeName: sortKey",
       "    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      BillingMode: PAY_PER_REQUEST\n"
       "      AttributeDefinitions:\n        - AttributeName: callId\n          AttributeType: S\n"
       "        - AttributeName: sortKey")], "call index table"),
    ("record writers not allowed to write summaries",
     [("                - dynamodb:PutItem # a call's summary, in each record write's transaction,\n",
       "                - dynamodb:BatchGetItem # a call's summary, beside each record write\n")], "call index IAM"),
    ("the summary writers cannot move the counts by state",
     [("                - dynamodb:UpdateItem # with the counts by state it moves (stats)\n", "")], "call index IAM"),
    ("call-status allowed to scan the call index",
     [("                - dynamodb:Query # on the five search indexes only\n",
       "                - dynamodb:Query # on the five search indexes only\n                - dynamodb:Scan\n")],
     "call index IAM"),
    ("the API's description not deployed",
     [("        OpenApi:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref HttpApi\n"
       "            Path: /openapi.json\n            Method: GET\n", "")], "routes: the deployed API"),
    ("a route the description does not know",
     [("            Path: /api/v1/vapi/calls/{callId}/replay\n", "            Path: /api/v1/vapi/calls/{callId}/rebuild\n")],
     "routes: the deployed API"),
    ("the listing route dropped",
     [("        ListCalls:\n          Type: HttpApi\n          Properties:\n            ApiId: !Ref HttpApi\n"
       "            Path: /api/v1/vapi/calls\n            Method: GET\n", "")], "routes:"),
    ("the console's origins allowed to send cookies",
     [("          MaxAge: 600\n", "          MaxAge: 600\n          AllowCredentials: true\n")], "CORS:"),
    ("the console's Idempotency-Key refused by the preflight",
     [("AllowHeaders: [authorization, content-type, idempotency-key, if-none-match]",
       "AllowHeaders: [authorization, content-type, if-none-match]")], "CORS:"),
    # The classic SAM trap: the webhook route on the same API whose URL the call-initiator reads.
    ("one API for the webhook and the call-initiator (circular dependency)",
     [("ApiId: !Ref WebhookApi", "ApiId: !Ref HttpApi"), ("https://${WebhookApi}.", "https://${HttpApi}.")],
     "no circular dependency"),
]


def self_test(text: str) -> int:
    failures = 0
    base = run_checks(load_template(text))
    if base.failed:
        print(f"self-test: the unmutated template must pass first ({len(base.failed)} check(s) failed)")
        return 1
    for desc, edits, must_fail in MUTATIONS:
        missing = [old for old, _ in edits if old not in text]
        if missing:
            print(f"FAIL  mutation '{desc}': target text {missing[0]!r} not found in the template (update MUTATIONS)")
            failures += 1
            continue
        mutated_text = text
        for old, new in edits:
            mutated_text = mutated_text.replace(old, new)
        mutated = load_template(mutated_text)
        failed = [name for name, _ in run_checks(mutated).failed]
        caught = [name for name in failed if name.startswith(must_fail)]
        if caught:
            print(f"ok    mutation '{desc}' is caught by: {caught[0]}")
        else:
            print(f"FAIL  mutation '{desc}' was not caught by '{must_fail}...' (failed checks: {failed})")
            failures += 1
    total = len(MUTATIONS)
    print(f"self-test: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(REPO / "template.yaml"))
    ap.add_argument("--self-test", action="store_true", help="mutate the template and expect each check to fail")
    args = ap.parse_args()
    try:
        text = Path(args.template).read_text()
        template = load_template(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"check_template: cannot read {args.template}: {e}", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test(text)
    result = run_checks(template)
    for name in result.passed:
        print(f"ok    {name}")
    for name, problem in result.failed:
        print(f"FAIL  {name}\n      {problem}")
    print(f"template checks: {len(result.passed)} passed, {len(result.failed)} failed")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
