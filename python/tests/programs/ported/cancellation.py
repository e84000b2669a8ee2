"""Every kind of cancellation raises concurrent.futures.CancelledError from result(): a
queued job's future cancelled, a batch cancelled at once (natively each of its futures, on
wasp its group), and shutdown(cancel_futures=True). Jobs already running finish."""

import concurrent.futures
import time

from executors import NATIVE, executor


def crunch(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return seconds


def square(x):
    return x * x


def outcome(future):
    try:
        return repr(future.result(timeout=30))
    except concurrent.futures.CancelledError:
        return "CancelledError"


def cancel_one():
    with executor() as ex:
        busy = [ex.submit(crunch, 1.0) for _ in range(2)]
        queued = [ex.submit(square, n) for n in range(6)]
        last = queued[-1]
        print("cancel():", last.cancel())
        print("cancelled():", last.cancelled(), "done():", last.done())
        print("result():", outcome(last))
        print("the others:", [outcome(future) for future in busy + queued[:2]])


def cancel_batch():
    with executor() as ex:
        busy = [ex.submit(crunch, 1.0) for _ in range(2)]
        if NATIVE:
            batch = [ex.submit(square, n) for n in range(6)]
            for future in batch[2:]:
                future.cancel()
        else:
            batch = [ex.options(group="batch").submit(square, n) for n in range(6)]
            ex.cancel("batch")
        print("the last of the batch:", outcome(batch[-1]), batch[-1].cancelled())
        print("the others run on:", [outcome(future) for future in busy])
        print("new work:", ex.submit(square, 7).result())


def cancel_at_shutdown():
    ex = executor()
    busy = [ex.submit(crunch, 1.0) for _ in range(2)]
    queued = [ex.submit(square, n) for n in range(6)]
    ex.shutdown(wait=True, cancel_futures=True)
    # What had started finished; what had not was cancelled.
    print("all done:", all(future.done() for future in busy + queued))
    endings = {outcome(future) for future in busy}
    print("finished or cancelled:", endings <= {"1.0", "CancelledError"})
    print("the last queued:", outcome(queued[-1]), queued[-1].cancelled())


if __name__ == "__main__":
    cancel_one()
    cancel_at_shutdown()
    cancel_batch()
