#!/usr/bin/env python3
"""Load benchmark of ringback-local over HTTP, driven as users drive it (wrk from Debian's packages).

Each scenario starts a fresh `ringback-local` as the README starts it (embedded durable store in a new
data directory, the built-in Vapi simulator, the in-process queue and enrichment, logs to a file), puts
load on it with wrk, and prints req/s, latency percentiles, the server's CPU per request (everything the
requests set off included: the run is measured until the server is idle again), the embedded store's
requests per request on the same terms (the server reports its count on SIGUSR1, before and after) and, in
a separate short pass under strace, the system calls per request.

    python3 tools/bench/http_bench.py                       # every scenario, 10 s, median of 3 runs
    python3 tools/bench/http_bench.py --runs 1 --duration 5 --scenario webhook-new-10
    python3 tools/bench/http_bench.py --json out.json      # also write the figures as JSON
    ./scripts/bench.sh --profile                           # and a flame graph of each (tools/bench/profiles/)

Scenarios: webhook-new-{10,50} (an end-of-call-report for a call never seen, each request: the whole chain),
webhook-same-10 (one call again and again: the duplicate path), get-{10,50} (GET /api/v1/vapi/calls/{id}
over 2,000 seeded calls).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SAMPLE = ROOT / "fixtures" / "vapi" / "end-of-call-report.json"
SAMPLE_ID = "5e2b7c91-4a3d-4f68-b0c2-9d1e8a7f6b34"
TICK = os.sysconf("SC_CLK_TCK")

SCENARIOS = {
    "webhook-new-10": ("webhook.lua", {"BENCH_MODE": "new"}, 10),
    "webhook-new-50": ("webhook.lua", {"BENCH_MODE": "new"}, 50),
    "webhook-same-10": ("webhook.lua", {"BENCH_MODE": "same"}, 10),
    "get-10": ("get.lua", {}, 10),
    "get-50": ("get.lua", {}, 50),
}
# The line ringback-local logs on SIGUSR1 (local/src/main.rs): its embedded store's requests so far.
STORE_LINE = "store requests served:"
# What strace counts, by what it says of the system: the store's file writes and syncs, and socket sends.
SYSCALL_GROUPS = {
    "pwrite64": "store writes",
    "fsync": "fsync",
    "fdatasync": "fsync",
    "write": "writes",
    "writev": "writes",
    "sendto": "sends",
    "sendmsg": "sends",
    "recvfrom": "receives",
    "read": "reads",
    "epoll_wait": "polls",
    "futex": "futex",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, every thread, dead ones too


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """One ringback-local in a fresh data directory; stopped with Ctrl-C's signal so the store closes cleanly."""

    def __init__(self, binary: Path, extra_env: dict[str, str]):
        self.dir = Path(tempfile.mkdtemp(prefix="ringback-bench-"))
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAPI_", "RINGBACK_"))}
        env.update({"PORT": str(self.port), "RINGBACK_DATA_DIR": str(self.dir / "data"), "NO_COLOR": "1"})
        env.update(extra_env)
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen([str(binary)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"ringback-local exited at start; see {self.dir / 'server.log'}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)  # not listening yet: nothing to await but the port
        sys.exit("ringback-local did not answer /health within 30 s")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_idle(self, quiet: float = 1.0, limit: float = 60.0) -> None:
        """Waits until the server burns under 2 % of a core for `quiet` seconds (what the load set off is done)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            before = cpu_seconds(self.proc.pid)
            time.sleep(quiet)
            if cpu_seconds(self.proc.pid) - before < 0.02 * quiet:
                return
        print(f"  (server still busy after {limit:.0f} s)", file=sys.stderr)

    def store_requests(self, limit: float = 10.0) -> int:
        """The embedded store's requests so far: asks with SIGUSR1 and reads the line it logs."""
        self.log.flush()
        log = self.dir / "server.log"
        start = log.stat().st_size  # only what the server logs from now on is read, not the whole log
        self.proc.send_signal(signal.SIGUSR1)
        end = time.monotonic() + limit
        while time.monotonic() < end:
            with log.open(errors="replace") as f:
                f.seek(start)
                found = re.search(STORE_LINE + r" total (\d+)", f.read())
            if found:
                return int(found.group(1))
            time.sleep(0.02)  # the line is written by the server; a file offers nothing to await
        sys.exit("ringback-local did not report its store requests on SIGUSR1")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def seed_calls(server: Server, n: int, path: Path) -> None:
    """Creates n calls through the webhook (keep-alive, one connection) and writes their ids to `path`."""
    template = SAMPLE.read_text()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    ids = []
    for i in range(n):
        call_id = f"seed-{i:05d}"
        conn.request("POST", "/api/v1/vapi/webhook", body=template.replace(SAMPLE_ID, call_id).encode(),
                     headers={"Content-Type": "application/json", "X-Vapi-Secret": "dev-webhook-secret"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            sys.exit(f"seeding call {call_id} answered {resp.status}")
        ids.append(call_id)
    conn.close()
    path.write_text("\n".join(ids) + "\n")


def wrk(server: Server, script: str, env: dict[str, str], connections: int, duration: float,
        threads: int) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
           "-s", str(HERE / script), f"http://127.0.0.1:{server.port}"]
    run_env = {**os.environ, "BENCH_DIR": str(HERE), "BENCH_SAMPLE": str(SAMPLE),
               "BENCH_RUN": str(time.monotonic_ns()), **env}
    done = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk printed no result:\n{out}")
    return json.loads(line[len("RESULT "):])


def strace_counts(server: Server, script: str, env: dict[str, str], connections: int, threads: int) -> dict:
    """System calls per request, from a short run under `strace -c -f` (slow: its rate is not reported)."""
    out = server.dir / "strace.txt"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(server.proc.pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # strace attaches to every thread; it has no signal for "attached"
    result = wrk(server, script, env, connections, 3, threads)
    server.wait_idle()
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    counts: dict[str, float] = {}
    for row in out.read_text().splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", row)
        if m and m.group(2) in SYSCALL_GROUPS:
            group = SYSCALL_GROUPS[m.group(2)]
            counts[group] = counts.get(group, 0) + int(m.group(1))
    n = max(result["requests"], 1)
    return {k: round(v / n, 2) for k, v in sorted(counts.items())}


def tool(name: str) -> str:
    """A profiling tool: from PATH, else where scripts/bench.sh installs it (target/tools/bin)."""
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / "target" / "tools" / "bin"))
    if found is None:
        sys.exit(f"{name} is missing: run ./scripts/bench.sh --profile, which installs it")
    return found


def profile(server: Server, name: str, script: str, env: dict[str, str], connections: int, args) -> None:
    """One more run under `perf record` (call graphs from DWARF), written as a flame graph and a table.

    Recorded from the first request until the server is idle again, like the CPU figure: a new call's
    enrichment, rows and log are in it. The binary needs symbols and line tables (bench.sh --profile
    builds one); the .perf.data is removed, the SVG (inferno) and the top functions are kept.
    """
    out = args.profile
    out.mkdir(parents=True, exist_ok=True)
    data = server.dir / "perf.data"
    recorder = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,8192", "-p",
                                 str(server.proc.pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # perf, like strace, has no signal for "attached"
    result = wrk(server, script, env, connections, args.duration, args.threads)
    server.wait_idle()
    recorder.send_signal(signal.SIGINT)
    recorder.wait(timeout=120)
    stacks = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, check=True).stdout
    folded = subprocess.run([tool("inferno-collapse-perf")], input=stacks, capture_output=True, check=True).stdout
    title = f"ringback-local, {name}: {result['requests']} requests in {args.duration:g} s, until idle"
    svg = subprocess.run([tool("inferno-flamegraph"), "--title", title, "--minwidth", "0.2"],
                         input=folded, capture_output=True, check=True).stdout
    (out / f"{name}.svg").write_bytes(svg)
    table = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "-g", "none",
                            "--stdio", "-q", "--percent-limit", "0.4"], capture_output=True, text=True).stdout
    (out / f"{name}.txt").write_text(f"# {title}\n# share of the server's CPU samples by function (self time), "
                                     f"from perf report --no-children\n" + table)
    data.unlink()
    print(f"  profile: {out / (name + '.svg')}, {out / (name + '.txt')}", flush=True)


def check_applied(server: Server, mode: str | None, requests: int) -> None:
    """A run counts only if the server did what the scenario says: new calls applied, repeats found duplicate."""
    if mode is None:
        return
    server.log.flush()
    text = (server.dir / "server.log").read_text(errors="replace")
    applied, duplicate = text.count("webhook applied"), text.count("duplicate webhook")
    want_applied = requests if mode == "new" else 1
    if abs(applied - want_applied) > 2 * 50:  # wrk may not count the requests in flight when it stops
        sys.exit(f"expected about {want_applied} webhooks applied, the server logged {applied} "
                 f"(and {duplicate} duplicates): the load did not do what the scenario says")


def prepared_server(script: str, env: dict[str, str], args) -> tuple[Server, dict[str, str]]:
    """A fresh server, and the environment of the wrk script: GETs need calls to read, seeded first."""
    server = Server(args.binary, {"RINGBACK_IN_MEMORY": "1"} if args.in_memory else {})
    run_env = dict(env)
    if script == "get.lua":
        try:
            ids = server.dir / "ids.txt"
            seed_calls(server, 2000, ids)
            server.wait_idle()
            run_env["BENCH_IDS"] = str(ids)
        except BaseException:
            server.stop()
            raise
    return server, run_env


def run_scenario(name: str, args) -> dict:
    script, env, connections = SCENARIOS[name]
    runs = []
    for _ in range(args.runs):
        server, run_env = prepared_server(script, env, args)
        try:
            store0 = server.store_requests()
            cpu0 = cpu_seconds(server.proc.pid)
            result = wrk(server, script, run_env, connections, args.duration, args.threads)
            server.wait_idle()
            result["cpu_ms_per_request"] = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / max(result["requests"], 1)
            # Everything the requests set off (a new call's enrichment, rows and log) included.
            result["store_requests_per_request"] = (server.store_requests() - store0) / max(result["requests"], 1)
            result["rss_mib"] = rss_mib(server.proc.pid)
            check_applied(server, env.get("BENCH_MODE"), result["requests"])
            runs.append(result)
        finally:
            server.stop()
    by_rate = sorted(runs, key=lambda r: r["requests"] / r["duration_us"])
    median = dict(by_rate[len(by_rate) // 2])
    median["rps"] = median["requests"] * 1e6 / median["duration_us"]
    median["rps_runs"] = [round(r["requests"] * 1e6 / r["duration_us"]) for r in runs]
    if args.syscalls:
        server, run_env = prepared_server(script, env, args)
        try:
            median["syscalls_per_request"] = strace_counts(server, script, run_env, connections, args.threads)
        finally:
            server.stop()
    if args.profile:
        server, run_env = prepared_server(script, env, args)
        try:
            profile(server, name, script, run_env, connections, args)
        finally:
            server.stop()
    return median


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "ringback-local")
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default: all")
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--runs", type=int, default=3, help="runs per scenario; the median by req/s is reported")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--in-memory", action="store_true", help="RINGBACK_IN_MEMORY=1 (no durability)")
    p.add_argument("--no-syscalls", dest="syscalls", action="store_false", help="skip the strace pass")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="also profile each scenario with perf: DIR/<scenario>.svg (flame graph) and .txt")
    args = p.parse_args()
    for needed in ["wrk"] + (["strace"] if args.syscalls else []) + (["perf"] if args.profile else []):
        if shutil.which(needed) is None:
            sys.exit(f"{needed} is not installed: run ./scripts/bench.sh, which installs it (Debian)")
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: cargo build --release -p ringback-local")
    results = {}
    print(f"{'scenario':<17} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'CPU ms/req':>10} {'store/req':>9} {'RSS MiB':>8} {'non-2xx':>7}  syscalls/request")
    for name in args.scenario or list(SCENARIOS):
        r = run_scenario(name, args)
        results[name] = r
        sys_text = ", ".join(f"{k} {v}" for k, v in r.get("syscalls_per_request", {}).items())
        print(f"{name:<17} {r['rps']:>8.0f} {r['p50_us'] / 1000:>7.2f} {r['p90_us'] / 1000:>7.2f} "
              f"{r['p99_us'] / 1000:>7.2f} {r['max_us'] / 1000:>7.1f} {r['cpu_ms_per_request']:>10.3f} "
              f"{r['store_requests_per_request']:>9.2f} "
              f"{r['rss_mib']:>8.1f} {r['non2xx'] + r['socket_errors']:>7}  {sys_text}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
