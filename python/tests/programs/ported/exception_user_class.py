"""A job raising the user's own exception classes (a hierarchy on ValueError): the caller
catches them by those classes, as an exception keeps its type."""

from executors import executor


class InvalidReading(ValueError):
    """A sensor reading out of range."""


class SensorOffline(InvalidReading):
    """No reading at all."""


def check_reading(sensor, value):
    if value is None:
        raise SensorOffline(sensor)
    if not -50 <= value <= 60:
        raise InvalidReading(f"{sensor}: {value} is out of range")
    return value


def main():
    with executor() as ex:
        for sensor, value in [("hall", 21.5), ("roof", 99.0), ("cellar", None)]:
            future = ex.submit(check_reading, sensor, value)
            try:
                print("ok", future.result())
            except SensorOffline as error:
                print("offline:", error)
            except InvalidReading as error:
                print("invalid:", error)
            except ValueError as error:
                print("a ValueError of another class:", error)


if __name__ == "__main__":
    main()
