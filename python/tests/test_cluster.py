"""Nodes from Python: two ``wasp node`` processes take a map's jobs; one is killed with
SIGKILL in the middle, and every result is still right, and counted once."""

from __future__ import annotations

import threading

from conftest import TIMEOUT

import wasp


def sums_of_primes_below(limit: int) -> list[int]:
    """``sums[n]``: the sum of the primes below ``n``, by a sieve (the reference)."""
    composite = bytearray(limit + 1)
    sums = [0] * (limit + 1)
    total = 0
    for n in range(2, limit + 1):
        sums[n] = total
        if not composite[n]:
            total += n
            composite[n * n :: n] = b"\x01" * len(composite[n * n :: n])
    return sums


def test_a_node_killed_mid_map_loses_no_job(sum_primes, nodes, secret_file):
    first, second = nodes(2)
    inputs = [50_000 + 100 * (i % 500) for i in range(300)]
    expected = sums_of_primes_below(100_000)
    with wasp.Client(
        workers=0,
        peers=[first.address, second.address],
        secret_file=secret_file,
        node_timeout=1.0,
    ) as client:
        assert client.wait_for_nodes(2, TIMEOUT) == 2
        killed = threading.Event()

        def progress(done, _total):
            if done == 60 and not killed.is_set():
                first.kill()
                killed.set()

        results = list(client.map(sum_primes.sum_primes, inputs, progress=progress))
        assert killed.is_set()
        assert results == [expected[n] for n in inputs]
        client.wait(timeout=TIMEOUT)
        stats = client.stats()
        assert (stats.submitted, stats.finished, stats.failed) == (300, 300, 0)
        assert sum(node.jobs for node in stats.nodes) == 300, str(stats)
        lost = next(node for node in stats.nodes if node.address == first.address)
        assert not lost.connected


def test_nodes_and_local_workers_share_a_batch(sum_primes, nodes, secret_file):
    (node,) = nodes(1)
    with wasp.Client(workers=1, peers=[node.address], secret_file=secret_file) as client:
        assert client.wait_for_nodes(1, TIMEOUT) == 1
        results = list(client.map(sum_primes.sum_primes, [100_000] * 8))
        assert results == [454396537] * 8
        stats = client.stats()
        assert stats.nodes[0].jobs > 0 and sum(w.jobs for w in stats.workers) > 0, str(stats)


def test_a_rendezvous_directory_with_no_node_yet_is_waited_for(tmp_path, secret_file, nodes):
    """Nodes from a batch system's queue may come much later: a client of an empty
    rendezvous directory starts, and its jobs run once a node writes its address there."""
    directory = tmp_path / "rendezvous"
    directory.mkdir()
    with wasp.Client(
        workers=0, peers=[f"dir:{directory}"], secret_file=secret_file, node_timeout=2.0
    ) as client:
        assert client.capacity() == 0
        nodes(1, extra=["--rendezvous", str(directory)])
        assert client.wait_for_nodes(1, timeout=TIMEOUT) == 1
