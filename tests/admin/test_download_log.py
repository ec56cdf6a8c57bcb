"""The download log: read-only, filtered, and exported as CSV for support and disputes."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests import factories

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:downloads_downloadevent_changelist")
EXPORT = reverse("admin:downloads_downloadevent_export")


def export(client, **params) -> list[dict]:
    response = client.get(EXPORT, params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="downloads-')
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def events(db):
    grant = factories.GrantFactory(order__email="ann@example.com", order__number=7001)
    other = factories.GrantFactory(order__email="bob@example.com", order__number=7002)
    now = timezone.now()
    return {
        "served": factories.EventFactory(grant=grant, ip="198.51.100.4", at=now),
        "refused": factories.EventFactory(
            grant=grant, outcome="limit_reached", at=now - timedelta(days=3)
        ),
        "other": factories.EventFactory(grant=other, ip="192.0.2.9", at=now - timedelta(days=40)),
    }


def test_the_log_is_read_only(admin_client, events):
    event = events["served"]
    assert admin_client.get(reverse("admin:downloads_downloadevent_add")).status_code == 403
    change = admin_client.get(reverse("admin:downloads_downloadevent_change", args=[event.pk]))
    assert change.status_code == 200
    assert change.context["has_change_permission"] is False
    delete = reverse("admin:downloads_downloadevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"q": "ann@example.com"}, {"served", "refused"}),
        ({"q": "198.51.100"}, {"served"}),
        ({"q": "7002"}, {"other"}),
        ({"outcome__exact": "limit_reached"}, {"refused"}),
        (
            {"at__gte": str(timezone.now().replace(microsecond=0) - timedelta(days=7))},
            {"served", "refused"},
        ),
        # the date hierarchy's month
        ({"at__year": str(timezone.now().year), "at__month": str(timezone.now().month)}, None),
    ],
)
def test_search_and_filters(admin_client, events, params, expected):
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    found = {name for name, event in events.items() if event in response.context["cl"].result_list}
    if expected is None:  # the date hierarchy: this month's events
        month = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        expected = {name for name, event in events.items() if event.at >= month}
    assert found == expected


def test_the_csv_export_holds_the_filtered_rows(admin_client, events):
    rows = export(admin_client, q="ann@example.com")
    assert [row["outcome"] for row in rows] == ["served", "limit_reached"]
    first = rows[0]
    grant = events["served"].grant
    assert first["order"] == "7001"
    assert first["email"] == "ann@example.com"
    assert first["file"] == grant.download.display_name
    assert first["product"] == grant.download.product.name
    assert first["ip"] == "198.51.100.4"
    assert first["user_agent"] == "pytest"
    assert first["grant"] == str(grant.pk)
    assert first["at"] == events["served"].at.isoformat()
    assert list(first) == [
        "at",
        "outcome",
        "order",
        "email",
        "product",
        "file",
        "ip",
        "user_agent",
        "grant",
    ]


def test_the_changelist_links_to_the_export_with_its_filters(admin_client, events):
    html = admin_client.get(CHANGELIST, {"outcome__exact": "served"}).content.decode()
    assert f'href="{EXPORT}?outcome__exact=served"' in html


def test_cells_a_spreadsheet_would_run_as_formulas_are_defused(admin_client, db):
    factories.EventFactory(user_agent='=HYPERLINK("http://evil.example")')
    (row,) = export(admin_client)
    assert row["user_agent"] == '\'=HYPERLINK("http://evil.example")'


def test_the_export_needs_a_staff_login(client, events):
    response = client.get(EXPORT)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("rows", [1, 50])
def test_the_export_streams_in_constant_queries(admin_client, django_assert_num_queries, rows):
    grant = factories.GrantFactory()
    factories.EventFactory.create_batch(rows, grant=grant)
    # session, user, the changelist's count and page, then the export's single SELECT
    with django_assert_num_queries(5):
        assert len(export(admin_client)) == rows
