"""Installed pure-Python packages inside the sandbox (``packages=``): four of different kinds
from PyPI (iterators, dates with their time zone data, graphs, arbitrary-precision numbers),
with what they require, baked into a runner of their own; locally and on a node that has
never seen them, results equal to the native run's. A package with compiled code is refused
when the client starts, naming its file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TIMEOUT

import wasp

PACKAGES = ["more-itertools", "python-dateutil", "networkx", "mpmath"]


def windows(n):
    import more_itertools

    return [list(window) for window in more_itertools.sliding_window(range(n), 3)]


def next_weekday(text):
    from dateutil import parser, relativedelta

    day = parser.parse(text)
    return (day + relativedelta.relativedelta(weekday=relativedelta.FR)).isoformat()


def shortest_path(n):
    import networkx

    graph = networkx.cycle_graph(n)
    graph.add_edge(0, n // 2)
    return networkx.shortest_path(graph, 1, n // 2 + 1)


def digits_of_pi(places):
    import mpmath

    mpmath.mp.dps = places
    return str(mpmath.pi)


CALLS = [
    (windows, (6,)),
    (next_weekday, ("2026-12-06T10:30:00+01:00",)),
    (shortest_path, (20,)),
    (digits_of_pi, (60,)),
]


def _same_as_native(client: wasp.Client) -> None:
    futures = [client.submit(function, *args) for function, args in CALLS]
    for (function, args), future in zip(CALLS, futures):
        assert future.result(TIMEOUT * 5) == function(*args), function.__name__


@pytest.fixture(scope="module")
def packaged_runner(shared_cache: Path) -> Path:
    """The runner with the packages, built once for this module (about a minute)."""
    return wasp.runner.path(PACKAGES)


def test_packages_run_inside_the_sandbox_as_they_do_here(packaged_runner, shared_cache):
    with wasp.Client(workers=2, packages=PACKAGES, cache_dir=shared_cache) as client:
        _same_as_native(client)


def test_a_node_that_never_saw_the_packages_gets_them_with_the_runner(
    packaged_runner, nodes, secret_file, tmp_path
):
    (node,) = nodes(1, cache_dir=tmp_path / "fresh-node-cache")
    with wasp.Client(
        workers=0, peers=[node.address], secret_file=secret_file, packages=PACKAGES
    ) as client:
        _same_as_native(client)


def test_without_the_packages_a_job_that_imports_one_is_refused_at_submit(shared_cache):
    with (
        wasp.Client(workers=1, cache_dir=shared_cache) as client,
        pytest.raises(ImportError, match=r"networkx.*packages="),
    ):
        client.submit(shortest_path, 10)


def test_a_package_with_compiled_code_is_refused_when_the_client_starts(shared_cache):
    # msgpack is installed here with its C extension.
    with pytest.raises(ValueError, match=r"'msgpack' holds compiled code \(msgpack/_cmsgpack"):
        wasp.Client(workers=1, packages=["msgpack"], cache_dir=shared_cache)


def test_a_package_that_is_not_installed_is_refused_when_the_client_starts(shared_cache):
    with pytest.raises(ValueError, match=r"'no-such-package-here' .*is not installed here"):
        wasp.Client(workers=1, packages=["no-such-package-here"], cache_dir=shared_cache)


def test_a_requirements_file_names_the_packages(tmp_path, packaged_runner):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# the job's needs\nmore-itertools>=10\npython-dateutil\nnetworkx\nmpmath\n"
    )
    assert wasp.runner.path([str(requirements)]) == packaged_runner
