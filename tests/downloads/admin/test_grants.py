"""Grants and the download log in the back office: grants' search, state filters and the
bulk actions of the API, and where each stamped copy stands (flagging PDFs delivered
unstamped); the log read-only, filtered, and exported as CSV for support and disputes."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from downloads.models import DownloadGrant, StampedCopy
from downloads.services.stamping import stamped_copy_make
from tests import factories, pdfs
from tests.downloads.admin.conftest import action, messages_of

pytestmark = pytest.mark.django_db


# --- Grants ---------------------------------------------------------------------------------------


GRANTS = reverse("admin:downloads_downloadgrant_changelist")


def listed(client, **params) -> set:
    response = client.get(GRANTS, params)
    assert response.status_code == 200
    return {grant.pk for grant in response.context["cl"].result_list}


@pytest.fixture
def grants(db):
    """Four grants in different states, on orders of different buyers and files."""
    now = timezone.now()
    make = factories.GrantFactory
    return {
        "active": make(
            order__email="ann@example.com",
            download=factories.DownloadFactory(media__filename="alpha.pdf"),
            download_count=1,
        ),
        "used_up": make(order__email="bob@example.com", download_count=5, download_limit=5),
        "expired": make(expires_at=now - timedelta(days=1)),
        "revoked": make(revoked_at=now),
    }


def test_search_by_order_number_email_and_filename(admin_client, grants):
    active = grants["active"]
    assert listed(admin_client, q=str(active.order.number)) == {active.pk}
    assert listed(admin_client, q="ann@example") == {active.pk}
    assert listed(admin_client, q="alpha.pdf") == {active.pk}
    assert listed(admin_client, q="no such thing") == set()


def test_an_autocomplete_term_with_a_nul_byte_is_answered_not_failed(admin_client, grants):
    # PostgreSQL refuses NUL in a parameter; the changelist's search form drops such a term,
    # the autocomplete view does not, so the admin strips it before querying.
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "ann\x00@",
            "app_label": "downloads",
            "model_name": "downloadgrant",
            "field_name": "order",
        },
    )
    assert response.status_code == 200
    assert [row["text"] for row in response.json()["results"]] == [str(grants["active"].order)]


@pytest.mark.parametrize("state", ["revoked", "used_up", "expired"])
def test_state_filters_pick_their_grants(admin_client, grants, state):
    assert listed(admin_client, **{state: "yes"}) == {grants[state].pk}
    assert grants[state].pk not in listed(admin_client, **{state: "no"})


def test_the_list_shows_counts_as_used_of_limit_and_the_state(admin_client, grants):
    html = admin_client.get(GRANTS).content.decode()
    assert "5 / 5" in html and "used up" in html and "expired" in html and "revoked" in html


def test_reset_sets_counts_to_zero_and_says_how_many_changed(admin_client, grants):
    selected = [grants["active"], grants["used_up"], grants["revoked"]]
    response = admin_client.post(GRANTS, action("reset", selected))
    assert messages_of(response) == ["Reset 2 grants. 1 already had no downloads."]
    assert set(DownloadGrant.objects.values_list("download_count", flat=True)) == {0}


def test_revoke_and_restore(admin_client, grants):
    selected = [grants["active"], grants["revoked"]]
    response = admin_client.post(GRANTS, action("revoke", selected, apply="1"))
    assert messages_of(response) == ["Revoked 1 grant. 1 was already revoked."]
    grants["active"].refresh_from_db()
    assert grants["active"].revoked_at is not None
    response = admin_client.post(GRANTS, action("restore", selected))
    assert messages_of(response) == ["Restored 2 grants."]
    assert not DownloadGrant.objects.filter(
        pk__in=[g.pk for g in selected], revoked_at__isnull=False
    ).exists()


def test_revoking_from_a_list_filtered_on_not_revoked_counts_what_was_chosen(admin_client, grants):
    # Revoking moves the grant out of the filtered queryset: counted after, it said "-1".
    response = admin_client.post(
        GRANTS + "?revoked=no", action("revoke", [grants["active"]], apply="1")
    )
    assert messages_of(response) == ["Revoked 1 grant."]


def test_extend_asks_for_days_then_extends_those_that_expire(admin_client, grants):
    selected = [grants["expired"], grants["active"]]
    form = admin_client.post(GRANTS, action("extend", selected))
    assert form.status_code == 200 and 'name="days"' in form.content.decode()
    before = timezone.now()
    response = admin_client.post(GRANTS, action("extend", selected, apply="1", days="7"))
    assert response.status_code == 302
    assert messages_of(response) == ["Extended by 7 days: 1 grant. 1 never expires."]
    grants["expired"].refresh_from_db()
    assert grants["expired"].expires_at >= before + timedelta(days=7)
    grants["active"].refresh_from_db()
    assert grants["active"].expires_at is None


def test_extend_by_zero_days_shows_the_services_message(admin_client, grants):
    response = admin_client.post(GRANTS, action("extend", [grants["expired"]], apply="1", days="0"))
    assert response.status_code == 200
    assert response.context["form"].errors["days"] == ["days must be between 1 and 36500."]


def test_the_change_page_buttons_run_the_actions_on_that_grant(admin_client, grants):
    grant = grants["used_up"]
    response = admin_client.post(
        reverse("admin:downloads_downloadgrant_run", args=[grant.pk, "reset"])
    )
    assert response["Location"] == reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    grant.refresh_from_db()
    assert grant.download_count == 0


def test_editing_a_grant_goes_through_grant_update(admin_client, grants):
    grant = grants["active"]
    url = reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    data = {"download_count": "2", "download_limit": "0", "expires_at_0": "", "expires_at_1": ""}
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "download_limit must be at least 1, or null for unlimited." in response.content.decode()
    grant.refresh_from_db()
    assert (grant.download_count, grant.download_limit) == (1, 5)
    data["download_limit"] = ""
    assert admin_client.post(url, data).status_code == 302
    grant.refresh_from_db()
    assert (grant.download_count, grant.download_limit) == (2, None)


def test_adding_a_grant_goes_through_grant_create_and_refuses_a_duplicate(admin_client, grants):
    grant = grants["active"]
    extra = factories.DownloadFactory(product=None)
    url = reverse("admin:downloads_downloadgrant_add")
    data = {"order": str(grant.order.pk), "download": str(extra.pk), "download_limit": "3"}
    assert admin_client.post(url, data).status_code == 302
    created = DownloadGrant.objects.get(download=extra)
    assert (created.line, created.download_limit) == (None, 3)
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "This order already has a grant for this download." in response.content.decode()
    assert DownloadGrant.objects.filter(download=extra).count() == 1


def test_the_grant_token_is_never_shown(admin_client, grants):
    grant = grants["active"]
    html = admin_client.get(
        reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    ).content.decode()
    assert grant.token not in html


def test_grants_cannot_be_deleted_here_only_revoked(admin_client, grants):
    used, unused = grants["active"], grants["expired"]
    factories.EventFactory(grant=used)
    for grant in (used, unused):
        url = reverse("admin:downloads_downloadgrant_delete", args=[grant.pk])
        assert admin_client.post(url, {"post": "yes"}).status_code == 403
        page = admin_client.get(reverse("admin:downloads_downloadgrant_change", args=[grant.pk]))
        assert url not in page.content.decode()
    assert DownloadGrant.objects.filter(pk__in=[used.pk, unused.pk]).count() == 2
    listing = admin_client.get(GRANTS)
    offered = [name for name, _ in listing.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in offered and "revoke" in offered
    response = admin_client.post(GRANTS, action("delete_selected", [unused], post="yes"))
    assert messages_of(response) == ["No action selected."]
    assert DownloadGrant.objects.filter(pk=unused.pk).exists()


def run_button(client, grant, name, **data):
    return client.post(reverse("admin:downloads_downloadgrant_run", args=[grant.pk, name]), data)


def buttons(client, grant) -> dict[str, bool]:
    """The change page's action buttons: name → destructive (red)."""
    response = client.get(reverse("admin:downloads_downloadgrant_change", args=[grant.pk]))
    return {item["name"]: item["destructive"] for item in response.context["object_actions"]}


@pytest.mark.parametrize(
    "state, offered",
    [
        ("active", {"reset": False, "revoke": True}),
        ("used_up", {"reset": False, "revoke": True}),
        ("expired", {"extend": False, "revoke": True}),
        ("revoked", {"restore": False}),
    ],
)
def test_the_change_page_offers_only_the_buttons_the_grants_state_allows(
    admin_client, grants, state, offered
):
    assert buttons(admin_client, grants[state]) == offered


def test_revoke_is_red_and_asks_for_confirmation_before_it_takes_effect(admin_client, grants):
    grant = grants["active"]
    change = reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    html = admin_client.get(change).content.decode()
    assert re.search(r'class="object-action-button destructive">Revoke…</button>', html)
    page = run_button(admin_client, grant, "revoke")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="destructive" value="Yes, revoke"' in html
    assert f'href="{change}" class="button cancel-link"' in html  # back to the grant
    grant.refresh_from_db()
    assert grant.revoked_at is None
    done = run_button(admin_client, grant, "revoke", apply="1")
    assert done["Location"] == change
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert buttons(admin_client, grant) == {"restore": False, "reset": False}


def test_a_button_the_state_no_longer_allows_changes_nothing(admin_client, grants):
    grant = grants["revoked"]  # a page left open on it while it was active
    response = run_button(admin_client, grant, "revoke", apply="1")
    assert response["Location"] == reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    assert messages_of(response) == ["Revoke: not possible for this download grant now."]
    before = grant.revoked_at
    grant.refresh_from_db()
    assert grant.revoked_at == before


def test_the_bulk_revoke_asks_for_confirmation_first(admin_client, grants):
    page = admin_client.post(GRANTS, action("revoke", [grants["active"], grants["used_up"]]))
    assert page.status_code == 200
    assert "Yes, revoke" in page.content.decode()
    assert not DownloadGrant.objects.filter(revoked_at__isnull=False).exclude(
        pk=grants["revoked"].pk
    )


# --- Download log ---------------------------------------------------------------------------------


EVENTS = reverse("admin:downloads_downloadevent_changelist")
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
    response = admin_client.get(EVENTS, params)
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
    html = admin_client.get(EVENTS, {"outcome__exact": "served"}).content.decode()
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


# --- Stamping: where each grant's stamped copy stands ----------------------------------------------


def stamped_pdf(content=None, filename="Guide.pdf"):
    media = factories.MediaFactory(content=content or pdfs.book(2), filename=filename)
    return factories.DownloadFactory(media=media, stamp=True)


@pytest.fixture
def stamping(paid_order):
    """Grants of stamped PDFs whose copies are being prepared, ready, and unstampable (an
    encrypted PDF), and one of a file that is not stamped."""
    pending = paid_order(stamped_pdf().product, email="pending@example.com").grants.get()
    ready = paid_order(stamped_pdf().product, email="ready@example.com").grants.get()
    locked = stamped_pdf(pdfs.encrypted(), "Locked.pdf")
    unstampable = paid_order(locked.product, email="locked@example.com").grants.get()
    for grant in (ready, unstampable):
        stamped_copy_make(copy_id=StampedCopy.objects.get(grant=grant).pk)
    plain = paid_order(factories.DownloadFactory().product).grants.get()
    return {"pending": pending, "ready": ready, "unstampable": unstampable, "plain": plain}


def stamping_cells(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r'<td class="field-stamping">(.*?)</td>', html, re.S)
    ]


def test_the_list_shows_each_grants_stamped_copy(admin_client, stamping):
    html = admin_client.get(GRANTS).content.decode()
    cells = stamping_cells(html)
    assert sorted(cells, key=str) == sorted(
        [
            "Being prepared",
            "Ready",
            "Delivered unstamped: The PDF is encrypted with a password.",
            "-",
        ]
    )


def test_the_stamping_filter_finds_the_pdfs_delivered_unstamped(admin_client, stamping):
    assert listed(admin_client, stamping="unstampable") == {stamping["unstampable"].pk}
    assert listed(admin_client, stamping="ready") == {stamping["ready"].pk}
    assert listed(admin_client, stamping="pending") == {stamping["pending"].pk}
    assert len(listed(admin_client)) == 4
    html = admin_client.get(GRANTS).content.decode()
    assert "By stamping" in html and "Delivered unstamped" in html


def test_an_encrypted_pdf_is_flagged_on_its_grants_page_with_the_reason(admin_client, stamping):
    grant = stamping["unstampable"]
    html = admin_client.get(
        reverse("admin:downloads_downloadgrant_change", args=[grant.pk])
    ).content.decode()
    assert "Delivered unstamped" in html
    assert "The PDF is encrypted with a password." in html


def test_actions_work_on_a_list_filtered_by_stamping(admin_client, stamping):
    grant = stamping["unstampable"]
    response = admin_client.post(
        GRANTS + "?stamping=unstampable", action("revoke", [grant], apply="1")
    )
    assert messages_of(response) == ["Revoked 1 grant."]
    grant.refresh_from_db()
    assert grant.revoked_at is not None


@pytest.mark.parametrize("rows", [1, 30])
def test_the_stamping_column_takes_no_query_of_its_own(
    admin_client, django_assert_num_queries, paid_order, rows
):
    download = stamped_pdf()
    for n in range(rows):
        paid_order(download.product, email=f"buyer{n}@example.com")
    # session, user, the count, the unfiltered count, the page (each grant's copy joined in)
    with django_assert_num_queries(5):
        response = admin_client.get(GRANTS)
    assert stamping_cells(response.content.decode()) == ["Being prepared"] * rows
