"""A job raising the user's own subclass of ValueError: `except ValueError` catches it on
the caller, and (on wasp) it is also a wasp.JobFailed."""

from executors import NATIVE, executor

import wasp


class InvalidReading(ValueError):
    """A sensor reading out of range."""


def check_reading(sensor, value):
    if not -50 <= value <= 60:
        raise InvalidReading(f"{sensor}: {value} is out of range")
    return value


def main():
    with executor() as ex:
        for sensor, value in [("hall", 21.5), ("roof", 99.0)]:
            try:
                print("ok", ex.submit(check_reading, sensor, value).result())
            except ValueError as error:
                print("rejected:", error)
                if not NATIVE and not isinstance(error, wasp.JobFailed):
                    print("  not a wasp.JobFailed:", [cls.__name__ for cls in type(error).__mro__])


if __name__ == "__main__":
    main()
