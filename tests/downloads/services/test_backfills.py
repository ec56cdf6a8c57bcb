from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from downloads.errors import ServiceError
from downloads.models import Backfill, Download, DownloadGrant, Order
from downloads.services import backfills
from downloads.services.backfills import (
    _backfill_batch,
    backfill_resume,
    backfill_run,
    download_deliver_to_existing_orders,
)
from downloads.services.catalogue import download_create, download_update
from downloads.services.orders import LineInput
from tests import factories

pytestmark = pytest.mark.django_db


def grants_of(download):
    return DownloadGrant.objects.filter(download=download)


def expected_lines(store):
    """Every unrefunded line of the paid orders: one grant each."""
    lines = [line.pk for order in store["eligible"] for line in order.lines.all()]
    lines += [line.pk for line in store["partly"].lines.all() if line.refunded_at is None]
    return sorted(lines)


class TestBackfill:
    def test_issues_exactly_one_grant_per_unrefunded_line_of_each_paid_order(self, store):
        download = store["download"]
        backfill = download_deliver_to_existing_orders(download=download)
        backfill = backfill_run(backfill=backfill, batch_size=2)

        assert sorted(grants_of(download).values_list("line_id", flat=True)) == expected_lines(
            store
        )
        excluded = {order.pk for order in store["excluded"]}
        assert not grants_of(download).filter(order_id__in=excluded).exists()
        assert backfill.status == Backfill.Status.DONE
        assert backfill.grants_created == len(expected_lines(store)) == 7
        assert backfill.orders_seen == 6  # 5 eligible + the partly refunded one
        assert backfill.cursor == max(o.number for o in [*store["eligible"], store["partly"]])
        assert backfill.finished_at is not None

    def test_grants_get_the_product_limit_and_an_expiry_counted_from_now(self, store, settings):
        settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 30
        download = store["download"]
        Order.objects.update(paid_at=timezone.now() - timedelta(days=400))
        backfill = download_deliver_to_existing_orders(download=download)
        backfill_run(backfill=backfill)
        grant = grants_of(download).first()
        assert grant.download_limit == 3
        assert grant.expires_at > timezone.now() + timedelta(days=29)

    def test_running_twice_issues_nothing_more(self, store):
        download = store["download"]
        backfill_run(backfill=download_deliver_to_existing_orders(download=download))
        before = set(grants_of(download).values_list("pk", flat=True))
        again = Backfill.objects.create(download=download)
        again = backfill_run(backfill=again, batch_size=3)
        assert again.status == Backfill.Status.DONE
        assert again.grants_created == 0
        assert set(grants_of(download).values_list("pk", flat=True)) == before

    def test_a_crash_mid_run_resumes_from_the_cursor_without_duplicates(self, store, monkeypatch):
        download = store["download"]
        backfill = download_deliver_to_existing_orders(download=download)
        real_batch = _backfill_batch
        calls = []

        def crash_on_second_batch(**kwargs):
            calls.append(1)
            if len(calls) == 2:
                real_batch(**kwargs)  # the batch writes its grants, then the process dies
                raise RuntimeError("worker killed")
            return real_batch(**kwargs)

        monkeypatch.setattr(backfills, "_backfill_batch", crash_on_second_batch)
        with pytest.raises(RuntimeError):
            backfill_run(backfill=backfill, batch_size=2)
        backfill.refresh_from_db()
        # The second batch rolled back with its cursor move: only the first batch stayed.
        first_two = sorted(o.number for o in [*store["eligible"], store["partly"]])[:2]
        assert backfill.cursor == first_two[1]
        assert backfill.status == Backfill.Status.FAILED
        assert "worker killed" in backfill.error
        assert set(grants_of(download).values_list("order__number", flat=True)) == set(first_two)

        monkeypatch.setattr(backfills, "_backfill_batch", real_batch)
        # A killed worker leaves it "running"; resuming takes it over from the cursor.
        Backfill.objects.filter(pk=backfill.pk).update(status=Backfill.Status.RUNNING)
        backfill = backfill_run(backfill=backfill, batch_size=2)
        assert backfill.status == Backfill.Status.DONE
        assert sorted(grants_of(download).values_list("line_id", flat=True)) == expected_lines(
            store
        )
        assert backfill.grants_created == 7
        assert backfill.orders_seen == 6

    def test_a_variant_file_goes_only_to_lines_of_that_variant(self, paid_order):
        hardback = factories.VariantFactory()
        product = hardback.product
        ebook = factories.VariantFactory(product=product)
        with_hardback = paid_order(LineInput(product=product, variant=hardback))
        paid_order(LineInput(product=product, variant=ebook))
        download = factories.DownloadFactory(product=product, variant=hardback)
        backfill_run(backfill=download_deliver_to_existing_orders(download=download))
        assert list(grants_of(download).values_list("order_id", flat=True)) == [with_hardback.pk]

    def test_orders_paid_after_the_file_was_added_are_not_counted_twice(self, store, paid_order):
        download = store["download"]
        later = paid_order(store["product"])  # paying issues every file of the product already
        assert grants_of(download).filter(order=later).count() == 1
        backfill = backfill_run(backfill=download_deliver_to_existing_orders(download=download))
        assert grants_of(download).filter(order=later).count() == 1
        assert backfill.grants_created == 7


class TestStartingABackfill:
    def test_the_option_on_the_download_starts_one_backfill_task(self, store):
        download = store["download"]
        download_update(download=download, deliver_to_existing_orders=True)
        backfill = Backfill.objects.get(download=download)
        assert backfill.status == Backfill.Status.PENDING
        task = DBTaskResult.objects.get(task_path="downloads.tasks.backfill_run")
        assert task.args_kwargs["args"] == [str(backfill.pk)]
        # Asking again while it runs starts nothing new; switching off delivers nothing more.
        download_update(download=download, deliver_to_existing_orders=True)
        assert Backfill.objects.filter(download=download).count() == 1
        download_update(download=download, deliver_to_existing_orders=False)
        assert not Download.objects.get(pk=download.pk).deliver_to_existing_orders

    def test_a_new_product_file_can_go_to_existing_orders_from_the_start(self, store):
        download = download_create(
            product=store["product"],
            media=factories.MediaFactory(),
            deliver_to_existing_orders=True,
        )
        assert Backfill.objects.get(download=download).status == Backfill.Status.PENDING

    def test_asking_again_while_one_is_pending_returns_it(self, store):
        first = download_deliver_to_existing_orders(download=store["download"])
        second = download_deliver_to_existing_orders(download=store["download"])
        assert first == second
        assert Download.objects.get(pk=store["download"].pk).deliver_to_existing_orders

    def test_a_file_without_a_product_or_archived_is_refused(self):
        loose = factories.DownloadFactory(product=None)
        with pytest.raises(ServiceError) as exc:
            download_deliver_to_existing_orders(download=loose)
        assert exc.value.code == "download.no_product"
        archived = factories.DownloadFactory(archived=True)
        with pytest.raises(ServiceError) as exc:
            download_deliver_to_existing_orders(download=archived)
        assert exc.value.code == "download.archived"
        assert not Backfill.objects.exists()

    def test_resuming_a_finished_backfill_is_a_conflict(self, store):
        backfill = backfill_run(
            backfill=download_deliver_to_existing_orders(download=store["download"])
        )
        with pytest.raises(ServiceError):
            backfill_resume(backfill=backfill)


@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_the_backfill_in_one_short_transaction_per_batch(
    store, run_worker, settings, monkeypatch
):
    """db_worker picks the task up, and every batch is its own outermost transaction (not a
    savepoint inside a run-long one), so nothing holds a transaction for the whole run."""
    from django.db import connection

    settings.DOWNLOADS_BACKFILL_BATCH_SIZE = 2
    download = store["download"]
    backfill = download_deliver_to_existing_orders(download=download)
    real_batch = _backfill_batch
    batches = []

    def watch(**kwargs):
        batches.append((connection.in_atomic_block, list(connection.savepoint_ids)))
        return real_batch(**kwargs)

    monkeypatch.setattr(backfills, "_backfill_batch", watch)
    run_worker()
    backfill.refresh_from_db()
    assert backfill.status == Backfill.Status.DONE
    assert grants_of(download).count() == 7
    assert batches == [(True, [])] * 4  # 6 orders in batches of 2, then an empty one
