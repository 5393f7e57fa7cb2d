#!/usr/bin/env python3
"""Runs the README's flows as written, in order, the way a new user pastes them.

    python3 tests/readme/run_flows.py [--self-test]

Every `bash` block of the README from "Trying it" up to "How a call becomes a record" runs from the
repository's root against ringback-local on 127.0.0.1:3000 with its development defaults (the README's
first command, as a debug build), in a network namespace of its own with only loopback (so port 3000 is
free and nothing leaves the machine). A block passes when it exits 0 and its output holds what the
README's comments say it prints: each `"key":value` pair and each `key=value` word of a comment, and
each `state (status N)` of a delivery.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START, END = "## Trying it", "## How a call becomes a record"

PAIR = re.compile(r'"(\w+)":("[^"…]*"|true|false|null|-?\d+(?:\.\d+)?)')
WORD = re.compile(r"\b(\w+=[\w-]+)\b")
DELIVERY = re.compile(r"(\w+ \(status \d+\))")


def blocks(readme: str) -> list[str]:
    section = readme[readme.index(START):readme.index(END)]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def expectations(block: str) -> list[str]:
    """What the block's comments say its output holds."""
    found: list[str] = []
    for line in block.splitlines():
        if "#" not in line:
            continue
        comment = line[line.index("#") + 1:]
        found += [f'"{k}":{v}' for k, v in PAIR.findall(comment)]
        found += WORD.findall(comment)
        found += DELIVERY.findall(comment)
    return found


def missing(block: str, output: str) -> list[str]:
    return [e for e in expectations(block) if e not in output]


def wait_healthy(url: str, runner: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if runner.poll() is not None:
            raise SystemExit(f"ringback-local exited with {runner.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("ringback-local did not answer /health within 30 s")


def run() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    home = tempfile.mkdtemp(prefix="ringback-readme-")
    env = {**os.environ, "RINGBACK_CLI_HOME": home, "CARGO_NET_OFFLINE": "true", "NO_COLOR": "1"}
    for name in ("API_TOKEN", "VAPI_WEBHOOK_SECRET", "PORT", "RINGBACK_URL", "RINGBACK_TOKEN"):
        env.pop(name, None)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    log = open(target / "test-logs" / "readme-runner.log", "wb")
    # What `cargo run --release -p ringback-local` runs, started directly so that stopping it stops the runner.
    runner = subprocess.Popen([str(target / "release" / "ringback-local")], cwd=ROOT,
                              env={**env, "RINGBACK_DATA_DIR": os.path.join(home, "data"), "RUST_LOG": "warn"},
                              stdout=log, stderr=log)
    failures = 0
    try:
        wait_healthy("http://127.0.0.1:3000/health", runner)
        flows = blocks((ROOT / "README.md").read_text())
        for n, block in enumerate(flows, 1):
            t0 = time.monotonic()
            out = subprocess.run(["bash", "-eo", "pipefail", "-c", block], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=300)
            shown = (out.stdout + out.stderr).strip()
            gaps = missing(block, out.stdout)
            ok = out.returncode == 0 and not gaps
            failures += not ok
            first = block.strip().splitlines()[0]
            print(f"{'ok  ' if ok else 'FAIL'}  flow {n}/{len(flows)} ({time.monotonic() - t0:.1f}s): {first}")
            if not ok:
                print(f"      exit {out.returncode}; missing from its output: {gaps}")
                print("      " + shown.replace("\n", "\n      ")[:4000])
        print(f"README flows: {len(flows) - failures} passed, {failures} failed")
    finally:
        runner.terminate()
        runner.wait(timeout=30)
    return 1 if failures else 0


def self_test() -> int:
    block = ('curl -s x  # {"success":true,"data":{"callId":"c1","dataStatus":"partial"}}\n'
             "#   7.9s  callStatus=ended       dataStatus=complete\n"
             "# event call.completed evt_… to http://h: delivered (status 204)\n")
    good = '{"success":true,"data":{"callId":"c1","dataStatus":"partial"}}\ncallStatus=ended dataStatus=complete\n' \
           "event call.completed evt_1 to http://h: delivered (status 204)"
    assert missing(block, good) == [], missing(block, good)
    assert missing(block, good.replace("partial", "complete")) == ['"dataStatus":"partial"']
    assert missing(block, good.replace("status 204", "status 500")) == ["delivered (status 204)"]
    readme = (ROOT / "README.md").read_text()
    assert len(blocks(readme)) >= 4, "the README's flows were not found"
    print("self-test: 4 cases as expected")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if os.environ.get("RINGBACK_IN_NETNS"):
        return run()
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "ringback-local"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "-q", "-p", "ringback-cli"], cwd=ROOT, check=True)
    (Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "test-logs").mkdir(parents=True, exist_ok=True)
    ns = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    return subprocess.run([*ns, "env", "RINGBACK_IN_NETNS=1", sys.executable, __file__]).returncode


if __name__ == "__main__":
    sys.exit(main())
