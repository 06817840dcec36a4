#!/bin/bash
# Entrypoint of the e2e PostgreSQL image: initdb on first start, then postgres as PID 1.
# See the Dockerfile beside it for the environment it reads.
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data/pgdata}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  if [[ -z ${POSTGRES_PASSWORD:-} ]]; then
    echo "cerebelum-postgres: $PGDATA is empty and POSTGRES_PASSWORD is not set" >&2
    exit 1
  fi
  initdb --pgdata="$PGDATA" --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  # initdb only lets in 127.0.0.1 and ::1 over TCP; pods connect from the pod network.
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [[ $db != postgres ]]; then
    ident=${db//\"/\"\"}
    owner=${user//\"/\"\"}
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$ident" "$owner" |
      postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "cerebelum-postgres: initialised $PGDATA (user $user, database $db)" >&2
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 "$@"
