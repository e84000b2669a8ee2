"""Log parsing with compiled regular expressions at module level."""

import re

from executors import executor

LINE = re.compile(r"(?P<level>INFO|WARN|ERROR) (?P<message>.*)")
WORD = re.compile(r"[a-z']+", re.IGNORECASE)


def level_of(line):
    match = LINE.match(line)
    return match["level"] if match else None


def word_count(text):
    return len(WORD.findall(text))


def main():
    with executor() as ex:
        print(list(ex.map(level_of, ["ERROR disk full", "INFO started", "garbage"])))
        print(ex.submit(word_count, "Don't panic: it's only a test.").result())


if __name__ == "__main__":
    main()
