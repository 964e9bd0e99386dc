#!/usr/bin/env bash
# Product API on a large catalog: fills a fresh database with N (default 100,000) synthetic
# products (scripts/bench/products.sql), serves it, and times the product endpoints over HTTP.
# With EXPLAIN=1 it also writes the plan of every catalog query the requests ran, as
# PostgreSQL executed them (auto_explain, from the server log), to $OUT/plans.txt.
#
#   cargo build --release && EXPLAIN=1 ./scripts/bench-products.sh
#
# Knobs: N, BENCH_DB (catalogd_bench), BENCH_BIN (target/release/catalogd), RUNS (50),
# PG_LOG (the server log, for EXPLAIN), OUT (a temp directory).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
DB=${BENCH_DB:-catalogd_bench}
RUNS=${RUNS:-50}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
BIN=${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/catalogd}
PORT=${PORT:-18091}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PG_LOG=${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log 2>/dev/null | tail -1)}

./scripts/ensure-postgres.sh
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export DATABASE_URL="$PG/$DB" CATALOGD_DATA_DIR="$OUT/data" CATALOGD_PASSWORD="bench password 123"
export CATALOGD_LOG_FORMAT=text RUST_LOG=warn
"$BIN" migrate >/dev/null
ws=$("$BIN" user create --email bench@example.com --name Bench --workspace Bench --json | jq -r .workspace.id)
key=$("$BIN" api-key create --workspace "$ws" --name bench --role viewer --json | jq -r .key)
store=$(cat /proc/sys/kernel/random/uuid)

echo "filling $N products…"
start=$(date +%s)
psql -q "$DATABASE_URL" -v ws="$ws" -v store="$store" -v n="$N" -f scripts/bench/products.sql
echo "filled in $(( $(date +%s) - start )) s: $(psql -Atq "$DATABASE_URL" -c "SELECT (SELECT count(*) FROM products) || ' products, ' || (SELECT count(*) FROM product_versions) || ' versions'")"

if [ "${EXPLAIN:-0}" = 1 ]; then
    psql -q "$DATABASE_URL" -c "ALTER DATABASE $DB SET session_preload_libraries = 'auto_explain'" \
        -c "ALTER DATABASE $DB SET auto_explain.log_min_duration = 0" \
        -c "ALTER DATABASE $DB SET auto_explain.log_analyze = on" \
        -c "ALTER DATABASE $DB SET auto_explain.log_buffers = on"
fi

"$BIN" serve --listen "127.0.0.1:$PORT" >"$OUT/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

api="http://127.0.0.1:$PORT/api/v1"
product=$(psql -Atq "$DATABASE_URL" -c "SELECT p.id FROM products p JOIN product_versions v ON v.product_id = p.id AND v.state = 'proposed' ORDER BY p.sku LIMIT 1")
to=$(psql -Atq "$DATABASE_URL" -c "SELECT id FROM product_versions WHERE product_id = '$product' AND state = 'proposed'")
deep=$(printf '"SKU-%06d"' $(( N * 9 / 10 )) | base64 | tr '+/' '-_' | tr -d '=')

declare -a names=(
    "list, first page"
    "list, page at 90 %"
    "search q=4242 (rare)"
    "search q=wool (1 in 8)"
    "missing=meta_description (all)"
    "missing=meta_description, store_view=de"
    "missing=short_description (1 in 1000)"
    "missing=short_description, store_view=fr"
    "missing=material (attribute, 1 in 1000)"
    "state=proposed"
    "state=approved, store_view=all"
    "removed=true"
    "detail"
    "versions"
    "diff (to, against parent)"
)
declare -a paths=(
    "/stores/$store/products"
    "/stores/$store/products?cursor=$deep"
    "/stores/$store/products?q=4242"
    "/stores/$store/products?q=wool"
    "/stores/$store/products?missing=meta_description"
    "/stores/$store/products?missing=meta_description&store_view=de"
    "/stores/$store/products?missing=short_description"
    "/stores/$store/products?missing=short_description&store_view=fr"
    "/stores/$store/products?missing=material"
    "/stores/$store/products?state=proposed"
    "/stores/$store/products?state=approved&store_view=all"
    "/stores/$store/products?removed=true"
    "/products/$product"
    "/products/$product/versions"
    "/products/$product/diff?to=$to"
)

log_from=0
[ -n "$PG_LOG" ] && log_from=$(stat -c %s "$PG_LOG")
printf '%-44s %6s %9s %9s\n' "request ($RUNS runs each)" items "p50 ms" "p95 ms"
for i in "${!paths[@]}"; do
    url="$api${paths[$i]}"
    items=$(curl -sf -H "authorization: Bearer $key" "$url" | jq 'if .items then (.items | length) else 1 end')
    runs=$RUNS
    if [ "${EXPLAIN:-0}" = 1 ]; then runs=1; else
        for _ in 1 2 3; do curl -s -o /dev/null -H "authorization: Bearer $key" "$url"; done
    fi
    for _ in $(seq 1 "$runs"); do
        curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $key" "$url"
    done | sort -n | awk -v name="${names[$i]}" -v items="$items" '{ t[NR] = $1 * 1000 }
        END { printf "%-44s %6s %9.1f %9.1f\n", name, items, t[int((NR + 1) / 2)], t[int(NR * 0.95 + 0.5)] }'
done

if [ "${EXPLAIN:-0}" = 1 ] && [ -n "$PG_LOG" ]; then
    tail -c +"$((log_from + 1))" "$PG_LOG" | awk '
        /LOG:  duration: .* plan:/ { if (keep) print block; block = $0; keep = 0; next }
        /LOG:  / && !/plan:/ { if (keep) print block; block = ""; keep = 0; next }
        { if (block != "") { block = block "\n" $0; if ($0 ~ /product/) keep = 1 } }
        END { if (keep) print block }' >"$OUT/plans.txt"
    psql -q "$PG/postgres" -c "ALTER DATABASE $DB RESET ALL"
    echo "plans: $OUT/plans.txt"
fi
