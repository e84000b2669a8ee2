"""Statistics as data: what a server, its workers and its nodes have done."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class WorkerStats:
    """One local worker."""

    name: str
    jobs: int
    failed: int
    busy: float
    active: bool


@dataclass(frozen=True)
class NodeStats:
    """One remote node (a row per address)."""

    address: str
    name: Optional[str]
    id: Optional[str]
    arch: Optional[str]
    workers: int
    connected: bool
    #: The node is shutting down: it takes no new jobs, and finishes or hands back its own.
    draining: bool
    connections: int
    jobs: int
    failed: int
    busy: float
    retries: int
    module_transfers: int
    #: Values put once (and large results) sent to the node: each at most once while the
    #: node keeps it.
    data_transfers: int
    #: The bytes of those values.
    data_bytes: int
    #: Every byte sent to the node on this client's connections (jobs, modules, values and
    #: the protocol's own traffic), counted once a second.
    bytes_sent: int
    #: Modules the node is preparing (compiling) for this client's jobs now: they wait
    #: meanwhile (seconds, for the Python runner), and the node is busy, not hung.
    preparing: int
    last_error: Optional[str]
    refused: bool


@dataclass(frozen=True)
class CacheStats:
    """How compiled code was obtained."""

    compiled: int
    loaded_from_disk: int
    reused: int


@dataclass(frozen=True)
class ResultStats:
    """What the result cache did (``cache=True``): jobs answered from it (``hits``), looked
    up and not found (``misses``), results stored, and jobs that ran but whose result could
    not be stored (``not_cacheable``: they read the clock or random numbers, or were stopped
    by a limit)."""

    hits: int
    misses: int
    stored: int
    not_cacheable: int


@dataclass(frozen=True)
class GroupSummary:
    """What a job group has done."""

    submitted: int
    finished: int
    failed: int

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished."""
        return self.submitted - self.finished


@dataclass(frozen=True)
class Stats:
    """A server's statistics (``Client.stats()``); ``str(stats)`` is pp's table."""

    elapsed: float
    target_workers: int
    queued: int
    running: int
    submitted: int
    finished: int
    failed: int
    workers: list[WorkerStats]
    nodes: list[NodeStats]
    cache: CacheStats
    table: str
    #: The result cache's counts.
    results: ResultStats
    #: Jobs waiting for the results of the jobs they take.
    held: int

    def __str__(self) -> str:
        return self.table

    @classmethod
    def from_native(cls, data: dict[str, Any], table: str) -> Stats:
        """From the native server's dict and table."""
        return cls(
            elapsed=data["elapsed"],
            target_workers=data["target_workers"],
            queued=data["queued"],
            running=data["running"],
            submitted=data["submitted"],
            finished=data["finished"],
            failed=data["failed"],
            workers=[WorkerStats(**row) for row in data["workers"]],
            nodes=[NodeStats(**row) for row in data["nodes"]],
            cache=CacheStats(**data["cache"]),
            table=table,
            results=ResultStats(**data["results"]),
            held=data["held"],
        )


@dataclass(frozen=True)
class Progress:
    """How far a job group has got: counts, its rate so far and when it should be done."""

    name: str
    submitted: int
    finished: int
    failed: int
    running: int
    queued: int
    #: The jobs the group will have, when known ahead (``wasp map`` of a file), else
    #: ``submitted``.
    total: int
    #: Seconds from the group's first submission to its last finished job (to now while
    #: jobs are pending).
    elapsed_seconds: float
    #: Jobs finished per second over ``elapsed_seconds``.
    rate_per_second: float
    #: Seconds until the pending jobs should be done at that rate; ``None`` before the
    #: first job finishes.
    eta_seconds: Optional[float]

    @property
    def done(self) -> bool:
        """Whether every job of the group has finished."""
        return self.finished >= max(self.submitted, self.total)

    @property
    def fraction(self) -> float:
        """The part of the group finished, from 0 to 1 (1 for an empty group)."""
        total = max(self.submitted, self.total)
        return 1.0 if total == 0 else self.finished / total

    @classmethod
    def from_native(cls, native: dict[str, Any]) -> Progress:
        return cls(**native)
