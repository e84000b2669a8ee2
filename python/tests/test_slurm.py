"""wasp on a real Slurm (Debian's slurm-wlm and munge, slurmctld and slurmd on 127.0.0.1,
started by ``scripts/slurm.sh``): nodes started through ``sbatch`` by ``SlurmCluster``, found
by a client through their rendezvous directory, a node cancelled mid-batch, scaling up (and
``scale`` returning once the new node serves); a submission whose answer is lost made once,
not twice; ``scripts/slurm.sh stop`` stopping what ``start`` started, munged included.

Without a Slurm that can start the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import WASP, _built, sum_primes_reference, unavailable

from wasp.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def _munged_running() -> bool:
    """Whether a munged runs (a zombie, ended and not yet reaped, does not)."""
    found = subprocess.run(["pgrep", "-x", "munged"], capture_output=True, text=True)
    for pid in found.stdout.split():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            return True
    return False


#: Whether munged ran before the tests started Slurm: ``stop`` must leave it as it was.
MUNGED_BEFORE: list[bool] = []


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("slurm")
    MUNGED_BEFORE.append(_munged_running())
    started = subprocess.run(
        [str(ROOT / "scripts" / "slurm.sh"), "start", str(state)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    match = re.search(r"export SLURM_CONF=(\S+)", started.stdout)
    if started.returncode != 0 or match is None:
        unavailable(f"Slurm did not start:\n{started.stdout}\n{started.stderr}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = match.group(1)
    yield state
    subprocess.run(
        [str(ROOT / "scripts" / "slurm.sh"), "stop", str(state)], timeout=120, check=False
    )
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous


def _wait(what: str, condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.2)


def test_nodes_started_by_sbatch_are_found_cancelled_and_scaled(
    slurm, tmp_path, secret_file, sum_primes
):
    directory = tmp_path / "nodes"
    cluster = SlurmCluster(
        jobs=2,
        workers=1,
        secret_file=secret_file,
        directory=directory,
        wasp=str(_built(WASP)),
        listen="127.0.0.1:0",
        walltime="00:10:00",
    )
    with cluster:
        secret = secret_file.read_text().strip()
        script = cluster.job_script()
        assert secret not in script and "--secret-file" in script
        assert len(cluster.job_ids()) == 2
        for job in cluster.job_ids():
            shown = subprocess.run(
                ["scontrol", "show", "job", job], capture_output=True, text=True, check=True
            ).stdout
            assert secret not in shown, "the secret is not on a command line Slurm shows"

        with cluster.client(node_timeout=2.0) as client:
            assert client.wait_for_nodes(2, timeout=TIMEOUT) >= 2
            inputs = [20_000 + 200 * i for i in range(300)]
            futures = [client.submit(sum_primes.sum_primes, n) for n in inputs]
            _wait("the batch under way", lambda: sum(f.done() for f in futures) >= 30)
            # Cancel one node mid-batch: it drains and hands its jobs back.
            cancelled = cluster.job_ids()[0]
            assert sum(f.done() for f in futures) < len(futures), "cancelled mid-batch"
            cluster.cancel([cancelled])
            results = [f.result(timeout=TIMEOUT) for f in futures]
            assert results == [sum_primes_reference(n) for n in inputs]
            assert cancelled not in cluster.job_ids()

            # Scale to 3: two new jobs; `scale` returns once their nodes serve, and the
            # client, waiting for them as the README does, then gives them work.
            before_scale = set(cluster.job_ids())
            cluster.scale(jobs=3)
            new_jobs = [job for job in cluster.job_ids() if job not in before_scale]
            assert len(new_jobs) == 2 and len(cluster.job_ids()) == 3
            for job in new_jobs:
                output = (directory / f"slurm-{job}.log").read_text()
                assert "listening on" in output, f"job {job} serves when scale returns"
            assert client.wait_for_nodes(3, timeout=TIMEOUT) >= 3
            before = {node.id: node.jobs for node in client.stats().nodes if node.connected}
            more = list(client.map(sum_primes.sum_primes, inputs[:120]))
            assert more == results[:120]
            after = {node.id: node.jobs for node in client.stats().nodes if node.connected}
            newcomers = [node for node in after if node not in before or before[node] == 0]
            assert any(after[node] > 0 for node in newcomers), f"{before} -> {after}"
    assert cluster.job_ids() == []
    _wait("the nodes left the rendezvous directory", lambda: not list(directory.glob("*.node")))


def _queue_names() -> list[str]:
    """The names of this user's jobs in Slurm's queue."""
    shown = subprocess.run(
        ["squeue", "--noheader", "--me", "--format=%j"], capture_output=True, text=True
    )
    return shown.stdout.split()


def test_a_submission_whose_answer_is_lost_is_not_made_twice(
    slurm, tmp_path, secret_file, monkeypatch
):
    """``sbatch`` takes the job, then its answer is lost (it times out, or fails to say
    so): ``SlurmCluster`` finds the job in the queue by its name instead of submitting
    a second node that nobody would track or cancel."""
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    lost = tmp_path / "bin"
    lost.mkdir()
    once = tmp_path / "answered-once"
    (lost / "sbatch").write_text(
        f"""#!/bin/sh
# The first submission is taken, and its answer lost; the others are answered.
if [ ! -e {once} ]; then
    touch {once}
    {real} "$@" > /dev/null
    echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
    exit 1
fi
exec {real} "$@"
"""
    )
    (lost / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{lost}:{os.environ['PATH']}")
    cluster = SlurmCluster(
        jobs=1,
        workers=1,
        secret_file=secret_file,
        directory=tmp_path / "nodes",
        wasp=str(_built(WASP)),
        listen="127.0.0.1:0",
        walltime="00:05:00",
        job_name="wasp-lost-answer",
    )
    with cluster:
        assert once.exists(), "the first answer was lost"
        named = [name for name in _queue_names() if name.startswith("wasp-lost-answer-")]
        assert len(named) == 1, f"one node job, not two: {named}"
        assert len(cluster.job_ids()) == 1
    _wait("the job cancelled", lambda: not any(n.startswith("wasp-lost-") for n in _queue_names()))


def test_stop_stops_what_start_started(slurm):
    """Last: ``scripts/slurm.sh stop`` stops the controller and the node daemon, and
    munged too if ``start`` started it (a munged running before stays)."""
    subprocess.run(
        [str(ROOT / "scripts" / "slurm.sh"), "stop", str(slurm)], timeout=120, check=True
    )
    for daemon in ("slurmctld", "slurmd"):
        pid_file = slurm / f"{daemon}.pid"
        assert not pid_file.exists(), f"{daemon} stopped"
    _wait("munged as it was before start", lambda: _munged_running() == MUNGED_BEFORE[0])
