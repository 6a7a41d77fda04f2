"""Control-node round trips against their transport: ``python -m cfc_control.bench node [--quick]``.

Two servers, each in its own process, measured in the same run by the same clients over loopback
TCP with the node's wire format (a DEALER sending an empty delimiter and a msgpack map with
float64 observation bytes):

* the anchor: a bare pyzmq ROUTER that decodes each msgpack request and answers a reply map of
  the node's shape (what any node costs at least: the transport and the encoding);
* the node: ``python -m cfc_control.serve`` on a 64-unit CfC policy (17 observations, 6 actions,
  random weights).

Measured: one robot's round trips, one after another (p50, p99 in microseconds); 8 robots, each a
client process sending its next request when the last reply came (requests per second over all,
p50 and p99); and how long the serve command takes to exit after SIGTERM while the 8 robots keep
sending. Goals (issue 15): one robot p50 <= 80 us and p99 <= 250 us; 8 robots >= 15,000
requests/s with p99 <= 2 ms; SIGTERM stops it within 1 s. The load average is printed: on a
shared machine the other processes show up in every figure, the anchor's included.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import msgpack
import numpy as np
import zmq

N_OBS, N_ACT, UNITS, NOMINAL = 17, 6, 64, 0.05
GOALS = {"p50_1": 80.0, "p99_1": 250.0, "rps_8": 15000.0, "p99_8": 2000.0, "stop_s": 1.0}

# The anchor server, run with ``python -c``: decode, build the node's reply, encode, send.
ECHO_SERVER = f"""
import msgpack, zmq
ctx = zmq.Context.instance()
sock = ctx.socket(zmq.ROUTER)
sock.setsockopt(zmq.LINGER, 0)
sock.bind("tcp://127.0.0.1:*")
print("serving on", sock.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
zero = [0.0] * {N_ACT}
while True:
    frames = sock.recv_multipart()
    req = msgpack.unpackb(frames[-1], raw=False)
    reply = {{"ok": True, "robot": req["robot"], "action": zero, "reset": False, "gap": None, "clamped": False,
             "id": req.get("id")}}
    sock.send_multipart(frames[:-1] + [msgpack.packb(reply, use_bin_type=True)])
"""


@dataclass
class Figures:
    name: str
    p50_1: float
    p99_1: float
    rps_8: float
    p50_8: float
    p99_8: float
    stop_s: Optional[float] = None


def _request(robot: str, i: int, obs: bytes) -> List[bytes]:
    return [b"", msgpack.packb({"robot": robot, "obs": obs, "dt": NOMINAL, "id": i}, use_bin_type=True)]


def _connect(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(endpoint)
    return sock


def round_trips(endpoint: str, robot: str, count: int, start_at: Optional[float] = None,
                seconds: Optional[float] = None) -> np.ndarray:
    """Round-trip times (ns) of ``count`` requests one after another, after 200 unmeasured ones;
    with ``start_at`` (time.monotonic()) the measured ones start then and last ``seconds``."""
    sock = _connect(endpoint)
    obs = np.random.default_rng(abs(hash(robot)) % 2**32).normal(size=N_OBS).astype("<f8").tobytes()
    clock = time.perf_counter_ns
    times = np.zeros(count, dtype=np.int64)
    try:
        for i in range(200):
            _ask(sock, robot, i, obs)
        until = float("inf")
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.monotonic()))
            until = start_at + seconds
        n = 0
        while n < count and (n % 64 or time.monotonic() < until):
            start = clock()
            _ask(sock, robot, n, obs)
            times[n] = clock() - start
            n += 1
    finally:
        sock.close(0)
    return times[:n]


def _ask(sock: zmq.Socket, robot: str, i: int, obs: bytes) -> None:
    sock.send_multipart(_request(robot, i, obs))
    reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
    if not reply.get("ok"):
        raise RuntimeError(f"error reply: {reply}")


def _client(args: Tuple[str, str, float, float]) -> np.ndarray:
    endpoint, robot, start_at, seconds = args
    return round_trips(endpoint, robot, 10**7, start_at, seconds)


def _ready(_: int) -> int:
    return os.getpid()


def _flood(endpoint: str, stop: "mp.synchronize.Event", started: "mp.synchronize.Event") -> None:
    """A robot that pipelines requests without waiting for replies (the stop-time load)."""
    sock = _connect(endpoint)
    obs = np.zeros(N_OBS, "<f8").tobytes()
    i = 0
    try:
        while not stop.is_set():
            for _ in range(32):
                i += 1
                try:
                    sock.send_multipart(_request("flood", i, obs), zmq.NOBLOCK)
                except zmq.Again:  # the node's queue is full: what we want
                    break
            while sock.poll(0):
                sock.recv_multipart()
                started.set()
    except zmq.ZMQError:
        pass
    finally:
        sock.close(0)


def _start(command: List[str]) -> Tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    line = proc.stdout.readline()
    if " on " not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stderr.read()}")
    return proc, line.strip().rsplit(" on ", 1)[1]


def measure_server(name: str, command: List[str], pool, single: int, seconds: float, robots: int,
                   stop_time: bool) -> Figures:
    proc, endpoint = _start(command)
    try:
        one = round_trips(endpoint, "solo", single) / 1e3
        start_at = time.monotonic() + 1.0  # after every client's warm-up
        parts = pool.map(_client, [(endpoint, f"r{k}", start_at, seconds) for k in range(robots)])
        many = np.concatenate(parts) / 1e3
        figures = Figures(name, float(np.percentile(one, 50)), float(np.percentile(one, 99)),
                          len(many) / (many.sum() / 1e6 / robots), float(np.percentile(many, 50)), float(np.percentile(many, 99)))
        if stop_time:
            figures.stop_s = _stop_time(proc, endpoint)
        return figures
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _stop_time(proc: subprocess.Popen, endpoint: str) -> float:
    """Seconds from SIGTERM to exit while 8 robots pipeline requests."""
    ctx = mp.get_context("spawn")
    stop, started = ctx.Event(), ctx.Event()
    floods = [ctx.Process(target=_flood, args=(endpoint, stop, started), daemon=True) for _ in range(8)]
    for f in floods:
        f.start()
    started.wait(30)  # replies are coming: the node is busy
    time.sleep(1.0)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
        took = time.monotonic() - start
    except subprocess.TimeoutExpired:
        took = float("inf")
    stop.set()
    for f in floods:
        f.join(5)
    return took


def _policy(directory: Path) -> Path:
    import torch

    from cfc_control.models import make
    from cfc_control.policies import ActionMapping, ObsNormalizer, RecurrentPolicy, TimeInput, save_policy

    torch.manual_seed(0)
    policy = RecurrentPolicy(make("cfc", N_OBS, N_ACT, units=UNITS), ObsNormalizer(np.zeros(N_OBS), np.ones(N_OBS)),
                             ActionMapping(-np.ones(N_ACT), np.ones(N_ACT)), TimeInput.around(NOMINAL), task=None)
    return save_policy(policy.eval(), directory / "policy")


def _table(rows: List[Figures]) -> str:
    anchor = rows[0]
    out = ["| server | 1 robot p50 (us) | p99 (us) | 8 robots req/s | p50 (us) | p99 (us) | SIGTERM to exit (s) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        stop = "" if r.stop_s is None else f"{r.stop_s:.3f}"
        out.append(f"| {r.name} | {r.p50_1:.0f} | {r.p99_1:.0f} | {r.rps_8:,.0f} | {r.p50_8:.0f} | {r.p99_8:.0f} | {stop} |")
    for r in rows[1:]:
        out.append(f"| {r.name} / anchor | {r.p50_1 / anchor.p50_1:.2f}x | {r.p99_1 / anchor.p99_1:.2f}x | "
                   f"{r.rps_8 / anchor.rps_8:.2f}x | {r.p50_8 / anchor.p50_8:.2f}x | {r.p99_8 / anchor.p99_8:.2f}x | |")
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfc_control.bench node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--robots", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    single, seconds = (1000, 1.0) if args.quick else (5000, 3.0)
    with tempfile.TemporaryDirectory() as tmp:
        policy = _policy(Path(tmp))
        servers = [("bare pyzmq + msgpack echo", [sys.executable, "-c", ECHO_SERVER], False),
                   ("PolicyNode (64-unit CfC)", [sys.executable, "-m", "cfc_control.serve", str(policy),
                                                 "--bind", "tcp://127.0.0.1:*"], True)]
        with mp.get_context("spawn").Pool(args.robots) as pool:
            pool.map(_ready, range(args.robots))  # the workers are up before anything is timed
            rows = [measure_server(name, cmd, pool, single, seconds, args.robots, stop) for name, cmd, stop in servers]
    node = rows[1]
    met = {"p50_1": node.p50_1 <= GOALS["p50_1"], "p99_1": node.p99_1 <= GOALS["p99_1"],
           "rps_8": node.rps_8 >= GOALS["rps_8"], "p99_8": node.p99_8 <= GOALS["p99_8"],
           "stop_s": node.stop_s is not None and node.stop_s <= GOALS["stop_s"]}
    if args.json:
        print(json.dumps({"rows": [r.__dict__ for r in rows], "goals": GOALS, "met": met,
                          "loadavg": os.getloadavg()}, indent=2))
        return 0
    print(f"loopback TCP, {args.robots} robots = {args.robots} client processes, load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(_table(rows))
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
