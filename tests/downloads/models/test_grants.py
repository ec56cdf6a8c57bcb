"""Grant models: the database keeps counts and grants sound; a grant's availability is one
rule in every form (row, filter, back-office state, labels)."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from downloads.models import REFUSAL_LABELS, REFUSAL_ORDER, DownloadGrant
from downloads.selectors import GRANT_STATES, grant_state_q
from tests import factories

pytestmark = pytest.mark.django_db


def test_grant_count_cannot_go_negative():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=-1)


def test_one_grant_per_order_line_and_download():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=grant.line, download=grant.download)


def test_one_order_level_grant_per_download():
    grant = factories.GrantFactory(line=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=None, download=grant.download)


def test_tokens_are_long_random_and_distinct():
    a, b = factories.GrantFactory.create_batch(2)
    assert len(a.order.access_token) == 32 and a.order.access_token != b.order.access_token
    assert len(a.token) >= 43 and a.token != b.token


@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_a_grants_refusal_on_the_row_is_the_first_refusal_filter_that_matches_it(state):
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    rows = DownloadGrant.objects.filter(pk=grant.pk)
    matching = [r for r in REFUSAL_ORDER if rows.filter(DownloadGrant.refusal_q(r, now)).exists()]
    assert grant.refusal(now) == (matching[0] if matching else None)
    assert rows.filter(DownloadGrant.available_q(now)).exists() is (grant.refusal(now) is None)


@pytest.mark.parametrize("state", factories.GRANT_STATES)
def test_the_back_offices_state_filters_are_the_refusal_filters(state):
    now = timezone.now()
    grant = factories.grant_in_state(state, now)
    rows = DownloadGrant.objects.filter(pk=grant.pk)
    in_states = {name for name in GRANT_STATES if rows.filter(grant_state_q(name, now=now))}
    assert in_states == {
        REFUSAL_LABELS[r].filter
        for r in REFUSAL_ORDER
        if rows.filter(DownloadGrant.refusal_q(r, now))
    }


def test_every_refusal_has_its_labels():
    assert set(REFUSAL_LABELS) == set(REFUSAL_ORDER)
