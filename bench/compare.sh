#!/usr/bin/env bash
# Compares two quire binaries under the same load, in alternation: both serve one seeded
# PostgreSQL database at once, and each round measures the first and then the second
# (the order swapped every other round), so that the machine drifting during the run
# falls on both alike. For judging whether a change moved the figures.
#
#   bench/compare.sh BASE NEW [ROUNDS] [SECONDS]
#
# BASE and NEW are paths to release binaries (build the base one from a worktree with its
# own CARGO_TARGET_DIR). ROUNDS (4) rounds of SECONDS (10) per scenario: `me`,
# `posts(first: 20)` and `posts(first: 100)` as in bench/run.sh. Prints one line per round
# and scenario with both throughputs (req/s), then the median of each and their ratio.
# Settings: BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432), BENCH_PORT (18801, and
# the next port).
set -euo pipefail
cd "$(dirname "$0")/.."

base_bin="$1"
new_bin="$2"
rounds="${3:-4}"
seconds="${4:-10}"
server="${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
port_a="${BENCH_PORT:-18801}"
port_b=$((port_a + 1))
database="quire_compare_$$"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql -q "$server/postgres" -c "CREATE DATABASE $database" >/dev/null
echo "seeding" >&2
DATABASE_URL="$server/$database" QUIRE_LOG=warn "$new_bin" seed --users 10000 --posts 100000 --votes 200000 >&2

serve() { # binary port
    DATABASE_URL="$server/$database" QUIRE_LISTEN="127.0.0.1:$2" QUIRE_ENV=production \
        QUIRE_LOG=warn QUIRE_RATE_LIMIT=off QUIRE_ACCESS_TOKEN_TTL=2h \
        QUIRE_JWT_SECRET="bench-signing-key-of-at-least-32-bytes" "$1" serve 2>"$work/$2.log" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$work/$2.log" >&2
    exit 1
}
serve "$base_bin" "$port_a"
serve "$new_bin" "$port_b"

gql() { curl -sf "http://127.0.0.1:$port_b/graphql" -H 'Content-Type: application/json' -d "$1"; }
gql '{"query":"mutation { register(input: {email: \"compare@example.com\", username: \"compare_runner\", password: \"correct horse battery staple\"}) { tokenType } }"}' >/dev/null
token=$(gql '{"query":"mutation { login(input: {email: \"compare@example.com\", password: \"correct horse battery staple\"}) { accessToken } }"}' |
    jq -er .data.login.accessToken)

page() {
    printf '{"query":"{ posts(first: %s) { edges { cursor node { id title author { username } voteCount viewerHasVoted } } pageInfo { hasNextPage endCursor } } }"}' "$1"
}
declare -A bodies=(
    [me]='{"query":"{ me { id username } }"}'
    [posts20]="$(page 20)"
    [posts100]="$(page 100)"
)
rps() { # port body seconds
    BENCH_BODY="$2" BENCH_TOKEN="$token" wrk -t2 -c32 -d"$3s" -s bench/graphql.lua \
        "http://127.0.0.1:$1/graphql" 2>/dev/null | awk '/Requests\/sec/ { print $2 }'
}
for port in "$port_a" "$port_b"; do
    rps "$port" "${bodies[posts20]}" 3 >/dev/null
done

printf 'round\tscenario\tbase\tnew\n' | tee "$work/rows"
for round in $(seq 1 "$rounds"); do
    for scenario in me posts20 posts100; do
        body="${bodies[$scenario]}"
        if [ $((round % 2)) -eq 1 ]; then
            a=$(rps "$port_a" "$body" "$seconds")
            b=$(rps "$port_b" "$body" "$seconds")
        else
            b=$(rps "$port_b" "$body" "$seconds")
            a=$(rps "$port_a" "$body" "$seconds")
        fi
        printf '%s\t%s\t%s\t%s\n' "$round" "$scenario" "$a" "$b" | tee -a "$work/rows"
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '\nscenario\tbase median\tnew median\tnew / base\n'
for scenario in me posts20 posts100; do
    a=$(awk -F'\t' -v s="$scenario" '$2 == s { print $3 }' "$work/rows" | median)
    b=$(awk -F'\t' -v s="$scenario" '$2 == s { print $4 }' "$work/rows" | median)
    printf '%s\t%s\t%s\t%s\n' "$scenario" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
done
