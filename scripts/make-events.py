#!/usr/bin/env python3
"""Writes the Lambda test events in events/ (committed; run this again only to change them).

    python3 scripts/make-events.py [--fixtures fixtures/vapi]

The API Gateway events are HTTP API payload format 2.0 requests, the shape API Gateway gives a Lambda
proxy integration; the webhook bodies are the Vapi fixtures (fixtures/vapi), byte for byte as Vapi would send them
(compact JSON). Fixed ids and times keep the files stable between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_ID = "a1b2c3d4e5"  # the client API (HttpApi)
WEBHOOK_API_ID = "f6g7h8i9j0"  # the Vapi-facing API (WebhookApi)
CALL_ID = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34"  # the call id of the Vapi fixtures
TIME_EPOCH_MS = 1795022485870  # 2026-11-18T17:21:25.870Z, when the fixture end-of-call-report was sent
WEBHOOK_SECRET = "dev-webhook-secret"  # fake: matches events/env.json
API_TOKEN = "dev-api-token"  # fake: matches events/env.json
DEPLOYMENT_ID = "sam-local"  # the stack's identity (template: the stack id's uuid)
# Fake (whsec_ + base64 of a fixed 32-byte key): lets sam local run with Callbacks=on.
CALLBACK_SIGNING_SECRET = "whsec_jnC31S+M/DGxOOBz48KRYUZrJlSbJ7T4Uw8JgtIt2iY="
EVENT_ID = "evt_3b6f0c1d9a2e4f5b8c7d6e5f4a3b2c1d"  # a pushed event's id (domain::push::event_id's shape)


def http_time(epoch_ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def api_event(method: str, route: str, path: str, *, api_id: str, headers: dict[str, str],
              body: str | None = None, path_parameters: dict[str, str] | None = None,
              query: dict[str, str] | None = None, request_id: str, source_ip: str, user_agent: str, epoch_ms: int = TIME_EPOCH_MS) -> dict:
    domain = f"{api_id}.execute-api.{REGION}.amazonaws.com"
    all_headers = {
        "accept": "*/*",
        "host": domain,
        "user-agent": user_agent,
        "x-amzn-trace-id": f"Root=1-{epoch_ms // 1000:08x}-{hashlib.sha256(request_id.encode()).hexdigest()[:24]}",
        "x-forwarded-for": source_ip,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        all_headers["content-length"] = str(len(body.encode()))
        all_headers["content-type"] = "application/json"
    all_headers.update(headers)
    event = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": dict(sorted(all_headers.items())),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": f"{method} {route}",
            "stage": "$default",
            "time": http_time(epoch_ms),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": False,
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


def compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def webhook_event(sample: dict, request_id: str, epoch_ms: int) -> dict:
    return api_event(
        "POST", "/api/v1/vapi/webhook", "/api/v1/vapi/webhook", api_id=WEBHOOK_API_ID,
        headers={"x-vapi-secret": WEBHOOK_SECRET}, body=compact(sample), request_id=request_id,
        source_ip="44.229.228.186", user_agent="axios/1.7.9", epoch_ms=epoch_ms,
    )


def sqs_record(message_id: str, body: str, receive_count: int, sent_ms: int) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{hashlib.sha256(message_id.encode()).hexdigest()}==",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent_ms),
            "SenderId": "AROAEXAMPLEROLEID:ringback-dev-WebhookFunction",
            "ApproximateFirstReceiveTimestamp": str(sent_ms + 3012),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - what SQS sends
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ringback-dev-EnrichmentQueue-1AbCdEfGhIjK",
        "awsRegion": REGION,
    }


def env_json() -> dict:
    """`sam local invoke --env-vars` format: one object per logical function id. Local emulators only."""
    # Only what the template declares: `sam local` passes a function no other variable from this file
    # (credentials and region it sets itself, from its own environment).
    aws = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "RUST_LOG": "info"}
    tables = {
        "CALLS_TABLE": "ringback-calls",
        "PROVIDERS_TABLE": "ringback-providers",
        "INTERACTION_LOGS_TABLE": "ringback-interaction-logs",
    }
    # template.yaml Globals: every function that reads or writes call records keeps the call index.
    index = {"CALL_INDEX_TABLE": "ringback-call-index"}
    queue = {"ENRICHMENT_QUEUE_URL": f"http://127.0.0.1:5000/{ACCOUNT}/ringback-enrichment"}
    # Push jobs' own queue (template.yaml PushQueue): the functions that queue them.
    push_queue = {"PUSH_QUEUE_URL": f"http://127.0.0.1:5000/{ACCOUNT}/ringback-push"}
    vapi = {"VAPI_BASE_URL": "http://127.0.0.1:3001", "VAPI_API_KEY": "dev-vapi-api-key"}
    # The timing settings every function shares (template.yaml Globals).
    common = {"RESULT_TTL_SECONDS": "1800", "ENRICHMENT_DELAYS": "3,5,8", "WATCHDOG_DELAY_SECONDS": "900"}
    # Kept webhooks and pushed events (template.yaml: EventsTable, Callbacks=on); call-status only
    # reads the table, the webhook only keeps deliveries in it.
    events = {"EVENTS_TABLE": "ringback-events"}
    push = {**events, **push_queue, "CALLBACK_SIGNING_SECRET": CALLBACK_SIGNING_SECRET}
    return {
        "WebhookFunction": {**aws, "CALLS_TABLE": tables["CALLS_TABLE"], **index, **queue, **common,
                            "MAX_WEBHOOK_BYTES": "1048576", "VAPI_WEBHOOK_SECRET": WEBHOOK_SECRET,
                            "VAPI_SIGNATURE_HEADER": "", "VAPI_SIGNATURE_ALGORITHM": "sha256",
                            "VAPI_SIGNATURE_ENCODING": "hex", "VAPI_BEARER_HEADER": "Authorization",
                            **index, **events, "EVENT_RETENTION_DAYS": "7",
                            "API_TOKEN": API_TOKEN, "API_AUTH": "bearer"},
        "CallStatusFunction": {**aws, "CALLS_TABLE": tables["CALLS_TABLE"], **index, **common, "API_TOKEN": API_TOKEN,
                               "API_AUTH": "bearer", **events, **queue,
                               "ENRICHMENT_DLQ_URL": f"http://127.0.0.1:5000/{ACCOUNT}/ringback-enrichment-dlq"},
        "CallInitiatorFunction": {**aws, **tables, **index, **queue, **vapi, **common,
                                  "VAPI_PHONE_NUMBER_ID": "c4e8a2f6-1d3b-4975-8e0a-6b2f4d8c1e37",
                                  "DEPLOYMENT_ID": DEPLOYMENT_ID,
                                  "VAPI_WEBHOOK_URL": "http://127.0.0.1:3000/api/v1/vapi/webhook",
                                  "VAPI_WEBHOOK_SECRET": WEBHOOK_SECRET, "API_TOKEN": API_TOKEN,
                                  "API_AUTH": "bearer", **push},
        "EnrichmentFunction": {**aws, **tables, **index, **queue, **vapi, **common,
                               "ENRICHMENT_DLQ_URL": f"http://127.0.0.1:5000/{ACCOUNT}/ringback-enrichment-dlq",
                               **push, "EVENT_RETENTION_DAYS": "7", "EVENT_BUS_NAME": "",
                               "CALLBACK_RETRY_DELAYS": "5,30,120,600,1800,3600,7200,14400,28800"},
        "CleanupFunction": {**aws, **tables, **index, **queue, **vapi, **common,
                            "VAPI_PHONE_NUMBER_ID": "c4e8a2f6-1d3b-4975-8e0a-6b2f4d8c1e37",
                            "DEPLOYMENT_ID": DEPLOYMENT_ID, **push, "EVENT_RETENTION_DAYS": "7", "EVENT_BUS_NAME": "",
                            "CALLBACK_RETRY_DELAYS": "5,30,120,600,1800,3600,7200,14400,28800"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=str(REPO / "fixtures" / "vapi"))
    samples = Path(ap.parse_args().fixtures)
    eocr = json.loads((samples / "end-of-call-report.json").read_text())
    status = json.loads((samples / "status-update-ended.json").read_text())

    call_request = {
        "providerName": "Bay Area Plumbing Co.",
        "providerPhone": "+14155550123",
        "serviceNeeded": "Emergency repair of a leaking water heater",
        "userCriteria": "Licensed and insured, can come today, quotes before starting work",
        "location": "San Francisco, CA 94110",
        "urgency": "within_24_hours",
        "providerId": "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "serviceRequestId": "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7",
    }
    events = {
        "webhook-end-of-call-report.json": webhook_event(eocr, "Yx1QmhoDIAMEbvQ=", TIME_EPOCH_MS),
        "webhook-status-update.json": webhook_event(status, "Yx1QkgR9IAMEbqA=", status["message"]["timestamp"]),
        "call-status.json": api_event(
            "GET", "/api/v1/vapi/calls/{callId}", f"/api/v1/vapi/calls/{CALL_ID}", api_id=API_ID,
            headers={"authorization": f"Bearer {API_TOKEN}"}, path_parameters={"callId": CALL_ID},
            request_id="Yx1Rb3kJIAMEb1w=", source_ip="203.0.113.10", user_agent="curl/8.5.0",
            epoch_ms=TIME_EPOCH_MS + 5000,
        ),
        "call-events.json": api_event(
            "GET", "/api/v1/vapi/calls/{callId}/events", f"/api/v1/vapi/calls/{CALL_ID}/events", api_id=API_ID,
            headers={"authorization": f"Bearer {API_TOKEN}"}, path_parameters={"callId": CALL_ID},
            request_id="Yx1Rc4mKIAMEb2A=", source_ip="203.0.113.10", user_agent="curl/8.5.0",
            epoch_ms=TIME_EPOCH_MS + 6000,
        ),
        "callback-redeliver.json": api_event(
            "POST", "/api/v1/vapi/callbacks/{eventId}/redeliver", f"/api/v1/vapi/callbacks/{EVENT_ID}/redeliver",
            api_id=API_ID, headers={"authorization": f"Bearer {API_TOKEN}"}, path_parameters={"eventId": EVENT_ID},
            request_id="Yx1Rd5nLIAMEb3B=", source_ip="203.0.113.10", user_agent="curl/8.5.0",
            epoch_ms=TIME_EPOCH_MS + 7000,
        ),
        "call-list.json": api_event(
            "GET", "/api/v1/vapi/calls", "/api/v1/vapi/calls", api_id=API_ID,
            headers={"authorization": f"Bearer {API_TOKEN}"},
            query={"serviceRequestId": call_request["serviceRequestId"], "limit": "20"},
            request_id="Yx1Rc4lKIAMEb2x=", source_ip="203.0.113.10", user_agent="ringback-cli/0.1",
            epoch_ms=TIME_EPOCH_MS + 6000,
        ),
        "call-initiator.json": api_event(
            "POST", "/api/v1/vapi/calls", "/api/v1/vapi/calls", api_id=API_ID,
            headers={"authorization": f"Bearer {API_TOKEN}",
                     "idempotency-key": "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f"},
            body=compact(call_request), request_id="Yx1PZ2pDoAMEbNg=", source_ip="203.0.113.10",
            user_agent="ringback-client/0.1", epoch_ms=TIME_EPOCH_MS - 74000,
        ),
        "enrichment-sqs.json": {"Records": [
            sqs_record("4b8d3e0a-6c1f-4f52-9a7e-2d5b8c1e0f34", compact({"callId": CALL_ID, "attempt": 1, "kind": "enrich"}),
                       1, TIME_EPOCH_MS),
            # Not JSON: the handler must report this one as a batch item failure and still process the first.
            sqs_record("9e2f7a1b-3d4c-4e5f-8a6b-7c8d9e0f1a2b", '{"callId": "5e2b7c91-4a3d-4f68', 1, TIME_EPOCH_MS + 20),
        ]},
        "cleanup-schedule.json": {
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": "2026-11-18T17:26:00Z",
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ringback-dev-CleanupFunctionSweep-1A2B3C4D5E6F"],
            "detail": {},
        },
        "env.json": env_json(),
    }
    EVENTS.mkdir(exist_ok=True)
    for name, event in events.items():
        (EVENTS / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote events/{name}")
    # cargo lambda watch takes KEY=VALUE files, not sam's per-function JSON: one file with the union.
    union: dict[str, str] = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": REGION}
    for fn_env in events["env.json"].values():
        union.update(fn_env)
    lines = ["# cargo lambda watch --env-file events/watch.env  (fake development values; local emulators only)"]
    lines += [f"{k}={v}" for k, v in sorted(union.items())]
    (EVENTS / "watch.env").write_text("\n".join(lines) + "\n")
    print("wrote events/watch.env")


if __name__ == "__main__":
    main()
