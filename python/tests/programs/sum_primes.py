#!/usr/bin/env python3
"""Parallel Python's sum_primes example (ppft/tests/sum_primes.py), ported to wasp by
changing the import and naming the job: the sum is computed by the Rust guest
``sum_primes`` (examples/guests/sum-primes) in a WebAssembly sandbox.

Usage: sum_primes.py [ncpus]. The environment gives the module (``SUM_PRIMES_WASM``) and,
for a cluster, ``PPSERVERS`` ("host:port,host:port") and ``SECRET_FILE``.
"""

import math
import os
import sys

import wasp as pp

module = pp.Module(os.environ["SUM_PRIMES_WASM"])


def isprime(n):
    """Returns True if n is prime and False otherwise (pp's depfunc, kept as it was)."""
    if not isinstance(n, int):
        raise TypeError("argument passed to is_prime is not of 'int' type")
    if n < 2:
        return False
    if n == 2:
        return True
    max = int(math.ceil(math.sqrt(n)))
    i = 2
    while i <= max:
        if n % i == 0:
            return False
        i += 1
    return True


sum_primes = module.sum_primes  # was: def sum_primes(n): ... in Python

ppservers = tuple(filter(None, os.environ.get("PPSERVERS", "").split(",")))
secret_file = os.environ.get("SECRET_FILE")

if len(sys.argv) > 1:
    ncpus = int(sys.argv[1])
    # Creates jobserver with ncpus workers
    job_server = pp.Server(ncpus, ppservers=ppservers, secret_file=secret_file)
else:
    # Creates jobserver with automatically detected number of workers
    job_server = pp.Server(ppservers=ppservers, secret_file=secret_file)

print("Starting pp with %s workers" % job_server.get_ncpus())

# Submit a job of calulating sum_primes(100) for execution.
job1 = job_server.submit(sum_primes, (100,), (isprime,), ("math",))

# Retrieves the result calculated by job1
result = job1()
print("Sum of primes below 100 is %s" % result)

# The following submits 8 jobs and then retrieves the results
inputs = (100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700)
jobs = [(input, job_server.submit(sum_primes, (input,), (isprime,), ("math",))) for input in inputs]
for input, job in jobs:
    print("Sum of primes below %s is %s" % (input, job()))

job_server.print_stats()
