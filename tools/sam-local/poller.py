"""What AWS does around the enrichment and cleanup functions, for `sam local start-lambda`.

On AWS an event source mapping per queue (the enrichment queue, and the push queue apart from it)
long-polls it, invokes EnrichmentFunction with batches of up to 10 records (template.yaml: BatchSize
10, ReportBatchItemFailures), deletes the records that succeeded and leaves the failed ones to
reappear after the visibility timeout (then the redrive policy moves them to the dead-letter queue).
An EventBridge schedule invokes CleanupFunction. `sam local` does neither, so this does both, against
start-lambda's endpoint.

    python poller.py --queue-url URL [--queue-url URL2] --lambda-endpoint http://127.0.0.1:3002 [--cleanup-every 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCOUNT = "123456789012"


def log(msg: str) -> None:
    print(f"poller: {msg}", file=sys.stderr, flush=True)


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS mapping builds from a ReceiveMessage answer."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v["DataType"],
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def scheduled_event() -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ringback-local-cleanup"],
        "detail": {},
    }


class Poller:
    def __init__(self, args: argparse.Namespace) -> None:
        creds = {"region_name": REGION, "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.sqs = boto3.client("sqs", endpoint_url=args.sqs_endpoint, **creds)
        # Invocations may wait for a container to start; no retries, the queue is the retry.
        self.lam = boto3.client(
            "lambda",
            endpoint_url=args.lambda_endpoint,
            config=Config(retries={"max_attempts": 0}, read_timeout=120, connect_timeout=5),
            **creds,
        )
        self.args = args
        self.stop = threading.Event()

    def invoke(self, function: str, event: dict) -> tuple[dict | None, str | None]:
        """(payload, error): error is the function's error or the endpoint's."""
        try:
            out = self.lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        except Exception as e:  # noqa: BLE001 - any failure means "not processed", as on AWS
            return None, f"invoke failed: {e}"
        body = out["Payload"].read()
        if out.get("FunctionError"):
            return None, f"{out['FunctionError']}: {body[:300]!r}"
        try:
            return json.loads(body or b"null"), None
        except ValueError:
            return None, f"not JSON: {body[:300]!r}"

    def enrich_batch(self, queue_url: str, messages: list[dict]) -> None:
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rstrip('/').rsplit('/', 1)[-1]}"
        payload, error = self.invoke(self.args.enrichment_function, sqs_event(messages, queue_arn))
        if error:
            log(f"{len(messages)} record(s) left for redelivery: {error}")
            return
        failed = {f.get("itemIdentifier") for f in (payload or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        log(f"batch from {queue_url.rsplit('/', 1)[-1]}: {len(done)} done, {len(failed)} left for redelivery")

    def poll_queue(self, queue_url: str) -> None:
        """One event source mapping: its own batches and concurrency, whatever the other queue does."""
        with ThreadPoolExecutor(max_workers=self.args.concurrency) as pool:
            while not self.stop.is_set():
                try:
                    got = self.sqs.receive_message(
                        QueueUrl=queue_url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=1,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    ).get("Messages", [])
                except Exception as e:  # noqa: BLE001 - the emulator may be restarting
                    log(f"receive failed: {e}")
                    self.stop.wait(1)
                    continue
                if got:
                    pool.submit(self.enrich_batch, queue_url, got)

    def run_cleanup(self) -> None:
        while not self.stop.wait(self.args.cleanup_every):
            payload, error = self.invoke(self.args.cleanup_function, scheduled_event())
            log(f"cleanup: {error or json.dumps(payload)[:200]}")

    def run(self) -> None:
        threads = [threading.Thread(target=self.poll_queue, args=(url,), daemon=True)
                   for url in self.args.queue_url]
        if self.args.cleanup_every > 0:
            threads.append(threading.Thread(target=self.run_cleanup, daemon=True))
        for t in threads:
            t.start()
        log(f"polling {', '.join(self.args.queue_url)} for {self.args.enrichment_function}; cleanup every "
            f"{self.args.cleanup_every or 'never'} s")
        self.stop.wait()
        for t in threads:
            t.join(timeout=5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queue-url", required=True, action="append", help="a queue to poll; repeat for each")
    ap.add_argument("--sqs-endpoint", default="http://127.0.0.1:5000")
    ap.add_argument("--lambda-endpoint", default="http://127.0.0.1:3002")
    ap.add_argument("--enrichment-function", default="EnrichmentFunction")
    ap.add_argument("--cleanup-function", default="CleanupFunction")
    ap.add_argument("--cleanup-every", type=float, default=60.0, help="seconds; 0 = never")
    ap.add_argument("--concurrency", type=int, default=2, help="batches in flight per queue (MaximumConcurrency)")
    poller = Poller(ap.parse_args())
    signal.signal(signal.SIGTERM, lambda *_: poller.stop.set())
    signal.signal(signal.SIGINT, lambda *_: poller.stop.set())
    poller.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
