"""Tag analysis with sets: sets (of strings, of tuples) as arguments and as results."""

from executors import executor


def common_tags(first, second):
    return first & second


def tags_of(posts):
    return {tag for post in posts for tag in post.split("#")[1:]}


def is_member(cells, cell):
    return [type(cells).__name__, cell in cells]


def show(result):
    # A set's order depends on string hashing: print it sorted, with its type.
    return f"{type(result).__name__} {sorted(result)}"


def main():
    with executor() as ex:
        print(show(ex.submit(common_tags, {"rust", "python", "wasm"}, {"python", "c"}).result()))
        print(show(ex.submit(tags_of, ["hello #python#wasm", "bye #rust"]).result()))
        print(repr(ex.submit(is_member, {(0, 0), (1, 2)}, (1, 2)).result()))
        print(show(ex.submit(common_tags, {1, 2, 3}, set()).result()))


if __name__ == "__main__":
    main()
