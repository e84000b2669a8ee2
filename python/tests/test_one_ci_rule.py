"""One rule for "under CI", everywhere: ``CI=true``, and nothing else (not ``CI=1``, not
any value). Each language reads it in one place, which the others' tests and scripts call:
``wasp_fixtures::under_ci`` (Rust), ``conftest.under_ci`` (Python), ``scripts/lib.sh``'s
``under_ci`` (shell). And the scripts install Debian packages one way, ``apt_install`` in
``scripts/lib.sh``, with one failure rule.

The sources are read as they are, so that a new check of its own somewhere fails here."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import under_ci

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {"target", ".git", "node_modules", "__pycache__"}

#: A read of the CI variable, in Rust, Python or shell.
READS = {
    ".rs": re.compile(r'env::var(?:_os)?\(\s*"CI"\s*\)'),
    ".py": re.compile(r"""environ(?:\.get)?[\[(]\s*["']CI["']|getenv\(\s*["']CI["']"""),
    ".sh": re.compile(r"\$\{?CI\b"),
}

#: The one place of each language that reads it.
RULES = {
    ".rs": ROOT / "tests" / "fixtures" / "src" / "lib.rs",
    ".py": ROOT / "python" / "tests" / "conftest.py",
    ".sh": ROOT / "scripts" / "lib.sh",
}


def _sources() -> list[Path]:
    """Every Rust, Python and shell file of the checkout (shell scripts have no suffix in
    scripts/ and .ci/: those are read as shell)."""
    found = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in SKIPPED_DIRS]
        for name in files:
            path = Path(directory) / name
            if path.suffix in READS or path.parent.name in {"scripts", ".ci"}:
                found.append(path)
    return found


def _kind(path: Path) -> str:
    if path.suffix in READS:
        return path.suffix
    first = path.read_text(errors="replace").split("\n", 1)[0]
    return ".py" if "python" in first else ".sh"


def test_each_language_reads_ci_in_one_place():
    readers = {}
    for path in _sources():
        kind = _kind(path)
        text = path.read_text(errors="replace")
        if READS[kind].search(text):
            readers.setdefault(kind, []).append(path.relative_to(ROOT))
    for kind, rule in RULES.items():
        assert readers.get(kind) == [rule.relative_to(ROOT)], (
            f"CI read outside {rule.relative_to(ROOT)}: {readers.get(kind)}"
        )


def test_the_rule_is_ci_equals_true_in_every_language(monkeypatch):
    for value, expected in [("true", True), ("1", False), ("TRUE", False), ("", False)]:
        monkeypatch.setenv("CI", value)
        assert under_ci() is expected, f"Python, CI={value!r}"
        shell = subprocess.run(
            ["bash", "-c", f"source {RULES['.sh']}; under_ci"],
            env={**os.environ, "CI": value},
            check=False,
        )
        assert (shell.returncode == 0) is expected, f"shell, CI={value!r}"
    rust = RULES[".rs"].read_text()
    assert 'std::env::var("CI").is_ok_and(|value| value == "true")' in rust


def test_only_the_shared_helper_runs_apt_get():
    runners = [
        path.relative_to(ROOT)
        for path in _sources()
        if _kind(path) == ".sh"
        and any(
            re.search(r"\bapt-get\b", line) and not line.lstrip().startswith("#")
            for line in path.read_text(errors="replace").splitlines()
        )
    ]
    assert runners == [RULES[".sh"].relative_to(ROOT)], runners


def test_python_tests_skip_only_through_the_shared_helper():
    """``importorskip``, ``mark.skip`` and ``mark.skipif`` skip under CI too: a test that
    lacks a tool calls ``conftest.unavailable``, which fails there instead."""
    skipping = re.compile(r"pytest\.(?:importorskip|mark\.skip)")
    tests = ROOT / "python" / "tests"
    found = [
        path.relative_to(ROOT)
        for path in tests.rglob("*.py")
        if path.name not in {"conftest.py", "test_one_ci_rule.py"}
        and skipping.search(path.read_text(errors="replace"))
    ]
    assert found == [], f"skips that CI would not see fail: {found}"


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch):
    from conftest import unavailable

    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.skip.Exception):
        unavailable("a tool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        unavailable("a tool")
