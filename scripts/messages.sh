#!/usr/bin/env bash
# Regenerate the buyers' words: the English catalogue locale/en/LC_MESSAGES/django.po from
# every {% translate %}, {% blocktranslate %} and gettext() of the code (Django's
# makemessages), English as its own translation (each msgstr its msgid, plural forms
# included), then compile it to django.mo, which is committed: running the store needs no
# gettext tools. Run it after changing a buyer-facing string (tests/test_locale.py fails
# until you do). Needs GNU gettext (Debian's `gettext`: installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v msgen >/dev/null || ! command -v msgfmt >/dev/null; then
    apt-get install -y gettext >/dev/null
fi
PYTHON=${PYTHON:-.venv/bin/python}
PO=locale/en/LC_MESSAGES/django.po
export DJANGO_DEBUG=1  # makemessages loads the settings; no secret key needed for this

mkdir -p locale
"$PYTHON" manage.py makemessages --locale en --no-obsolete --add-location file \
    --ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' \
    --ignore '*.egg-info/*' >/dev/null
# msgmerge guesses ("fuzzy") a new string's words from a similar old one: in English every
# string is its own translation, so drop the guesses and the old words, then fill each in.
msgattrib --clear-fuzzy --clear-previous --output-file "$PO" "$PO"
msgfilter --keep-header --input "$PO" --output-file "$PO" sed -e d
msgen --output-file "$PO" "$PO"
"$PYTHON" manage.py compilemessages --locale en >/dev/null
echo "Wrote $PO and its django.mo"
