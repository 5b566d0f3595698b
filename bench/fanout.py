"""How many cross-process messages each server process receives per prompt, with 3 processes.

    python -m bench.fanout [--source DIR] [--prompts N]

``--source`` is a Cuewire source tree (its ``server/`` goes first on PYTHONPATH; default: this
work tree); to measure an earlier version, export it first:
``mkdir /tmp/before && git archive <ref> server templates | tar -x -C /tmp/before``.

Three `cuewire serve` processes share one redis-server of our own. Only A runs deadlines (B and
C poll for them once a minute, after a first look at start when there are none); N visitors
connect to B and each views a product page, so A fires N deadline prompts (with an ack) to
sockets B holds. Counted per process:

- with python-socketio's Redis manager (before the inbox): every process receives every
  message published on the ``<prefix>:socketio`` channel, so each receives PUBLISH calls
  (Redis ``commandstats``) messages;
- with the inbox (inbox.py): what each process's ``cuewire_inbox_received_total`` counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import redis
import socketio

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PASSWORD = "fanout"
PRODUCT = "http://shop.test/product/boots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(probe: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up within {seconds:g} s")


def get(url: str, auth: bool = False) -> str:
    request = urllib.request.Request(url)
    if auth:
        token = b64encode(f"admin:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


def received(url: str) -> float:
    """Messages this process took from its inbox (0 for a version without one)."""
    text = get(url + "/metrics", auth=True)
    found = re.findall(r"^cuewire_inbox_received_total\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in found)


async def visit(url: str, n: int) -> None:
    client = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    got = asyncio.Event()
    client.on("prompt", lambda _data: got.set())
    auth = {"site": "test-site", "visitor": f"v_fanout{n:04d}", "session": None, "tab": "t"}
    await client.connect(
        url, headers={"Origin": url}, auth=auth, transports=["websocket"], wait_timeout=10
    )
    event = {"type": "page_view", "seq": 1, "ts": int(time.time() * 1000), "url": PRODUCT}
    await client.call("events", [event], timeout=10)
    await asyncio.wait_for(got.wait(), 15)
    await asyncio.sleep(0.5)  # the ack travels back and the firing is recorded
    await client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--prompts", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cw-fanout-"))
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    rport = free_port()
    redis_proc = subprocess.Popen(
        [binary, "--port", str(rport), "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
    )
    r = redis.Redis(port=rport, decode_responses=True)
    wait(r.ping, 10, "redis-server")
    ports = [free_port() for _ in range(3)]
    origins = ", ".join(f'"http://127.0.0.1:{p}"' for p in ports)
    sites = work / "sites.yaml"
    sites.write_text(f"sites:\n  test-site:\n    origins: [{origins}]\n")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port, poll in reversed(list(zip(ports, ["0.02", "60", "60"], strict=True))):
            env = {
                **os.environ,
                "PYTHONPATH": str(args.source / "server"),
                "CUEWIRE_TIMER_POLL_S": poll,
                "CUEWIRE_ADMIN_PASSWORD": PASSWORD,
            }
            argv = [sys.executable, "-m", "cuewire.cli", "serve", "--port", str(port)]
            argv += ["--redis-url", f"redis://127.0.0.1:{rport}/0", "--sites", str(sites)]
            argv += ["--rules", str(FIXTURES / "rules"), "--templates", str(FIXTURES / "templates")]
            argv += ["--log-level", "warning"]
            procs.append(subprocess.Popen(argv, env=env))
            url = f"http://127.0.0.1:{port}"
            wait(lambda url=url: get(url + "/healthz"), 30, f"server on {port}")
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        before = [received(u) for u in urls]
        r.config_resetstat()
        asyncio.run(_visits(urls, args.prompts))
        stats = r.info("commandstats")
        publishes = float(stats.get("cmdstat_publish", {}).get("calls", 0))
        subscribers = int(dict(r.pubsub_numsub("cw:socketio")).get("cw:socketio", 0))
        inbox = [received(u) - b for u, b in zip(urls, before, strict=True)]
        n = args.prompts
        if subscribers:  # python-socketio's Redis manager: every process gets every publish
            per_process = [publishes / n] * subscribers
            how = f"pub/sub: {publishes:g} PUBLISH to {subscribers} subscribers"
        else:
            per_process = [v / n for v in inbox]
            how = "inbox: cuewire_inbox_received_total"
        result = {
            "source": str(args.source),
            "prompts": n,
            "measured": how,
            "received_per_prompt": dict(zip("ABC", per_process, strict=False)),
            "total_per_prompt": sum(per_process),
            "redis_calls_per_prompt": {  # of the cross-process path; Lua's inner calls count
                k.removeprefix("cmdstat_"): round(v["calls"] / n, 2)
                for k, v in sorted(stats.items())
                if k in ("cmdstat_publish", "cmdstat_xadd", "cmdstat_xread", "cmdstat_xtrim")
            },
        }
        print(json.dumps(result, indent=2))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(15)
        r.close()
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


async def _visits(urls: list[str], n: int) -> None:
    """An idle visitor on every process (python-socketio's Redis manager subscribes a process
    only once it has a connection, as every process in production has), then N on B."""
    idle = []
    for i, url in enumerate(urls):
        client = socketio.AsyncClient(serializer="msgpack", reconnection=False)
        auth = {"site": "test-site", "visitor": f"v_idle{i:04d}", "session": None, "tab": "t"}
        await client.connect(
            url, headers={"Origin": url}, auth=auth, transports=["websocket"], wait_timeout=10
        )
        idle.append(client)
    await asyncio.sleep(0.5)  # the managers subscribe
    await asyncio.gather(*(visit(urls[1], i) for i in range(n)))
    await asyncio.gather(*(c.disconnect() for c in idle))


if __name__ == "__main__":
    main()
