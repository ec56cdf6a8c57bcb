"""Compiled reads (downloads/compiled.py): the SQL of a queryset kept once, its rows and
instances as the ORM gives them."""

import pytest
from django.db import connection
from django.db.models import F, Q
from django.db.models.query import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from downloads.compiled import CompiledQuery, ModelRow, prefetched
from downloads.models import Download, DownloadGrant, Media, Order, OrderLine
from tests import factories

pytestmark = pytest.mark.django_db


class TestCompiledQuery:
    def test_rows_are_what_values_list_returns_with_the_fields_conversions(self):
        order = factories.paid_order_with_files(lines=3, attached=1)
        query = CompiledQuery(
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
        query = CompiledQuery(
            lambda token: DownloadGrant.objects.filter(token=token).values_list("id")
        )
        with CaptureQueriesContext(connection) as captured:
            assert query.rows(first.token) == [(first.pk,)]
            assert query.rows(second.token) == [(second.pk,)]
        (sql_first, sql_second) = (q["sql"] for q in captured.captured_queries)
        assert sql_first.replace(first.token, "?") == sql_second.replace(second.token, "?")

    def test_arguments_that_a_lookup_would_change_are_refused(self):
        query = CompiledQuery(
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
        lines = CompiledQuery(
            lambda token: (
                OrderLine.objects.filter(order__access_token=token)
                .order_by("-position", "id")
                .values_list("id", "order__paid_at", "product__tags")
            )
        )
        grants = CompiledQuery(
            lambda token: (
                DownloadGrant.objects.filter(order__access_token=token)
                .order_by("-created_at", "id")
                .values_list("id", "token", "expires_at")
            )
        )
        token = order.access_token
        expected = [lines.rows(token), grants.rows(token)]
        with CaptureQueriesContext(connection) as captured:
            together = CompiledQuery.together((lines, (token,)), (grants, (token,)))
        # Each query's rows, converted and in its own ORDER BY, whatever the other returns.
        assert together == expected
        assert len(together[0]) == lines_count and len(together[1]) > lines_count
        assert len(captured.captured_queries) == (1 if connection.vendor == "postgresql" else 2)

    def test_queries_run_together_with_no_rows_give_empty_lists(self):
        query = CompiledQuery(
            lambda token: DownloadGrant.objects.filter(token=token).values_list("id")
        )
        assert CompiledQuery.together((query, ("x",)), (query, ("y",))) == [[], []]

    def test_the_querys_own_parameters_are_kept_and_its_arguments_change(self):
        paid = factories.paid_order_with_files(lines=1)
        pending = factories.OrderFactory(status=Order.Status.PENDING)
        query = CompiledQuery(
            lambda token: (
                Order.objects.filter(Q(status=Order.Status.PAID) | Q(status="refunded"))
                .filter(access_token=token)
                .values_list("number")
            )
        )
        assert query.rows(paid.access_token) == [(paid.number,)]
        assert query.rows(pending.access_token) == []
        together = CompiledQuery.together(
            (query, (pending.access_token,)), (query, (paid.access_token,))
        )
        assert together == [[], [(paid.number,)]]

    def test_a_query_whose_sql_changes_between_compilations_is_refused(self):
        query = CompiledQuery(
            lambda token: DownloadGrant.objects.filter(
                token=token, created_at__lt=timezone.now()
            ).values_list("id")
        )
        with pytest.raises(ValueError, match="changes between compilations"):
            query.rows("abc")


class TestModelRow:
    ROW = ModelRow(
        ("", DownloadGrant, ("id", "token", "download_id", "download_count")),
        ("download", Download, None),
        ("download__media", Media, ("id", "filename", "byte_size")),
        extra=("number",),
    )
    QUERY = CompiledQuery(
        lambda token: (
            DownloadGrant.objects.filter(token=token)
            .annotate(number=F("order__number"))
            .values_list(*TestModelRow.ROW.lookups())
        )
    )

    def test_instances_hold_what_the_orm_reads_and_load_the_rest_on_access(
        self, django_assert_num_queries
    ):
        grant = factories.GrantFactory(download_count=3)
        (row,) = self.QUERY.rows(grant.token)
        with django_assert_num_queries(0):
            loaded = self.ROW.instance(row)
            # linked as select_related() links them
            download, media = loaded.download, loaded.download.media
            assert (loaded.pk, loaded.token, loaded.download_count) == (grant.pk, grant.token, 3)
            # every field of Download was read
            assert [getattr(download, f.attname) for f in Download._meta.concrete_fields] == [
                getattr(grant.download, f.attname) for f in Download._meta.concrete_fields
            ]
            assert (media.pk, media.filename, media.byte_size) == (
                grant.download.media.pk,
                grant.download.media.filename,
                grant.download.media.byte_size,
            )
            # the extras are set as annotations are
            assert loaded.number == grant.order.number
            assert loaded._state.adding is False
        # what was not read is deferred: it loads, as with only()
        with django_assert_num_queries(1):
            assert loaded.expires_at == grant.expires_at

    def test_a_left_join_that_matched_nothing_is_none(self):
        grant = factories.GrantFactory(download=factories.LinkDownloadFactory())
        (row,) = self.QUERY.rows(grant.token)
        built = self.ROW.instances(row)
        assert built["download__media"] is None
        assert built[""].download is built["download"] and built["download"].media is None

    def test_positions_name_each_column(self):
        grant = factories.GrantFactory(download_count=4)
        (row,) = self.QUERY.rows(grant.token)
        assert row[self.ROW.position("", "download_count")] == 4
        assert row[self.ROW.position("download__media", "filename")] == (
            grant.download.media.filename
        )
        assert row[self.ROW.position("", "number")] == grant.order.number
        assert self.ROW.columns()[self.ROW.position("download", "stamp")] == (Download, "stamp")
        assert len(self.ROW.lookups()) == self.ROW.width

    def test_a_field_the_model_does_not_have_is_refused(self):
        with pytest.raises(ValueError, match="no fields"):
            ModelRow(("", Order, ("id", "nope")))


class TestPrefetched:
    def test_the_objects_are_listed_without_a_query_and_the_manager_still_filters(
        self, django_assert_num_queries
    ):
        order = factories.paid_order_with_files(lines=3)
        lines = list(OrderLine.objects.filter(order=order).order_by("position"))
        loaded = Order.objects.get(pk=order.pk)
        prefetched(loaded, "lines", lines[:2])
        with django_assert_num_queries(0):
            assert list(loaded.lines.all()) == lines[:2]
            assert loaded.lines.all().count() == 2
            # each line's way back is the order, as after prefetch_related
            assert all(line.order is loaded for line in loaded.lines.all())
        # anything asked beyond the list goes to the database, as after prefetch_related
        with django_assert_num_queries(1):
            assert loaded.lines.filter(position=lines[2].position).get() == lines[2]

    def test_a_filter_on_the_manager_asks_about_this_instances_objects_only(self):
        first = factories.paid_order_with_files(lines=1)
        second = factories.paid_order_with_files(lines=2)
        a, b = Order.objects.get(pk=first.pk), Order.objects.get(pk=second.pk)
        prefetched(a, "lines", list(first.lines.all()))
        prefetched(b, "lines", list(second.lines.all()))
        assert isinstance(a.lines.all(), QuerySet)
        assert a.lines.order_by("-position").filter(quantity=1).count() == 1
        assert b.lines.filter(quantity=1).count() == 2
        assert [len(a.lines.all()), len(b.lines.all())] == [1, 2]
