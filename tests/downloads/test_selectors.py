from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from downloads import selectors
from downloads.models import Download, DownloadGrant, DownloadVersion, Order, OrderLine
from tests import factories

pytestmark = pytest.mark.django_db


class TestCompiledQuery:
    def test_rows_are_what_values_list_returns_with_the_fields_conversions(self):
        order = factories.paid_order_with_files(lines=3, attached=1)
        query = selectors.CompiledQuery(
            lambda token: (
                OrderLine.objects.filter(order__access_token=token)
                .order_by("position")
                .values_list("id", "order__paid_at", "product__tags", "variant__external_id")
            )
        )
        orm = list(
            OrderLine.objects.filter(order__access_token=order.access_token)
            .order_by("position")
            .values_list("id", "order__paid_at", "product__tags", "variant__external_id")
        )
        # UUIDs, aware datetimes and JSON come back as the ORM gives them, on either database.
        assert query.rows(order.access_token) == orm
        assert query.rows("no such token") == []

    def test_the_sql_is_compiled_once_and_reused_with_new_arguments(self):
        first, second = factories.GrantFactory(), factories.GrantFactory()
        query = selectors.CompiledQuery(
            lambda token: DownloadGrant.objects.filter(token=token).values_list("id")
        )
        with CaptureQueriesContext(connection) as captured:
            assert query.rows(first.token) == [(first.pk,)]
            assert query.rows(second.token) == [(second.pk,)]
        (sql_first, sql_second) = (q["sql"] for q in captured.captured_queries)
        assert sql_first.replace(first.token, "?") == sql_second.replace(second.token, "?")

    def test_arguments_that_a_lookup_would_change_are_refused(self):
        query = selectors.CompiledQuery(
            lambda token: DownloadGrant.objects.filter(token__startswith=token).values_list("id")
        )
        with pytest.raises(ValueError, match="plain string arguments"):
            query.rows("abc")

    @pytest.mark.parametrize("lines_count", [0, 1, 12])
    def test_queries_run_together_give_each_its_own_rows_in_order_in_one_statement(
        self, lines_count
    ):
        order = factories.paid_order_with_files(lines=max(lines_count, 1), attached=2)
        if lines_count == 0:
            OrderLine.objects.filter(order=order).update(order=factories.OrderFactory())
        lines = selectors.CompiledQuery(
            lambda token: (
                OrderLine.objects.filter(order__access_token=token)
                .order_by("-position", "id")
                .values_list("id", "order__paid_at", "product__tags")
            )
        )
        grants = selectors.CompiledQuery(
            lambda token: (
                DownloadGrant.objects.filter(order__access_token=token)
                .order_by("-created_at", "id")
                .values_list("id", "token", "expires_at")
            )
        )
        token = order.access_token
        expected = [lines.rows(token), grants.rows(token)]
        with CaptureQueriesContext(connection) as captured:
            together = selectors.CompiledQuery.together((lines, (token,)), (grants, (token,)))
        # Each query's rows, converted and in its own ORDER BY, whatever the other returns.
        assert together == expected
        assert len(together[0]) == lines_count and len(together[1]) > lines_count
        assert len(captured.captured_queries) == (1 if connection.vendor == "postgresql" else 2)

    def test_queries_run_together_with_no_rows_give_empty_lists(self):
        query = selectors.CompiledQuery(
            lambda token: DownloadGrant.objects.filter(token=token).values_list("id")
        )
        assert selectors.CompiledQuery.together((query, ("x",)), (query, ("y",))) == [[], []]


class TestGrantForDelivery:
    def test_one_query_loads_the_grant_its_order_download_and_file(self, django_assert_num_queries):
        expires = timezone.now() + timedelta(days=3)
        grant = factories.GrantFactory(download_count=2, download_limit=5, expires_at=expires)
        with django_assert_num_queries(1):
            loaded = selectors.grant_get_for_delivery(token=grant.token)
            media = loaded.download.media
            values = (
                loaded.pk,
                loaded.download_count,
                loaded.download_limit,
                loaded.expires_at,
                loaded.revoked_at,
                loaded.order.access_token,
                loaded.order.email,
                loaded.download.display_name,
                media.key,
                media.filename,
                media.byte_size,
                media.sha256,
                loaded.refusal(),
            )
        download = grant.download
        assert values == (
            grant.pk,
            2,
            5,
            expires,
            None,
            grant.order.access_token,
            grant.order.email,
            download.display_name,
            download.media.key,
            download.media.filename,
            download.media.byte_size,
            download.media.sha256,
            None,
        )

    def test_a_link_has_no_file(self):
        grant = factories.GrantFactory(download=factories.LinkDownloadFactory())
        loaded = selectors.grant_get_for_delivery(token=grant.token)
        assert loaded.download.media is None
        assert loaded.download.url == grant.download.url

    def test_fields_it_does_not_read_still_load_on_access(self):
        grant = factories.GrantFactory()
        loaded = selectors.grant_get_for_delivery(token=grant.token)
        assert loaded.created_at == DownloadGrant.objects.get(pk=grant.pk).created_at

    @pytest.mark.parametrize("token", ["", "nope", "x" * 65, "abc\x00def"])
    def test_what_no_grant_has_finds_nothing(self, token):
        factories.GrantFactory()
        assert selectors.grant_get_for_delivery(token=token) is None


class TestOrderPaymentState:
    """The one rule for an order's badge: paid, partly refunded, refunded, else its status."""

    @pytest.mark.parametrize(
        ("fields", "line_fields", "key", "label"),
        [
            ({"status": "pending"}, {}, "pending", "Pending"),
            ({"status": "paid"}, {}, "paid", "Paid"),
            ({"status": "paid", "total": 5000, "refunded_total": 100}, {}, "partly_refunded", "Partly refunded"),
            ({"status": "paid"}, {"refunded_quantity": 1, "quantity": 2}, "partly_refunded", "Partly refunded"),
            ({"status": "paid"}, {"refunded_at": timezone.now()}, "partly_refunded", "Partly refunded"),
            ({"status": "paid", "total": 5000, "refunded_total": 5000}, {}, "refunded", "Refunded"),
            ({"status": "refunded", "total": 5000, "refunded_total": 5000}, {}, "refunded", "Refunded"),
            ({"status": "cancelled"}, {}, "cancelled", "Cancelled"),
        ],
    )  # fmt: skip
    def test_each_state_has_its_key_and_words(self, fields, line_fields, key, label):
        order = factories.OrderFactory(**fields)
        factories.OrderLineFactory(order=order, **line_fields)
        factories.OrderLineFactory(order=order)  # another line, not refunded
        state = selectors.order_payment_state(order)
        assert (state.key, str(state.label)) == (key, label)

    def test_an_order_read_with_its_lines_costs_no_query(self, django_assert_num_queries):
        order = factories.OrderFactory(status="paid")
        factories.OrderLineFactory(order=order, refunded_quantity=1, quantity=3)
        loaded = Order.objects.prefetch_related("lines").get(pk=order.pk)
        with django_assert_num_queries(0):
            assert selectors.order_payment_state(loaded).key == "partly_refunded"


class TestOrderPageGrants:
    def test_each_grant_carries_its_files_newest_changelog_and_whether_it_changed_since(self):
        order = factories.paid_order_with_files(lines=2, attached=1)
        updated = order.lines.order_by("position").first().grants.get().download
        for n, when in ((1, timedelta(days=1)), (2, timedelta(days=2))):
            DownloadVersion.objects.create(
                download=updated,
                media=updated.media,
                changelog=f"v{n}",
                created_at=order.paid_at + when,
            )
        Download.objects.filter(pk=updated.pk).update(
            file_updated_at=order.paid_at + timedelta(days=2)
        )
        loaded = selectors.order_get_by_token(access_token=order.access_token)
        grants = [
            *(g for line in loaded.lines.all() for g in line.grants.all()),
            *loaded.order_grants,
        ]
        shown = [(grant.changelog, grant.updated_since_paid) for grant in grants]
        assert shown == [("v2", True), (None, False), (None, False)]
