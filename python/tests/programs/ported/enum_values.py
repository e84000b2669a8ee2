"""Ticket triage with Enum, IntEnum and Flag members, as arguments and as results."""

import enum

from executors import executor


class Status(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Access(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()


def close(status):
    return Status.CLOSED if status is Status.OPEN else status


def escalate(priority):
    return Priority(min(priority + 2, Priority.HIGH))


def grant(access, extra):
    return access | extra


def main():
    with executor() as ex:
        print(repr(ex.submit(close, Status.OPEN).result()))
        print(repr(ex.submit(escalate, Priority.LOW).result()))
        print(repr(ex.submit(grant, Access.READ, Access.WRITE).result()))
        print(repr(list(ex.map(close, [Status.CLOSED, Status.OPEN]))))


if __name__ == "__main__":
    main()
