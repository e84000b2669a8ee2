"""The data plane from Python: values put once (``Client.put`` -> ``wasp.Ref``), futures as
other jobs' arguments (chains, diamonds, fan-in, failures and cancels that reach the jobs
that take them), and the result cache (``options(cache=True)``): hits, misses after a
change to a helper, jobs that read the clock or random numbers never stored; locally, on a
node, and through pp's API."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import linecache
import sys
import time
import uuid
from collections import namedtuple
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import TIMEOUT

import wasp


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Pair = namedtuple("Pair", "left right")


def total(values, scale=1):
    return sum(values) * scale


def describe(value):
    return repr(value)


def same_object(a, b):
    return a is b


def add(a, b):
    return a + b


def sum_all(values):
    return sum(values)


def make_point(i):
    return Point(i, i * 2)


def point_sum(p):
    return (type(p).__name__, p.x + p.y)


def rich(i):
    return {"t": (i, i + 1), "s": {i}, "f": Fraction(i, 3), "c": Color.BLUE, "p": Pair(i, "x")}


def rich_again(value):
    return value


def fail(x):
    raise ValueError("bad input", x)


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return seconds


def spin_work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def clock(token):
    return time.time() > 0, token


def dice(token):
    import random

    return random.random() < 2, token


def pure(token, n):
    return token, sum(range(n))


@pytest.fixture
def client(shared_cache: Path):
    with wasp.Client(workers=2, cache_dir=shared_cache) as client:
        yield client


# Values put once.


def test_a_value_put_once_reaches_python_jobs_with_its_types(client):
    # (A set of ints: a set of str's order differs between processes, and so its repr.)
    value = {"points": [Point(1, 2), Point(3, 4)], "pair": (1, 2), "tags": {3, 1}}
    ref = client.put(value)
    assert isinstance(ref, wasp.Ref)
    assert ref.encoding == "pickle" and ref.size > 0 and len(ref.hash) == 64
    assert client.submit(describe, ref).result() == repr(value)
    # Anywhere inside the arguments, as often as needed: the same object inside the job.
    assert client.submit(same_object, ref, {"again": [ref]}["again"][0]).result() is True
    numbers = client.put(list(range(1000)))
    futures = [client.submit(total, numbers, scale=k) for k in range(20)]
    assert [f.result() for f in futures] == [499500 * k for k in range(20)]


def test_values_put_as_bytes_or_messagepack_reach_module_jobs(client, testjobs):
    data = bytes(range(256)) * 64
    raw = client.put(data)
    assert raw.encoding == "bytes" and raw.size >= len(data)
    expected = client.submit(testjobs.checksum, data).result()
    assert client.submit(testjobs.checksum, raw).result() == expected
    numbers = client.put([1, 2, 3, 4], encoding="msgpack")
    assert client.submit(testjobs.sum_list, numbers).result() == 10
    assert client.submit(testjobs.echo, {"x": [numbers]}).result() == {"x": [[1, 2, 3, 4]]}
    # A Python job reads the same values.
    assert client.submit(sum_all, numbers).result() == 10
    assert client.submit(len, raw).result() == len(data)
    pickled = client.put([1, 2])
    with pytest.raises(TypeError, match="encoding='msgpack'"):
        client.submit(testjobs.sum_list, pickled)


def test_what_cannot_be_put_is_refused_at_put(client):
    with pytest.raises(TypeError, match="lambda"):
        client.put({"f": lambda x: x})
    ref = client.put(1)
    with pytest.raises(TypeError, match="cannot hold"):
        client.put([ref])
    with pytest.raises(ValueError, match="encoding"):
        client.put(1, encoding="json")
    with pytest.raises(TypeError, match="bytes"):
        client.put("text", encoding="bytes")
    with pytest.raises(TypeError):
        client.put([object.__new__(type("Local", (), {}))])
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ref)


# Futures as arguments.


def test_futures_as_arguments_chain_diamond_and_fan_in(client):
    first = client.submit(add, 0, 1)
    chain = first
    for _ in range(30):
        chain = client.submit(add, chain, 1)
    assert chain.result(timeout=TIMEOUT) == 31
    top = client.submit(add, 1, 1)
    left, right = client.submit(add, top, 10), client.submit(add, top, 100)
    assert client.submit(add, left, right).result(timeout=TIMEOUT) == 114
    leaves = [client.submit(add, i, 0) for i in range(50)]
    assert client.submit(sum_all, leaves).result(timeout=TIMEOUT) == sum(range(50))
    # Results keep their types on the way to the job that takes them.
    assert client.submit(point_sum, client.submit(make_point, 3)).result() == ("Point", 9)
    value = client.submit(rich_again, client.submit(rich, 4)).result(timeout=TIMEOUT)
    assert value == rich(4)
    assert type(value["p"]) is Pair and value["c"] is Color.BLUE


def test_a_job_that_takes_a_future_waits_on_the_server_not_in_the_caller(client):
    slow = client.submit(spin, 1.0)
    started = time.monotonic()
    after = client.submit(add, slow, 1.0)
    assert time.monotonic() - started < 0.5
    assert not after.done()
    assert client.stats().held == 1
    assert after.result(timeout=TIMEOUT) == 2.0
    assert client.stats().held == 0


def test_a_failure_or_cancel_reaches_the_jobs_that_take_it(client):
    failed = client.submit(fail, 7)
    middle = client.submit(add, failed, 1)
    last = client.submit(add, middle, 1)
    with pytest.raises(wasp.DependencyFailed) as caught:
        last.result(timeout=TIMEOUT)
    error = caught.value
    assert error.dependency == middle.job_id and error.failed == failed.job_id
    # The first failure of the chain, as its own exception, is the cause.
    assert isinstance(error.error, ValueError) and error.error.args == ("bad input", 7)
    assert error.__cause__ is error.error
    with pytest.raises(ValueError):
        failed.result()

    slow = client.submit(spin, 5.0)
    taker = client.submit(add, slow, 1)
    assert slow.cancel()
    with pytest.raises(wasp.DependencyFailed) as caught:
        taker.result(timeout=TIMEOUT)
    assert isinstance(caught.value.error, wasp.JobCancelled)


def test_module_and_python_jobs_take_each_others_results(client, testjobs):
    module_result = client.submit(testjobs.add_one, 41)
    assert client.submit(add, module_result, 1).result(timeout=TIMEOUT) == 43
    python_result = client.submit(add, 2, 3)
    assert client.submit(testjobs.add_one, python_result).result(timeout=TIMEOUT) == 6


def test_a_future_of_another_client_is_refused(client, shared_cache):
    with wasp.Client(workers=1, cache_dir=shared_cache) as other:
        theirs = other.submit(add, 1, 2)
        with pytest.raises(TypeError, match="another wasp client"):
            client.submit(add, theirs, 1)
        ref = other.put([1])
        with pytest.raises(TypeError, match="another wasp client"):
            client.submit(sum_all, ref)


def test_pps_api_takes_jobs_and_values_put_once(shared_cache):
    server = wasp.Server(2, cache_dir=shared_cache)
    try:
        numbers = server.put(list(range(10)))
        first = server.submit(total, (numbers,))
        second = server.submit(add, (first, 5))
        assert second() == 50
    finally:
        server.destroy()


# The result cache.

HELPER = """
def helper(n):
    return n * {factor}


def job(token, n):
    return token, helper(n)
"""


def test_the_result_cache_answers_again_and_misses_after_a_helper_changes(
    tmp_path, shared_cache, monkeypatch
):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "cached_helpers.py"
    source.write_text(HELPER.format(factor=2))
    module = importlib.import_module("cached_helpers")
    token = uuid.uuid4().hex
    try:
        with wasp.Client(workers=2, cache_dir=shared_cache) as client:
            cached = client.options(cache=True)
            first = [cached.submit(module.job, token, n).result() for n in range(10)]
            # Not asked: neither looked up nor stored.
            client.submit(module.job, token, 100).result()
        with wasp.Client(workers=2, cache_dir=shared_cache, cache=True) as client:
            again = [client.submit(module.job, token, n).result() for n in range(10)]
            results = client.stats().results
        assert again == first == [(token, n * 2) for n in range(10)]
        assert (results.hits, results.stored) == (10, 0)
        # A new program run, in effect: the module and Python's line cache read again.
        source.write_text(HELPER.format(factor=3) + "\n")
        module = importlib.reload(module)
        linecache.checkcache(str(source))
        with wasp.Client(workers=2, cache_dir=shared_cache, cache=True) as client:
            changed = [client.submit(module.job, token, n).result() for n in range(10)]
            results = client.stats().results
        assert changed == [(token, n * 3) for n in range(10)]
        assert (results.hits, results.misses) == (0, 10)
    finally:
        sys.modules.pop("cached_helpers", None)


def test_jobs_that_read_the_clock_or_random_numbers_are_not_cached(shared_cache):
    token = uuid.uuid4().hex
    with wasp.Client(workers=2, cache_dir=shared_cache, cache=True) as client:
        assert client.submit(clock, token).result() == (True, token)
        assert client.submit(dice, token).result() == (True, token)
        assert client.submit(pure, token, 10).result() == (token, 45)
        client._core.native.flush_results()
        results = client.stats().results
        assert (results.stored, results.not_cacheable) == (1, 2)
        assert client.submit(clock, token).result() == (True, token)
        assert client.submit(pure, token, 10).result() == (token, 45)
        results = client.stats().results
        assert results.hits == 1 and results.not_cacheable == 3
        assert "cache: 1 hits, 1 stored, 3 not cacheable" in str(client.stats())


def test_a_cached_job_taking_a_value_put_once_is_keyed_by_the_values_hash(shared_cache):
    with wasp.Client(workers=2, cache_dir=shared_cache, cache=True) as client:
        first = client.submit(total, client.put([1, 2, 3])).result()
        client._core.native.flush_results()
        again = client.submit(total, client.put([1, 2, 3])).result()
        other = client.submit(total, client.put([1, 2, 4])).result()
        results = client.stats().results
    assert (first, again, other) == (6, 6, 7)
    assert results.hits >= 1


# On a node.


def test_a_value_goes_to_a_node_once_and_a_graph_runs_there(nodes, secret_file, shared_cache):
    (node,) = nodes(1, workers=2, cache_dir=shared_cache)
    with wasp.Client(
        workers=0, peers=[node.address], secret_file=secret_file, cache_dir=shared_cache
    ) as client:
        big = client.put(list(range(300_000)))
        futures = [client.submit(total, big, scale=k) for k in range(12)]
        assert [f.result(timeout=TIMEOUT) for f in futures] == [
            sum(range(300_000)) * k for k in range(12)
        ]
        leaves = [client.submit(spin_work, 1000 + i) for i in range(20)]
        assert client.submit(sum_all, leaves).result(timeout=TIMEOUT) == sum(
            spin_work(1000 + i) for i in range(20)
        )
        (row,) = client.stats().nodes
        assert row.data_transfers == 1, row
        assert big.size <= row.data_bytes < big.size + 4096
        deadline = time.monotonic() + 5
        while row.bytes_sent <= row.data_bytes and time.monotonic() < deadline:
            time.sleep(0.1)  # counted once a second
            (row,) = client.stats().nodes
        assert row.bytes_sent > row.data_bytes
