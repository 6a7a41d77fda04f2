"""The control node: one policy served over ZeroMQ to control loops in other processes, each
robot with its own recurrent state.

Transport: a ZeroMQ ROUTER socket (``bind``); clients connect with REQ, or DEALER sending an
empty delimiter frame first (what :class:`~cfc_control.runtime.client.PolicyClient` does). One
request, one reply, both a msgpack map.

Request::

    {"robot": str,              # 1-64 characters; each robot id has its own state
     "obs": [float, ...] | bin, # the observation: numbers, or little-endian float64 bytes
     "t": float,                # optional: timestamp in seconds on the robot's monotonic clock;
                                #   Δt is the difference to its previous "t"
     "dt": float,               # optional instead of "t": the measured period in seconds
                                #   (neither: the policy's nominal period)
     "reset": bool,             # optional: start a new episode (initial state) before this step
     "id": any}                 # optional: echoed in the reply

Reply::

    {"ok": true, "robot": str, "action": [float, ...],
     "reset": bool,             # the state was reset before this step (asked, or the watchdog)
     "gap": float | None,       # the watchdog fired: seconds without an observation from this robot
     "clamped": bool,           # Δt was outside [dt_min, dt_max] and was clamped
     "id": ...}
    {"ok": false, "error": str, "kind": "malformed" | "too_large" | "bad_input" | "non_finite"
     | "overloaded" | "internal", "robot": str | None, "id": ...}

Watchdog: when a robot's message arrives more than the policy's ``dt_max`` after its previous one
(node wall clock, or the robot's own "t"), its state is reset before the step and the reply
carries the gap: a controller that has been blind that long starts over instead of continuing
from a stale state. Bad input ("bad_input": wrong shape, NaN, Δt <= 0, a timestamp going
backwards) leaves that robot's state unchanged. Malformed messages, and messages of more than
``max_message_bytes`` in one frame, get an error reply; the node keeps serving everyone else.

Memory guard: a frame larger than ``hard_limit_bytes`` (4 x max_message_bytes, at least 256 KiB)
makes ZeroMQ drop the sender's connection while reading it, before it is buffered: that sender
gets no reply (its socket reconnects). A message of more than one payload frame gets a
"malformed" reply. ZeroMQ buffers a multipart message whole before handing it over and has no
limit on its number of frames, so the memory one message can take is bounded per frame only.

Robots silent for ``evict_after_s`` are forgotten; at most ``max_robots`` are served at once.
When every slot is taken, robots silent for 10 s (their state would be reset at their next
message anyway: the watchdog is dt_max) make room for a new one: idle ids cannot hold the slots.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import msgpack
import numpy as np
import zmq

from cfc_control.runtime.errors import BadInputError, NonFiniteOutputError
from cfc_control.runtime.runner import PolicyRunner

MAX_ROBOT_ID = 64
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
# ZeroMQ disconnects a peer whose frame exceeds this many times max_message_bytes, before the
# frame is buffered: the memory guard. A frame between the two limits gets a "too_large" reply.
HARD_LIMIT_FACTOR = 4
MIN_HARD_LIMIT_BYTES = 256 * 1024
PRESSURE_EVICT_S = 10.0  # with every slot taken, robots silent this long make room


class MalformedMessage(ValueError):
    """A request that is not a msgpack map with the documented fields."""


@dataclass
class NodeStats:
    messages: int = 0
    actions: int = 0
    errors: Dict[str, int] = field(default_factory=dict)
    watchdog_resets: int = 0
    requested_resets: int = 0
    evicted: int = 0

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class _Robot:
    runner: PolicyRunner
    last_seen: float  # node monotonic clock
    last_t: Optional[float] = None  # the robot's own timestamp


class PolicyNode:
    """Serves ``runner``'s policy (each robot gets a runner spawned from it, sharing the weights).

    ``handle(payload, now)`` is the whole protocol without sockets; :meth:`serve` runs it on a
    ROUTER socket bound to ``bind`` until :meth:`stop` (thread-safe) or a signal handler calls it.
    """

    def __init__(
        self,
        runner: PolicyRunner,
        *,
        max_robots: int = 256,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        evict_after_s: float = 600.0,
    ) -> None:
        if max_robots < 1 or max_message_bytes < 64 or not evict_after_s > 0:
            raise ValueError(f"max_robots must be >= 1, max_message_bytes >= 64 and evict_after_s > 0, got "
                             f"{max_robots}, {max_message_bytes}, {evict_after_s}")
        self.template = runner
        self.max_robots = int(max_robots)
        self.max_message_bytes = int(max_message_bytes)
        self.hard_limit_bytes = max(HARD_LIMIT_FACTOR * self.max_message_bytes, MIN_HARD_LIMIT_BYTES)
        self.evict_after_s = float(evict_after_s)
        self.watchdog_s = runner.dt_max
        self.robots: Dict[str, _Robot] = {}
        self.stats = NodeStats()
        self.endpoint: Optional[str] = None
        self._stop = threading.Event()
        self._last_evict = 0.0
        self._pack = msgpack.Packer(use_bin_type=True).pack  # one packer: no set-up per reply

    # -- the protocol --------------------------------------------------------------------------
    def handle(self, payload: bytes, now: Optional[float] = None) -> bytes:
        """One request -> one reply (both msgpack). Never raises."""
        now = time.monotonic() if now is None else now
        self.stats.messages += 1
        request: Dict[str, Any] = {}
        try:
            if len(payload) > self.max_message_bytes:
                return self._error("too_large", f"message of {len(payload)} bytes exceeds {self.max_message_bytes}", request)
            request = _decode(payload)
            return self._step(request, now)
        except MalformedMessage as err:
            return self._error("malformed", str(err), request)
        except BadInputError as err:
            return self._error("bad_input", str(err), request)
        except NonFiniteOutputError as err:
            return self._error("non_finite", str(err), request)
        except Exception as err:  # noqa: BLE001 - the node must keep serving the others
            print(f"cfc_control.node: internal error: {err!r}", file=sys.stderr)
            return self._error("internal", f"{type(err).__name__}: {err}", request)

    def _step(self, req: Dict[str, Any], now: float) -> bytes:
        robot_id = req["robot"]
        robot = self.robots.get(robot_id)
        if robot is None:
            if len(self.robots) >= self.max_robots:
                self._evict(now, force=True)
            else:
                self._evict(now)
            if len(self.robots) >= self.max_robots:
                return self._error("overloaded", f"serving {self.max_robots} robots already", req)
            # Admitted only once its first step succeeds (below): a bad first request takes no slot.
            runner = self.template.spawn(batch_size=1, on_bad_input="raise")
            # Clamps are reported in each reply: the runner's once-per-runner warning would only
            # cost a warnings.catch_warnings() per message to silence (it resets warning caches).
            runner._warned = {"low": True, "high": True}
            robot = _Robot(runner, now)
        obs, t, dt = req["obs"], req.get("t"), req.get("dt")
        reset = bool(req.get("reset", False))
        gap = None
        if reset:
            self.stats.requested_resets += 1
        elif robot.runner.stats.rows_stepped:  # the watchdog only watches robots that have run
            silent = now - robot.last_seen
            if t is not None and robot.last_t is not None and math.isfinite(t):
                silent = max(silent, t - robot.last_t)
            if silent > self.watchdog_s:
                gap = silent
                reset = True
                self.stats.watchdog_resets += 1
        runner = robot.runner
        before = runner.get_state() if reset else None
        if reset:
            runner.reset()
        clamps = runner.stats.clamped_low + runner.stats.clamped_high
        try:
            action = runner.step(obs, dt, timestamp=t) if t is not None else runner.step(obs, dt)
        except (BadInputError, NonFiniteOutputError):
            if before is not None:  # a refused step leaves the robot as it was
                runner.set_state(before)
            raise
        self.robots[robot_id] = robot
        robot.last_seen = now
        robot.last_t = t
        self.stats.actions += 1
        clamped = runner.stats.clamped_low + runner.stats.clamped_high > clamps
        reply = {"ok": True, "robot": robot_id, "action": action.tolist(), "reset": reset, "gap": gap,
                 "clamped": clamped}
        if "id" in req:
            reply["id"] = req["id"]
        return self._pack(reply)

    def _error(self, kind: str, message: str, req: Dict[str, Any]) -> bytes:
        self.stats.count_error(kind)
        reply = {"ok": False, "kind": kind, "error": message, "robot": req.get("robot")}
        if "id" in req:
            reply["id"] = req["id"]
        return msgpack.packb(reply, use_bin_type=True)

    def _evict(self, now: float, force: bool = False) -> None:
        """Forget robots silent for evict_after_s (looked at once a second). ``force`` (every slot
        taken): forget those silent for PRESSURE_EVICT_S too, far longer than any watchdog: their
        state would be reset at their next message anyway, so a full node keeps serving the
        robots that are running instead of idle ids."""
        if not force and now - self._last_evict < 1.0:
            return
        self._last_evict = now
        limit = min(self.evict_after_s, PRESSURE_EVICT_S) if force else self.evict_after_s
        stale = [r for r, rob in self.robots.items() if now - rob.last_seen > limit]
        for r in stale:
            del self.robots[r]
        self.stats.evicted += len(stale)

    # -- the socket loop -----------------------------------------------------------------------
    def bind(self, address: str, context: Optional[zmq.Context] = None) -> str:
        """Create the ROUTER socket and bind it; returns the endpoint (a "tcp://host:*" address
        gets its port here)."""
        self._ctx = context or zmq.Context.instance()
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self.hard_limit_bytes)
        sock.bind(address)
        self._sock = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.endpoint

    def serve(self, poll_ms: int = 100) -> None:
        """Answer requests until :meth:`stop`; closes the socket on the way out."""
        if self.endpoint is None:
            raise RuntimeError("call bind(address) before serve()")
        sock = self._sock
        # A blocking receive with a timeout, not poll-then-drain: one system call per message
        # instead of three, and the stop flag is looked at before every message, so a client
        # that keeps the queue full cannot keep the node from stopping.
        sock.setsockopt(zmq.RCVTIMEO, int(poll_ms))
        recv, send, answer, stopping = sock.recv_multipart, sock.send, self._answer, self._stop.is_set
        more = int(zmq.SNDMORE)  # frame by frame with an int flag: send_multipart's enum flag
        try:                     # arithmetic costs several microseconds a reply
            while not stopping():
                try:
                    frames = recv()
                except zmq.Again:  # nothing within poll_ms: look at the stop flag again
                    continue
                reply = answer(frames)
                for frame in reply[:-1]:
                    send(frame, more)
                send(reply[-1])
        finally:
            sock.close(linger=0)
            self.endpoint = None

    def _answer(self, frames: List[bytes]) -> List[bytes]:
        # ROUTER frames: identity, then an empty delimiter (REQ / our client), then the payload.
        if len(frames) >= 3 and frames[1] == b"":
            envelope, body = frames[:2], frames[2:]
        else:
            envelope, body = frames[:1], frames[1:]
        if len(body) != 1:
            self.stats.messages += 1
            return envelope + [self._error("malformed", f"expected one payload frame, got {len(body)}", {})]
        return envelope + [self.handle(body[0])]

    def stop(self) -> None:
        self._stop.set()


def _decode(payload: bytes) -> Dict[str, Any]:
    try:
        req = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_bin_len=len(payload),
                              max_str_len=len(payload), max_array_len=len(payload), max_map_len=32)
    except Exception as err:  # noqa: BLE001 - msgpack raises several types for garbage
        raise MalformedMessage(f"not a msgpack message ({type(err).__name__}: {err})") from None
    if not isinstance(req, dict):
        raise MalformedMessage(f"the request must be a msgpack map, got {type(req).__name__}")
    robot = req.get("robot")
    if not isinstance(robot, str) or not 0 < len(robot) <= MAX_ROBOT_ID:
        raise MalformedMessage(f"'robot' must be a string of 1-{MAX_ROBOT_ID} characters, got {robot!r:.80}")
    if "obs" not in req:
        raise MalformedMessage("missing 'obs'")
    obs = req["obs"]
    if isinstance(obs, bytes):
        if len(obs) % 8:
            raise MalformedMessage(f"binary 'obs' must be little-endian float64 (a multiple of 8 bytes), got {len(obs)} bytes")
        req["obs"] = np.frombuffer(obs, dtype="<f8")
    elif isinstance(obs, list):
        req["obs"] = obs  # the runner checks shape and type
    else:
        raise MalformedMessage(f"'obs' must be an array of numbers or float64 bytes, got {type(obs).__name__}")
    for key in ("t", "dt"):
        v = req.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise MalformedMessage(f"'{key}' must be a number, got {v!r:.80}")
    if req.get("t") is not None and req.get("dt") is not None:
        raise MalformedMessage("send 't' or 'dt', not both")
    if not isinstance(req.get("reset", False), bool):
        raise MalformedMessage(f"'reset' must be a bool, got {req.get('reset')!r:.80}")
    return req


__all__ = ["PolicyNode", "NodeStats", "MalformedMessage", "DEFAULT_MAX_MESSAGE_BYTES"]
