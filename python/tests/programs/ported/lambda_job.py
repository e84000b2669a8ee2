"""A thread-pool program (natively: its jobs are lambdas) moved to wasp: lambdas whose
source is unambiguous, as jobs and as a helper."""

from executors import executor

by_length = lambda word: (len(word), word)


def longest(words):
    return sorted(words, key=by_length)[-1]


def main():
    with executor(threads=True) as ex:
        print(list(ex.map(lambda x: x * x, range(6))))
        print(ex.submit(lambda name: f"hello, {name}", "wasp").result())
        print(ex.submit(longest, ["fig", "banana", "kiwi"]).result())
        print(ex.submit(by_length, "plum").result())


if __name__ == "__main__":
    main()
