"""Values cross as MessagePack: every supported type goes to a guest job and comes back;
anything else is a TypeError that names where it is."""

from __future__ import annotations

import math

import pytest
from conftest import TIMEOUT

ROUND_TRIPS = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    -0.0,
    math.inf,
    "",
    "text",
    "ünïcødé 🐝",
    b"",
    b"\x00\xffbytes",
    [],
    [1, [2, [3, "four"]]],
    {},
    {"a": 1, "b": [True, None]},
    {1: "one", 2.5: "two and a half", None: "nothing"},
    {"nested": {"deeper": {"deepest": [b"x", 1.25]}}},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_every_supported_value_round_trips(client, testjobs, value):
    assert client.submit(testjobs.echo, value).result(TIMEOUT) == value


def test_tuples_cross_as_lists_and_bytearrays_as_bytes(client, testjobs):
    assert client.submit(testjobs.echo, (1, (2, 3))).result(TIMEOUT) == [1, [2, 3]]
    assert client.submit(testjobs.echo, bytearray(b"ab")).result(TIMEOUT) == b"ab"


def test_a_nan_crosses(client, testjobs):
    assert math.isnan(client.submit(testjobs.echo, math.nan).result(TIMEOUT))


def test_a_map_key_that_is_an_array_comes_back_as_a_tuple(client, testjobs):
    # A dict cannot have a list key in Python; a tuple key crosses as an array, and comes
    # back as a tuple, hashable.
    assert client.submit(testjobs.echo, {(1, 2): "pair"}).result(TIMEOUT) == {(1, 2): "pair"}


def test_arguments_and_results_of_several_types(client, testjobs):
    assert client.submit(testjobs.repeat, "ab", 3).result(TIMEOUT) == "ababab"
    rect = {"width": 2.0, "height": 3.0}
    assert client.submit(testjobs.scale, rect, 2.0).result(TIMEOUT) == {
        "width": 4.0,
        "height": 6.0,
    }


UNSUPPORTED = [
    ({1, 2}, r"args\[0\] is a set"),
    (object(), r"args\[0\] is an object"),
    (2**64, r"args\[0\] is an int: too large"),
    (-(2**63) - 1, r"args\[0\] is an int: too large"),
    (1j, r"args\[0\] is a complex"),
    ([1, {"k": [0, 0, {3}]}], r"args\[0\]\[1\]\['k'\]\[2\] is a set"),
    ("\ud800", r"args\[0\] is a str: not valid Unicode"),
]


@pytest.mark.parametrize(("value", "message"), UNSUPPORTED, ids=lambda v: type(v).__name__)
def test_unsupported_values_raise_a_type_error_naming_them(client, testjobs, value, message):
    with pytest.raises(TypeError, match=message):
        client.submit(testjobs.echo, value)


def test_values_nested_too_deeply_are_refused(client, testjobs):
    value: list = []
    for _ in range(200):
        value = [value]
    with pytest.raises(TypeError, match="nest at most"):
        client.submit(testjobs.echo, value)
