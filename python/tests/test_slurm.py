"""wasp on a real Slurm (Debian's slurm-wlm and munge, slurmctld and slurmd on 127.0.0.1,
started by ``scripts/slurm.sh``): nodes started through ``sbatch`` by ``SlurmCluster``, found
by a client through their rendezvous directory, a node cancelled mid-batch, scaling up.

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


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("slurm")
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

            # Scale to 3: two new jobs, and a new node gets work.
            cluster.scale(jobs=3)
            assert len(cluster.job_ids()) == 3
            _wait(
                "three nodes connected",
                lambda: sum(node.connected for node in client.stats().nodes) >= 3,
            )
            before = {node.id: node.jobs for node in client.stats().nodes if node.connected}
            more = list(client.map(sum_primes.sum_primes, inputs[:120]))
            assert more == results[:120]
            after = {node.id: node.jobs for node in client.stats().nodes if node.connected}
            newcomers = [node for node in after if node not in before or before[node] == 0]
            assert any(after[node] > 0 for node in newcomers), f"{before} -> {after}"
    assert cluster.job_ids() == []
    _wait("the nodes left the rendezvous directory", lambda: not list(directory.glob("*.node")))
