"""Refused: a job that uses a module the sandbox lacks (subprocess)."""

import subprocess

from executors import executor


def hostname():
    return subprocess.run(["hostname"], capture_output=True, text=True, check=True).stdout


def main():
    with executor() as ex:
        try:
            future = ex.submit(hostname)
        except ImportError as error:
            print("refused at submit:", error)
        else:
            print(future.result().strip())


if __name__ == "__main__":
    main()
