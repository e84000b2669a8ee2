"""A server's life: left open, it shuts down cleanly at exit; in a forked child it refuses
to be used; closed, it says so."""

from __future__ import annotations

import os

import pytest
from conftest import GUESTS, TIMEOUT, run_python

import wasp

LEFT_OPEN = """
import sys, wasp
module = wasp.Module(sys.argv[1])
server = wasp.Server(2)
job = server.submit(module.add_one, (1,))
print(job())
long = server.submit(module.busy_ms, (600_000,))
client = wasp.Client(workers=1)
client.submit(module.busy_ms, 600_000)
# No destroy(), no close(): exit with jobs running.
"""


def test_a_server_left_open_shuts_down_at_exit():
    done = run_python(LEFT_OPEN, str(GUESTS / "wasp_testjobs.wasm"), timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\n"


def test_a_forked_child_refuses_to_use_its_parents_server(client, testjobs):
    assert client.submit(testjobs.add_one, 1).result(TIMEOUT) == 2
    pid = os.fork()
    if pid == 0:
        try:
            client.submit(testjobs.add_one, 1)
        except RuntimeError as error:
            os._exit(0 if "fork" in str(error) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's server goes on.
    assert client.submit(testjobs.add_one, 2).result(TIMEOUT) == 3


def test_a_closed_client_says_so(testjobs, cache_dir):
    client = wasp.Client(workers=1, cache_dir=cache_dir)
    client.close()
    client.close()  # twice is fine
    with pytest.raises(RuntimeError, match="after shutdown"):
        client.submit(testjobs.add_one, 1)
