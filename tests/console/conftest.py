"""The runner and the browser the console tests drive: ringback-local (debug build, in memory, fast
simulated calls) on a free loopback port, and Debian's Chromium through Playwright (no browser
download). tests/console/run.sh starts all of it inside a loopback-only network namespace."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SHOTS = TARGET / "console-screenshots"
AXE = ROOT / "tests/console/node_modules/axe-core/axe.min.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def runner():
    """The base URL of a fresh ringback-local with its development defaults."""
    port = free_port()
    log = open(TARGET / "test-logs/console-runner.log", "w")
    env = {
        **os.environ,
        "PORT": str(port),
        "RINGBACK_IN_MEMORY": "1",
        "ENRICHMENT_DELAYS": "2,1,1",
        "RINGBACK_SIM_TIME_SCALE": "0.2",
        "RUST_LOG": "info",
    }
    for name in ("API_TOKEN", "VAPI_BASE_URL", "API_AUTH", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    proc = subprocess.Popen([str(TARGET / "debug/ringback-local")], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ringback-local did not start: see {log.name}")
            time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        # As root (CI) Chromium's sandbox cannot start; the pages it loads are our own, on loopback.
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS
