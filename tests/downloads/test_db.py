import pytest
from django.db import NotSupportedError, connection, transaction

from downloads.db import retry_stale_prepared_statement
from downloads.models import DownloadGrant
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def widen_a_returned_column():
    """What a migration lengthening a CharField does to the statements prepared before it;
    the column gets its type back afterwards."""

    def alter(length):
        # From another connection, as `migrate` runs in another process: psycopg forgets its
        # prepared statements when its own connection runs an ALTER.
        other = connection.get_new_connection(connection.get_connection_params())
        try:
            other.autocommit = True
            other.execute(
                f"ALTER TABLE downloads_downloadgrant ALTER COLUMN token TYPE varchar({length})"
            )
        finally:
            other.close()

    yield lambda: alter(80)
    alter(DownloadGrant._meta.get_field("token").max_length)


def prepared_lookup(token):
    # Five runs on the connection and psycopg has prepared it (prepare_threshold=5).
    return DownloadGrant.objects.filter(token=token).values_list("token", flat=True).first()


def test_every_postgresql_connection_has_the_retry(postgres_only):
    connection.ensure_connection()
    assert retry_stale_prepared_statement in connection.execute_wrappers


def test_a_statement_a_migration_made_stale_runs_again_outside_a_transaction(
    postgres_only, widen_a_returned_column
):
    grant = factories.GrantFactory()
    for _ in range(6):
        assert prepared_lookup(grant.token) == grant.token
    widen_a_returned_column()
    assert prepared_lookup(grant.token) == grant.token  # retried after DEALLOCATE ALL
    assert prepared_lookup(grant.token) == grant.token


def test_inside_a_transaction_the_error_stands_and_the_rollback_heals_the_connection(
    postgres_only, widen_a_returned_column
):
    grant = factories.GrantFactory()
    for _ in range(6):
        prepared_lookup(grant.token)
    widen_a_returned_column()
    stale = pytest.raises(NotSupportedError, match="cached plan must not change result type")
    with stale, transaction.atomic():
        prepared_lookup(grant.token)
    assert prepared_lookup(grant.token) == grant.token
