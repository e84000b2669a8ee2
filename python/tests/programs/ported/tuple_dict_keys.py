"""Road distances keyed by (from, to) pairs: dicts with tuple keys as arguments and as
results."""

from collections import Counter

from executors import executor

ROADS = {("ams", "bru"): 210, ("bru", "par"): 310, ("par", "lyo"): 465}


def route_length(roads, stops):
    return sum(roads[(a, b)] for a, b in zip(stops, stops[1:]))


def reverse_roads(roads):
    return {(b, a): km for (a, b), km in roads.items()}


def pair_counts(words):
    return dict(Counter(zip(words, words[1:])))


def main():
    with executor() as ex:
        print(repr(ex.submit(route_length, ROADS, ["ams", "bru", "par", "lyo"]).result()))
        print(repr(ex.submit(reverse_roads, ROADS).result()))
        print(repr(ex.submit(pair_counts, ["to", "be", "or", "not", "to", "be"]).result()))


if __name__ == "__main__":
    main()
