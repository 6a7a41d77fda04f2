"""Serve a policy to control loops in other processes (the ZeroMQ control node).

    python -m cfc_control.serve policies/hopper --bind tcp://127.0.0.1:5555

Each robot id gets its own recurrent state; messages are msgpack maps (robot, obs, t or dt,
reset; see :mod:`cfc_control.runtime.node`); :class:`cfc_control.runtime.client.PolicyClient`
is the robot side. Prints one "serving ..." line when ready (with the bound endpoint: a port
of "*" is chosen here) and its counters when stopped; SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import List, Optional

import zmq

from cfc_control.cli import ArgumentParser
from cfc_control.runtime.node import PolicyNode
from cfc_control.runtime.runner import PolicyRunner

PROG = "python -m cfc_control.serve"


def check_endpoint(address: str) -> str:
    """``address`` if ZeroMQ would bind exactly it; ValueError otherwise. ZeroMQ takes a TCP port
    beyond 65535 or below 0 modulo 65536 and binds elsewhere without a word, so the port is
    checked here: ``*`` (any free port) or 1-65535."""
    transport, sep, rest = address.partition("://")
    if not sep or not rest:
        raise ValueError(f"--bind {address!r}: expected TRANSPORT://ADDRESS, e.g. tcp://127.0.0.1:5555")
    if transport == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host:
            raise ValueError(f"--bind {address!r}: a tcp endpoint needs HOST:PORT, e.g. tcp://127.0.0.1:5555")
        if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"--bind {address!r}: port {port!r} is not * or 1-65535")
    return address


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="policy directory (config.json + model.safetensors)")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555", help="ZeroMQ endpoint to bind (default %(default)s)")
    parser.add_argument("--max-robots", type=int, default=256, help="robots served at once (default %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=64 * 1024,
                        help="larger messages get an error reply; frames over 4x this (at least 256 KiB) "
                             "drop the sender's connection (default %(default)s)")
    parser.add_argument("--evict-after", type=float, default=600.0, metavar="S",
                        help="forget a robot silent this many seconds (default %(default)s); when every slot "
                             "is taken, robots silent for 10 s make room")
    parser.add_argument("--backend", default="auto", choices=("auto", "c", "numpy", "torch"))
    args = parser.parse_args(argv)
    try:
        check_endpoint(args.bind)
    except ValueError as err:
        parser.error(str(err))
    try:
        runner = PolicyRunner.load(args.policy, backend=args.backend)
        node = PolicyNode(runner, max_robots=args.max_robots, max_message_bytes=args.max_message_bytes,
                          evict_after_s=args.evict_after)
        endpoint = node.bind(args.bind)
    except (FileNotFoundError, ValueError, zmq.ZMQError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2

    def stop(signum: int, _frame: object) -> None:
        node.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"serving {args.policy} ({runner.backend}, nominal dt {runner.nominal_dt} s, watchdog "
          f"{node.watchdog_s} s) on {endpoint}", flush=True)
    node.serve()
    print(f"stopped: {json.dumps(node.stats.as_dict())}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The node has closed its socket and printed its counters: nothing is left to clean up, and
    # the interpreter's own teardown (torch's modules) takes about a second on a busy machine,
    # which SIGTERM's "stopped within 1 s" would otherwise spend.
    os._exit(code)
