"""Each way a job can fail raises its own exception, with the job's output attached; a
wrong secret is a clear error, not a hang; a bad setting is a ValueError, a missing file an
OSError."""

from __future__ import annotations

import pytest
from conftest import TIMEOUT

import wasp


def failure(future) -> wasp.JobError:
    error = future.exception(TIMEOUT)
    assert isinstance(error, wasp.JobError), error
    return error


def test_a_failed_job_carries_its_output(client, testjobs):
    error = failure(client.submit(testjobs.print_then_fail, "hi"))
    assert type(error) is wasp.JobFailed
    assert "failed after printing hi" in str(error)
    assert error.stdout == b"out: hi\n"
    assert error.stderr == b"err: hi\n"
    assert "out: hi" in error.output
    assert error.worker.startswith("local/")


@pytest.mark.parametrize(
    ("job", "args", "limits", "kind", "fields"),
    [
        ("panics", ("boom",), {}, wasp.JobPanicked, {}),
        ("trap_unreachable", (), {}, wasp.JobTrapped, {"trap": "unreachable instruction executed"}),
        ("spin", (), {"timeout": 0.2}, wasp.JobTimeout, {"timeout": 0.2}),
        ("memory_bomb", (), {"max_memory": 16 << 20}, wasp.JobMemoryLimit, {"limit": 16 << 20}),
        (
            "print_lots",
            (1 << 20,),
            {"max_output": 1024},
            wasp.JobOutputLimit,
            {"stream": "stdout", "limit": 1024},
        ),
        ("spin", (), {"fuel": 10_000}, wasp.JobFuelExhausted, {"limit": 10_000}),
        ("exit", (3,), {}, wasp.JobExited, {"status": 3}),
        ("sleep_secs", (60,), {"timeout": 5}, wasp.JobForbidden, {}),
        ("add_one", ("not a number",), {}, wasp.BadArguments, {}),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_each_kind_of_failure_has_its_exception(client, testjobs, job, args, limits, kind, fields):
    error = failure(client.options(**limits).submit(testjobs.job(job), *args))
    assert type(error) is kind, error
    assert isinstance(error, wasp.JobError)
    for name, value in fields.items():
        assert getattr(error, name) == value


def test_output_limit_keeps_what_fits(client, testjobs):
    error = failure(client.options(max_output=1024).submit(testjobs.print_lots, 1 << 20))
    assert len(error.stdout) == 1024


def test_an_unknown_job_of_a_module(client, testjobs):
    with pytest.raises(AttributeError, match="has no job 'nope'"):
        testjobs.nope  # noqa: B018
    error = failure(client.submit(wasp.JobRef(testjobs, "nope"), 1))
    assert type(error) is wasp.UnknownFunction
    assert "add_one" in error.available


def test_a_cancelled_job(testjobs, cache_dir):
    server = wasp.Server(1, cache_dir=cache_dir)
    try:
        job = server.submit(testjobs.busy_ms, (600_000,))
        assert job.cancel()
        with pytest.raises(wasp.JobCancelled):
            job()
    finally:
        server.destroy()


def test_a_node_refusing_a_limit_and_a_module(testjobs, sum_primes, nodes, secret_file):
    (node,) = nodes(1, extra=["--max-memory", "64MiB", "--allow-module", sum_primes.hash])
    with wasp.Client(workers=0, peers=[node.address], secret_file=secret_file) as client:
        refused = failure(client.options(max_memory=128 << 20).submit(sum_primes.sum_primes, 10))
        assert type(refused) is wasp.LimitRefused
        assert isinstance(refused, wasp.JobRefused)
        assert (refused.limit, refused.asked, refused.allowed) == (
            "memory",
            str(128 << 20),
            str(64 << 20),
        )
        # A limit not asked for takes the node's value: accepted.
        assert client.submit(sum_primes.sum_primes, 10).result(TIMEOUT) == 17
        module = failure(client.submit(testjobs.add_one, 1))
        assert type(module) is wasp.ModuleRefused


def test_a_lost_node(testjobs, nodes, secret_file):
    (node,) = nodes(1, workers=2)
    with wasp.Client(
        workers=0,
        peers=[node.address],
        secret_file=secret_file,
        max_retries=0,
        node_timeout=1.0,
    ) as client:
        future = client.submit(testjobs.busy_ms, 600_000)
        assert client.submit(testjobs.add_one, 1).result(TIMEOUT) == 2
        node.kill()
        error = failure(future)
        assert type(error) is wasp.NodeLost
        assert error.attempts == 1


def test_a_wrong_secret_is_a_clear_error_not_a_hang(nodes, tmp_path):
    (node,) = nodes(1)
    with pytest.raises(ConnectionError, match="wrong cluster secret"):
        wasp.Client(workers=0, peers=[node.address], secret="c9" * 32)


def test_configuration_errors(tmp_path, sum_primes_path):
    with pytest.raises(ValueError, match="max_memory"):
        wasp.Client(max_memory=0)
    with pytest.raises(ValueError, match="secret"):
        wasp.Client(peers=["127.0.0.1:1"])
    with pytest.raises(ValueError, match="not host:port"):
        wasp.Client(peers=["no port"], secret="d1" * 32)
    with pytest.raises(FileNotFoundError, match="secret file"):
        wasp.Client(peers=["127.0.0.1:1"], secret_file=tmp_path / "missing.key")
    with pytest.raises(FileNotFoundError):
        wasp.Module(tmp_path / "missing.wasm")
    with pytest.raises(ValueError, match="not a WebAssembly module"):
        wasp.Module(b"not wasm")
    assert wasp.Module(sum_primes_path.read_bytes()).jobs == ["sum_primes"]
