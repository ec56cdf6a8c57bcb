"""The buyers' words: every string of the buyer-facing pages and emails is translatable and
in the English catalogue (locale/en/LC_MESSAGES/django.po, compiled to the committed
django.mo), and plural forms come out right for one and for many."""

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.template import Context, Template
from django.utils import translation
from django.utils.translation.template import templatize

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "en" / "LC_MESSAGES"

# What buyers read: the account pages, the download problems, the store, the emails.
BUYER_TEMPLATES = [
    *sorted(
        path
        for folder in ("accounts", "registration", "emails", "downloads", "store")
        for path in (ROOT / "templates" / folder).iterdir()
    ),
    ROOT / "templates" / "base.html",
]
BUYER_MODULES = [
    ROOT / name
    for name in (
        "accounts/views.py",
        "accounts/order_markup.py",
        "accounts/templatetags/store.py",
        "downloads/views/delivery.py",
        "downloads/views/checkout.py",
        "downloads/emails.py",
        "downloads/selectors.py",
        "downloads/models/grants.py",
        "downloads/services/bundles.py",
    )
]
# Django's own gettext functions, as makemessages reads them.
KEYWORDS = {
    **DEFAULT_KEYWORDS,
    "gettext_lazy": None,
    "gettext_noop": None,
    "ngettext_lazy": (1, 2),
    "pgettext_lazy": ((1, "c"), 2),
    "npgettext_lazy": ((1, "c"), 2, 3),
}


def messages_of(path: Path) -> set:
    """The (context, msgid, msgid_plural) of every translatable string in a template or a
    module, read as makemessages reads them (templates through Django's templatize)."""
    source = path.read_text()
    if path.suffix != ".py":
        # templatize writes each message as a gettext call on its own, indentation aside.
        source = "\n".join(
            line.lstrip() for line in templatize(source, origin=str(path)).splitlines()
        )
    found = set()
    for _line, message, _comments, context in extract(
        "python", io.BytesIO(source.encode()), keywords=KEYWORDS
    ):
        singular, plural = (message if isinstance(message, tuple) else (message, None))[:2]
        found.add((context, singular, plural))
    return found


def catalogue() -> dict:
    with open(CATALOGUE / "django.po", "rb") as po:
        return {
            (message.context, *(message.id if isinstance(message.id, tuple) else (message.id,))): (
                message
            )
            for message in read_po(po)
            if message.id
        }


def test_the_english_catalogue_holds_every_buyer_facing_string_with_its_plural():
    entries = catalogue()
    missing = []
    for path in BUYER_TEMPLATES + BUYER_MODULES:
        for context, singular, plural in messages_of(path):
            key = (context, singular, plural) if plural else (context, singular)
            entry = entries.get(key)
            if entry is None or entry.fuzzy:
                missing.append(f"{path.relative_to(ROOT)}: {singular!r}")
            elif plural:  # English: the one form and the other
                assert entry.string == (singular, plural), singular
            else:
                assert entry.string == singular, singular
    assert missing == [], "run makemessages (README, “Buyers' words”)"


def test_the_catalogue_knows_the_buyer_pages_plurals():
    entries = catalogue()
    for singular, plural in [
        ("%(used)s of %(limit)s download used", "%(used)s of %(limit)s downloads used"),
        ("(%(days)s day left)", "(%(days)s days left)"),
        ("%(limit)s download", "%(limit)s downloads"),
        ("%(used)s of %(limit)s activation used", "%(used)s of %(limit)s activations used"),
        ("Licence key", "Licence keys"),
    ]:
        assert (None, singular, plural) in entries
    with open(CATALOGUE / "django.po", "rb") as po:
        header = read_po(po)
    assert header.plural_forms == "nplurals=2; plural=(n != 1);"
    assert str(header.locale) == "en"


def as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def as_key(message) -> tuple:
    return (message.context, *as_tuple(message.id))


def test_the_committed_compiled_catalogue_is_the_po_compiled():
    with open(CATALOGUE / "django.po", "rb") as po, open(CATALOGUE / "django.mo", "rb") as mo:
        source = {as_key(m): as_tuple(m.string) for m in read_po(po) if m.id and not m.fuzzy}
        compiled = {as_key(m): as_tuple(m.string) for m in read_mo(mo) if m.id}
    assert compiled == source, "run compilemessages (README, “Buyers' words”)"


TRANSLATE_BLOCKS = re.compile(
    r"\{%\s*blocktrans(?:late)?\b.*?%\}.*?\{%\s*endblocktrans(?:late)?\s*%\}"
    r"|\{%\s*trans(?:late)?\s.*?%\}",
    re.S,
)


@pytest.mark.parametrize("path", BUYER_TEMPLATES, ids=lambda path: path.name)
def test_no_buyer_template_holds_words_outside_a_translation(path):
    text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)
    text = TRANSLATE_BLOCKS.sub("", text)
    text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", text, flags=re.S)
    # Words people read inside tags: labels for screen readers, tooltips, alternatives.
    for attribute in re.findall(r'(?:aria-label|title|alt|placeholder)="([^"]*)"', text):
        assert not re.search(r"[A-Za-z]{2,}", attribute), attribute
    words = re.findall(r"[A-Za-z]{2,}", re.sub(r"<[^>]*>", " ", text))
    assert words == []


@pytest.mark.parametrize(
    ("count", "words"),
    [(1, "0 of 1 download used · (1 day left)"), (2, "0 of 2 downloads used · (2 days left)")],
)
def test_plural_forms_come_from_the_catalogue_for_one_and_many(count, words):
    template = Template(
        "{% load i18n %}"
        "{% blocktranslate trimmed count limit=n with used=0 %}"
        "{{ used }} of {{ limit }} download used{% plural %}"
        "{{ used }} of {{ limit }} downloads used{% endblocktranslate %} · "
        "{% blocktranslate trimmed count days=n %}({{ days }} day left){% plural %}"
        "({{ days }} days left){% endblocktranslate %}"
    )
    with translation.override(settings.LANGUAGE_CODE):
        assert template.render(Context({"n": count})) == words
        # The words come from the compiled catalogue, not from the source's fallback.
        catalog = translation.trans_real.translation(settings.LANGUAGE_CODE)._catalog
        assert ("%(used)s of %(limit)s download used", 0) in catalog
        assert ("(%(days)s day left)", 1) in catalog
