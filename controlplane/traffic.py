"""Requests into the simulated network from test code, and a load generator that records
what happened to each one.

:func:`request` never raises for a network failure: it returns a :class:`Response`
saying what went wrong, so a test can count failures through a rollout or a node crash
the way a client's error log would. Cancellation and programming errors propagate.

Who answered (``Response.backend``) is read from the answer of the fake runtime's default
server, ``b"<sandbox name>/<container name>"``. The kubelet names a pod's sandbox
``<namespace>_<pod name>_<pod uid>``, so ``backend`` is the pod's name; for a sandbox
not named that way it is the sandbox name; for any other answer (a program with its own
``response`` or handler) it is None.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

import attrs
import structlog
import trio

from runtime.network import DEFAULT_TIMEOUT, Network, NetworkError

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "LoadGenerator",
    "LoadStatistics",
    "Response",
    "Sample",
    "backend_of",
    "percentile",
    "request",
]

log = structlog.get_logger(__name__)

DEFAULT_MAX_IN_FLIGHT = 1000
"""How many requests a load generator keeps open at once by default: enough for 100/s
against a backend that takes the whole 10 s timeout, bounded so a black hole cannot grow
the task count without limit."""


@attrs.frozen
class Response:
    """The outcome of one request.

    Attributes:
      ok: an answer came back.
      body: the answer (None on failure).
      error: on failure, the kind: the network error's class name (``ConnectionRefused``,
        ``HostUnreachable``, ``NetworkTimeout``, ``ConnectionReset``, ``NameNotFound``).
      latency: seconds from sending (name lookup included) to the answer or failure.
      backend: who answered (see the module docstring), None if unknown or failed.
      detail: the error's message (``connection refused: 10.244.1.5:80``).
    """

    ok: bool
    body: bytes | None
    error: str | None
    latency: float
    backend: str | None
    detail: str | None = attrs.field(default=None, kw_only=True)


def backend_of(body: bytes) -> str | None:
    """The pod (or sandbox) name in a default server's answer
    ``b"<sandbox name>/<container name>"``, or None if ``body`` is not one."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    sandbox, sep, container = text.rpartition("/")
    if not sep or not sandbox or not container or "/" in sandbox or not text.isprintable():
        return None
    parts = sandbox.split("_")
    if len(parts) == 3 and all(parts):  # the kubelet's <namespace>_<pod>_<uid>
        return parts[1]
    return sandbox


async def request(
    network: Network,
    host: str,
    port: int,
    payload: bytes,
    *,
    src_ip: str,
    search: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - a client's timeout: part of the API
) -> Response:
    """Send ``payload`` from ``src_ip`` to ``host:port`` and report what happened.

    ``host`` is an IP or a name, resolved with the ``search`` list (see
    :meth:`runtime.network.Network.resolve_one`). Returns a :class:`Response`; network
    failures (including an unknown name and a timeout after ``timeout`` seconds) are in
    it, not raised.
    """
    start = trio.current_time()
    try:
        dst_ip = network.resolve_one(host, search=search)
    except NetworkError as exc:
        await trio.lowlevel.checkpoint()  # an async call checkpoints, failing or not
        return _failure(exc, start)
    try:
        body = await network.request(src_ip, dst_ip, port, payload, timeout=timeout)
    except NetworkError as exc:
        return _failure(exc, start)
    return Response(True, body, None, trio.current_time() - start, backend_of(body))


def _failure(exc: NetworkError, start: float) -> Response:
    latency = trio.current_time() - start
    return Response(False, None, type(exc).__name__, latency, None, detail=str(exc))


@attrs.frozen
class Sample:
    """What the load generator recorded for one request: its sequence number, when it
    was sent (trio time) and the outcome."""

    seq: int
    start: float
    ok: bool
    error: str | None
    latency: float
    backend: str | None


@attrs.frozen(kw_only=True)
class LoadStatistics:
    """A summary of a load generator's samples.

    Attributes:
      sent: requests sent so far (finished or not).
      ok / failed: finished requests that got an answer / failed.
      in_flight: sent and not finished.
      late: requests sent after their scheduled time because ``max_in_flight`` requests
        were open (the generator falls behind rather than queueing without bound).
      errors: failed requests by error kind.
      backends: answered requests by backend (None: an answer that does not say).
      p50 / p99: latency percentiles (nearest rank) of the answered requests; None when
        there are none.
    """

    sent: int
    ok: int
    failed: int
    in_flight: int
    late: int
    errors: Mapping[str, int]
    backends: Mapping[str | None, int]
    p50: float | None
    p99: float | None


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``ordered`` (sorted), or
    None if it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class LoadGenerator:
    """Sends requests to ``host:port`` at a fixed rate and records each outcome.

    Request ``i`` is due at ``t0 + i / rate`` (``t0``: when :meth:`run` starts), so the
    rate does not drift with latency. Requests run in a pool of worker tasks that grows
    up to ``max_in_flight`` as requests overlap (one pacing task, not a task per
    request); when all are busy the next request waits and counts as ``late``.

    Args:
      network, host, port, payload, src_ip, search, timeout: as for :func:`request`.
      rate: requests per second (> 0).
      count: stop after sending this many (None: no limit).
      duration: stop sending this many seconds after the start (None: no limit).
      max_in_flight: the most requests open at once (>= 1).

    Raises ValueError naming the argument for a bad one.
    """

    def __init__(
        self,
        network: Network,
        host: str,
        port: int,
        *,
        rate: float,
        src_ip: str,
        search: Iterable[str] = (),
        payload: bytes = b"",
        timeout: float = DEFAULT_TIMEOUT,
        count: int | None = None,
        duration: float | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(
                f"rate: must be a positive number of requests per second, got {rate!r}"
            )
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError(f"count: must be a non-negative integer, got {count!r}")
        if duration is not None and not duration >= 0:
            raise ValueError(f"duration: must be >= 0 seconds, got {duration!r}")
        if not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout!r}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be a positive integer, got {max_in_flight!r}")
        self._network = network
        self.host = host
        self.port = port
        self.rate = float(rate)
        self._src_ip = src_ip
        self._search = tuple(search)
        self._payload = payload
        self._timeout = timeout
        self._count = count
        self._duration = duration
        self._max_in_flight = max_in_flight
        self._samples: list[Sample] = []
        self._sent = 0
        self._late = 0
        self._workers = 0
        #: When :meth:`run` started (trio time): request ``i`` is due ``i / rate`` later.
        self.started_at: float | None = None
        self._stopping = trio.Event()
        self._log = log.bind(component="load-generator", host=host, port=port)

    @property
    def results(self) -> list[Sample]:
        """The finished requests' samples, in the order they were sent."""
        return sorted(self._samples, key=lambda s: s.seq)

    def statistics(self) -> LoadStatistics:
        """A summary of the samples so far (see :class:`LoadStatistics`)."""
        errors: Counter[str] = Counter()
        backends: Counter[str | None] = Counter()
        latencies: list[float] = []
        for sample in self._samples:
            if sample.ok:
                backends[sample.backend] += 1
                latencies.append(sample.latency)
            else:
                assert sample.error is not None
                errors[sample.error] += 1
        ok = len(latencies)
        latencies.sort()
        return LoadStatistics(
            sent=self._sent,
            ok=ok,
            failed=len(self._samples) - ok,
            in_flight=self._sent - len(self._samples),
            late=self._late,
            errors=dict(sorted(errors.items())),
            backends=dict(sorted(backends.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
        )

    def stop(self) -> None:
        """Stop sending; :meth:`run` returns once the requests in flight finish.
        Idempotent."""
        self._stopping.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send until ``count`` or ``duration`` is reached or :meth:`stop` is called,
        wait for the requests in flight, and return. If cancelled, requests in flight
        are abandoned and not recorded. A generator runs once (RuntimeError after)."""
        if self.started_at is not None:
            raise RuntimeError("this load generator has already run; make a new one")
        send, receive = trio.open_memory_channel[int](0)  # hand-off only
        async with trio.open_nursery() as nursery:
            t0 = self.started_at = trio.current_time()
            self._log.info("load_started", rate=self.rate, count=self._count)
            task_status.started()
            async with send:
                seq = 0
                while not self._stopping.is_set():
                    if self._count is not None and seq >= self._count:
                        break
                    due = t0 + seq / self.rate
                    if self._duration is not None and due - t0 >= self._duration:
                        break
                    with trio.move_on_at(due):
                        await self._stopping.wait()
                    if self._stopping.is_set():
                        break
                    try:
                        send.send_nowait(seq)
                    except trio.WouldBlock:
                        if self._workers < self._max_in_flight:
                            self._workers += 1
                            nursery.start_soon(self._worker, receive.clone())
                            await send.send(seq)
                        else:  # every slot is busy: wait for one (the clock moves on)
                            await send.send(seq)
                            if trio.current_time() > due:
                                self._late += 1
                    self._sent += 1
                    seq += 1
            await receive.aclose()
        stats = self.statistics()
        self._log.info("load_finished", sent=stats.sent, ok=stats.ok, failed=stats.failed)

    async def _worker(self, receive: trio.MemoryReceiveChannel[int]) -> None:
        async with receive:
            async for seq in receive:
                start = trio.current_time()
                response = await request(
                    self._network,
                    self.host,
                    self.port,
                    self._payload,
                    src_ip=self._src_ip,
                    search=self._search,
                    timeout=self._timeout,
                )
                self._samples.append(
                    Sample(
                        seq,
                        start,
                        response.ok,
                        response.error,
                        response.latency,
                        response.backend,
                    )
                )
