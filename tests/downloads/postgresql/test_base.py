"""The project's PostgreSQL backend: a kept connection's health check asks the server only
when the connection has something to say."""

import select
import tempfile

import pytest
from django.core.signals import request_started
from django.db import OperationalError, ProgrammingError, connection, connections

from downloads.models import Order
from downloads.postgresql.base import DatabaseWrapper
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def kept_connection(postgres_only, monkeypatch):
    """The connection as production keeps it: for 600 s, checked before each request."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    connection.close()
    connection.ensure_connection()
    yield
    connection.close()


def other_connection():
    other = connection.get_new_connection(connection.get_connection_params())
    other.autocommit = True
    return other


def wait_until_readable(raw, seconds=10.0):
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN)
    assert poller.poll(seconds * 1000), "the server sent nothing to the connection"


def statements_of_a_request(query):
    """What the connection sends the server for a request that runs `query`: the request's
    start (Django's close_old_connections) and then the query, as libpq traces them."""
    with tempfile.TemporaryFile() as trace:
        raw = connection.connection
        raw.pgconn.trace(trace.fileno())
        try:
            request_started.send(sender=None)
            query()
        finally:
            if connection.connection is raw:
                raw.pgconn.untrace()
        trace.seek(0)
        sent = [line for line in trace.read().decode().splitlines() if "\tF\t" in line]
    return sent


def test_the_project_runs_on_this_backend():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.vendor == "postgresql"


def test_a_kept_idle_connection_serves_the_next_request_without_a_round_trip_first():
    Order.objects.count()
    pid = connection.connection.info.backend_pid
    sent = statements_of_a_request(lambda: Order.objects.count())
    assert not [line for line in sent if "SELECT 1" in line]
    assert any("downloads_order" in line for line in sent)
    assert connection.connection.info.backend_pid == pid


def test_a_connection_the_server_dropped_is_replaced_before_the_request_uses_it():
    order = factories.OrderFactory(email="kept@example.com")
    raw = connection.connection
    pid = raw.info.backend_pid
    other = other_connection()
    try:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    wait_until_readable(raw)
    request_started.send(sender=None)
    # The request's first statement runs on a new connection, as after Django's SELECT 1.
    assert Order.objects.get(pk=order.pk).email == "kept@example.com"
    assert connection.connection.info.backend_pid != pid


def test_without_a_health_check_the_dropped_connection_would_fail_the_request(monkeypatch):
    # What the check is for: the same drop, unchecked, is the request's error.
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", False)
    connection.close()
    connection.ensure_connection()
    raw = connection.connection
    other = other_connection()
    try:
        other.execute("SELECT pg_terminate_backend(%s)", [raw.info.backend_pid])
    finally:
        other.close()
    wait_until_readable(raw)
    request_started.send(sender=None)
    with pytest.raises(OperationalError):
        Order.objects.count()


def test_a_connection_with_something_to_read_is_asked_with_select_1_and_kept():
    raw = connection.connection
    pid = raw.info.backend_pid
    raw.execute("LISTEN downloads_health")
    other = other_connection()
    try:
        other.execute("NOTIFY downloads_health")
    finally:
        other.close()
    wait_until_readable(raw)
    sent = statements_of_a_request(lambda: Order.objects.count())
    assert [line for line in sent if "SELECT 1" in line]
    assert connection.connection.info.backend_pid == pid


def test_a_connection_after_a_database_error_is_asked_with_select_1():
    with pytest.raises(ProgrammingError), connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM downloads_order")
    assert connection.errors_occurred
    sent = statements_of_a_request(lambda: Order.objects.count())
    assert [line for line in sent if "SELECT 1" in line]
