"""The one switch of the ported programs: the executor they run on.

``PORTED_MODE`` (an environment variable) chooses it:

- ``native`` (the default): what the program was written for. The standard library's
  ``ProcessPoolExecutor`` (2 worker processes, forked; ``ThreadPoolExecutor`` for a
  program that asks for threads), and pp's semantics from :mod:`pp_native`.
- ``wasp``: ``wasp.Client(workers=2)``, and ``wasp`` as ``pp`` (``pp.Server(2)``).
- ``wasp-node``: no local worker, the ``wasp node`` processes of ``PORTED_PEERS``
  (``host:port``, comma-separated) with the cluster secret in ``PORTED_SECRET_FILE``.

A program uses ``executor()`` where it made its executor, or ``pp``, ``ncpus``,
``ppservers`` and ``secret_file`` where it made pp's server: nothing else of it changes.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
from typing import Any

__all__ = ["MODE", "NATIVE", "executor", "ncpus", "pp", "ppservers", "secret_file"]

MODE = os.environ.get("PORTED_MODE", "native")
NATIVE = MODE == "native"

if MODE not in ("native", "wasp", "wasp-node"):
    raise SystemExit(f"PORTED_MODE is native, wasp or wasp-node, not {MODE!r}")

_PEERS = [peer for peer in os.environ.get("PORTED_PEERS", "").split(",") if peer]
if MODE == "wasp-node" and not _PEERS:
    raise SystemExit("PORTED_MODE=wasp-node needs PORTED_PEERS and PORTED_SECRET_FILE")

#: ``import pp`` natively (pp's semantics, see :mod:`pp_native`); ``import wasp as pp``.
pp = importlib.import_module("pp_native" if NATIVE else "wasp")

#: pp's ``Server(ncpus, ppservers=ppservers, secret_file=secret_file)``.
ncpus = 0 if MODE == "wasp-node" else 2
ppservers = tuple(_PEERS)
secret_file = os.environ.get("PORTED_SECRET_FILE")


def executor(threads: bool = False, **settings: Any) -> concurrent.futures.Executor:
    """The program's executor. ``threads``: natively, a thread pool (a program written for
    one, e.g. because its jobs are lambdas). ``settings`` are wasp's (``reuse_instances``),
    ignored natively."""
    if NATIVE:
        if threads:
            return concurrent.futures.ThreadPoolExecutor(max_workers=2)
        # Forked, as on Linux before Python 3.14: a worker sees the caller's objects as they
        # were when it started, whatever the platform's default start method.
        context = multiprocessing.get_context("fork")
        return concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context)
    import wasp

    if MODE == "wasp":
        return wasp.Client(workers=2, **settings)
    return wasp.Client(workers=0, peers=_PEERS, secret_file=secret_file, **settings)
