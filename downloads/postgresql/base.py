"""The PostgreSQL backend the project runs on (`ENGINE = "downloads.postgresql"`, set by the
settings for a postgres:// DATABASE_URL): Django's own, with a kept connection checked
without a round trip.

With `CONN_HEALTH_CHECKS` on, Django runs `SELECT 1` before the first statement of every
request that reuses a connection, so that a connection the server dropped (a restart, a
failover, an idle timeout) is replaced instead of failing the request. That round trip was
a tenth of the order page's time under load and more of the cheaper hot paths'
(bench/, py-spy on the workers). A connection the server has dropped has something to read:
its socket turns readable when the server closes it or sends the error that says why. An
idle connection with nothing to read is one the server still holds, so it is taken as it
is; anything else (something to read, a transaction left open, errors since the last
commit, a connection psycopg knows is closed) gets Django's `SELECT 1`. A network that loses
the server without a word is caught by neither check: `SELECT 1` would wait on it too.
"""

import select

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Whether the kept connection can be used: without a round trip when it is idle and
        the server has sent nothing since, else Django's `SELECT 1`."""
        raw = self.connection
        if (
            raw is None
            or raw.closed
            or self.errors_occurred
            or raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            or _has_something_to_read(raw)
        ):
            return super().is_usable()
        return True


def _has_something_to_read(raw) -> bool:
    """Whether the connection's socket is readable now (no waiting)."""
    try:
        fileno = raw.fileno()
    except psycopg.Error:  # no socket at all: let the real check say so
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fileno, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fileno], [], [], 0)
    return bool(readable)
