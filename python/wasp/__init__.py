"""wasp: Parallel Python's job server rebuilt on WebAssembly.

Jobs are plain Python functions (run by wasp's Python runner, CPython compiled to
WebAssembly; see :mod:`wasp.runner`) or functions of WebAssembly modules (built with the
wasp-guest SDK); each call runs in a fresh sandbox (no files, network or environment;
bounded time, memory, output and fuel) on a local worker or a remote ``wasp node``.

Two APIs over one engine:

- Parallel Python's (:class:`Server`): ``import wasp as pp`` and pp programs run.
- A modern one (:class:`Client`): ``concurrent.futures`` futures, bounded maps, groups,
  statistics as data.

::

    import wasp

    module = wasp.Module("sum_primes_guest.wasm")
    with wasp.Client(workers=2) as client:
        print(client.submit(module.sum_primes, 100).result())       # 1060
        print(list(client.map(module.sum_primes, [10, 100])))        # [17, 1060]

Values cross as MessagePack: ``None``, ``bool``, ``int`` (64-bit: from -2**63 to
2**64 - 1), ``float``, ``str``, ``bytes``, ``list``/``tuple`` and ``dict``; anything else
is a ``TypeError`` naming it. A job's result is untrusted data, decoded into those types
and nothing else: never unpickled, never evaluated.

A server must not be used in a child made by ``os.fork()`` (its threads are not there): it
raises ``RuntimeError`` there; make a new one in the child.
"""

from . import runner
from ._client import Client, Options, WaspFuture
from ._errors import (
    BadArguments,
    BadResult,
    JobAbiError,
    JobCancelled,
    JobError,
    JobExited,
    JobFailed,
    JobForbidden,
    JobFuelExhausted,
    JobInternalError,
    JobMemoryLimit,
    JobModuleError,
    JobOutputLimit,
    JobPanicked,
    JobRefused,
    JobTimeout,
    JobTrapped,
    LimitRefused,
    ModuleRefused,
    NodeLost,
    QueueFull,
    RemoteTraceback,
    ResultTooLarge,
    UnknownFunction,
    WaspError,
)
from ._module import JobRef, Module
from ._pp import DEFAULT_PORT, Job, Server, Statistics, Template
from ._stats import CacheStats, GroupSummary, NodeStats, Progress, Stats, WorkerStats
from ._wasp import __version__

__all__ = [
    "DEFAULT_PORT",
    "BadArguments",
    "BadResult",
    "CacheStats",
    "Client",
    "GroupSummary",
    "Job",
    "JobAbiError",
    "JobCancelled",
    "JobError",
    "JobExited",
    "JobFailed",
    "JobForbidden",
    "JobFuelExhausted",
    "JobInternalError",
    "JobMemoryLimit",
    "JobModuleError",
    "JobOutputLimit",
    "JobPanicked",
    "JobRef",
    "JobRefused",
    "JobTimeout",
    "JobTrapped",
    "LimitRefused",
    "Module",
    "ModuleRefused",
    "NodeLost",
    "NodeStats",
    "Options",
    "Progress",
    "QueueFull",
    "RemoteTraceback",
    "ResultTooLarge",
    "Server",
    "Statistics",
    "Stats",
    "Template",
    "UnknownFunction",
    "WaspError",
    "WaspFuture",
    "WorkerStats",
    "__version__",
    "runner",
]
