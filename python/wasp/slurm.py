"""Nodes on a Slurm cluster, started as batch jobs (dask-jobqueue's model).

``SlurmCluster`` writes a job script that runs ``wasp node`` on an allocated machine,
submits it with ``sbatch`` once per node, scales up and down (``scale(jobs=N)``,
``scancel``), and lets clients find the nodes with no address typed: each node writes its
address in a *rendezvous directory* on storage the client shares (``wasp node --rendezvous
DIR``; clients use the peer ``dir:DIR``)::

    from wasp.slurm import SlurmCluster

    with SlurmCluster(jobs=4, workers=8, secret_file="~/wasp/cluster.key",
                      directory="~/wasp/nodes", walltime="02:00:00") as cluster:
        with cluster.client() as client:           # a wasp.Client of those nodes
            client.wait_for_nodes(4, timeout=600)  # jobs may wait in Slurm's queue
            totals = list(client.map(module.sum_primes, inputs))
            cluster.scale(jobs=8)                  # returns once the 4 new nodes serve
            client.wait_for_nodes(8, timeout=60)   # and the client has found them

The cluster secret never appears in a job script or on a command line: nodes read it from
``secret_file``, which must be on storage the compute nodes see, readable by you only.

A Slurm job that ends (``scancel``, its time limit, preemption) gets SIGTERM: its node
drains, leaves the rendezvous directory, lets running jobs finish for ``drain_timeout``
(keep it below Slurm's ``KillWait``, 30 s by default), then hands the rest back to its
clients, which run them elsewhere. Nothing is lost.

Compute nodes often cannot connect to a login node; the client connects to the nodes, so
only the nodes' ports must be reachable from where the client runs. A client may also run
inside an allocation (``srun python job.py``), with the same ``dir:`` peer.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ._client import Client

PathLike = Union[str, "os.PathLike[str]"]

#: Slurm job states in which a node job still counts (it runs, or will).
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "REQUEUED", "RESIZING"})

#: What a node prints once it serves (to its job's output file, in the directory).
SERVING = "listening on"

#: How often ``scale`` looks at the new jobs while it waits for them.
POLL_SECONDS = 0.5


class SlurmError(RuntimeError):
    """A Slurm command failed; the message holds its output."""


class SlurmCluster:
    """wasp nodes as Slurm jobs, one job per node.

    - ``jobs``: how many node jobs to submit now (``scale`` changes it later).
    - ``workers``: workers per node, and the CPUs each job asks for.
    - ``secret_file``: the cluster secret, on storage the compute nodes see.
    - ``directory``: the rendezvous directory, on shared storage (created if missing);
      Slurm's output files go there too.
    - ``partition``, ``account``, ``walltime`` (``"HH:MM:SS"``), ``memory`` (``"8G"``):
      the usual ``#SBATCH`` settings; ``sbatch_args``: more ``#SBATCH`` lines' options.
    - ``wasp``: the ``wasp`` program on the compute nodes (default: the one on ``PATH``).
    - ``listen``: where each node listens (default ``0.0.0.0:0``: every address, a free
      port; it publishes the address of the interface it reaches others by).
    - ``drain_timeout``: how long an ended job's running jobs may take to finish.
    - ``node_args``: more ``wasp node`` options (e.g. ``["--max-memory", "2GiB"]``).

    Each job is submitted under a name of its own, ``job_name`` and 8 random hex digits,
    so that a submission whose answer was lost (``sbatch`` timed out, the controller was
    busy) is found in ``squeue`` before another is made: a node is never submitted twice.
    """

    def __init__(
        self,
        jobs: int = 0,
        *,
        workers: int = 1,
        secret_file: PathLike,
        directory: PathLike,
        partition: Optional[str] = None,
        account: Optional[str] = None,
        walltime: Optional[str] = None,
        memory: Optional[str] = None,
        job_name: str = "wasp-node",
        sbatch_args: Sequence[str] = (),
        wasp: Optional[str] = None,
        listen: str = "0.0.0.0:0",
        drain_timeout: str = "20s",
        node_args: Sequence[str] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("a node needs at least one worker")
        self.workers = workers
        self.job_name = job_name
        self.secret_file = Path(secret_file).expanduser().resolve()
        if not self.secret_file.is_file():
            raise FileNotFoundError(f"no secret file at {self.secret_file}")
        self.directory = Path(directory).expanduser().resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.wasp = wasp or shutil.which("wasp") or "wasp"
        self._sbatch_lines = _sbatch_lines(
            job_name, workers, self.directory, partition, account, walltime, memory, sbatch_args
        )
        self._node_command = [
            self.wasp,
            "node",
            "--listen",
            listen,
            "--workers",
            str(workers),
            "--secret-file",
            str(self.secret_file),
            "--rendezvous",
            str(self.directory),
            "--drain-timeout",
            drain_timeout,
            *node_args,
        ]
        #: The ids of the jobs this cluster submitted and has not cancelled, oldest first.
        self._submitted: list[str] = []
        if jobs:
            # Submitted, not waited for: they may wait long in Slurm's queue
            # (`client.wait_for_nodes` waits for them, with a time limit of its own).
            self.scale(jobs, wait=False)

    def job_script(self) -> str:
        """The script each node job runs (``exec``: SIGTERM reaches ``wasp node``)."""
        command = " ".join(shlex.quote(part) for part in self._node_command)
        return "\n".join(["#!/bin/sh", *self._sbatch_lines, f"exec {command}", ""])

    @property
    def peers(self) -> list[str]:
        """The peers for a ``wasp.Client`` or ``wasp.Server``: the rendezvous directory."""
        return [f"dir:{self.directory}"]

    def client(self, **settings: Any) -> Client:
        """A ``wasp.Client`` of these nodes (``workers=0``: jobs run on the nodes only,
        unless ``workers`` is given), with the cluster's secret. It reads the rendezvous
        directory every ``resolve_interval`` seconds (default 5) to find nodes that came or
        went."""
        settings.setdefault("workers", 0)
        return Client(peers=self.peers, secret_file=self.secret_file, **settings)

    def job_ids(self) -> list[str]:
        """The node jobs still queued or running, oldest first."""
        if not self._submitted:
            return []
        states = _squeue(self._submitted)
        self._submitted = [job for job in self._submitted if states.get(job) in LIVE_STATES]
        return list(self._submitted)

    def scale(self, jobs: int, *, wait: bool = True, timeout: Optional[float] = 600.0) -> None:
        """Submits or cancels node jobs until ``jobs`` are queued or running. Cancelled
        ones are the newest (the least likely to hold work); they drain first.

        With ``wait`` (the default), returns once the nodes of the jobs it submitted serve
        (each has printed that it listens, in its job's output file), so that work given
        next can go to them too (a client finds them at its next reading of the directory:
        ``client.wait_for_nodes(jobs)``). Jobs may wait in Slurm's queue: past ``timeout``
        seconds (``None``: no limit) it raises ``TimeoutError``, and the jobs stay
        submitted, joining when they start. A job that ends before its node serves raises
        ``SlurmError`` with the end of its output."""
        if jobs < 0:
            raise ValueError("jobs must be at least 0")
        live = self.job_ids()
        if jobs > len(live):
            new = [self._submit() for _ in range(jobs - len(live))]
            self._submitted.extend(new)
            if wait:
                self._wait_serving(new, timeout)
        elif jobs < len(live):
            self.cancel(live[jobs:])

    def _wait_serving(self, job_ids: Sequence[str], timeout: Optional[float]) -> None:
        """Waits until the node of each of ``job_ids`` serves."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = list(job_ids)
        while waiting:
            waiting = [job for job in waiting if not self._serving(job)]
            if not waiting:
                return
            states = _squeue(waiting)
            ended = [job for job in waiting if states.get(job) not in LIVE_STATES]
            # It may have served and ended between the two looks: look once more.
            ended = [job for job in ended if not self._serving(job)]
            if ended:
                raise SlurmError(
                    f"node job {ended[0]} ended before its node served: "
                    f"{self._output(ended[0])[-2000:]}"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} node job(s) not serving after {timeout} s (still in "
                    f"Slurm's queue?): {', '.join(waiting)}; they join when they start"
                )
            time.sleep(POLL_SECONDS)

    def _output(self, job_id: str) -> str:
        """What job ``job_id`` has printed so far (its Slurm output file)."""
        try:
            return (self.directory / f"slurm-{job_id}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _serving(self, job_id: str) -> bool:
        return SERVING in self._output(job_id)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancels these node jobs (``scancel``: their nodes drain)."""
        if job_ids:
            _run(["scancel", *job_ids])
        self._submitted = [job for job in self._submitted if job not in job_ids]

    def close(self) -> None:
        """Cancels every node job of this cluster."""
        self.cancel(list(self._submitted))

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, attempts: int = 3) -> str:
        """Submits one node job and returns its id. The job has a name of its own: if
        ``sbatch`` fails or times out, Slurm may have taken the job all the same, so it is
        looked for by name before ``sbatch`` is tried again."""
        name = f"{self.job_name}-{secrets.token_hex(4)}"
        # The script goes on stdin: no file to clean up, nothing on a command line.
        command = ["sbatch", "--parsable", f"--job-name={name}"]
        failure = ""
        for attempt in range(attempts):
            done = _attempt(command, stdin=self.job_script())
            if done is not None and done.returncode == 0:
                job_id: str = done.stdout.strip().split(";")[0]
                return job_id
            failure = "timed out" if done is None else (done.stderr or done.stdout).strip()
            taken = _jobs_named(name)
            if taken:
                return taken[0]
            if attempt + 1 < attempts:
                time.sleep(1)
        raise SlurmError(f"sbatch failed (job {name} is not in the queue): {failure}")


def _sbatch_lines(
    job_name: str,
    workers: int,
    directory: Path,
    partition: Optional[str],
    account: Optional[str],
    walltime: Optional[str],
    memory: Optional[str],
    extra: Sequence[str],
) -> list[str]:
    options = [
        f"--job-name={job_name}",
        "--ntasks=1",
        f"--cpus-per-task={workers}",
        f"--output={directory / 'slurm-%j.log'}",
    ]
    for flag, value in (
        ("--partition", partition),
        ("--account", account),
        ("--time", walltime),
        ("--mem", memory),
    ):
        if value is not None:
            options.append(f"{flag}={value}")
    options.extend(extra)
    return [f"#SBATCH {option}" for option in options]


def _squeue(job_ids: Sequence[str]) -> dict[str, str]:
    """The state of each of ``job_ids`` that Slurm still lists."""
    output = _run(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(job_ids)}"])
    states = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def _jobs_named(name: str) -> list[str]:
    """The ids of this user's jobs named ``name`` that Slurm still lists."""
    output = _run(["squeue", "--noheader", "--me", "--format=%i", f"--name={name}"])
    return output.split()


def _attempt(
    command: list[str], stdin: Optional[str] = None
) -> Optional[subprocess.CompletedProcess[str]]:
    """Runs a Slurm command once: its outcome, or ``None`` if it timed out."""
    try:
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as error:
        raise SlurmError(f"{command[0]} not found: is Slurm installed here?") from error
    except subprocess.TimeoutExpired:
        return None


def _run(command: list[str], stdin: Optional[str] = None, attempts: int = 3) -> str:
    """Runs a Slurm command that may safely run again (it queries or cancels), retrying
    briefly (slurmctld may be busy); raises ``SlurmError`` with its output if it keeps
    failing."""
    failure = ""
    for attempt in range(attempts):
        done = _attempt(command, stdin)
        if done is not None and done.returncode == 0:
            output: str = done.stdout
            return output
        # squeue lists no job ids it has forgotten: an empty answer, not an error.
        if done is not None and command[0] == "squeue" and "Invalid job id" in done.stderr:
            return ""
        failure = "timed out" if done is None else (done.stderr or done.stdout).strip()
        if attempt + 1 < attempts:
            time.sleep(1)
    raise SlurmError(f"{' '.join(command)} failed: {failure}")
