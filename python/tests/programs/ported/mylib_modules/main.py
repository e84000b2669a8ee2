"""A script that scores with its own module, `mylib`: both define `_norm` and `WEIGHT`, and
each function must see its own module's, however it is named here (`mylib.score`,
`score`, `sc`)."""

import mylib
from executors import executor
from mylib import score
from mylib import score as sc

WEIGHT = 0.5


def _norm(values):
    return max(abs(value) for value in values)


def local_score(values):
    return _norm(values) * WEIGHT


def both_scores(values):
    return [score(values), local_score(values)]


def every_name(values):
    return [mylib.score(values), sc(values), score(values), local_score(values)]


def main():
    data = [1, -2, 2]
    with executor() as ex:
        print(ex.submit(mylib.score, data).result())
        print(ex.submit(sc, data).result())
        print(ex.submit(local_score, data).result())
        print(ex.submit(both_scores, data).result())
        print(ex.submit(every_name, data).result())
        print(list(ex.map(sc, [[1], [2, 2]])))


if __name__ == "__main__":
    main()
