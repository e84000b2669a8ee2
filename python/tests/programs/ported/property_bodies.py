"""Sample statistics behind properties whose bodies use an import, a from-import, a
helper function and a constant."""

import math
from statistics import fmean

from executors import executor

PRECISION = 3


def clamp(value, low, high):
    return max(low, min(value, high))


class Sample:
    def __init__(self, values):
        self.values = values

    @property
    def mean(self):
        return round(fmean(self.values), PRECISION)

    @property
    def spread(self):
        variance = sum((v - self.mean) ** 2 for v in self.values) / len(self.values)
        return clamp(round(math.sqrt(variance), PRECISION), 0.0, 10.0)


def summarize(values):
    sample = Sample(values)
    return [sample.mean, sample.spread]


def main():
    with executor() as ex:
        print(ex.submit(summarize, [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).result())
        print(ex.submit(summarize, [1.0, 100.0]).result())


if __name__ == "__main__":
    main()
