"""``python -m wasp.runner``: wasp's Python runner, from the command line.

python -m wasp.runner [--packages NAME,...]   prints the runner's path, compiled ahead
python -m wasp.runner build DIR                builds the default runner into DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import MODULES, PackageError, build, prepare
from .componentize import WASM, key, read_manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wasp.runner", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--packages",
        default="",
        help="installed pure-Python packages (comma-separated names, or a requirements file) "
        "to bake into a runner of their own",
    )
    parser.add_argument("--no-compile", action="store_true", help="do not compile the runner ahead")
    commands = parser.add_subparsers(dest="command")
    builder = commands.add_parser("build", help="build the default runner into a directory")
    builder.add_argument("directory", type=Path)
    builder.add_argument(
        "--if-needed",
        action="store_true",
        help="only if the directory holds no runner built from these very inputs",
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        directory = arguments.directory
        manifest = read_manifest(directory) if arguments.if_needed else None
        if (
            manifest is None
            or manifest.get("key") != key(MODULES)
            or not (directory / WASM).exists()
        ):
            manifest = build(directory)
        print(f"{directory / WASM} sha256 {manifest['sha256']}")
        return 0
    packages = [name for name in arguments.packages.split(",") if name]
    try:
        if arguments.no_compile:
            from . import path

            print(path(packages))
        else:
            print(prepare(packages))
    except PackageError as error:
        print(f"wasp: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
