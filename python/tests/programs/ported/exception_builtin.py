"""Validation jobs that raise built-in exceptions: the caller catches each by its type,
and (on wasp) it is also a wasp.JobFailed with the job's traceback and output."""

import sys
import traceback

from executors import NATIVE, executor

import wasp


def parse_age(text):
    print(f"parsing {text!r}", file=sys.stderr)
    age = int(text)
    if age < 0:
        raise ValueError(f"age {age} is negative")
    return age


def lookup(table, key):
    return table[key]


def ratio(a, b):
    return a / b


def check(error, job):
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    print("  its traceback shows the job:", f"in {job}" in text)
    if not NATIVE:
        if not isinstance(error, wasp.JobFailed):
            print("  not a wasp.JobFailed:", [cls.__name__ for cls in type(error).__mro__])
        elif job == "parse_age" and b"parsing" not in error.stderr:
            print("  the job's output is not attached:", error.stderr)


def main():
    with executor() as ex:
        for text in ["42", "-3", "forty"]:
            try:
                print("age", ex.submit(parse_age, text).result())
            except ValueError as error:
                print("ValueError:", error)
                check(error, "parse_age")
        try:
            ex.submit(lookup, {"a": 1}, "b").result()
        except KeyError as error:
            print("KeyError:", error)
            check(error, "lookup")
        try:
            ex.submit(ratio, 1, 0).result()
        except ZeroDivisionError as error:
            print("ZeroDivisionError:", error)
            check(error, "ratio")


if __name__ == "__main__":
    main()
