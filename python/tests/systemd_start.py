"""Starts an installed systemd unit the way systemd would, where no systemd runs (CI's
machines have none): ``python3 systemd_start.py UNIT SCRATCH``.

Only what wasp's unit uses is done: a user of its own for the service (``DynamicUser``: an
unprivileged uid, never root), the credential copied for it from ``LoadCredential``'s
source (read as root, as systemd reads it), its ``StateDirectory`` and ``CacheDirectory``
(private to that user), the environment variables that name them, and ``ExecStart``,
split as systemd splits it, run as that user. Then it waits for the node's line, probes
its monitor's ``/readyz``, sends SIGTERM, and prints what it saw as JSON: ``started``,
``ready``, ``exit`` and the node's ``log``. The hardening settings themselves are
systemd's, and are not emulated.

Run it as root, in a network namespace of its own (the unit's ports are fixed).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: A uid in systemd's range for dynamic users (61184-65519).
DYNAMIC_UID = 61184

#: How long the node may take to start, answer and drain.
TIMEOUT = 30.0


def settings(unit: Path) -> dict[str, list[str]]:
    """The unit's ``[Service]`` settings, each with every value it is given."""
    found: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, DYNAMIC_UID, DYNAMIC_UID)
    path.chmod(0o700)
    return path


def prepare(service: dict[str, list[str]], scratch: Path) -> dict[str, str]:
    """What systemd makes before ``ExecStart``: the environment that names it."""
    assert service.get("DynamicUser") == ["yes"], "the unit runs as a dynamic user"
    credentials = private_dir(scratch / "credentials")
    for credential in service.get("LoadCredential", []):
        name, source = credential.split(":", 1)
        copy = credentials / name
        shutil.copyfile(source, copy)
        os.chown(copy, DYNAMIC_UID, DYNAMIC_UID)
        copy.chmod(0o400)
    state = private_dir(scratch / "state" / service["StateDirectory"][0])
    cache = private_dir(scratch / "cache" / service["CacheDirectory"][0])
    return {
        "CREDENTIALS_DIRECTORY": str(credentials),
        "STATE_DIRECTORY": str(state),
        "CACHE_DIRECTORY": str(cache),
    }


def command(service: dict[str, list[str]], environment: dict[str, str]) -> list[str]:
    """``ExecStart`` with its ``${VARIABLES}`` filled in, run as the dynamic user."""
    words = shlex.split(service["ExecStart"][0])
    for name, value in environment.items():
        words = [word.replace("${" + name + "}", value) for word in words]
    assert not any("$" in word for word in words), words
    as_user = [
        "setpriv",
        f"--reuid={DYNAMIC_UID}",
        f"--regid={DYNAMIC_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
    ]
    return as_user + words


def probe(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode().strip()
    except OSError as error:
        return f"no answer: {error}"


def main(unit: Path, scratch: Path) -> None:
    service = settings(unit)
    environment = prepare(service, scratch)
    out, log = scratch / "out", scratch / "log"
    with open(out, "wb") as stdout, open(log, "wb") as stderr:
        node = subprocess.Popen(
            command(service, environment),
            stdout=stdout,
            stderr=stderr,
            env={"PATH": "/usr/bin:/bin", **environment},
        )
    deadline = time.monotonic() + TIMEOUT
    while "listening" not in out.read_text() and node.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    started = "listening" in out.read_text()
    ready = probe("http://127.0.0.1:9464/readyz") if started else ""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
    try:
        code = node.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        node.kill()
        code = node.wait()
    print(
        json.dumps(
            {
                "started": started,
                "ready": ready,
                "exit": code,
                "out": out.read_text(),
                "log": log.read_text(),
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
