#!/usr/bin/env python3
"""GET /api/v1/vapi/stats against a runner holding many calls: how long it takes, and whether it agrees
with the listing.

Starts ringback-local (release build, embedded durable store in a fresh data directory), writes N calls
through its webhook (end-of-call reports with a mix of endings, and calls still ringing), then prints the
median and p99 latency of GET /stats (default window, the last 24 hours) over many requests, and
compares every count by dataStatus and by outcome with the number of calls the listing pages through
for the same window (`?status=X&since=&until=`). Exits 1 if any count disagrees.

    .venv/bin/python tools/bench/stats_bench.py             # 10,000 calls
    .venv/bin/python tools/bench/stats_bench.py --calls 2000

Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_bench import ROOT, SAMPLE, TOKEN, start_runner  # noqa: E402

RINGING = json.loads((ROOT / "fixtures/vapi/status-update-ringing.json").read_text())
ENDINGS = ["customer-ended-call", "customer-did-not-answer", "voicemail", "assistant-ended-call"]


def post(base: str, body: dict) -> None:
    req = urllib.request.Request(base + "/api/v1/vapi/webhook", data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", "x-vapi-secret": "dev-webhook-secret"})
    urllib.request.urlopen(req, timeout=30).read()


def seed(base: str, n: int) -> None:
    def one(i: int) -> None:
        call_id = str(uuid.uuid4())
        if i % 5 == 4:
            body = json.loads(json.dumps(RINGING))
        else:
            body = json.loads(json.dumps(SAMPLE))
            body["message"]["endedReason"] = ENDINGS[i % len(ENDINGS)]
        body["message"]["call"]["id"] = call_id
        # Created over the last few hours (one call every 1.5 s back from now): the default window
        # holds them all, spread over several hourly counters.
        created = datetime.now(timezone.utc) - timedelta(seconds=1.5 * i + 60)
        body["message"]["call"]["createdAt"] = created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z"
        post(base, body)

    t0 = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        for done, _ in enumerate(pool.map(one, range(n)), 1):
            if done % 2000 == 0:
                print(f"  seeded {done}/{n} calls ({time.monotonic() - t0:.0f} s)", file=sys.stderr)


def get(base: str, path: str) -> dict:
    req = urllib.request.Request(base + path, headers={"authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["data"]


def listed(base: str, status: str, since: str, until: str) -> int:
    # The listing's until is inclusive; the stats window ends just before its `until`.
    end = datetime.fromisoformat(until.replace("Z", "+00:00")) - timedelta(milliseconds=1)
    last = end.strftime("%Y-%m-%dT%H:%M:%S.") + f"{end.microsecond // 1000:03d}Z"
    q = {"status": status, "since": since, "until": last, "limit": "100"}
    count = 0
    while True:
        page = get(base, "/api/v1/vapi/calls?" + urllib.parse.urlencode(q))
        count += len(page["calls"])
        if not page.get("nextCursor"):
            return count
        q["cursor"] = page["nextCursor"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ringback-stats-bench-") as data:
        proc, base = start_runner(data)
        try:
            seed(base, args.calls)
            get(base, "/api/v1/vapi/stats")  # warm
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                stats = get(base, "/api/v1/vapi/stats")
                times.append((time.perf_counter() - t0) * 1000)
            calls = stats["calls"]
            wrong = []
            for group in ("byDataStatus", "byOutcome"):
                for status, n in calls[group].items():
                    seen = listed(base, status, calls["since"], calls["until"])
                    mark = "" if seen == n else "   <- DISAGREES"
                    if seen != n:
                        wrong.append(status)
                    print(f"  {status:<14} stats {n:>6}   listing {seen:>6}{mark}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    times.sort()
    print(f"GET /api/v1/vapi/stats against {args.calls:,} calls ({calls['total']:,} in its window "
          f"{calls['since']} .. {calls['until']}), {args.requests} requests:")
    print(f"  median {statistics.median(times):.2f} ms   p99 {times[int(len(times) * 0.99) - 1]:.2f} ms   "
          f"max {times[-1]:.2f} ms")
    print(f"  overdue {stats['overdue']}   queues {json.dumps(stats.get('queues'))}")
    if wrong:
        print(f"stats and the listing disagree on {wrong}")
        return 1
    print("stats agree with the listing on every status and outcome")
    return 0


if __name__ == "__main__":
    sys.exit(main())
