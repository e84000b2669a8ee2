"""A node's own dashboard, and a draining node on a client's, in a real headless browser
(Debian's chromium, driven by Playwright; see ``test_dashboard.py``): a node's page lists
its clients, each client's jobs in a group of its own and each failure under its client;
a client's page shows a node that drains as draining.

Without chromium the tests are skipped, except under ``CI=true``, where they fail."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

from conftest import TIMEOUT
from test_dashboard import ARTIFACTS, TIMEOUT_MS, browser  # noqa: F401 (a fixture)

import wasp


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=TIMEOUT) as r:
        return json.load(r)


def _wait_for(what: str, condition) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {TIMEOUT} s"
        time.sleep(0.05)


def test_a_nodes_page_lists_its_clients_and_their_failures(
    browser,  # noqa: F811 (the fixture imported above)
    nodes,
    secret_file,
    testjobs,
):
    port = _free_port()
    (node,) = nodes(1, workers=2, extra=["--metrics", f"127.0.0.1:{port}"])
    options = {"workers": 0, "peers": [node.address], "secret_file": secret_file}
    with wasp.Client(**options) as first, wasp.Client(**options) as second:
        first.wait_for_nodes(1)
        second.wait_for_nodes(1)
        futures = [first.submit(testjobs.add_one, x) for x in range(3)]
        assert [future.result(TIMEOUT) for future in futures] == [1, 2, 3]
        failed = second.submit(testjobs.busy_or_fail, -1)
        assert failed.exception(TIMEOUT) is not None

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        rows = page.locator("tr[data-client]")
        rows.nth(1).wait_for(timeout=TIMEOUT_MS)
        assert rows.count() == 2
        assert page.locator("#nodes-section").is_hidden(), "a node has clients, not nodes"
        done = [row.locator(".jobs").text_content() for row in rows.all()]
        failures = [row.locator(".failures").text_content() for row in rows.all()]
        assert sorted(zip(done, failures)) == [("1", "1"), ("3", "0")]
        groups = page.locator('.group[data-group^="client "]')
        groups.nth(1).wait_for(timeout=TIMEOUT_MS)
        assert groups.count() == 2, "each client's jobs are a group of their own"
        where = page.locator("li.failure .where").first
        where.wait_for(timeout=TIMEOUT_MS)
        failing_client = next(
            row.locator(".address").text_content()
            for row in rows.all()
            if row.locator(".failures").text_content() == "1"
        )
        assert f"client {failing_client}" in where.text_content()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "node-dashboard.png"), full_page=True)
        page.close()


def test_a_clients_page_shows_a_draining_node_as_draining(
    browser,  # noqa: F811 (the fixture imported above)
    nodes,
    secret_file,
    testjobs,
):
    port = _free_port()
    (node,) = nodes(
        1, workers=1, extra=["--metrics", f"127.0.0.1:{port}", "--drain-timeout", "20s"]
    )
    with wasp.Client(
        workers=0, peers=[node.address], secret_file=secret_file, metrics="127.0.0.1:0"
    ) as client:
        client.wait_for_nodes(1)
        page = browser.new_page()
        page.goto(f"http://{client.metrics_address}/")
        row = page.locator(f'tr[data-node="{node.address}"]')
        row.locator("td.yes").wait_for(timeout=TIMEOUT_MS)
        long = client.submit(testjobs.busy_ms, 3000)
        _wait_for("the node runs the job", lambda: _status(port)["queue"]["running"] == 1)
        node.process.send_signal(signal.SIGTERM)
        row.locator("td.draining").filter(has_text="draining").wait_for(timeout=TIMEOUT_MS)
        assert long.result(TIMEOUT) == 3000, "the running job finished in the drain"
        page.close()
