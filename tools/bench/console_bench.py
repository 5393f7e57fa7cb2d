#!/usr/bin/env python3
"""The operator console's weight and first render against a runner holding many calls.

Starts ringback-local (release build, embedded durable store in a fresh data directory), writes N calls
into it through its webhook (an end-of-call report per call, 10 at a time), then opens /console/ in Debian's
Chromium through Playwright (signed in, cold cache each time) and prints, as the median of the loads:

- bytes over the wire: the page's own files, and the API's answers the first render asks for;
- first contentful paint (the shell), and the first page of calls in the table;
- the counts by status (one request to the stats route) on screen.

    .venv/bin/python tools/bench/console_bench.py          # 10,000 calls, 5 loads
    .venv/bin/python tools/bench/console_bench.py --calls 2000 --loads 3

Needs .venv (./scripts/test.sh --tools-only) and Debian's chromium (tests/console/run.sh installs it).
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "fixtures/vapi/end-of-call-report.json").read_text())
TOKEN = "dev-api-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_runner(data_dir: str) -> tuple[subprocess.Popen, str]:
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "ringback-local"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    port = free_port()
    # The seeded calls' enrichment waits past the measurement: the loads see a quiet runner.
    env = {**os.environ, "PORT": str(port), "RINGBACK_DATA_DIR": data_dir, "RUST_LOG": "warn",
           "ENRICHMENT_DELAYS": "900"}
    for name in ("API_TOKEN", "VAPI_BASE_URL", "AWS_ENDPOINT_URL", "RINGBACK_IN_MEMORY"):
        env.pop(name, None)
    proc = subprocess.Popen([str(target / "release/ringback-local")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("ringback-local did not start")


def seed(base: str, n: int) -> None:
    def one(i: int) -> None:
        body = json.loads(json.dumps(SAMPLE))
        body["message"]["call"]["id"] = str(uuid.uuid4())
        req = urllib.request.Request(base + "/api/v1/vapi/webhook", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "x-vapi-secret": "dev-webhook-secret"})
        urllib.request.urlopen(req, timeout=30).read()

    t0 = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        for done, _ in enumerate(pool.map(one, range(n)), 1):
            if done % 1000 == 0:
                print(f"  seeded {done}/{n} calls ({time.monotonic() - t0:.0f} s)", file=sys.stderr)


MEASURE = """async () => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const sum = (list) => list.reduce((n, r) => n + r.transferSize, 0);
  const api = resources.filter((r) => r.name.includes("/api/"));
  return {
    fcpMs: paint ? paint.startTime : null,
    filesBytes: nav.transferSize + sum(resources.filter((r) => !r.name.includes("/api/"))),
    filesDecoded: nav.decodedBodySize + resources.filter((r) => !r.name.includes("/api/")).reduce((n, r) => n + r.decodedBodySize, 0),
    apiBytes: sum(api),
    apiRequests: api.length,
  };
}"""


def load(browser, base: str) -> dict:
    ctx = browser.new_context()
    ctx.add_init_script(f"sessionStorage.setItem('ringback.console.base', ''); "
                        f"sessionStorage.setItem('ringback.console.token', '{TOKEN}');")
    page = ctx.new_page()
    t0 = time.monotonic()
    page.goto(base + "/console/#/calls")
    page.wait_for_selector("table.calls tbody tr")
    rows_ms = page.evaluate("performance.now()")
    page.wait_for_function("document.querySelectorAll('ul.counts:not(.outcomes) li').length === 5")
    counts_ms = page.evaluate("performance.now()")
    wall = (time.monotonic() - t0) * 1000
    figures = page.evaluate(MEASURE)
    ctx.close()
    return {**figures, "rowsMs": rows_ms, "countsMs": counts_ms, "wallMs": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--loads", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ringback-console-bench-") as data:
        proc, base = start_runner(data)
        try:
            seed(base, args.calls)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                load(browser, base)  # warm the runner, not the browser: each load has a fresh context
                runs = [load(browser, base) for _ in range(args.loads)]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if runs[0][k] is not None}
    print(f"console against {args.calls:,} calls, median of {args.loads} cold loads:")
    print(f"  page files over the wire   {med['filesBytes'] / 1024:.1f} KiB ({med['filesDecoded'] / 1024:.1f} KiB unpacked)")
    print(f"  API answers for the page   {med['apiBytes'] / 1024:.1f} KiB in {med['apiRequests']:.0f} requests")
    print(f"  first contentful paint     {med.get('fcpMs', float('nan')):.0f} ms")
    print(f"  first page of calls shown  {med['rowsMs']:.0f} ms")
    print(f"  counts by status shown     {med['countsMs']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
