"""The systemd unit (deploy/systemd/wasp-node.service): systemd accepts it, its hardening
scores well, and ``wasp node`` runs with exactly its ``ExecStart`` arguments (the paths
systemd fills in given temporary ones), in a network namespace of its own (the unit's
fixed ports must not clash with the host's).

Under ``CI=true`` a missing ``systemd-analyze`` or ``unshare`` fails the tests."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from conftest import WASP, _built, unavailable

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "wasp-node.service"
INSTALLED = "/usr/local/bin/wasp"
PROBE = (
    "import urllib.request as u; "
    'print(u.urlopen("http://127.0.0.1:9464/readyz", timeout=5).read().decode().strip())'
)


def _require(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        unavailable(f"no {program}")
    return found


def _exec_start() -> list[str]:
    """The unit's ExecStart, its continuation lines joined, split as systemd would."""
    text = UNIT.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


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
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score.group(1)) <= 2.0, security.stdout
    text = UNIT.read_text()
    for setting in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes"]:
        assert setting in text


def test_wasp_node_runs_with_the_units_arguments(tmp_path, secret_file):
    unshare = _require("unshare")
    command = _exec_start()
    assert command[0] == INSTALLED and command[1] == "node"
    # What systemd provides: the credential, the state and cache directories, the config.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    shutil.copy(secret_file, credentials / "cluster.key")
    (tmp_path / "state").mkdir()
    (tmp_path / "cache").mkdir()
    config = tmp_path / "node.conf"
    shutil.copy(ROOT / "deploy" / "systemd" / "node.conf", config)
    filled = {
        "${CREDENTIALS_DIRECTORY}": str(credentials),
        "${STATE_DIRECTORY}": str(tmp_path / "state"),
        "${CACHE_DIRECTORY}": str(tmp_path / "cache"),
        "/etc/wasp/node.conf": str(config),
    }
    args = [str(_built(WASP))]
    for arg in command[1:]:
        for placeholder, value in filled.items():
            arg = arg.replace(placeholder, value)
        args.append(arg)
    assert "$" not in " ".join(args), args
    node = " ".join(shlex.quote(arg) for arg in args)
    # In a namespace of its own: start the node, wait for its line, probe its monitor.
    script = f"""
ip link set lo up
{node} > {tmp_path}/out 2> {tmp_path}/log &
pid=$!
for _ in $(seq 100); do grep -q listening {tmp_path}/out && break; sleep 0.1; done
python3 -c '{PROBE}'
kill -TERM $pid
wait $pid
echo exit=$?
"""
    done = subprocess.run(
        [unshare, "--net", "--fork", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = (tmp_path / "log").read_text() if (tmp_path / "log").exists() else ""
    output = (tmp_path / "out").read_text() if (tmp_path / "out").exists() else ""
    assert "listening on 0.0.0.0:7878" in output, f"{output}\n{done.stderr}\n{log}"
    assert "ready" in done.stdout, f"{done.stdout}\n{done.stderr}\n{log}"
    assert "exit=0" in done.stdout, f"{done.stdout}\n{log}"
    assert "workers = 4" in config.read_text() and "workers=4" in log.replace(" ", ""), log
