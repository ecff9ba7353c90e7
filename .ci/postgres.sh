# A throwaway PostgreSQL server for the tests of a study shared through a database (tests/test_optuna.py):
# Debian's postgresql package (installed when missing), a cluster in a temporary folder that listens on a
# Unix socket there only (no TCP port to collide with), one database; JAXDESCENT_TEST_POSTGRES_URL names it.
# Sourced by .ci/run (under its set -euo pipefail); sets an EXIT trap that stops the server and removes
# the folder. Alone, to try it:  bash -c 'set -euo pipefail; source .ci/postgres.sh; psql "$JAXDESCENT_TEST_POSTGRES_URL" -c "select 1"'

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
    echo "== installing PostgreSQL (Debian's postgresql package)"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# PostgreSQL refuses to run as root: as root (CI) the server runs as the package's user postgres.
pg_as_owner=()
if [ "$(id -u)" -eq 0 ]; then
    pg_as_owner=(runuser -u postgres --)
fi
pg_dir=$(mktemp -d)
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir"
fi

stop_postgres() {
    "${pg_as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap stop_postgres EXIT

# trust: any local user may connect, as role postgres; the socket's folder is only the owner's (and root's).
# On a failure the log is shown before the trap removes it.
"${pg_as_owner[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; exit 1; }
"${pg_as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-c listen_addresses='' -k $pg_dir" start >/dev/null \
    || { cat "$pg_dir/server.log" >&2; exit 1; }
"${pg_as_owner[@]}" "$pg_bin/createdb" -h "$pg_dir" -U postgres jaxdescent_test
# The driver named: SQLAlchemy 2.1 takes postgresql:// for psycopg 3, 2.0 for psycopg2 (the test extra has psycopg2).
export JAXDESCENT_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@/jaxdescent_test?host=$pg_dir"
echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on $JAXDESCENT_TEST_POSTGRES_URL"
