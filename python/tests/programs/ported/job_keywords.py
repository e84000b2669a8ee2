"""Jobs whose own parameters are named timeout, fuel, group, block and max_memory, passed
as keywords, as Executor.submit passes every keyword to the function."""

from executors import executor


def fetch(url, timeout=10, retries=3):
    return f"{url} timeout={timeout} retries={retries}"


def plan(task, group="default", block=False):
    return f"{task} in {group}, block={block}"


def budget(engine, fuel=0.0, max_memory=None):
    return f"{engine}: fuel={fuel} max_memory={max_memory}"


def main():
    with executor() as ex:
        print(ex.submit(fetch, "https://example.org/data", timeout=2).result())
        print(ex.submit(plan, "build", group="night", block=True).result())
        print(ex.submit(budget, "v8", fuel=12.5, max_memory=2048).result())
        print(ex.submit(fetch, "https://example.org/slow", retries=1, timeout=0.001).result())


if __name__ == "__main__":
    main()
