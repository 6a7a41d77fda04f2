"""Where study jobs run: local processes (default), this process, or a Ray cluster.

A backend runs ``fn(*args)`` somewhere and hands back a handle; the driver waits for any handle to
finish and collects its result (which re-raises the job's exception). Every backend returns
results to the driver the same way, so the driver alone writes the study's files.

    backend = make_backend(workers=2)                      # local process pool
    backend = make_backend(ray_address="local")            # a Ray started here
    backend = make_backend(ray_address="ray://head:10001") # an existing cluster
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

RAY_MISSING = ("--ray-address needs Ray, an optional extra: pip install -e '.[ray]' "
               "(or pip install 'ray>=2.9')")


class Backend:
    """Runs jobs; subclasses implement submit, wait, result and close."""

    name = "backend"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def wait(self, handles: Sequence[Any]) -> Tuple[List[Any], List[Any]]:
        """Block until at least one of ``handles`` is done: (done, still pending)."""
        raise NotImplementedError

    def result(self, handle: Any) -> Any:
        """The job's return value; raises its exception."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class InlineBackend(Backend):
    """Runs each job at submit time in this process (``--workers 0``: debugging, tiny studies)."""

    name = "inline"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - handed to the driver like a worker's error
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future

    def wait(self, handles: Sequence[Future]) -> Tuple[List[Future], List[Future]]:
        return list(handles), []

    def result(self, handle: Future) -> Any:
        return handle.result()


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """A worker's initializer: end the worker once the driver ``parent_pid`` is gone (killed
    without the chance to stop its pool), rather than leaving it to train on unseen."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class ProcessBackend(Backend):
    """A pool of ``workers`` local processes. They are spawned, not forked: a fork of a process
    whose torch already started its thread pool can hang."""

    name = "processes"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 for a process pool, got {workers}")
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=exit_with_parent, initargs=(os.getpid(),))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def wait(self, handles: Sequence[Future]) -> Tuple[List[Future], List[Future]]:
        done, pending = wait(handles, return_when=FIRST_COMPLETED)
        order = {id(h): i for i, h in enumerate(handles)}
        return sorted(done, key=lambda h: order[id(h)]), sorted(pending, key=lambda h: order[id(h)])

    def result(self, handle: Future) -> Any:
        return handle.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayBackend(Backend):
    """Jobs as Ray tasks (one CPU each). ``address="local"`` starts a Ray here with ``workers``
    CPUs (all of them if None); any other address joins that cluster (``ray.init(address=...)``).
    Workers must be able to import ``cfc_control`` (install it on every node); results come back
    to the driver as values, so no shared file system is needed."""

    name = "ray"

    def __init__(self, address: str, workers: Optional[int] = None) -> None:
        try:
            import ray
        except ImportError as err:
            raise RuntimeError(RAY_MISSING) from err
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            if address == "local":
                ray.init(num_cpus=workers or None, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False)
        self.remote: Dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        return self.remote[fn].remote(*args)

    def wait(self, handles: Sequence[Any]) -> Tuple[List[Any], List[Any]]:
        done, pending = self.ray.wait(list(handles), num_returns=1)
        if pending:  # take every job that has finished meanwhile, not just the first
            more, pending = self.ray.wait(pending, num_returns=len(pending), timeout=0)
            done += more
        return done, pending

    def result(self, handle: Any) -> Any:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as err:
            # Re-raise the job's own exception (ValueError, RuntimeError...) rather than Ray's wrapper.
            cause = getattr(err, "cause", None)
            raise (cause if isinstance(cause, Exception) else err.as_instanceof_cause()) from None

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()


def as_completed(backend: Backend, pending: Dict[Any, Any]) -> Iterator[Tuple[Any, Any, Optional[Exception]]]:
    """(job, result, None), or (job, None, the job's error), for each job of ``pending`` (handle ->
    job) as it finishes, removing it; jobs added to ``pending`` meanwhile are waited for too. A
    failed job does not stop the others."""
    while pending:
        done, _ = backend.wait(list(pending))
        for handle in done:
            job = pending.pop(handle)
            try:
                result = backend.result(handle)
            except Exception as err:  # noqa: BLE001 - handed to the caller, which reports it
                yield job, None, err
                continue
            yield job, result, None


def make_backend(workers: int = 2, ray_address: Optional[str] = None) -> Backend:
    """Ray when ``ray_address`` is given, else a process pool of ``workers`` (0: this process)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if ray_address:
        return RayBackend(ray_address, workers or None)
    return InlineBackend() if workers == 0 else ProcessBackend(workers)
