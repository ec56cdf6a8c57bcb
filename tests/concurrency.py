"""Running one piece of work in many threads at once, for the tests that prove a limit or a
uniqueness holds under concurrency (on PostgreSQL)."""

import threading

from django.db import connections


def at_once(count: int, work, *, setup=None, timeout: float = 60) -> list:
    """Run `work(setup(n))` (or `work(n)` without `setup`) in `count` threads released
    together by a barrier, once each thread's setup is done; return the results in the order
    the threads finished. An exception in any thread is raised here, after all have ended.
    Each thread closes its own database connections."""
    barrier = threading.Barrier(count)
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(n):
        try:
            prepared = setup(n) if setup is not None else n
            barrier.wait(timeout=timeout / 2)
            result = work(prepared)
            with lock:
                results.append(result)
        except BaseException as exc:  # collected and raised below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    assert len(results) == count, f"{count - len(results)} threads did not finish"
    return results
