"""The channel event inbox (services.channels): stored once, processed idempotently, kept
when it fails, processed again on demand. The channels' own handlers are tested beside
them (test_shopify.py, test_stripe_checkout.py); here a handler defined in this module
stands in for one, since what is tested is the inbox's bookkeeping."""

import pytest
from django_tasks_db.models import DBTaskResult

from downloads.errors import ServiceError
from downloads.models import ChannelEvent
from downloads.services import channels
from downloads.services.channels import (
    Outcome,
    channel_event_process,
    channel_event_process_again,
    channel_event_receive,
)

pytestmark = pytest.mark.django_db

CALLS: list[str] = []


def handler(event):
    CALLS.append(event.type)
    behaviour = event.payload.get("behaviour")
    if behaviour == "domain_error":
        raise ServiceError("The order cannot be paid.", code="order.invalid_state")
    if behaviour == "bug":
        raise KeyError("line_items")
    return Outcome(behaviour or ChannelEvent.Status.PROCESSED, error=event.payload.get("why", ""))


@pytest.fixture(autouse=True)
def _handler(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(channels.HANDLERS, "shopify", f"{__name__}.handler")


def receive(event_id="wh-1", **payload):
    return channel_event_receive(
        channel="shopify", event_id=event_id, event_type="orders/paid", payload=payload
    )


def test_an_event_is_stored_once_and_its_processing_enqueued_once():
    event, created = receive()
    again, created_again = receive(behaviour="ignored")
    assert (created, created_again) == (True, False)
    assert again.pk == event.pk and again.payload == {}
    assert ChannelEvent.objects.count() == 1
    tasks = DBTaskResult.objects.filter(task_path="downloads.tasks.channel_event_process")
    assert [task.args_kwargs["args"] for task in tasks] == [[str(event.pk)]]


def test_processing_records_the_outcome_and_is_not_repeated_once_processed():
    event, _ = receive()
    processed = channel_event_process(event_id=event.pk)
    assert (processed.status, processed.attempts) == ("processed", 1)
    assert processed.processed_at is not None
    channel_event_process(event_id=event.pk)
    assert CALLS == ["orders/paid"]
    assert ChannelEvent.objects.get().attempts == 1


def test_an_unmatched_event_keeps_its_reason_and_is_processed_again_on_demand():
    event, _ = receive(behaviour="unmatched", why="line item 1 has no product")
    event = channel_event_process(event_id=event.pk)
    assert (event.status, event.error) == ("unmatched", "line item 1 has no product")
    channel_event_process(event_id=event.pk)  # still unmatched: the worker may try again
    ChannelEvent.objects.filter(pk=event.pk).update(payload={})  # e.g. the product is mapped
    event = channel_event_process_again(event=event)
    assert (event.status, event.error, event.attempts) == ("processed", "", 3)


def test_a_domain_error_or_a_bug_marks_the_event_failed_and_keeps_it():
    domain, _ = receive("wh-1", behaviour="domain_error")
    bug, _ = receive("wh-2", behaviour="bug")
    domain = channel_event_process(event_id=domain.pk)
    bug = channel_event_process(event_id=bug.pk)
    assert (domain.status, domain.error) == (
        "failed",
        "order.invalid_state: The order cannot be paid.",
    )
    assert (bug.status, bug.error) == ("failed", "KeyError: 'line_items'")
    assert ChannelEvent.objects.count() == 2


def test_processing_a_deleted_event_does_nothing_and_again_says_so():
    event, _ = receive()
    ChannelEvent.objects.all().delete()
    assert channel_event_process(event_id=event.pk) is None
    with pytest.raises(ServiceError) as exc:
        channel_event_process_again(event=event)
    assert exc.value.code == "channel_event.not_found"
