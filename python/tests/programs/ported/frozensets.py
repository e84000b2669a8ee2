"""Teams as frozensets: frozensets as arguments, as dict keys and set members, and as
results."""

from executors import executor


def merge(team, *others):
    for other in others:
        team = team | other
    return team


def meetings(schedule, team):
    return schedule.get(team, 0)


def kinds(teams):
    return sorted(type(team).__name__ for team in teams)


def show(result):
    return f"{type(result).__name__} {sorted(result)}"


def main():
    core = frozenset({"ana", "bo"})
    with executor() as ex:
        print(show(ex.submit(merge, core, frozenset({"cy"})).result()))
        print(repr(ex.submit(meetings, {core: 3, frozenset({"cy"}): 1}, core).result()))
        print(repr(ex.submit(kinds, {core, frozenset({"cy"})}).result()))


if __name__ == "__main__":
    main()
