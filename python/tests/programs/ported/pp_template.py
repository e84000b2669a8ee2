#!/usr/bin/env python3
"""pp's template example, in the style of ppft's sum_primes_functor.py: one
pp.Template for the job's function, depfuncs and modules, then fn.submit(n) per input.
Ported by changing the import (`import wasp as pp`; natively, pp)."""

import math

from executors import ncpus, pp, ppservers, secret_file


def isprime(n):
    """Returns True if n is prime and False otherwise"""
    if n < 4:
        return n > 1
    if n % 2 == 0:
        return False
    return all(n % divisor for divisor in range(3, math.isqrt(n) + 1, 2))


def sum_primes(n):
    """Calculates the sum of all primes below n"""
    return sum([x for x in range(2, n) if isprime(x)])


job_server = pp.Server(ncpus, ppservers=ppservers, secret_file=secret_file)

# The template: every part of the job but its arguments.
fn = pp.Template(job_server, sum_primes, (isprime,), ("math",))

job1 = fn.submit(100)
result = job1()
print("Sum of primes below 100 is %s" % result)

inputs = (10000, 10100, 10200, 10300, 10400, 10500, 10600, 10700)
jobs = [(input, fn.submit(input)) for input in inputs]
for input, job in jobs:
    print("Sum of primes below %s is %s" % (input, job()))

job_server.print_stats()
