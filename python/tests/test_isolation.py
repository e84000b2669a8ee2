"""Isolation between Python jobs: nothing a job does to the interpreter (globals, builtins,
``sys.modules``, caches, the heap, ``random``'s state, the recursion limit, the
environment) is seen by the next job on the same worker, however the first job ended: with
a result, an exception, a trap, a timeout, the memory, output or fuel limit. With
``reuse_instances=True`` the state of a job that returned is kept by design, but never that
of a job stopped in the middle, and never above the next job's memory limit."""

from __future__ import annotations

import random
import time

import pytest
from conftest import TIMEOUT

import wasp


def probe():
    """What a job sees of the interpreter it runs in: each value changes if an earlier job's
    marks survived."""
    import json
    import os
    import random
    import re
    import sys

    builtins = sys.modules["builtins"]

    return {
        "marked module": "wasp_isolation_marker" in sys.modules,
        "module attribute": hasattr(json, "isolation_mark"),
        "builtin": hasattr(builtins, "isolation_mark") or divmod(7, 2) != (3, 1),
        "global": globals().get("ISOLATION_MARK"),
        "recursion limit": sys.getrecursionlimit(),
        "environment": dict(os.environ),
        "path": list(sys.path),
        "regex cache": len(re._cache) if hasattr(re, "_cache") else None,
        "random": random.random(),
        "next address": id(object()),
    }


def leave_marks():
    """Changes every piece of interpreter state :func:`probe` reads."""
    import json
    import os
    import random
    import re
    import sys

    builtins = sys.modules["builtins"]

    sys.modules["wasp_isolation_marker"] = type(sys)("wasp_isolation_marker")
    json.isolation_mark = True
    builtins.isolation_mark = True
    builtins.divmod = lambda *_: "replaced"
    globals()["ISOLATION_MARK"] = "left by an earlier job"
    sys.setrecursionlimit(123_456)
    os.environ["ISOLATION_MARK"] = "1"
    sys.path.append("/isolation-mark")
    re.compile("isolation-mark-[0-9]+")
    random.seed(12345)
    # Heap: a megabyte kept alive from a module everyone imports.
    json.isolation_ballast = [bytearray(1024) for _ in range(1024)]


def marks_then_returns():
    leave_marks()
    return "done"


def marks_then_raises():
    leave_marks()
    raise ValueError("after marking")


def marks_then_traps():
    # Breaks a builtin the regular-expression compiler needs: CPython aborts, and the
    # instance traps (unreachable).
    leave_marks()
    import re
    import sys

    sys.modules["builtins"].len = lambda _: 0
    return re.compile("(a|b)*c+[0-9]{2,}")


def marks_then_recurses():
    # Past the recursion limit CPython would stop at: the frames fill the memory.
    leave_marks()
    import sys

    sys.setrecursionlimit(10_000_000)

    def down(n):
        return down(n + 1) + 1

    return down(0)


def marks_then_spins():
    leave_marks()
    while True:
        pass


def marks_then_eats_memory():
    leave_marks()
    import json

    json.isolation_ballast = []
    while True:
        json.isolation_ballast.append(bytearray(1 << 20))


def marks_then_floods():
    leave_marks()
    while True:
        print("x" * 1000)


#: Each way a job can end: the marking job, the limits it runs under, and what it raises
#: (``None``: it returns).
ENDINGS = [
    (marks_then_returns, {}, None),
    (marks_then_raises, {}, wasp.JobFailed),
    (marks_then_traps, {}, wasp.JobTrapped),
    (marks_then_recurses, {"max_memory": 96 << 20}, (wasp.JobMemoryLimit, wasp.JobFailed)),
    (marks_then_spins, {"timeout": 0.5}, wasp.JobTimeout),
    (marks_then_eats_memory, {"max_memory": 96 << 20}, (wasp.JobFailed, wasp.JobMemoryLimit)),
    (marks_then_floods, {"max_output": 64 << 10}, wasp.JobOutputLimit),
    (marks_then_spins, {"fuel": 50_000_000}, wasp.JobFuelExhausted),
]


def end(client: wasp.Client, func, limits: dict, raises) -> None:
    future = client.options(**limits).submit(func)
    if raises is None:
        assert future.result(TIMEOUT) == "done"
    else:
        with pytest.raises(raises):
            future.result(TIMEOUT)


def pristine(seen: dict) -> dict:
    """What of a probe must be the same in every fresh interpreter (``random`` aside)."""
    return {key: value for key, value in seen.items() if key != "random"}


@pytest.fixture(scope="module")
def baseline(shared_cache) -> dict:
    """The probe in a fresh interpreter that no job has touched."""
    with wasp.Client(workers=1, cache_dir=shared_cache) as client:
        return client.submit(probe).result(TIMEOUT)


@pytest.mark.parametrize(
    ("func", "limits", "raises"), ENDINGS, ids=lambda value: getattr(value, "__name__", None)
)
def test_nothing_a_job_leaves_is_seen_by_the_next(shared_cache, baseline, func, limits, raises):
    # One worker: the next job runs on the same worker, in the pool slot the first one used.
    with wasp.Client(workers=1, cache_dir=shared_cache) as client:
        for _ in range(2):
            end(client, func, limits, raises)
            seen = client.submit(probe).result(TIMEOUT)
            assert pristine(seen) == pristine(baseline)
            assert seen["random"] != random.Random(12345).random(), "random's seed survived"


def test_the_marks_are_seen_where_they_are_left(shared_cache):
    """The probe can see each mark: in the job that left them, every value differs."""

    def marks_then_probes():
        leave_marks()
        return probe()

    with wasp.Client(workers=1, cache_dir=shared_cache) as client:
        fresh = client.submit(probe).result(TIMEOUT)
        marked = client.submit(marks_then_probes).result(TIMEOUT)
    assert marked["random"] == random.Random(12345).random()
    different = [key for key in fresh if key != "random" and marked[key] == fresh[key]]
    assert different == [], f"the probe does not see these marks: {different}"


def test_random_differs_between_fresh_interpreters(shared_cache):
    """Each fresh interpreter's ``random`` is seeded anew, not from the runner's snapshot:
    jobs that draw random numbers (a Monte-Carlo estimate split into jobs) do not all
    draw the same ones."""

    def draw():
        import random

        return random.random()

    with wasp.Client(workers=1, cache_dir=shared_cache) as client:
        draws = [client.submit(draw).result(TIMEOUT) for _ in range(4)]
    assert len(set(draws)) == 4, draws


@pytest.mark.parametrize(
    ("func", "limits", "raises"),
    [ending for ending in ENDINGS if ending[2] is not None],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_reused_interpreter_is_dropped_after_a_job_that_did_not_return(
    shared_cache, baseline, func, limits, raises
):
    """With reuse, a job that returned leaves its state to the next (by design); one that
    raised keeps it too (it returned, with an error); one stopped in the middle (a trap,
    a timeout, a limit) leaves nothing."""
    with wasp.Client(workers=1, cache_dir=shared_cache, reuse_instances=True) as client:
        end(client, func, limits, raises)
        seen = client.submit(probe).result(TIMEOUT)
    if func is marks_then_raises:
        assert seen["module attribute"], "a job that raised should leave its interpreter kept"
    else:
        assert pristine(seen) == pristine(baseline)


def test_a_reused_interpreter_never_holds_more_than_the_next_jobs_memory_limit(shared_cache):
    """An interpreter an earlier job grew to 160 MiB is reused for a job allowed 256 MiB, but
    not for one limited to 64 MiB: that job runs in a fresh interpreter, within its limit."""

    def grow():
        import json

        json.isolation_mark = True
        json.isolation_ballast = bytearray(160 << 20)
        return "done"

    with wasp.Client(workers=1, cache_dir=shared_cache, reuse_instances=True) as client:
        large, small = client.options(max_memory=256 << 20), client.options(max_memory=64 << 20)
        assert large.submit(grow).result(TIMEOUT) == "done"
        assert large.submit(probe).result(TIMEOUT)["module attribute"]
        seen = small.submit(probe).result(TIMEOUT)
        assert seen["module attribute"] is False


calls = 0


def count():
    global calls
    calls += 1
    return calls


def test_a_node_can_refuse_reuse(nodes, secret_file, shared_cache):
    """``wasp node --no-instance-reuse``: every job in a fresh interpreter, whatever the
    client asks."""
    (node,) = nodes(1, cache_dir=shared_cache, extra=["--no-instance-reuse"])
    with wasp.Client(
        workers=0, peers=[node.address], secret_file=secret_file, reuse_instances=True
    ) as client:
        assert [client.submit(count).result(TIMEOUT) for _ in range(3)] == [1, 1, 1]


def test_a_departed_clients_kept_interpreter_is_dropped_at_once(nodes, secret_file, shared_cache):
    """When a client leaves, the node drops the interpreter it kept for it then, not when
    that worker next runs a Python job."""
    (node,) = nodes(1, cache_dir=shared_cache)
    with wasp.Client(
        workers=0, peers=[node.address], secret_file=secret_file, reuse_instances=True
    ) as client:
        assert [client.submit(count).result(TIMEOUT) for _ in range(2)] == [1, 2]
    deadline = time.monotonic() + TIMEOUT
    dropped = "dropped the instances kept for a client that left"
    while dropped not in node.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dropped in node.log.read_text(), node.log.read_text()[-2000:]
