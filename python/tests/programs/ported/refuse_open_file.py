"""Refused: a job writing to an open file held in a global."""

from executors import executor

LOG = open("progress.log", "a")  # noqa: SIM115 (kept open for the whole run)


def step(x):
    print("step", x, file=LOG)
    return x + 1


def main():
    with executor() as ex:
        try:
            future = ex.submit(step, 1)
        except TypeError as error:
            print("refused at submit:", error)
        else:
            print(future.result())


if __name__ == "__main__":
    main()
