#!/usr/bin/env bash
# Make sure a local PostgreSQL is running on 127.0.0.1:5432 with role/database
# "downloads" (password "downloads", CREATEDB so the test runner can create test
# databases). Idempotent: on a machine where it already ran it only checks.
#
# Works without systemd (Debian 12 container, run as root):
#   - installs Debian's "postgresql" package if it is missing,
#   - creates cluster <version>/main if pg_lsclusters shows none,
#   - starts it with pg_ctlcluster, waits for it,
#   - creates the role and database as the "postgres" OS user (peer auth).
# Clients then log in over TCP with the password (Debian's default pg_hba.conf
# uses scram-sha-256 for 127.0.0.1/32).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
DB_USER=downloads
DB_PASS=downloads
DB_NAME=downloads
DATABASE_URL="postgres://${DB_USER}:${DB_PASS}@${PG_HOST}:${PG_PORT}/${DB_NAME}"

export DEBIAN_FRONTEND=noninteractive
# A UTF-8 locale for clusters created here (and by the package's postinst):
# with no locale set, initdb would pick C/SQL_ASCII, which Django can't use.
export LANG=C.UTF-8 LC_ALL=C.UTF-8

log() { printf 'ensure_postgres: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

port_open() { (exec 3<>"/dev/tcp/${PG_HOST}/${PG_PORT}") 2>/dev/null; }

as_postgres() {
    # cd / so psql doesn't warn about an unreadable working directory
    (cd / && if command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi)
}

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@"; }

# Fast path: everything is already in place if we can log in over TCP with the
# password and the role can create databases.
app_login_ok() {
    command -v psql >/dev/null || return 1
    local out
    out=$(PGPASSWORD="$DB_PASS" PGCONNECT_TIMEOUT=5 psql -X -qAt -w \
        -h "$PG_HOST" -p "$PG_PORT" -U "$DB_USER" -d "$DB_NAME" \
        -c "select rolcreatedb::text || ',' || pg_encoding_to_char(d.encoding)
              from pg_roles r, pg_database d
             where r.rolname = current_user and d.datname = 'template1'" 2>/dev/null) || return 1
    [[ "$out" == "true,UTF8" ]]
}

wait_ready() {
    local i
    for i in $(seq 1 60); do
        if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
            return 0
        fi
        sleep 1
    done
    return 1
}

apt_install() {
    # apt-get update only when the package lists don't know the package yet,
    # or when an install from stale lists fails.
    if ! apt-cache show "$@" >/dev/null 2>&1; then
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends "$@" || {
        apt-get update -q
        apt-get install -y -q --no-install-recommends "$@"
    }
}

if port_open && app_login_ok; then
    log "PostgreSQL on ${PG_HOST}:${PG_PORT} already set up"
    echo "DATABASE_URL=${DATABASE_URL}"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    die "must run as root to install/start PostgreSQL or create the role (or set it up by hand)"
fi

# 1. Install the server if absent.
if ! command -v pg_lsclusters >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing PostgreSQL (apt-get install postgresql)"
    apt_install postgresql
fi

# 2. Make sure a cluster exists on our port and is running.
if ! port_open; then
    cluster=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1 " " $2; exit}')
    if [[ -z "$cluster" ]]; then
        if [[ -n "$(pg_lsclusters -h 2>/dev/null)" ]]; then
            pg_lsclusters >&2
            die "PostgreSQL clusters exist, but none on port ${PG_PORT}"
        fi
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        log "creating cluster ${version}/main"
        pg_createcluster --locale C.UTF-8 --port "$PG_PORT" "$version" main
        cluster="$version main"
    fi
    read -r version name <<<"$cluster"
    log "starting cluster ${version}/${name} (pg_ctlcluster, no systemd)"
    # "start" fails if it is already running (e.g. on another address); tolerate
    # that and let wait_ready decide.
    pg_ctlcluster "$version" "$name" start || log "pg_ctlcluster start returned $?"
fi

if ! wait_ready; then
    pg_lsclusters >&2 || true
    tail -n 30 /var/log/postgresql/postgresql-*-main.log >&2 2>/dev/null || true
    die "PostgreSQL is not accepting connections on ${PG_HOST}:${PG_PORT}"
fi

if app_login_ok; then
    log "PostgreSQL ready"
    echo "DATABASE_URL=${DATABASE_URL}"
    exit 0
fi

# 3. Role and database (as the postgres superuser over the local socket).
id postgres >/dev/null 2>&1 || die "no 'postgres' OS user; is the server local?"

if [[ "$(psql_admin -Atc "select count(*) from pg_roles where rolname = '${DB_USER}'")" == "0" ]]; then
    log "creating role ${DB_USER}"
    psql_admin -c "create role ${DB_USER} login createdb password '${DB_PASS}'"
else
    # Role exists but the fast path failed: reset its attributes and password.
    log "updating role ${DB_USER} (login, createdb, password)"
    psql_admin -c "alter role ${DB_USER} login createdb password '${DB_PASS}'"
fi

if [[ "$(psql_admin -Atc "select count(*) from pg_database where datname = '${DB_NAME}'")" == "0" ]]; then
    log "creating database ${DB_NAME}"
    psql_admin -c "create database ${DB_NAME} owner ${DB_USER} encoding 'UTF8' template template0"
else
    psql_admin -c "alter database ${DB_NAME} owner to ${DB_USER}"
fi

# Test databases are copied from template1: it must be UTF8. A cluster that
# was created under the C/POSIX locale has SQL_ASCII; rebuild template1 then.
if [[ "$(psql_admin -Atc "select pg_encoding_to_char(encoding) from pg_database where datname = 'template1'")" != "UTF8" ]]; then
    log "template1 is not UTF8; recreating it from template0 as UTF8/C.UTF-8"
    psql_admin -d postgres <<'SQL'
update pg_database set datistemplate = false where datname = 'template1';
drop database template1;
create database template1 with template template0 encoding 'UTF8'
    lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8' is_template true;
SQL
fi

# 4. Check that a password login over TCP works (pg_hba host rule for 127.0.0.1).
if ! app_login_ok; then
    psql_admin -d postgres -c "select line_number, type, database, user_name, address, auth_method
                                 from pg_hba_file_rules" >&2 || true
    die "cannot log in as ${DB_USER} over ${PG_HOST}:${PG_PORT} with a password; check pg_hba.conf"
fi

log "PostgreSQL ready"
echo "DATABASE_URL=${DATABASE_URL}"
