"""pp's callback style: partial sums of the harmonic series, added up by a callback with
callbackargs, then wait() for the group."""

import threading

from executors import ncpus, pp, ppservers, secret_file


class Total:
    def __init__(self):
        self.value = 0.0
        self.parts = []
        self.lock = threading.Lock()

    def add(self, part, value):
        with self.lock:
            self.value += value
            self.parts.append(part)


def part_sum(start, end):
    return sum(1.0 / x for x in range(start, end))


job_server = pp.Server(ncpus, ppservers=ppservers, secret_file=secret_file)
total = Total()
step = 2500
for part in range(8):
    start = part * step + 1
    job_server.submit(
        part_sum, (start, start + step), callback=total.add, callbackargs=(part,), group="harmonic"
    )
job_server.wait("harmonic")
print("H(20000) = %.9f" % total.value)
print("parts:", sorted(total.parts))
job_server.destroy()
