"""``python -m wasp.runner``: builds wasp's Python runner if needed and prints its path."""

from . import path

print(path())
