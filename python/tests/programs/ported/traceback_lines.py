"""A failing job's traceback points at the user's file: the job's frames, with the line
numbers and source lines of this file (whatever file name the sandbox gives them)."""

import re
import traceback

from executors import executor

FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


def parse_row(row):
    name, value = row.split("=")
    return name, float(value)


def load(rows):
    table = {}
    for row in rows:
        name, value = parse_row(row)
        table[name] = value
    return table


def job_frames(error):
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return [
        (function, int(line), source.strip())
        for _, line, function, source in FRAME.findall(text)
        if function in ("load", "parse_row")
    ]


def main():
    with executor() as ex:
        print(ex.submit(load, ["a=1", "b=2.5"]).result())
        try:
            ex.submit(load, ["a=1", "b=two"]).result()
        except ValueError as error:
            for frame in job_frames(error):
                print(frame)


if __name__ == "__main__":
    main()
