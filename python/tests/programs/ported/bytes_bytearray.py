"""Packet checksums and edits with bytes and bytearray, as arguments and as results."""

import zlib

from executors import executor


def checksum(packet):
    return [type(packet).__name__, zlib.crc32(packet)]


def patch(buffer, offset, data):
    buffer[offset : offset + len(data)] = data
    return buffer


def header(packet):
    return packet[:4]


def main():
    with executor() as ex:
        print(repr(ex.submit(checksum, b"\x00\x01hello").result()))
        print(repr(ex.submit(checksum, bytearray(b"abc")).result()))
        print(repr(ex.submit(patch, bytearray(b"hello world"), 6, b"WASP!").result()))
        print(repr(ex.submit(header, b"\x89PNG\r\n\x1a\n").result()))


if __name__ == "__main__":
    main()
