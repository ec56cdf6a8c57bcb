"""Prepared statements that a migration made stale.

With `DATABASE_PREPARED_STATEMENTS` on (the default), a connection keeps each statement
psycopg prepared. A migration that changes the type of a column such a statement returns
(a longer CharField, say) makes PostgreSQL refuse it, on that connection, until the
connection ends: "cached plan must not change result type". Outside a transaction nothing
has run yet when that happens, so the statement is sent again after `DEALLOCATE ALL`, which
also resets psycopg's own cache of them. Inside a transaction the error aborts it; the
rollback resets psycopg's cache and the next transaction prepares afresh.
"""

from django.db import NotSupportedError
from django.db.backends.signals import connection_created
from django.dispatch import receiver

STALE_PLAN_SQLSTATE = "0A000"  # feature_not_supported, raised by RevalidateCachedQuery
STALE_PLAN_MESSAGE = "cached plan must not change result type"


def retry_stale_prepared_statement(execute, sql, params, many, context):
    """A Django execute wrapper: run a statement again once when its prepared plan is stale."""
    try:
        return execute(sql, params, many, context)
    except NotSupportedError as exc:
        cause = exc.__cause__
        db = context["connection"]
        if (
            getattr(cause, "sqlstate", None) != STALE_PLAN_SQLSTATE
            or STALE_PLAN_MESSAGE not in str(cause)
            or db.in_atomic_block
        ):
            raise
        context["cursor"].cursor.execute("DEALLOCATE ALL")  # psycopg resets its cache too
        return execute(sql, params, many, context)


@receiver(connection_created)
def _install(sender, connection, **kwargs):
    if (
        connection.vendor == "postgresql"
        and retry_stale_prepared_statement not in connection.execute_wrappers
    ):
        connection.execute_wrappers.append(retry_stale_prepared_statement)
