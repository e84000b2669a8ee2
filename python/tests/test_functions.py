"""Python functions as jobs, in wasp's Python runner: pp's own example in Python, locally and
on two nodes; what travels with a function and what is refused at submit; hostile jobs end
in typed errors while the server keeps serving."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from math import sqrt
from pathlib import Path

import pytest
from conftest import TIMEOUT
from test_pp import check_pp_numbers

import wasp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "sum_primes.py"

SCALE = 3
OFFSETS = (1, 2.5, "x")


def isprime(n):
    if n < 2:
        return False
    return all(n % d for d in range(2, int(math.sqrt(n)) + 1))


def sum_primes(n):
    print("summing below", n)
    return sum(x for x in range(2, n) if isprime(x))


def scaled(x):
    return x * SCALE, OFFSETS


def root(x):
    return sqrt(x)


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm(self):
        return math.hypot(self.x, self.y)


def norm_of(x, y):
    return Point(x, y).norm()


def divide(x):
    return 1 / x


def run_example(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def client(shared_cache: Path):
    with wasp.Client(workers=2, cache_dir=shared_cache) as client:
        yield client


def test_pps_example_in_python_prints_pps_numbers_locally(runner_path, shared_cache):
    env = {"WASP_PYTHON_RUNNER": str(runner_path), "XDG_CACHE_HOME": str(shared_cache.parent)}
    output = run_example("2", env=env)
    assert "Starting pp with 2 workers\n" in output, output
    check_pp_numbers(output)


def test_pps_example_in_python_prints_pps_numbers_on_two_nodes(
    runner_path, shared_cache, nodes, secret_file
):
    first, second = nodes(2, cache_dir=shared_cache)
    env = {
        "WASP_PYTHON_RUNNER": str(runner_path),
        "XDG_CACHE_HOME": str(shared_cache.parent),
        "PPSERVERS": f"{first.address},{second.address}",
        "SECRET_FILE": str(secret_file),
    }
    output = run_example("0", env=env)
    assert "Starting pp with 0 workers\n" in output, output
    check_pp_numbers(output)
    rows = [line for line in output.splitlines() if "(x86_64" in line or "(aarch64" in line]
    assert len(rows) == 2, output


def test_helpers_modules_constants_and_classes_travel(client):
    assert client.submit(sum_primes, 100).result(TIMEOUT) == 1060
    # Values keep their types both ways (python/tests/programs/ported/ has one program per
    # kind of value and definition).
    assert client.submit(scaled, 2).result(TIMEOUT) == (6, (1, 2.5, "x"))
    assert client.submit(root, 16.0).result(TIMEOUT) == 4.0
    assert client.submit(norm_of, 3, 4).result(TIMEOUT) == 5.0
    assert list(client.map(sum_primes, [10, 100])) == [17, 1060]


def test_a_call_of_plain_values_is_pickled_as_the_plan_pickles_it():
    # A function submitted again with values that refer to nothing (ints, strs, ...) is
    # pickled without the plan's hook for every object: the same bytes, faster.
    import io
    import pickle

    from wasp import _ship, runner

    _ship.prepare(scaled, (2,), {})  # the first submit walks, and keeps a plan
    values = (3, 1.5, "x", b"y", None, True, 2**70, 1j)
    fast = _ship.prepare(scaled, values, {"k": 2}).call
    _, plan = _ship._plans[_ship._plan_key(scaled, runner.has_module, (), ())]
    hooked = io.BytesIO()
    _ship._PlanPickler(hooked, plan, runner.has_module).dump((scaled, values, {"k": 2}))
    assert fast == hooked.getvalue()
    assert pickle.loads(fast) == (scaled, values, {"k": 2})


def test_constants_are_read_at_each_submit(client):
    global SCALE
    try:
        SCALE = 10
        assert client.submit(scaled, 2).result(TIMEOUT)[0] == 20
    finally:
        SCALE = 3
    assert client.submit(scaled, 2).result(TIMEOUT)[0] == 6


def test_an_exception_keeps_its_type_and_carries_the_jobs_traceback(client):
    with pytest.raises(ZeroDivisionError) as failed:
        client.submit(divide, 0).result(TIMEOUT)
    error = failed.value
    assert isinstance(error, wasp.JobFailed)
    assert str(error) == "division by zero"
    assert "ZeroDivisionError: division by zero" in error.traceback
    assert "return 1 / x" in error.traceback
    assert str(error.__cause__) == error.traceback
    assert "wasp_runner" not in error.traceback, "the runner's own frames are left out"


def test_print_is_captured(shared_cache, capsys):
    server = wasp.Server(1, cache_dir=shared_cache)
    try:
        assert server.submit(sum_primes, (100,))() == 1060
        assert "summing below 100" in capsys.readouterr().out
    finally:
        server.destroy()


GLOBAL_LIST = [1, 2]
LOCK = threading.Lock()


def reads_a_list():
    return GLOBAL_LIST


def reads_a_lock():
    with LOCK:
        return 1


def closure_maker():
    seen = 3

    def inner():
        return seen

    return inner


def imports_numpy():
    import numpy  # noqa: F401

    return 1


def test_globals_closures_lambdas_and_c_functions_travel(client):
    assert client.submit(reads_a_list).result(TIMEOUT) == [1, 2]
    assert client.submit(closure_maker()).result(TIMEOUT) == 3
    assert client.submit(lambda x: x * SCALE, 2).result(TIMEOUT) == 6
    assert client.submit(len, [1, 2, 3]).result(TIMEOUT) == 3
    assert client.submit(math.factorial, 30).result(TIMEOUT) == math.factorial(30)


@pytest.mark.parametrize(
    ("func", "args", "error", "message"),
    [
        (
            reads_a_lock,
            (),
            TypeError,
            r"reads_a_lock → test_functions\.LOCK: cannot pickle '_thread.lock'",
        ),
        (len, (open(__file__),), TypeError, r"args\[0\] \(_io.TextIOWrapper\).*read it here"),  # noqa: SIM115
        (
            imports_numpy,
            (),
            ImportError,
            r"imports_numpy.*import numpy: module 'numpy' is neither installed",
        ),
        (subprocess.run, (["true"],), ImportError, "the standard module 'subprocess' is not"),
    ],
    ids=["lock", "open-file", "module-not-in-runner", "function-of-a-missing-module"],
)
def test_what_cannot_travel_fails_at_submit_saying_why(client, func, args, error, message):
    with pytest.raises(error, match=message):
        client.submit(func, *args)


def test_pps_modules_outside_the_runner_fail_at_submit(shared_cache):
    server = wasp.Server(1, cache_dir=shared_cache)
    try:
        with pytest.raises(ImportError, match=r"modules names 'subprocess'.*standard module"):
            server.submit(sum_primes, (10,), (isprime,), ("subprocess",))
    finally:
        server.destroy()


def spin():
    while True:
        pass


def memory_bomb():
    chunks = []
    while True:
        chunks.append(bytearray(1 << 20))


def recurse(n):
    return recurse(n + 1) + 1


def flood():
    while True:
        print("x" * 1000)


def read_passwd():
    return open("/etc/passwd").read()


def environment():
    import os

    return dict(os.environ)


def open_socket():
    # Past the check at submit (which refuses `import socket`): the sandbox's own answer.
    return str(__import__("socket").socket())


def import_ctypes():
    return str(__import__("ctypes"))


def exit_3():
    import sys

    sys.exit(3)


def sleep_long():
    import time

    time.sleep(60)


@pytest.mark.parametrize(
    ("func", "limits", "expected", "text"),
    [
        (spin, {"timeout": 1.0}, (wasp.JobTimeout, TimeoutError), None),
        # Python raises MemoryError when the sandbox refuses to grow its memory.
        (memory_bomb, {"max_memory": 64 << 20}, (MemoryError, wasp.JobFailed), None),
        (recurse, {}, (RecursionError, wasp.JobFailed), "maximum recursion depth"),
        (flood, {}, (wasp.JobOutputLimit,), None),
        (read_passwd, {}, (FileNotFoundError, wasp.JobFailed), "the sandbox has no files"),
        (open_socket, {}, (ModuleNotFoundError, wasp.JobFailed), "socket"),
        (import_ctypes, {}, (ModuleNotFoundError, wasp.JobFailed), "No module named"),
        (exit_3, {}, (wasp.JobExited,), "sys.exit(3)"),
        (sleep_long, {}, (wasp.JobForbidden,), None),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_hostile_python_ends_in_its_typed_error_and_the_server_serves_on(
    client, func, limits, expected, text
):
    args = (0,) if func is recurse else ()
    with pytest.raises(expected[0]) as ended:
        client.options(**limits).submit(func, *args).result(TIMEOUT)
    assert isinstance(ended.value, expected)
    if text is not None:
        assert text in str(ended.value)
    if func is exit_3:
        assert ended.value.status == 3
    assert client.submit(sum_primes, 100).result(TIMEOUT) == 1060


def test_the_sandbox_has_no_environment(client):
    assert client.submit(environment).result(TIMEOUT) == {}


def test_a_restarted_node_loads_the_runner_from_its_disk_cache(
    nodes, secret_file, tmp_path, runner_path
):
    cache = tmp_path / "node-cache"

    def run_on(node) -> str:
        with wasp.Client(workers=0, peers=[node.address], secret_file=secret_file) as client:
            assert client.submit(sum_primes, 100).result(TIMEOUT) == 1060
        node.kill()
        return node.log.read_text()

    (first,) = nodes(1, cache_dir=cache)
    assert "module compiled" in run_on(first)
    (second,) = nodes(1, cache_dir=cache)
    log = run_on(second)
    assert "module loaded from the disk cache" in log, log
    assert "module compiled" not in log, log


def test_a_node_compiling_the_runner_shows_as_preparing(nodes, secret_file, tmp_path, runner_path):
    (node,) = nodes(1, cache_dir=tmp_path / "fresh-cache")

    def preparing(client) -> int:
        return sum(row.preparing for row in client.stats().nodes)

    with wasp.Client(workers=0, peers=[node.address], secret_file=secret_file) as client:
        future = client.submit(sum_primes, 100)
        shown = ""
        deadline = time.monotonic() + TIMEOUT
        while not future.done() and time.monotonic() < deadline:
            if preparing(client):
                shown = str(client.stats())
                break
            time.sleep(0.005)
        assert future.result(TIMEOUT) == 1060
        assert "preparing 1 module(s)" in shown, "the node's compilation was never shown"
        while preparing(client) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert preparing(client) == 0


calls = 0


def count():
    global calls
    calls += 1
    return calls


def test_reused_interpreters_keep_state_per_client_and_fresh_ones_do_not(
    nodes, secret_file, shared_cache
):
    with wasp.Client(workers=1, cache_dir=shared_cache) as fresh:
        assert [fresh.submit(count).result(TIMEOUT) for _ in range(3)] == [1, 1, 1]
    with wasp.Client(workers=1, cache_dir=shared_cache, reuse_instances=True) as warm:
        assert [warm.submit(count).result(TIMEOUT) for _ in range(3)] == [1, 2, 3]
    # On a node of one worker, two clients: each its own interpreter, never the other's.
    (node,) = nodes(1, cache_dir=shared_cache)

    def client():
        return wasp.Client(
            workers=0, peers=[node.address], secret_file=secret_file, reuse_instances=True
        )

    with client() as first, client() as second:
        assert [first.submit(count).result(TIMEOUT) for _ in range(2)] == [1, 2]
        assert second.submit(count).result(TIMEOUT) == 1
        assert first.submit(count).result(TIMEOUT) == 1, "the second client's was not kept"
