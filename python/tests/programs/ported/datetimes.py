"""Scheduling with datetime, date, time and timedelta, naive and aware, as arguments and
as results."""

from datetime import date, datetime, time, timedelta, timezone

from executors import executor

CET = timezone(timedelta(hours=1), "CET")


def next_run(last, every):
    return last + every


def weekday_names(days):
    return [day.strftime("%A") for day in days]


def to_utc(moment):
    return moment.astimezone(timezone.utc)


def latest(*moments):
    return max(moments)


def opening(day, at):
    return datetime.combine(day, at)


def main():
    with executor() as ex:
        print(repr(ex.submit(next_run, datetime(2024, 2, 28, 23, 30), timedelta(hours=1)).result()))
        print(repr(ex.submit(weekday_names, [date(2024, 1, 1), date(2024, 7, 14)]).result()))
        print(repr(ex.submit(to_utc, datetime(2024, 3, 1, 9, 0, tzinfo=CET)).result()))
        print(repr(ex.submit(opening, date(2024, 5, 6), time(8, 30)).result()))
        print(repr(ex.submit(next_run, date(2024, 12, 31), timedelta(days=1)).result()))
        print(repr(ex.submit(next_run, timedelta(minutes=90), timedelta(seconds=30)).result()))
        print(repr(ex.submit(latest, time(7, 5), time(7, 0, 59, 999999)).result()))


if __name__ == "__main__":
    main()
