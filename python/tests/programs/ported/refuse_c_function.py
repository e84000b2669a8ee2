"""Refused: a C function of a module the sandbox lacks (socket.gethostbyname) as the job."""

import socket

from executors import executor


def main():
    hosts = ["localhost"]
    with executor() as ex:
        try:
            lookups = [ex.submit(socket.gethostbyname, host) for host in hosts]
        except TypeError as error:
            print("refused at submit:", error)
            return
        print([lookup.result() for lookup in lookups])


if __name__ == "__main__":
    main()
