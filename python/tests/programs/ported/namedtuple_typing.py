"""Sensor readings as typing.NamedTuple, with a default and a method, as arguments and as
results."""

from typing import NamedTuple

from executors import executor


class Reading(NamedTuple):
    sensor: str
    value: float
    unit: str = "C"

    def fahrenheit(self):
        return self.value * 9 / 5 + 32 if self.unit == "C" else self.value


def convert(reading):
    return Reading(reading.sensor, round(reading.fahrenheit(), 1), "F")


def hottest(readings):
    return max(readings, key=lambda reading: reading.value)


def main():
    readings = [Reading("hall", 19.5), Reading("attic", 31.0), Reading("cellar", 12.25)]
    with executor() as ex:
        print(repr(ex.submit(convert, readings[0]).result()))
        print(repr(ex.submit(hottest, readings).result()))
        print(repr(list(ex.map(convert, readings))))


if __name__ == "__main__":
    main()
