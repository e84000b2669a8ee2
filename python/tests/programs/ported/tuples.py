"""Grid walking with points as tuples: tuples as arguments (compared, unpacked, nested,
empty) and as results."""

from executors import executor

ORIGIN = (0, 0)


def classify(point):
    if point == ORIGIN:
        return "origin"
    x, y = point
    return "axis" if x == 0 or y == 0 else "plane"


def kinds(*values):
    return [type(value).__name__ for value in values]


def neighbours(point):
    x, y = point
    return tuple((x + dx, y + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)))


def split(a, b):
    return divmod(a, b)


def main():
    with executor() as ex:
        print(repr(list(ex.map(classify, [(0, 0), (0, 3), (2, 5)]))))
        print(repr(ex.submit(kinds, (1, 2), (1, (2, 3)), (), [(4, 5)]).result()))
        print(repr(ex.submit(neighbours, (1, 1)).result()))
        print(repr(ex.submit(split, 17, 5).result()))


if __name__ == "__main__":
    main()
