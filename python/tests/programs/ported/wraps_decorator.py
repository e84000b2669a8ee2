"""Jobs and helpers wrapped by the user's own decorators written with functools.wraps
(one with arguments)."""

import functools

from executors import executor


def non_negative(func):
    @functools.wraps(func)
    def wrapper(*args):
        if any(arg < 0 for arg in args):
            raise ValueError(f"{func.__name__} takes no negative numbers")
        return func(*args)

    return wrapper


def rounded(digits):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return round(func(*args, **kwargs), digits)

        return wrapper

    return decorate


@non_negative
def area(width, height):
    return width * height


@rounded(2)
def ratio(a, b):
    return a / b


@rounded(1)
def report(width, height):
    return area(width, height) / (width + height)


def main():
    with executor() as ex:
        print(ex.submit(area, 3, 4).result())
        print(ex.submit(ratio, 2, 3).result())
        print(ex.submit(report, 6, 4).result())
        print([area.__name__, ratio.__name__])


if __name__ == "__main__":
    main()
