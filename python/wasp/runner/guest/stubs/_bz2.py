"""Inside the sandbox: the C part of ``bz2``, which CPython in WebAssembly lacks. Packages
that import ``bz2`` for a feature a job may not use (networkx's readers of compressed files)
import; compressing or decompressing says plainly that it cannot."""

_WHY = "bz2 compression is not available inside wasp's sandbox (use zlib or gzip)"


class BZ2Compressor:
    def __init__(self, *args, **kwargs):
        raise OSError(_WHY)


class BZ2Decompressor:
    def __init__(self, *args, **kwargs):
        raise OSError(_WHY)
