#!/usr/bin/env bash
# Starts the machine's PostgreSQL if it is not accepting connections.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q; }

if ready; then exit 0; fi

echo "PostgreSQL is not accepting connections; starting it"
if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
elif command -v pg_ctl >/dev/null 2>&1 && [ -n "${PGDATA:-}" ]; then
    pg_ctl -D "$PGDATA" -l /tmp/postgres.log start
else
    echo "no PostgreSQL installation found (install postgresql, or set TEST_DATABASE_URL)" >&2
    exit 1
fi

for _ in $(seq 1 60); do
    if ready; then exit 0; fi
    sleep 0.5
done
echo "PostgreSQL did not start" >&2
exit 1
