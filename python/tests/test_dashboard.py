"""The monitor's dashboard in a real headless browser (Debian's chromium, driven by
Playwright): two ``wasp node`` processes, a client with a monitor, a batch with a failing
job. A screenshot is saved in ``target/test-artifacts/``.

Without chromium the tests are skipped, except under ``CI=true`` (CI installs it), where
they fail."""

from __future__ import annotations

import secrets
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import unavailable

import wasp

ARTIFACTS = Path(__file__).resolve().parents[2] / "target" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        unavailable("no chromium: install Debian's `chromium` package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # No browser download: Debian's chromium. Root needs --no-sandbox.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_dashboard_shows_nodes_progress_and_failures(browser, nodes, secret_file, testjobs):
    first, second = nodes(2, workers=1)
    peers = [first.address, second.address]
    with wasp.Client(
        workers=0, peers=peers, secret_file=secret_file, metrics="127.0.0.1:0"
    ) as client:
        client.wait_for_nodes(2)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://{client.metrics_address}/")
        for peer in peers:
            row = page.locator(f'tr[data-node="{peer}"]')
            row.locator(".arch").filter(has_text="x86_64").wait_for(timeout=TIMEOUT_MS)

        # 60 jobs of 50 ms on two workers, one failing: about 1.5 s of progress to watch.
        futures = [
            client.options(group="batch").submit(testjobs.busy_or_fail, -1 if i == 7 else 50)
            for i in range(60)
        ]
        percent = page.locator('.group[data-group="batch"] .percent')
        percent.wait_for(timeout=TIMEOUT_MS)
        seen = []
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while "100 %" not in seen:
            assert time.monotonic() < deadline, f"the group never reached 100 %: {seen}"
            text = percent.text_content()
            if not seen or seen[-1] != text:
                seen.append(text)
            time.sleep(0.05)
        assert len(seen) >= 2, f"the page showed the group advancing: {seen}"
        assert sum(1 for f in futures if f.exception() is not None) == 1

        failure = page.locator("li.failure .error").filter(has_text="asked to fail (-1)")
        failure.wait_for(timeout=TIMEOUT_MS)
        assert page.locator("#failures").text_content().count("busy_or_fail") >= 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        progress = client.progress("batch")
        assert progress is not None and progress.done and progress.failed == 1
        page.close()


def test_a_public_monitor_refuses_the_browser_without_its_token(browser):
    token = secrets.token_hex(16)
    with wasp.Client(workers=1, metrics="0.0.0.0:0", metrics_token=token) as client:
        port = client.metrics_address.rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/v1/status", timeout=10)
        assert refused.value.code == 401
        page = browser.new_page()
        assert page.goto(f"{base}/").status == 401
        # Once with the token: kept in a cookie, and the page works.
        page.goto(f"{base}/?token={token}")
        page.locator("#ready").filter(has_text="ready").wait_for(timeout=TIMEOUT_MS)
        assert "token" not in page.url
        page.close()


def test_a_monitor_off_loopback_without_a_token_is_refused():
    with pytest.raises(ValueError, match="bearer token"):
        wasp.Client(workers=1, metrics="0.0.0.0:0")
