#!/usr/bin/env python3
"""Creates ringback's tables and queues on a local AWS emulator (moto_server), as template.yaml defines them.

    .venv/bin/moto_server -H 127.0.0.1 -p 5000 &            # the emulator (installed by scripts/test.sh)
    .venv/bin/python scripts/local-aws.py                    # tables + queues named as in events/env.json

Then `cargo lambda watch --env-file events/watch.env` or `sam local invoke --env-vars events/env.json`
reach them (docs/operations.md, "Run a function locally"). Safe to run again: what exists is kept.
The key schemas, the GSI, the TTL attribute and the redrive policy are read from template.yaml, so the
local copy cannot drift from what is deployed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml

REPO = Path(__file__).resolve().parents[1]


class CfnLoader(yaml.SafeLoader):
    pass


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)  # intrinsics are not needed here


def table_args(props: dict[str, Any], name: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = [
            {k: g[k] for k in ("IndexName", "KeySchema", "Projection")} for g in props["GlobalSecondaryIndexes"]
        ]
    return args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="http://127.0.0.1:5000")
    ap.add_argument("--env", default=str(REPO / "events" / "env.json"), help="where the names come from")
    args = ap.parse_args()

    template = yaml.load((REPO / "template.yaml").read_text(), Loader=CfnLoader)  # noqa: S506
    env = json.loads(Path(args.env).read_text())["EnrichmentFunction"]
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=args.endpoint)
    sqs = session.client("sqs", endpoint_url=args.endpoint)

    existing = set(ddb.list_tables()["TableNames"])
    for logical_id, env_var in (("CallsTable", "CALLS_TABLE"), ("ProvidersTable", "PROVIDERS_TABLE"),
                                ("InteractionLogsTable", "INTERACTION_LOGS_TABLE"), ("EventsTable", "EVENTS_TABLE"),
                                ("CallIndexTable", "CALL_INDEX_TABLE")):
        name = env[env_var]
        props = template["Resources"][logical_id]["Properties"]
        if name in existing:
            print(f"table {name}: exists")
            continue
        ddb.create_table(**table_args(props, name))
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        print(f"table {name}: created ({logical_id})")

    # Each queue the functions use, with its dead-letter queue (template.yaml: PushQueue keeps push jobs
    # apart from enrichment's).
    for logical_id, dlq_id, env_var in (("EnrichmentQueue", "EnrichmentDeadLetterQueue", "ENRICHMENT_QUEUE_URL"),
                                        ("PushQueue", "PushDeadLetterQueue", "PUSH_QUEUE_URL")):
        queue_url = env[env_var]
        queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        q_props = template["Resources"][logical_id]["Properties"]
        dlq_props = template["Resources"][dlq_id]["Properties"]
        dlq_url = sqs.create_queue(QueueName=f"{queue_name}-dlq", Attributes={
            "MessageRetentionPeriod": str(dlq_props["MessageRetentionPeriod"])})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(q_props["RedrivePolicy"]["maxReceiveCount"])}
        url = sqs.create_queue(QueueName=queue_name, Attributes={
            "VisibilityTimeout": str(q_props["VisibilityTimeout"]),
            "MessageRetentionPeriod": str(q_props["MessageRetentionPeriod"]),
            "RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
        print(f"queue {url} (dead letters: {dlq_url})")
        if queue_url.startswith(args.endpoint) and url != queue_url:
            print(f"note: the emulator's URL differs from {env_var}={queue_url}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
