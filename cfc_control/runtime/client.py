"""``PolicyClient``: a robot's side of the control node (:mod:`cfc_control.runtime.node`).

    client = PolicyClient("tcp://127.0.0.1:5555", robot="arm-1")
    action = client.step(obs)                  # stamped with time.monotonic(): the node derives Δt
    action = client.step(obs, dt=0.0102)       # or the measured period
    client.last_reply["gap"]                   # set when the node's watchdog reset this robot

A DEALER socket with request ids: a reply that comes after its request timed out is recognised
and dropped, so a slow answer never gets mistaken for the next one.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import msgpack
import numpy as np
import zmq


class NodeError(RuntimeError):
    """The node answered with an error; ``kind`` is its category (see the node's docstring)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class PolicyClient:
    """Asks the node at ``address`` for ``robot``'s actions. ``timeout_s`` bounds each request
    (TimeoutError past it). Not thread-safe: one client per control thread."""

    def __init__(self, address: str, robot: str, timeout_s: float = 1.0, context: Optional[zmq.Context] = None) -> None:
        if not isinstance(robot, str) or not robot:
            raise ValueError(f"robot must be a non-empty string, got {robot!r}")
        self.address, self.robot, self.timeout_s = address, robot, float(timeout_s)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(address)
        self._next_id = 0
        self.last_reply: Dict[str, Any] = {}

    def step(self, obs: Any, dt: Optional[float] = None, *, timestamp: Optional[float] = None,
             reset: bool = False) -> np.ndarray:
        """Send one observation; return the action (float64). Without ``dt`` or ``timestamp``
        the request is stamped with ``time.monotonic()``. Raises :class:`NodeError` for an error
        reply and TimeoutError when none comes in time."""
        request: Dict[str, Any] = {"robot": self.robot, "obs": np.asarray(obs, dtype="<f8").tobytes()}
        if dt is not None:
            request["dt"] = float(dt)
        else:
            request["t"] = float(time.monotonic() if timestamp is None else timestamp)
        if reset:
            request["reset"] = True
        reply = self.request(request)
        if not reply.get("ok"):
            raise NodeError(str(reply.get("kind")), str(reply.get("error")))
        return np.asarray(reply["action"], dtype=np.float64)

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Send a raw request map (an "id" is added) and return the reply map."""
        self._next_id += 1
        rid = self._next_id
        self._sock.send_multipart([b"", msgpack.packb(dict(message, id=rid), use_bin_type=True)])
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise TimeoutError(f"no reply from {self.address} within {self.timeout_s} s")
            frames = self._sock.recv_multipart()
            reply = msgpack.unpackb(frames[-1], raw=False)
            if isinstance(reply, dict) and reply.get("id") == rid:
                self.last_reply = reply
                return reply
            # a late reply to an earlier, timed-out request: drop it

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["PolicyClient", "NodeError"]
