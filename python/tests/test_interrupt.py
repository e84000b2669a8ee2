"""Ctrl-C in the middle of waiting for jobs (``job()``, ``wait()``, a ``map``) raises
``KeyboardInterrupt`` within a fraction of a second, and cancels what was started, here and
on nodes. Each test runs a Python program as a child process and sends it SIGINT."""

from __future__ import annotations

import time

from conftest import TIMEOUT, interrupt, start_python

import wasp

#: The program: waits for jobs that never end on their own, as `how` says, and reports how
#: the interrupt ended it and what was left running.
PROGRAM = """
import sys, threading, time, wasp
module = wasp.Module(sys.argv[1])
how, peers, secret = sys.argv[2], sys.argv[3], sys.argv[4]
peers = peers.split(",") if peers else []
client = wasp.Client(workers=0 if peers else 1, peers=peers, secret_file=secret or None)

#: The wasp file whose `wait` the main thread blocks in, for each way of waiting: a job's
#: (`Submitted.wait`) or a group's (`Client.wait`).
BLOCKS_IN = {"map": "_core.py", "result": "_core.py", "wait": "_client.py"}

def main_thread_blocked():
    # The main thread's innermost Python frame is that wait: a SIGINT sent now lands in
    # it, not in the submits before it.
    frame = sys._current_frames().get(threading.main_thread().ident)
    return (
        frame is not None
        and frame.f_code.co_name == "wait"
        and frame.f_code.co_filename.endswith(BLOCKS_IN[how])
    )

def announce():
    # Says "running" once a job runs (locally, or sent to the node) and the main thread
    # is waiting for it.
    while client.stats().running == 0 or not main_thread_blocked():
        time.sleep(0.01)
    print("running", flush=True)

threading.Thread(target=announce, daemon=True).start()
try:
    if how == "map":
        for _ in client.map(module.busy_ms, [600_000] * 50):
            pass
    elif how == "result":
        client.submit(module.busy_ms, 600_000).result()
    elif how == "wait":
        for _ in range(5):
            client.options(group="g").submit(module.busy_ms, 600_000)
        client.wait("g")
except KeyboardInterrupt:
    # A cancelled job that was running stops at its next epoch tick (a millisecond).
    # What was queued is taken out (and not run) by the next worker or node that looks.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = client.stats()
        if stats.running == 0 and stats.queued == 0:
            break
        time.sleep(0.01)
    stats = client.stats()
    print("interrupted", stats.queued, stats.running, flush=True)
    client.close()
    sys.exit(0)
print("not interrupted", flush=True)
sys.exit(1)
"""


def interrupted_after_start(
    testjobs_path: str, how: str, peers: str = "", secret: str = "", program: str = PROGRAM
):
    child = start_python(program, testjobs_path, how, peers, secret)
    try:
        assert child.stdout.readline() == "running\n", child.stderr.read()
        sent = time.monotonic()
        interrupt(child)
        out, err = child.communicate(timeout=TIMEOUT)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    words = out.split()
    assert words[0] == "interrupted", out + err
    return took, int(words[1]), int(words[2])


#: pp's API: `job()` interrupted.
PP_PROGRAM = """
import sys, threading, time, wasp
module = wasp.Module(sys.argv[1])
server = wasp.Server(1)
native = server._core.native

def main_thread_blocked():
    # As in PROGRAM: the main thread waits in the job's `Submitted.wait`.
    frame = sys._current_frames().get(threading.main_thread().ident)
    return (
        frame is not None
        and frame.f_code.co_name == "wait"
        and frame.f_code.co_filename.endswith("_core.py")
    )

def announce():
    while native.stats()["running"] == 0 or not main_thread_blocked():
        time.sleep(0.01)
    print("running", flush=True)

threading.Thread(target=announce, daemon=True).start()
job = server.submit(module.busy_ms, (600_000,))
try:
    job()
except KeyboardInterrupt:
    server.wait()
    deadline = time.monotonic() + 10
    while native.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = native.stats()
    print("interrupted", stats["queued"], stats["running"], job.finished, flush=True)
    sys.exit(0)
sys.exit(1)
"""


def guest_path(testjobs: wasp.Module) -> str:
    from conftest import GUESTS

    return str(GUESTS / "wasp_testjobs.wasm")


def test_ctrl_c_during_a_map_cancels_the_rest(testjobs):
    took, queued, running = interrupted_after_start(guest_path(testjobs), "map")
    # Nothing is left: what was submitted ahead was cancelled.
    assert (queued, running) == (0, 0)
    assert took < TIMEOUT


def test_ctrl_c_during_a_result_cancels_the_job(testjobs):
    _, queued, running = interrupted_after_start(guest_path(testjobs), "result")
    assert (queued, running) == (0, 0)


def test_ctrl_c_during_a_wait_cancels_the_group(testjobs):
    _, queued, running = interrupted_after_start(guest_path(testjobs), "wait")
    assert (queued, running) == (0, 0)


def test_ctrl_c_during_a_pp_job_call_cancels_the_job(testjobs):
    _, queued, running = interrupted_after_start(guest_path(testjobs), "pp", program=PP_PROGRAM)
    assert (queued, running) == (0, 0)


def test_ctrl_c_during_a_map_on_a_node_frees_the_node(testjobs, nodes, secret_file):
    (node,) = nodes(1)
    _, queued, running = interrupted_after_start(
        guest_path(testjobs), "map", node.address, str(secret_file)
    )
    assert (queued, running) == (0, 0)
    # The node's only worker is free at once for another client.
    with wasp.Client(workers=0, peers=[node.address], secret_file=secret_file) as other:
        assert other.submit(testjobs.add_one, 1).result(TIMEOUT) == 2
