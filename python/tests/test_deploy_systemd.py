"""The systemd unit (deploy/systemd/wasp-node.service): systemd accepts it, its hardening
scores what the README says, and the README's install steps, run as they are, install a
unit that starts: in a mount namespace whose ``/etc`` and ``/usr/local`` are overlays (the
host is not touched), with ``systemctl`` replaced by a recorder, then the installed unit
started as systemd would start it (``systemd_start.py``: a user of its own, the
credential, its directories, its ``ExecStart``), in a network namespace of its own (the
unit's ports are fixed). No systemd runs on CI's machines, so none starts it.

Under ``CI=true`` a missing ``systemd-analyze``, ``unshare`` or ``setpriv``, or not being
root, fails the tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import WASP, _built, unavailable

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "wasp-node.service"
INSTALLED = "/usr/local/bin/wasp"
README = ROOT / "README.md"
START = Path(__file__).resolve().parent / "systemd_start.py"


def _require(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        unavailable(f"no {program}")
    return found


def _readme_section() -> str:
    """The README's systemd section."""
    text = README.read_text()
    start = text.index("### systemd\n")
    end = text.index("\n## ", start)
    return text[start:end]


def _install_steps() -> str:
    """The shell blocks of the README's systemd section, as they are."""
    blocks = re.findall(r"```sh\n(.*?)```", _readme_section(), re.S)
    assert blocks, "the README's systemd section has its install steps"
    return "\n".join(blocks)


def _unit_for(wasp: Path, tmp_path: Path) -> Path:
    unit = tmp_path / "wasp-node.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(wasp)))
    return unit


def test_systemd_accepts_the_unit_and_its_hardening_scores_well(tmp_path):
    analyze = _require("systemd-analyze")
    unit = _unit_for(_built(WASP), tmp_path)
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr
    # The README's own command, run where it says (the checkout), rates what it says.
    stated = re.search(
        r"With systemd (\d+) .*?\n?.*?`(systemd-analyze security [^`]+)`\s+rates its\s+"
        r"exposure ([0-9.]+)",
        _readme_section(),
        re.S,
    )
    assert stated is not None, "the README states the command and its score"
    version, readme_command, readme_score = stated.groups()
    security = subprocess.run(
        readme_command.split(), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout
    installed = subprocess.run([analyze, "--version"], capture_output=True, text=True)
    if installed.stdout.split()[1] == version:
        assert score.group(1) == readme_score, f"the README says {readme_score}: {security.stdout}"
    text = UNIT.read_text()
    for setting in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"]:
        assert setting in text


def test_the_readmes_install_steps_install_a_unit_that_starts(tmp_path):
    unshare = _require("unshare")
    _require("setpriv")  # systemd_start.py runs the service as its own user with it
    if os.geteuid() != 0:
        unavailable("installing under /etc and /usr/local, even in a namespace, needs root")
    host_had_etc_wasp = Path("/etc/wasp").exists()
    # The checkout as the steps see it: the built binary where a release build puts it.
    checkout = tmp_path / "checkout"
    (checkout / "target" / "release").mkdir(parents=True)
    shutil.copy(_built(WASP), checkout / "target" / "release" / "wasp")
    (checkout / "deploy").symlink_to(ROOT / "deploy")
    recorder = tmp_path / "bin"
    recorder.mkdir()
    calls = tmp_path / "systemctl.calls"
    (recorder / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (recorder / "systemctl").chmod(0o755)
    steps = tmp_path / "steps.sh"
    steps.write_text(_install_steps())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    overlays = "\n".join(
        f"mkdir {scratch}/{name}.up {scratch}/{name}.work && mount -t overlay overlay "
        f"-o lowerdir={path},upperdir={scratch}/{name}.up,workdir={scratch}/{name}.work {path}"
        for name, path in [("etc", "/etc"), ("local", "/usr/local")]
    )
    script = f"""set -e
mount -t tmpfs tmpfs {scratch}
{overlays}
ip link set lo up
cd {checkout}
export PATH={recorder}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
sh -e {steps}
stat -c '%a %U %n' /etc/wasp /etc/wasp/cluster.key /etc/wasp/node.conf \
    /etc/systemd/system/wasp-node.service /usr/local/bin/wasp
# Where systemd would keep the service's directories: reachable by its user.
mount -t tmpfs -o mode=0755 tmpfs /mnt
{sys.executable} {START} /etc/systemd/system/wasp-node.service /mnt
"""
    done = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "--net", "--fork", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    *modes, report = done.stdout.strip().splitlines()
    assert calls.read_text().splitlines() == ["daemon-reload", "enable --now wasp-node"]
    started = json.loads(report)
    log = started["log"]
    assert started["started"], f"the unit did not start: {started}"
    assert "listening on 0.0.0.0:7878" in started["out"], started
    assert started["ready"] == "ready", started
    assert started["exit"] == 0, started
    assert "workers=4" in log.replace(" ", ""), log
    assert modes == [
        "755 root /etc/wasp",
        "400 root /etc/wasp/cluster.key",
        "644 root /etc/wasp/node.conf",
        "644 root /etc/systemd/system/wasp-node.service",
        "755 root /usr/local/bin/wasp",
    ], modes
    assert Path("/etc/wasp").exists() == host_had_etc_wasp, "the host is untouched"
