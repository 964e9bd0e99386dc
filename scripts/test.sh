#!/usr/bin/env bash
# Runs the whole test suite: makes sure PostgreSQL is up and the S3-compatible test server
# (s3s-fs) is installed, then runs every test with nextest.
# Safe to run on a fresh machine and repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

./scripts/ensure-postgres.sh

# `cargo install` puts binaries here; the tests look for s3s-fs on PATH.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Object storage tests run against s3s-fs, which checks SigV4 signatures. 0.14.1 is the
# newest release that builds with this toolchain.
if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing s3s-fs"
    cargo install s3s-fs@0.14.1 --features binary --locked
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

# Schemathesis drives the API from its OpenAPI document in tests/api/schema_conformance.rs.
if ! command -v st >/dev/null 2>&1; then
    echo "installing schemathesis"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

# Webhook tests verify every delivery with the Standard Webhooks reference library.
if ! python3 -c "import standardwebhooks" >/dev/null 2>&1; then
    echo "installing standardwebhooks"
    python3 -m pip install --quiet --disable-pip-version-check "standardwebhooks==1.1.0"
fi

# Mail tests send to a real SMTP server (aiosmtpd, tests/smtp_sink.py).
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    echo "installing aiosmtpd"
    python3 -m pip install --quiet --disable-pip-version-check "aiosmtpd==1.4.6"
fi

# The web UI's tests drive a headless Chromium through chromedriver.
if [ ! -x /usr/bin/chromedriver ]; then
    echo "installing chromium and chromium-driver"
    apt-get update && apt-get install -y chromium chromium-driver
fi

# Databases left behind by an interrupted earlier run: only those nobody is connected to and
# created more than two hours ago, so a suite running beside this one keeps its databases.
# A database dropped meanwhile has no file to look at (missing_ok), and a failed look skips
# the clean-up rather than the tests.
{ psql "$TEST_DATABASE_URL" -Atqc \
    "SELECT d.datname FROM pg_database d
     WHERE d.datname LIKE 'catalogd\_test\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
       AND (pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification
           < now() - interval '2 hours'" \
    2>/dev/null || true; } |
    while read -r db; do
        psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
    done

cargo nextest run --workspace --no-fail-fast "$@"
