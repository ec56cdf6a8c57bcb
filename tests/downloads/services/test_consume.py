"""Consume (services.consume): the download rule, taken in one conditional UPDATE, and its log."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from downloads.models import DownloadEvent, DownloadGrant
from downloads.services.consume import (
    grant_consume,
    grant_consume_by_token,
    grant_consume_undo,
    grants_consume_many,
)
from downloads.services.grants import grants_revoke
from tests import factories
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db


class TestConsume:
    def test_consume_counts_and_logs_until_the_limit(self):
        grant = factories.GrantFactory(download_limit=2)
        outcomes = [grant_consume(grant=grant, ip="203.0.113.1").outcome for _ in range(3)]
        assert outcomes == ["served", "served", "limit_reached"]
        grant.refresh_from_db()
        assert grant.download_count == 2
        assert (
            list(grant.events.order_by("at", "outcome").values_list("outcome", flat=True)).count(
                "served"
            )
            == 2
        )

    def test_consume_refuses_after_expiry(self):
        grant = factories.GrantFactory(expires_at=timezone.now() - timedelta(seconds=1))
        result = grant_consume(grant=grant)
        assert not result.allowed and result.outcome == DownloadEvent.Outcome.EXPIRED
        grant.refresh_from_db()
        assert grant.download_count == 0

    def test_consume_refuses_after_revocation(self):
        grant = factories.GrantFactory()
        grants_revoke(grants=DownloadGrant.objects.filter(pk=grant.pk))
        grant.refresh_from_db()
        assert grant_consume(grant=grant).outcome == DownloadEvent.Outcome.REVOKED
        grant.refresh_from_db()
        assert grant.download_count == 0

    def test_a_stale_row_that_lost_the_race_reads_as_limit_reached(self):
        grant = factories.GrantFactory(download_limit=1)
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=1)
        # `grant` in memory still says 0 used: the UPDATE decides, not Python.
        assert grant_consume(grant=grant).outcome == "limit_reached"

    def test_the_database_decides_even_when_the_loaded_row_says_revoked_is_false(self):
        grant = factories.GrantFactory()
        DownloadGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now())
        assert not grant_consume(grant=grant).allowed

    def test_unlimited_grants_always_serve(self):
        grant = factories.GrantFactory(download_limit=None)
        assert all(grant_consume(grant=grant).allowed for _ in range(25))

    def test_a_served_download_logs_who_and_when_with_the_count_it_left(self):
        grant = factories.GrantFactory(download_limit=3, download_count=1)
        result = grant_consume(grant=grant, ip="2001:db8::7", user_agent="curl\x00/8")
        assert result.allowed
        assert grant.download_count == 2  # the count this download left, read back
        event = grant.events.get()
        grant.refresh_from_db()
        assert (event.outcome, event.ip, event.user_agent) == ("served", "2001:db8::7", "curl/8")
        assert event.at == grant.last_downloaded_at == grant.updated_at
        assert grant.download_count == 2

    def test_a_refusal_is_logged_with_its_reason_and_takes_nothing(self):
        grant = factories.GrantFactory(expires_at=timezone.now() - timedelta(seconds=1))
        grant_consume(grant=grant, ip="203.0.113.5", user_agent="x" * 600)
        event = grant.events.get()
        assert (event.outcome, event.ip, len(event.user_agent)) == ("expired", "203.0.113.5", 512)
        grant.refresh_from_db()
        assert (grant.download_count, grant.last_downloaded_at) == (0, None)


@pytest.mark.postgres
@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_postgresqls_single_statement_follows_the_same_rule_as_refusal(postgres_only, state):
    """`_CONSUME_SQL` writes the availability rule out by hand: it must agree with
    `DownloadGrant.refusal` and `available_q` (tests/downloads/models/test_grants.py) on every state."""
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    rule_says = DownloadGrant.objects.filter(DownloadGrant.available_q(now), pk=grant.pk).exists()
    assert rule_says is (grant.refusal(now) is None)
    before = DownloadGrant.objects.get(pk=grant.pk).download_count
    assert grant_consume(grant=grant).allowed is rule_says
    after = DownloadGrant.objects.get(pk=grant.pk).download_count
    assert after == before + (1 if rule_says else 0)
    assert list(grant.events.values_list("outcome", flat=True)) == [
        "served" if rule_says else grant.refusal(now)
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_consumes_with_seven_left_serve_exactly_seven(postgres_only):
    """The download limit holds under concurrency: the database decides, in one UPDATE."""
    grant = factories.GrantFactory(download_limit=10, download_count=3)
    results = at_once(
        50,
        lambda mine: grant_consume(grant=mine, ip="127.0.0.1").allowed,
        setup=lambda _: DownloadGrant.objects.get(pk=grant.pk),
    )

    assert connection.vendor == "postgresql"
    assert len(results) == 50
    assert results.count(True) == 7
    grant.refresh_from_db()
    assert grant.download_count == 10
    served = DownloadEvent.objects.filter(grant=grant, outcome="served").count()
    assert served == 7 == grant.download_count - 3
    assert DownloadEvent.objects.filter(grant=grant, outcome="limit_reached").count() == 43


# --- The one statement of the hot path (grant_consume_by_token, PostgreSQL) ---------------------


@pytest.mark.postgres
@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_the_one_statement_by_token_follows_the_same_rule_as_refusal(postgres_only, state):
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    available = grant.refusal(now) is None
    before = DownloadGrant.objects.get(pk=grant.pk).download_count
    taken = grant_consume_by_token(token=grant.token, ip="203.0.113.7")
    assert taken.grant.pk == grant.pk
    assert taken.consumption.allowed is available
    after = DownloadGrant.objects.get(pk=grant.pk).download_count
    assert after == before + (1 if available else 0)
    assert list(grant.events.values_list("outcome", flat=True)) == [
        "served" if available else grant.refusal(now)
    ]


@pytest.mark.postgres
def test_a_download_by_token_is_one_statement_and_opens_the_same_resume_budget(
    postgres_only, django_assert_num_queries, settings
):
    settings.DOWNLOADS_RESUME_BUDGET = 2.5
    grant = factories.GrantFactory(download_limit=3, download_count=1)
    size = grant.download.media.byte_size
    assert size > 0
    with django_assert_num_queries(1):
        taken = grant_consume_by_token(token=grant.token, ip="2001:db8::9", user_agent="curl")
    assert taken.consumption.allowed and taken.grant.download_count == 2
    stored = DownloadGrant.objects.get(pk=grant.pk)
    assert stored.download_count == 2
    # What grant_consume leaves for a whole file: a window and budget x size less the file.
    assert stored.resume_bytes_left == taken.grant.resume_bytes_left == int(2.5 * size) - size
    assert stored.resume_until == taken.grant.resume_until
    assert stored.last_downloaded_at == taken.grant.last_downloaded_at
    event = stored.events.get()
    assert (event.pk, event.outcome, event.ip, event.user_agent) == (
        taken.event_id,
        "served",
        "2001:db8::9",
        "curl",
    )


@pytest.mark.postgres
def test_stamped_files_and_links_are_found_but_not_taken_by_token(postgres_only):
    stamped = factories.GrantFactory(download=factories.DownloadFactory(stamp=True))
    link = factories.GrantFactory(download=factories.LinkDownloadFactory())
    for grant in (stamped, link):
        taken = grant_consume_by_token(token=grant.token)
        assert taken.grant.pk == grant.pk and taken.consumption is None
        assert DownloadGrant.objects.get(pk=grant.pk).download_count == 0
        assert not grant.events.exists()


@pytest.mark.postgres
def test_no_grant_by_token_is_none_and_impossible_tokens_never_reach_the_database(
    postgres_only, django_assert_num_queries
):
    factories.GrantFactory()
    with django_assert_num_queries(1):
        assert grant_consume_by_token(token="no-such-token") is None
    with django_assert_num_queries(0):
        assert grant_consume_by_token(token="bad\x00token") is None
        assert grant_consume_by_token(token="x" * 65) is None


@pytest.mark.postgres
def test_a_download_given_back_leaves_the_count_and_says_it_failed(postgres_only):
    grant = factories.GrantFactory(download_limit=1)
    taken = grant_consume_by_token(token=grant.token)
    grant_consume_undo(taken=taken)
    assert DownloadGrant.objects.get(pk=grant.pk).download_count == 0
    assert list(grant.events.values_list("outcome", flat=True)) == ["failed"]
    assert grant_consume_by_token(token=grant.token).consumption.allowed


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_downloads_by_token_with_seven_left_serve_exactly_seven(postgres_only):
    grant = factories.GrantFactory(download_limit=10, download_count=3)
    results = at_once(50, lambda _: grant_consume_by_token(token=grant.token).consumption.allowed)
    assert results.count(True) == 7 and len(results) == 50
    assert DownloadGrant.objects.get(pk=grant.pk).download_count == 10
    outcomes = list(DownloadEvent.objects.filter(grant=grant).values_list("outcome", flat=True))
    assert (outcomes.count("served"), outcomes.count("limit_reached")) == (7, 43)


class TestConsumeMany:
    def test_one_download_is_taken_from_each_grant_and_each_attempt_logged(self):
        order = factories.paid_order_with_files(lines=2, attached=1)
        grants = list(DownloadGrant.objects.filter(order=order))
        for grant in grants:
            DownloadGrant.objects.filter(pk=grant.pk).update(download_limit=5, download_count=1)
            grant.refresh_from_db()
        taken = grants_consume_many(grants=grants, ip="203.0.113.9", user_agent="zip")
        assert {grant.pk for grant in taken} == {grant.pk for grant in grants}
        assert set(DownloadGrant.objects.values_list("download_count", flat=True)) == {2}
        events = DownloadEvent.objects.filter(outcome="served", user_agent="zip")
        assert events.count() == len(grants)

    def test_a_grant_that_lost_its_last_download_meanwhile_is_left_out_and_logged(self):
        fresh = factories.GrantFactory(download_limit=3)
        spent = factories.GrantFactory(download_limit=1)
        stale = DownloadGrant.objects.get(pk=spent.pk)  # read while it looked available
        grant_consume(grant=spent)
        taken = grants_consume_many(grants=[fresh, stale])
        assert taken == [fresh]
        assert DownloadGrant.objects.get(pk=spent.pk).download_count == 1
        assert list(stale.events.values_list("outcome", flat=True).order_by("outcome")) == [
            "limit_reached",
            "served",
        ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_download_alls_with_seven_left_take_exactly_seven(postgres_only):
    grant = factories.GrantFactory(download_limit=10, download_count=3)
    other = factories.GrantFactory(order=grant.order, download_limit=None)
    taken = at_once(
        50,
        lambda mine: sum(g.pk == grant.pk for g in grants_consume_many(grants=mine)),
        setup=lambda _: list(DownloadGrant.objects.filter(pk__in=[grant.pk, other.pk])),
    )

    assert len(taken) == 50 and sum(taken) == 7
    assert DownloadGrant.objects.get(pk=grant.pk).download_count == 10
    assert DownloadGrant.objects.get(pk=other.pk).download_count == 50


class TestResumeRule:
    """A resume (Range not from byte 0) is free only while the window a counted download
    opened lasts and its bytes fit in the budget, taken by one conditional UPDATE."""

    def test_a_count_opens_the_window_with_the_budget_less_what_it_served(self, settings):
        settings.DOWNLOADS_RESUME_WINDOW, settings.DOWNLOADS_RESUME_BUDGET = 3600, 2
        grant = factories.GrantFactory(download_limit=3)
        before = timezone.now()
        assert grant_consume(grant=grant, size=1000).counted
        grant.refresh_from_db()
        assert grant.resume_bytes_left == 1000
        assert before + timedelta(seconds=3600) <= grant.resume_until
        assert grant.resume_until <= timezone.now() + timedelta(seconds=3600)
        grant_consume(grant=grant, size=1000, length=400, resume=True)  # fits: free
        assert grant_consume(grant=grant, size=1000, length=10).counted  # from byte 0
        grant.refresh_from_db()
        assert (grant.download_count, grant.resume_bytes_left) == (2, 1990)

    def test_a_resume_that_fits_is_free_and_spends_the_budget(self):
        grant = factories.GrantFactory(download_limit=1)
        grant_consume(grant=grant, size=1000)
        result = grant_consume(grant=grant, size=1000, length=600, resume=True)
        assert result.allowed and not result.counted
        grant.refresh_from_db()
        assert (grant.download_count, grant.resume_bytes_left) == (1, 400)
        assert list(grant.events.values_list("outcome", flat=True)) == ["served"]
        # Past the budget it counts, and the limit refuses it.
        result = grant_consume(grant=grant, size=1000, length=600, resume=True)
        assert result.outcome == DownloadEvent.Outcome.LIMIT_REACHED and result.counted
        grant.refresh_from_db()
        assert (grant.download_count, grant.resume_bytes_left) == (1, 400)

    def test_a_resume_without_a_window_counts(self):
        grant = factories.GrantFactory(download_limit=2)
        assert grant_consume(grant=grant, size=1000, length=600, resume=True).counted
        grant.refresh_from_db()
        assert (grant.download_count, grant.resume_bytes_left) == (1, 1400)
        DownloadGrant.objects.filter(pk=grant.pk).update(resume_until=timezone.now())
        assert grant_consume(grant=grant, size=1000, length=1, resume=True).counted
        assert DownloadGrant.objects.get(pk=grant.pk).download_count == 2

    def test_a_resume_of_an_unknown_size_always_counts(self):
        grant = factories.GrantFactory(download_limit=None)
        grant_consume(grant=grant)
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == 0
        assert grant_consume(grant=grant, resume=True).counted
        assert grant_consume(grant=grant, size=None, length=5, resume=True).counted
        assert DownloadGrant.objects.get(pk=grant.pk).download_count == 3

    def test_a_resume_of_nothing_takes_nothing(self):
        grant = factories.GrantFactory(download_limit=1)
        result = grant_consume(grant=grant, size=1000, length=0, resume=True)
        assert result.allowed and not result.counted
        assert DownloadGrant.objects.get(pk=grant.pk).download_count == 0

    @pytest.mark.parametrize(
        "state",
        [{"revoked_at": timezone.now()}, {"expires_at": timezone.now() - timedelta(seconds=1)}],
    )
    def test_a_revoked_or_expired_grant_gets_no_free_resume(self, state):
        grant = factories.GrantFactory(download_limit=5)
        grant_consume(grant=grant, size=1000)
        DownloadGrant.objects.filter(pk=grant.pk).update(**state)
        grant.refresh_from_db()
        result = grant_consume(grant=grant, size=1000, length=10, resume=True)
        assert not result.allowed
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == 1000

    def test_a_download_all_closes_the_window(self):
        grant = factories.GrantFactory(download_limit=5)
        grant_consume(grant=grant, size=1000)
        grants_consume_many(grants=[DownloadGrant.objects.get(pk=grant.pk)])
        assert grant_consume(grant=grant, size=1000, length=10, resume=True).counted
        assert DownloadGrant.objects.get(pk=grant.pk).download_count == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_resumes_with_budget_for_five_get_exactly_five_free(postgres_only):
    grant = factories.GrantFactory(
        download_limit=1,
        download_count=1,
        resume_until=timezone.now() + timedelta(hours=1),
        resume_bytes_left=500,
    )
    results = at_once(
        20,
        lambda mine: grant_consume(grant=mine, size=1000, length=100, resume=True),
        setup=lambda _: DownloadGrant.objects.get(pk=grant.pk),
    )

    assert len(results) == 20
    assert sum(result.allowed and not result.counted for result in results) == 5
    assert sum(result.outcome == "limit_reached" for result in results) == 15
    reloaded = DownloadGrant.objects.get(pk=grant.pk)
    assert (reloaded.download_count, reloaded.resume_bytes_left) == (1, 0)
