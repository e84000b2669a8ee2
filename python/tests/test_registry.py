"""Modules from an OCI registry in Python: ``wasp.Module("oci://...")`` and
``wasp.Module.pull``, against Debian's docker-registry started on 127.0.0.1 by
``scripts/registry.sh``; and interoperability with oras (oras-py, another client of the
same artifacts): what oras pushes, wasp runs, and what wasp pushes, oras pulls.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, TIMEOUT, WASP, unavailable

import wasp

SCRIPT = REPO / "scripts" / "registry.sh"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("registry")
    started = subprocess.run(
        [str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=600
    )
    if started.returncode != 0:
        unavailable(f"scripts/registry.sh could not start a registry: {started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], timeout=TIMEOUT, check=False)


def push(path: Path, reference: str) -> str:
    done = subprocess.run(
        [str(WASP), "push", str(path), reference],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_module_from_a_registry_runs_as_a_module_from_a_file(
    registry, sum_primes_path, cache_dir
):
    pinned = push(sum_primes_path, f"oci://{registry}/py/sum:1")
    by_tag = wasp.Module(f"oci://{registry}/py/sum:1")
    by_digest = wasp.Module.pull(pinned)
    from_file = wasp.Module(sum_primes_path)
    assert by_tag.hash == by_digest.hash == from_file.hash
    digest = pinned.rsplit("@", 1)[1]
    assert by_tag.source == f"{registry}/py/sum@{digest}"
    assert from_file.source is None
    with wasp.Client(workers=1, cache_dir=cache_dir) as client:
        assert client.submit(by_tag.sum_primes, 100).result(timeout=TIMEOUT) == 1060


def test_registry_errors_are_pythons_own(registry):
    with pytest.raises(FileNotFoundError, match="was not found in the registry"):
        wasp.Module(f"oci://{registry}/py/none:1")
    with pytest.raises(ValueError, match="not a module reference"):
        wasp.Module.pull(f"oci://{registry}/Py/Upper:1")
    with pytest.raises(ConnectionError, match="cannot reach the registry"):
        wasp.Module.pull("oci://127.0.0.1:1/py/sum:1")


def oras_client(registry: str):
    try:
        import oras.client
    except ImportError:
        unavailable("oras is not installed (python/requirements-dev.txt has it)")
    return oras.client.OrasClient(hostname=registry, insecure=True)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_what_oras_pushes_wasp_runs(registry, sum_primes_path, tmp_path, monkeypatch, cache_dir):
    client = oras_client(registry)
    monkeypatch.chdir(tmp_path)
    module = Path("sum.wasm")
    module.write_bytes(sum_primes_path.read_bytes())
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": "wasm",
        "os": "wasip1",
        "layerDigests": [sha256(module.read_bytes())],
    }
    Path("config.json").write_text(json.dumps(config))
    client.push(
        target=f"{registry}/py/from-oras:1",
        files=["sum.wasm:application/wasm"],
        manifest_config="config.json:application/vnd.wasm.config.v0+json",
    )
    pulled = wasp.Module(f"oci://{registry}/py/from-oras:1")
    assert pulled.hash == wasp.Module(sum_primes_path).hash
    with wasp.Client(workers=1, cache_dir=cache_dir) as wasp_client:
        assert wasp_client.submit(pulled.sum_primes, 1000).result(timeout=TIMEOUT) == 76127


def test_what_wasp_pushes_oras_pulls(registry, sum_primes_path, tmp_path):
    client = oras_client(registry)
    push(sum_primes_path, f"oci://{registry}/py/to-oras:1")
    files = client.pull(target=f"{registry}/py/to-oras:1", outdir=str(tmp_path))
    assert [Path(file).name for file in files] == [sum_primes_path.name]
    assert Path(files[0]).read_bytes() == sum_primes_path.read_bytes()
    manifest = client.get_manifest(f"{registry}/py/to-oras:1")
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/wasm"]
