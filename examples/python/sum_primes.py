#!/usr/bin/env python3
"""Parallel Python's classic example (pp's sum_primes.py), in Python 3, with one change:
``import pp`` became ``import wasp as pp``. Each job, ``sum_primes(n)`` in plain Python, runs
in wasp's Python runner: in a WebAssembly sandbox, on a local worker or a ``wasp node``.

Usage: sum_primes.py [ncpus]. For a cluster, the environment names the nodes
(``PPSERVERS="host:port,host:port"``) and the cluster secret (``SECRET_FILE``); ``ncpus`` 0
runs every job on the nodes.
"""

import math
import os
import sys

import wasp as pp


def isprime(n):
    """Returns True if n is prime and False otherwise"""
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


def sum_primes(n):
    """Calculates sum of all primes below given integer n"""
    return sum([x for x in range(2, n) if isprime(x)])


print("""Usage: python sum_primes.py [ncpus]
    [ncpus] - the number of workers to run in parallel,
    if omitted it will be set to the number of processors in the system
""")

# tuple of all parallel python servers to connect with
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
# sum_primes - the function
# (100,) - tuple with arguments for sum_primes
# (isprime,) - tuple with functions on which function sum_primes depends
# ("math",) - tuple with module names which must be imported before sum_primes execution
# Execution starts as soon as one of the workers will become available
job1 = job_server.submit(sum_primes, (100,), (isprime,), ("math",))

# Retrieves the result calculated by job1
# The value of job1() is the same as sum_primes(100)
# If the job has not been finished yet, execution will wait here until result is available
result = job1()

print("Sum of primes below 100 is %s" % result)

# The following submits 8 jobs and then retrieves the results
inputs = (100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700)
jobs = [(input, job_server.submit(sum_primes, (input,), (isprime,), ("math",))) for input in inputs]
for input, job in jobs:
    print("Sum of primes below %s is %s" % (input, job()))

job_server.print_stats()
