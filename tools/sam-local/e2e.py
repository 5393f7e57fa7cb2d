"""The end-to-end checks of `stack.py test`: the five functions `sam build` made, through `sam local`.

A call is started through start-api (CallInitiatorFunction); the simulator's webhooks reach start-api
(WebhookFunction); poller.py drives EnrichmentFunction through start-lambda; GET (CallStatusFunction)
shows `complete`; the rows are in the tables; GET .../events (the call's timeline, reading the events
table) answers 200. Then a duplicate webhook, an unauthenticated one, a
retried Idempotency-Key, and `sam local invoke` of CleanupFunction with the scheduled event.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import boto3

from stack import PORTS, ROOT, Stack, http, say

BASE = f"http://127.0.0.1:{PORTS['api']}"


class Checks:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []

    def check(self, what: str, ok: bool, detail: object = "") -> bool:
        (self.passed if ok else self.failed).append(what)
        print(f"{'PASS' if ok else 'FAIL'}: {what}{'' if ok or detail == '' else f' ({detail})'}", flush=True)
        return ok


class Egress:
    """Counts packets sent on any interface but loopback while the test runs (root with iptables only)."""

    RULE = ["OUTPUT", "!", "-o", "lo", "-m", "comment", "--comment", "ringback-sam-local-egress"]

    def __init__(self) -> None:
        # A fresh machine may have no iptables until docker.io brings it: then nothing is counted.
        self.tools = [t for t in ("iptables", "ip6tables")
                      if shutil.which(t) and subprocess.run([t, "-I", *self.RULE[:1], "1", *self.RULE[1:]],
                                        capture_output=True).returncode == 0]

    def packets(self) -> int | None:
        if not self.tools:
            return None
        total = 0
        for t in self.tools:
            out = subprocess.run([t, "-L", "OUTPUT", "-v", "-n", "-x"], capture_output=True, text=True).stdout
            total += sum(int(line.split()[0]) for line in out.splitlines() if "ringback-sam-local-egress" in line)
        return total

    def remove(self) -> None:
        for t in self.tools:
            subprocess.run([t, "-D", *self.RULE], capture_output=True)


def api(method: str, path: str, body: dict | None = None, headers: dict | None = None):
    h = {"authorization": f"Bearer {Stack.function_env('CallStatusFunction')['API_TOKEN']}",
         "content-type": "application/json", **(headers or {})}
    status, hdrs, raw = http(method, BASE + path, json.dumps(body).encode() if body is not None else None, h)
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    try:
        return status, hdrs, json.loads(raw or b"null")
    except ValueError:
        return status, hdrs, raw


def call_request(name: str, phone: str) -> dict:
    req = json.loads(json.loads((ROOT / "events" / "call-initiator.json").read_text())["body"])
    return {**req, "providerName": name, "providerPhone": phone,
            "providerId": str(uuid.uuid4()), "serviceRequestId": str(uuid.uuid4())}


def wait_settled(call_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    record: dict = {}
    while time.monotonic() < deadline:
        status, _, body = api("GET", f"/api/v1/vapi/calls/{call_id}")
        if status == 200:
            record = body.get("data", body)
            if record.get("dataStatus") in ("complete", "fetch_failed"):
                return record
        time.sleep(0.5)
    return record


def webhook(body: dict, headers: dict) -> tuple[int, dict]:
    status, _, raw = http("POST", BASE + "/api/v1/vapi/webhook", json.dumps(body).encode(),
                          {"content-type": "application/json", **headers})
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"raw": raw[:200].decode(errors="replace")}


def rows(table: str, call_id: str) -> list[dict]:
    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{PORTS['aws']}", region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    items = ddb.scan(TableName=table)["Items"]
    return [i for i in items if call_id in json.dumps(i)]


def run_checks(stack: Stack, egress: Egress | None = None) -> int:
    c = Checks()
    t_test = time.monotonic()
    secret = Stack.function_env("WebhookFunction")["VAPI_WEBHOOK_SECRET"]

    t0 = time.monotonic()
    status, _, _ = api("GET", "/health")
    stack.timings["warm request"] = time.monotonic() - t0
    c.check("GET /health through start-api answers 200 warm", status == 200, status)
    status, _, doc = api("GET", "/openapi.json")
    committed = json.loads((ROOT / "openapi.json").read_text())
    c.check("GET /openapi.json answers the committed document", status == 200 and doc == committed, status)
    status, _, _ = api("GET", "/openapi.json", headers={"authorization": "Bearer wrong"})
    c.check("GET /openapi.json without the token is 401", status == 401, status)

    key = str(uuid.uuid4())
    request = call_request("Bay Area Plumbing Co.", "+14155550123")
    t0 = time.monotonic()
    status, _, body = api("POST", "/api/v1/vapi/calls", request, {"idempotency-key": key})
    stack.timings["POST /calls"] = time.monotonic() - t0
    call_id = (body or {}).get("data", {}).get("callId") if isinstance(body, dict) else None
    c.check("CallInitiatorFunction places a call and answers 202 with its callId", status == 202 and bool(call_id),
            f"{status} {body}")
    if not call_id:
        return report(c, stack, t_test, egress)
    status, _, again = api("POST", "/api/v1/vapi/calls", request, {"idempotency-key": key})
    c.check("the same Idempotency-Key answers the same call", status == 202 and
            (again or {}).get("data", {}).get("callId") == call_id, f"{status} {again}")
    _, _, listed = http("GET", f"http://127.0.0.1:{PORTS['simulator']}/call?limit=100",
                        headers={"authorization": f"Bearer {Stack.function_env('EnrichmentFunction')['VAPI_API_KEY']}"})
    placed = [x for x in json.loads(listed or b"[]") if x.get("id") == call_id]
    c.check("Vapi (the simulator) saw one POST /call", len(placed) == 1, len(placed))

    t0 = time.monotonic()
    record = wait_settled(call_id)
    stack.timings["call to complete"] = time.monotonic() - t0
    c.check("webhooks through WebhookFunction and enrichment through start-lambda: GET shows complete",
            record.get("dataStatus") == "complete" and record.get("status") == "completed",
            {k: record.get(k) for k in ("dataStatus", "status", "callStatus")})
    tables = Stack.function_env("EnrichmentFunction")
    c.check("one interaction log for the call", len(rows(tables["INTERACTION_LOGS_TABLE"], call_id)) == 1)
    c.check("the provider row holds the call", len(rows(tables["PROVIDERS_TABLE"], call_id)) == 1)

    # The timeline route reads the events table too (EVENTS_TABLE): a missing table, grant or variable
    # would be a 503 or 500 here. The call has no callbackUrl, so it lists no pushes.
    status, _, body = api("GET", f"/api/v1/vapi/calls/{call_id}/events")
    data = body.get("data", body) if isinstance(body, dict) else {}
    c.check("GET /calls/{id}/events through CallStatusFunction answers 200 with the call's timeline",
            status == 200 and data.get("callId") == call_id and data.get("pushes") == []
            and any(e.get("what") == "record.created" for e in data.get("timeline") or []),
            f"{status} {str(body)[:300]}")
    status, _, body = api("POST", "/api/v1/vapi/callbacks/evt_0000000000000000000000000000000/redeliver")
    c.check("POST /callbacks/{eventId}/redeliver of an unknown event is 404 (pushes on, events table reachable)",
            status == 404 and "no event" in json.dumps(body), f"{status} {str(body)[:300]}")

    _, before, _ = api("GET", f"/api/v1/vapi/calls/{call_id}")
    ended = {"message": {"type": "status-update", "status": "ended", "endedReason": "customer-ended-call",
                         "timestamp": int(time.time() * 1000), "call": {"id": call_id}}}
    first = webhook(ended, {"x-vapi-secret": secret})
    second = webhook(ended, {"x-vapi-secret": secret})
    _, after, _ = api("GET", f"/api/v1/vapi/calls/{call_id}")
    c.check("a duplicate webhook is answered 200 and changes nothing",
            first[0] == 200 and second[0] == 200 and before.get("etag") is not None
            and before.get("etag") == after.get("etag"), f"{first} {second} {before.get('etag')} {after.get('etag')}")
    status, body = webhook(ended, {"x-vapi-secret": "wrong"})
    c.check("an unauthenticated webhook is 401 unauthorized", status == 401 and "unauthorized" in json.dumps(body),
            f"{status} {body}")
    status, body = webhook(ended, {})
    c.check("a webhook with no credentials is 401", status == 401, status)

    dup = call_request("Acme [duplicate-webhooks]", "+14155550177")
    status, _, body = api("POST", "/api/v1/vapi/calls", dup, {"idempotency-key": str(uuid.uuid4())})
    dup_id = (body or {}).get("data", {}).get("callId") if isinstance(body, dict) else None
    if c.check("a second call (every webhook sent twice) is placed", status == 202 and bool(dup_id), body):
        record = wait_settled(dup_id)
        c.check("it completes with one interaction log", record.get("dataStatus") == "complete"
                and len(rows(tables["INTERACTION_LOGS_TABLE"], dup_id)) == 1, record.get("dataStatus"))

    t0 = time.monotonic()
    out = subprocess.run(stack.sam("local", "invoke", "CleanupFunction", "-e",
                                   str(ROOT / "events" / "cleanup-schedule.json"), *stack.local_flags),
                         env=stack.env, cwd=ROOT, capture_output=True, text=True)
    stack.timings["sam local invoke cleanup"] = time.monotonic() - t0
    c.check("sam local invoke CleanupFunction with the scheduled event succeeds",
            out.returncode == 0 and "errorMessage" not in out.stdout, (out.stdout + out.stderr)[-600:])
    return report(c, stack, t_test, egress)


def strict_egress() -> bool:
    return os.environ.get("RINGBACK_STRICT_EGRESS") == "1"


def report(c: Checks, stack: Stack, t_test: float, egress: Egress | None) -> int:
    stack.timings["checks"] = time.monotonic() - t_test
    n = egress.packets() if egress is not None else None
    if n is not None:
        # Anything else on the machine (a CI agent's own log streaming) counts too, so this fails the run
        # only when asked; on an otherwise idle machine it reads 0.
        if strict_egress():
            c.check("no packet left loopback during the run", n == 0, f"{n} packets")
        else:
            say(f"packets sent on non-loopback interfaces during the run: {n}")
    say("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in stack.timings.items()))
    say(f"{len(c.passed)} passed, {len(c.failed)} failed")
    return 0 if not c.failed else 1
