#!/usr/bin/env bash
# Load benchmarks for quire: builds the release binary, seeds fresh PostgreSQL and SQLite
# databases, drives the server with wrk and prints a Markdown report (also written to
# bench/results/<date>-<host>.md). See bench/README.md.
#
#   bench/run.sh            every scenario: 5 s of warm-up, then 15 s measured
#   bench/run.sh --quick    every scenario for 2 s, report not kept (CI runs this)
#
# Settings (environment): BENCH_THREADS (2), BENCH_CONNECTIONS (32), BENCH_WARMUP (5),
# BENCH_DURATION (15), BENCH_LOGIN_CONNECTIONS (8, the login storm of scenario 6),
# BENCH_PAIRS (3, back-to-back runs of quire and the reference servers for their ratios),
# BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432), BENCH_PORT (18080, and the next
# two ports for the reference servers: the ceilings, and stock async-graphql).
#
# It exits non-zero if any scenario sent no request, or saw a non-2xx response, a socket
# error or a GraphQL error. Targets missed are reported, not failed: speed is judged from
# the report.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
fi
threads="${BENCH_THREADS:-2}"
connections="${BENCH_CONNECTIONS:-32}"
login_connections="${BENCH_LOGIN_CONNECTIONS:-8}"
warmup="${BENCH_WARMUP:-5}"
duration="${BENCH_DURATION:-15}"
pairs="${BENCH_PAIRS:-3}"
if [ "$quick" = 1 ]; then
    warmup=0
    duration=2
    pairs=1
fi
pg_server="${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_PORT:-18080}"
ceiling_port=$((port + 1))
stock_port=$((port + 2))
users=10000
posts=100000
votes=200000
email="bench-runner@example.com"
password="correct horse battery staple"

log() { printf '\n=== %s\n' "$*" >&2; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v jq >/dev/null || missing+=(jq)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log "building the release binaries"
cargo build --release --quiet --bin quire --example ceiling --example stock
quire="$PWD/target/release/quire"
ceiling="$PWD/target/release/examples/ceiling"
stock="$PWD/target/release/examples/stock"

work="$(mktemp -d)"
pids=()
pg_db="quire_bench_$$"
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pg_url="$pg_server/$pg_db"
sqlite_url="sqlite://$work/bench.db"
psql -q "$pg_server/postgres" -c "CREATE DATABASE $pg_db" >/dev/null

for url in "$pg_url" "$sqlite_url"; do
    log "seeding ${url%%:*}: $users users, $posts posts, $votes votes"
    DATABASE_URL="$url" QUIRE_LOG=warn "$quire" seed --users "$users" --posts "$posts" --votes "$votes" >&2
done

base="http://127.0.0.1:$port"
server_pid=""

# Starts quire on `$1` with brute-force protection off, as a load test signs in far more
# often than any person.
start_quire() {
    DATABASE_URL="$1" QUIRE_LISTEN="127.0.0.1:$port" QUIRE_ENV=production QUIRE_LOG=warn \
        QUIRE_RATE_LIMIT=off QUIRE_ACCESS_TOKEN_TTL=2h QUIRE_JWT_SECRET="bench-signing-key-of-at-least-32-bytes" \
        "$quire" serve 2>"$work/quire.log" &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 1 100); do
        curl -sf "$base/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$work/quire.log" >&2
    echo "quire did not start" >&2
    exit 1
}

stop_quire() {
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
}

gql() { # body [token]
    local auth=()
    if [ -n "${2:-}" ]; then auth=(-H "Authorization: Bearer $2"); fi
    curl -sf "$base/graphql" -H 'Content-Type: application/json' "${auth[@]}" -d "$1"
}

login_body=$(jq -nc --arg e "$email" --arg p "$password" \
    '{query: "mutation($i: LoginInput!) { login(input: $i) { accessToken } }", variables: {i: {email: $e, password: $p}}}')

# Signs the bench account up (once per database) and prints an access token.
sign_in() {
    gql "$(jq -nc --arg e "$email" --arg p "$password" \
        '{query: "mutation($i: RegisterInput!) { register(input: $i) { tokenType } }", variables: {i: {email: $e, username: "bench_runner", password: $p}}}')" >/dev/null
    gql "$login_body" | jq -er .data.login.accessToken
}

page_query() { # first [after]
    local after=""
    if [ -n "${2:-}" ]; then after=", after: \\\"$2\\\""; fi
    printf '{"query":"{ posts(first: %s%s) { edges { cursor node { id title author { username } voteCount viewerHasVoted } } pageInfo { hasNextPage endCursor } } }"}' "$1" "$after"
}

me_body='{"query":"{ me { id username } }"}'

# The peak resident memory of the server while a scenario runs, sampled every 0.2 s.
sample_rss() { # pid out
    local peak=0 rss
    while kill -0 "$1" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0)
        if [ "${rss:-0}" -gt "$peak" ]; then peak=$rss; echo "$peak" >"$2"; fi
        sleep 0.2
    done
}

# CPU time (in clock ticks) used so far by one process, and by every PostgreSQL process.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
    local total=0 pid
    for pid in $(pgrep -u postgres 2>/dev/null); do total=$((total + $(ticks "$pid"))); done
    echo "$total"
}
clock_ticks=$(getconf CLK_TCK)

results="$work/results.tsv"
: >"$results"
failures=0

# Runs wrk against `url` with `body` and `token` for the warm-up, then for the measured
# time, and records a row: name, req/s, p50 ms, p99 ms, failures, RSS MiB.
measure() { # name url body token [connections threads]
    local name="$1" url="$2" body="$3" token="$4"
    local c="${5:-$connections}" t="${6:-$threads}"
    if [ "$warmup" -gt 0 ]; then
        BENCH_BODY="$body" BENCH_TOKEN="$token" wrk -t"$t" -c"$c" -d"${warmup}s" \
            -s bench/graphql.lua "$url" >/dev/null
    fi
    local rss_file="$work/rss" sampler
    echo 0 >"$rss_file"
    sample_rss "$server_pid" "$rss_file" &
    sampler=$!
    local out server_before pg_before
    server_before=$(ticks "$server_pid")
    pg_before=$(pg_ticks)
    out=$(BENCH_BODY="$body" BENCH_TOKEN="$token" wrk -t"$t" -c"$c" -d"${duration}s" \
        --latency -s bench/graphql.lua "$url")
    cpu="$(($(ticks "$server_pid") - server_before)) $(($(pg_ticks) - pg_before))"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    record "$name" "$out" "$(cat "$rss_file")" "$cpu"
}

# CPU milliseconds per request, from clock ticks over a number of requests.
per_request() { # ticks requests
    awk -v t="$1" -v r="$2" -v hz="$clock_ticks" 'BEGIN { if (r > 0) printf "%.3f", t * 1000 / hz / r; else print "n/a" }'
}

record() { # name wrk-output rss-kib ["server-ticks postgres-ticks"]
    local name="$1" out="$2" rss_kib="$3" cpu="${4:-}" line
    line=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$line" ]; then
        echo "$out" >&2
        echo "FAIL: $name printed no result" >&2
        failures=$((failures + 1))
        return
    fi
    local requests duration_us p50 p99 non2xx socket graphql
    requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    duration_us=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")
    non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")
    socket=$(sed -E 's/.*socket_errors=([0-9]+).*/\1/' <<<"$line")
    graphql=$(sed -E 's/.*graphql_errors=([0-9]+).*/\1/' <<<"$line")
    local rps errors
    rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    errors="$non2xx / $socket / $graphql"
    if [ "$requests" -eq 0 ] || [ "$non2xx" -ne 0 ] || [ "$socket" -ne 0 ] || [ "$graphql" -ne 0 ]; then
        echo "FAIL: $name: $requests requests, non-2xx / socket / GraphQL errors: $errors" >&2
        grep '^FIRST_ERROR' <<<"$out" >&2 || true
        failures=$((failures + 1))
    fi
    # CPU per request means nothing while a second load runs (the login storm), and
    # PostgreSQL's means nothing on SQLite.
    local server_cpu="–" pg_cpu="–"
    if [ -n "$cpu" ] && [[ "$name" != *storm* ]]; then
        server_cpu=$(per_request "${cpu% *}" "$requests")
        if [[ "$name" != *SQLite* ]]; then
            pg_cpu=$(per_request "${cpu#* }" "$requests")
        fi
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" \
        "$(awk -v v="$p50" 'BEGIN { printf "%.2f", v / 1000 }')" \
        "$(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }')" \
        "$errors" "$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')" "$requests" \
        "$server_cpu" "$pg_cpu" >>"$results"
    log "$name: $rps req/s, p50 $(awk -v v="$p50" 'BEGIN { printf "%.2f", v / 1000 }') ms, p99 $(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }') ms, errors $errors"
}

# ---------------------------------------------------------------- PostgreSQL
log "PostgreSQL"
start_quire "$pg_url"
token=$(sign_in)
viewer=$(gql "$me_body" "$token" | jq -er .data.me.id)

log "finding the cursor of the 50,000th post"
cursor=""
for _ in $(seq 1 500); do
    cursor=$(gql "$(printf '{"query":"{ posts(first: 100%s) { pageInfo { endCursor } } }"}' \
        "${cursor:+, after: \\\"$cursor\\\"}")" "$token" | jq -er .data.posts.pageInfo.endCursor)
done

# PostgreSQL counts a transaction for every statement run outside one; a server's
# backends report their counts when they exit, so each count is read after quire stops.
# A run of 50 requests is the baseline taken off a run of 250, so that starting,
# stopping, and opening and preparing the pool's connections (all done within the
# first requests) cancel out.
log "statements per request of scenario 3 (PostgreSQL's transaction count over 200 requests)"
xacts() {
    # Backends report as they exit, shortly after the server closes its connections.
    sleep 2
    psql -qtA "$pg_server/postgres" -c \
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$pg_db'"
}
stop_quire
before=$(xacts)
start_quire "$pg_url"
for _ in $(seq 1 50); do gql "$(page_query 100)" "$token" >/dev/null; done
stop_quire
idle=$(xacts)
start_quire "$pg_url"
for _ in $(seq 1 250); do gql "$(page_query 100)" "$token" >/dev/null; done
stop_quire
after=$(xacts)
statements=$(awk -v a="$after" -v i="$idle" -v b="$before" 'BEGIN { printf "%.2f", ((a - i) - (i - b)) / 200 }')
log "scenario 3: $statements statements per request"
start_quire "$pg_url"

measure "1. me" "$base/graphql" "$me_body" "$token"
measure "2. posts(first: 20)" "$base/graphql" "$(page_query 20)" "$token"
measure "3. posts(first: 100)" "$base/graphql" "$(page_query 100)" "$token"
measure "4. posts(first: 20) after the 50,000th" "$base/graphql" "$(page_query 20 "$cursor")" "$token"
measure "5. login" "$base/graphql" "$login_body" "" "$login_connections"

log "6. posts(first: 20) during a login storm"
BENCH_BODY="$login_body" wrk -t1 -c"$login_connections" -d"$((warmup + duration + 2))s" \
    -s bench/graphql.lua "$base/graphql" >"$work/storm.out" &
storm=$!
sleep 1
measure "6. posts(first: 20), login storm" "$base/graphql" "$(page_query 20)" "$token"
wait "$storm" || true
record "6. (the login storm itself)" "$(cat "$work/storm.out")" 0

log "7. the ceilings, and 9. stock async-graphql: the same answers without authentication"
quire_pid=$server_pid
# Starts reference server $1 listening on port $2 and waits until `POST $3` answers.
start_reference() { # binary port path
    "$1" "$pg_url" "127.0.0.1:$2" "$viewer" 2>"$work/$(basename "$1").log" &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 1 100); do
        curl -sf -X POST -H 'Content-Type: application/json' -d "$(page_query 1)" \
            "http://127.0.0.1:$2$3" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$work/$(basename "$1").log" >&2
    echo "$1 did not start" >&2
    exit 1
}
start_reference "$ceiling" "$ceiling_port" /
ceiling_pid=$server_pid
start_reference "$stock" "$stock_port" /graphql
stock_pid=$server_pid
ideal="http://127.0.0.1:$ceiling_port"
# Measures row $1: on quire with body $2, on the ceilings at path $2, on the stock server.
run_quire() { server_pid=$quire_pid; measure "$1" "$base/graphql" "$2" "$token"; }
run_ceiling() { server_pid=$ceiling_pid; measure "$1" "$ideal$2" "$(page_query 20)" ""; }
run_stock() { server_pid=$stock_pid; measure "$1" "http://127.0.0.1:$stock_port/graphql" "$(page_query 20)" ""; }
run_ceiling "7. ideal: one statement and serde, posts(first: 20)" /
run_ceiling "7. ideal, posts(first: 100)" "/?first=100"
run_ceiling "7. ideal, me (one user by id)" /me
run_ceiling "7. previous ceiling: three statements, posts(first: 20)" /statements
run_stock "9. stock async-graphql + DataLoader, posts(first: 20)"

# quire's ratios to the reference servers, from pairs measured back to back (every server
# up, one loaded at a time), so that the machine drifting between two measurements
# minutes apart does not decide them. Each pair's rows go to their own file.
log "quire and the reference servers, back to back ($pairs pairs)"
table="$results"
results="$work/pairs.tsv"
: >"$results"
for i in $(seq 1 "$pairs"); do
    run_quire "pair $i: 2" "$(page_query 20)"
    run_ceiling "pair $i: 7" /
    run_ceiling "pair $i: 7 previous" /statements
    run_stock "pair $i: 9"
    run_quire "pair $i: 3" "$(page_query 100)"
    run_ceiling "pair $i: 7 (100)" "/?first=100"
    run_quire "pair $i: 1" "$me_body"
    run_ceiling "pair $i: 7 (me)" /me
done
pairs_file="$results"
results="$table"
# The ratios of row $1 to row $2 in each pair, sorted.
pair_ratios() {
    awk -F'\t' -v a="$1" -v b="$2" '{ split($1, p, ": "); k = p[2] }
        k == a { num[p[1]] = $2 } k == b { den[p[1]] = $2 }
        END { for (i in num) if (den[i] > 0) printf "%.2f\n", num[i] / den[i] }' "$pairs_file" | sort -n
}
server_pid=$stock_pid
stop_quire
server_pid=$ceiling_pid
stop_quire
server_pid=$quire_pid
stop_quire

# ---------------------------------------------------------------- SQLite
log "SQLite"
start_quire "$sqlite_url"
token=$(sign_in)
measure "8. me (SQLite)" "$base/graphql" "$me_body" "$token"
measure "8. posts(first: 20) (SQLite)" "$base/graphql" "$(page_query 20)" "$token"
stop_quire

# ---------------------------------------------------------------- report
field() { awk -F'\t' -v n="$1" -v f="$2" '$1 == n { print $f }' "$results"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v op="$2" -v limit="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= limit) : (v <= limit); print ok ? "met" : "MISSED" }'; }

s2="2. posts(first: 20)"
s6="6. posts(first: 20), login storm"
# The median of the pairs' ratios (the upper middle one of an even number), then them all.
median_ratio() { pair_ratios "$1" "$2" | awk -v n="$pairs" 'NR == int(n / 2) + 1 { print }'; }
all_ratios() { pair_ratios "$1" "$2" | paste -sd, | sed 's/,/, /g'; }
to_ideal=$(median_ratio 2 7)
to_previous=$(median_ratio 2 "7 previous")
to_stock=$(median_ratio 2 9)
to_ideal_100=$(median_ratio 3 "7 (100)")
to_raw_me=$(median_ratio 1 "7 (me)")
deep_ratio=$(ratio "$(field "4. posts(first: 20) after the 50,000th" 3)" "$(field "$s2" 3)")
storm_ratio=$(ratio "$(field "$s6" 4)" "$(field "$s2" 4)")
peak_rss=$(awk -F'\t' '$1 !~ /^[79]\./ && $1 !~ /storm itself/ && $6 > m { m = $6 } END { print m + 0 }' "$results")
storm_errors=$(field "$s6" 5)

report="$work/report.md"
{
    echo "# quire benchmark: $(date -u +%Y-%m-%d) on $(hostname)"
    echo
    echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); server, PostgreSQL and wrk share it."
    echo "- quire $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (with uncommitted changes)'), release build; $(psql -qtA "$pg_server/postgres" -c 'SHOW server_version' | cut -d' ' -f1 | sed 's/^/PostgreSQL /'); wrk $threads threads, $connections connections (login: $login_connections)."
    echo "- Data: $users users, $posts posts, $votes votes (\`quire seed\`). Each scenario: ${warmup} s warm-up, ${duration} s measured$([ "$quick" = 1 ] && echo ' (--quick: not a measurement)')."
    echo
    echo "| Scenario | req/s | p50 ms | p99 ms | non-2xx / socket / GraphQL errors | server RSS MiB (peak) | server CPU ms/req | PostgreSQL CPU ms/req |"
    echo "|---|---:|---:|---:|---|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $8, $9 }' "$results"
    echo
    echo "| Target | Measured | |"
    echo "|---|---|---|"
    echo "| Scenario 2 reaches at least 0.85 of the ideal (7, one statement and serde) | ${to_ideal} (median of $pairs back-to-back pairs: $(all_ratios 2 7)) | $(verdict "$to_ideal" ">=" 0.85) |"
    echo "| Scenario 3 reaches at least 0.75 of the ideal for 100 posts | ${to_ideal_100} ($(all_ratios 3 "7 (100)")) | $(verdict "$to_ideal_100" ">=" 0.75) |"
    echo "| Scenario 1 reaches at least 0.9 of a raw handler reading one user | ${to_raw_me} ($(all_ratios 1 "7 (me)")) | $(verdict "$to_raw_me" ">=" 0.9) |"
    echo "| Scenario 2 serves more than stock async-graphql + DataLoader (9), with no authentication or limits | ${to_stock}× ($(all_ratios 2 9)) | $(verdict "$to_stock" ">=" 1.01) |"
    echo "| Scenario 2 against the previous ceiling (three statements) | ${to_previous} ($(all_ratios 2 "7 previous")) | |"
    echo "| Scenario 4's p50 within 1.3× scenario 2's | ${deep_ratio}× | $(verdict "$deep_ratio" "<=" 1.3) |"
    echo "| Scenario 6's read p99 at most 3× scenario 2's, with no read errors | ${storm_ratio}×, errors ${storm_errors} | $( [ "$storm_errors" = "0 / 0 / 0" ] && verdict "$storm_ratio" "<=" 3 || echo MISSED) |"
    echo "| Server RSS below 150 MiB in every scenario | ${peak_rss} MiB | $(verdict "$peak_rss" "<=" 150) |"
    echo "| Statements per request for scenario 3: one, the session being known live (the listener's heartbeats count too) | ${statements} | $(verdict "$statements" "<=" 1.02) |"
} >"$report"

echo
cat "$report"
if [ "$quick" = 0 ]; then
    mkdir -p bench/results
    kept="bench/results/$(date -u +%Y-%m-%d)-$(hostname).md"
    cp "$report" "$kept"
    echo
    echo "written to $kept"
fi
if [ "$failures" -gt 0 ]; then
    echo "FAIL: $failures scenario(s) failed" >&2
    exit 1
fi
