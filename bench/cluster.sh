#!/usr/bin/env bash
# Several instances on one PostgreSQL database: how events travel between them, and what
# the shared limiter costs a sign-in. Starts three release instances on a fresh database,
# runs the `cluster` example against them (hundreds of WebSocket subscribers spread over
# the three, a writer rotating among them), then measures sign-ins on one instance with
# brute-force protection on (counted in PostgreSQL) and off: throughput, latency, and the
# CPU time quire and PostgreSQL spend per sign-in. Prints a Markdown report.
#
#   bench/cluster.sh            300 sockets, 15 s of posts at 20 a second; sign-ins in
#                               three rounds of 15 s with protection on and off
#   bench/cluster.sh --quick    60 sockets, 3 s, one round (a check, not a measurement)
#
# It also measures how long a session ended on one instance is still served by another.
#
# Settings (environment): BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432),
# BENCH_PORT (18090, and the next two ports), BENCH_SOCKETS, BENCH_DURATION,
# BENCH_LOGIN_CONNECTIONS (8).
#
# Exits non-zero if a post was delivered twice, or not to every subscriber, if a sign-in
# failed, or if an ended session was still served after 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
sockets="${BENCH_SOCKETS:-300}"
duration="${BENCH_DURATION:-15}"
login_connections="${BENCH_LOGIN_CONNECTIONS:-8}"
if [ "$quick" = 1 ]; then
    sockets=60
    duration=3
fi
pg_server="${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_PORT:-18090}"
database="quire_cluster_$$"
work="$(mktemp -d)"
pids=()

log() { printf '\n=== %s\n' "$*" >&2; }
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk jq psql; do
    command -v "$tool" >/dev/null || { echo "bench/cluster.sh needs $tool (bench/run.sh installs it)" >&2; exit 1; }
done

log "building the release binaries"
cargo build --release --quiet --bin quire --example cluster
quire="$PWD/target/release/quire"
psql -q "$pg_server/postgres" -c "CREATE DATABASE $database"

# Starts instance $1 on port $2 with brute-force protection $3 (on or off), loose enough
# on the per-address budget for one machine's load, and waits until it answers.
start() {
    local name=$1 at=$2 protection=$3
    DATABASE_URL="$pg_server/$database" QUIRE_LISTEN="127.0.0.1:$at" QUIRE_LOG=warn \
        QUIRE_JWT_SECRET="bench-signing-key-of-at-least-32-bytes" \
        QUIRE_RATE_LIMIT="$protection" QUIRE_RATE_LIMIT_PER_MINUTE=10000000 \
        QUIRE_RATE_LIMIT_BURST=1000000 QUIRE_WRITE_RATE_PER_MINUTE=10000000 \
        QUIRE_WRITE_BURST=1000000 QUIRE_MAX_WEBSOCKETS_PER_ADDRESS=10000 \
        "$quire" serve 2>"$work/$name.log" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$at/healthz" >/dev/null && return 0
        sleep 0.1
    done
    echo "instance $name did not start:" >&2
    cat "$work/$name.log" >&2
    return 1
}

log "starting three instances"
bases=()
for i in 0 1 2; do
    start "$i" $((port + i)) on
    bases+=("http://127.0.0.1:$((port + i))")
done

log "events: $sockets subscribers over three instances, posts for ${duration} s"
target/release/examples/cluster "${bases[@]}" --sockets "$sockets" --seconds "$duration" >"$work/events.json"
cat "$work/events.json" >&2

# Sign-ins on a fourth instance, started with brute-force protection on (counted in
# PostgreSQL) or off, in alternating rounds: the machine's noise between runs is of the
# order of what is measured.
# Sixteen accounts, each request to one at random: protection refuses a sixth sign-in to
# one account from one address while five are still being checked, as it should.
accounts=16
for a in $(seq 1 "$accounts"); do
    curl -sf "${bases[0]}/graphql" -H 'content-type: application/json' \
        -d "{\"query\":\"mutation { register(input: { email: \\\"login$a@example.com\\\", username: \\\"login$a\\\", password: \\\"correct horse battery staple\\\" }) { accessToken } }\"}" >/dev/null
done
cat >"$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
    local body = '{"query":"mutation(\$i: LoginInput!) { login(input: \$i) { accessToken } }",'
        .. '"variables":{"i":{"email":"login' .. math.random($accounts) .. '@example.com",'
        .. '"password":"correct horse battery staple"}}}'
    return wrk.format(nil, nil, nil, body)
end
LUA
login_port=$((port + 3))
# CPU time, in clock ticks, of the processes $@ (the ones that have not exited).
cpu_of() {
    local total=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
    done
    echo "$total"
}
# The PostgreSQL backends serving the benchmark's database.
backends() { pgrep -f "postgres: .*$database" || true; }
# Runs sign-ins for $3 s on $2 connections against a fresh instance with protection $1;
# writes wrk's output to $4, the limiter's metrics to $4.limiter, and the CPU time the
# instance and PostgreSQL spent on the sign-ins (ticks) to $4.cpu.
signins() {
    start "login-$1" "$login_port" "$1"
    local pid="${pids[-1]}"
    # The pool's connections open on the first requests: not part of what is measured.
    wrk -t1 -c"$2" -d2s -s "$work/login.lua" "http://127.0.0.1:$login_port/graphql" >/dev/null
    curl -s "http://127.0.0.1:$login_port/metrics" | grep -E '^limiter_duration_seconds_(sum|count)' >"$4.limiter0" || true
    local quire0 pg0
    quire0=$(cpu_of "$pid")
    pg0=$(cpu_of $(backends))
    wrk -t1 -c"$2" -d"$3s" --latency -s "$work/login.lua" "http://127.0.0.1:$login_port/graphql" >"$4"
    echo "$(($(cpu_of "$pid") - quire0)) $(($(cpu_of $(backends)) - pg0))" >"$4.cpu"
    curl -s "http://127.0.0.1:$login_port/metrics" | grep -E '^limiter_duration_seconds' >"$4.limiter" || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
to_ms() { sed -E 's/([0-9.]+)us$/\1 0.001/; s/([0-9.]+)ms$/\1 1/; s/([0-9.]+)s$/\1 1000/' | awk '{ printf "%.2f", $1 * $2 }'; }
rps() { awk '/Requests\/sec/ { print $2 }' "$1"; }
p50() { awk '$1 == "50%" { print $2 }' "$1" | to_ms; }
requests() { awk '/requests in/ { print $1 }' "$1"; }
errors() { grep -cE 'Non-2xx|Socket errors' "$1" || true; }

rounds=3
[ "$quick" = 1 ] && rounds=1
log "sign-ins on one connection, protection on and off, $rounds rounds"
diffs=()
for r in $(seq 1 "$rounds"); do
    signins on 1 "$duration" "$work/on1.$r"
    signins off 1 "$duration" "$work/off1.$r"
    diffs+=("$(awk -v a="$(p50 "$work/on1.$r")" -v b="$(p50 "$work/off1.$r")" 'BEGIN { printf "%.2f", a - b }')")
done
added=$(printf '%s\n' "${diffs[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
# The limiter's own time in a sign-in, from its statements' timings inside quire (the
# measured requests only), and the median of the p50s of the statement a successful
# sign-in waits for (the other, settling it, runs alongside the session's transaction).
signins_on=0
for r in $(seq 1 "$rounds"); do signins_on=$((signins_on + $(requests "$work/on1.$r"))); done
limiter=$(for r in $(seq 1 "$rounds"); do
    sed 's/^/after /' "$work/on1.$r.limiter" | grep -E '_(sum|count)'
    sed 's/^/before /' "$work/on1.$r.limiter0"
done | awk -v n="$signins_on" '{ sign = ($1 == "after") ? 1 : -1 }
    $2 ~ /_count/ { c += sign * $NF } $2 ~ /_sum/ { s += sign * $NF }
    END { printf "%.1f statements, %.2f ms (mean)", c / n, s * 1000 / n }')
attempt_p50=$(for r in $(seq 1 "$rounds"); do
    awk '/op="attempt"/ && /quantile="0.5"/ { printf "%.3f\n", $NF * 1000 }' "$work/on1.$r.limiter"
done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

log "sign-ins on $login_connections connections, protection on and off, $rounds rounds"
ratios=()
for r in $(seq 1 "$rounds"); do
    signins on "$login_connections" "$duration" "$work/on.$r"
    signins off "$login_connections" "$duration" "$work/off.$r"
    ratios+=("$(awk -v a="$(rps "$work/on.$r")" -v b="$(rps "$work/off.$r")" 'BEGIN { printf "%.3f", a / b }')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# CPU per sign-in, on and off, over every round on several connections: how much of the
# machine the limiter takes, which is what bounds throughput when the cores are busy.
cpu_per_signin() {
    local ticks_q=0 ticks_p=0 n=0
    for r in $(seq 1 "$rounds"); do
        read -r q p <"$work/$1.$r.cpu"
        ticks_q=$((ticks_q + q)); ticks_p=$((ticks_p + p)); n=$((n + $(requests "$work/$1.$r")))
    done
    awk -v q="$ticks_q" -v p="$ticks_p" -v n="$n" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%.2f %.2f\n", q * 1000 / hz / n, p * 1000 / hz / n }'
}
read -r cpu_on_q cpu_on_p < <(cpu_per_signin on)
read -r cpu_off_q cpu_off_p < <(cpu_per_signin off)
# What the limiter adds to PostgreSQL's share, against a sign-in's whole CPU time without
# it. (quire's own time is mostly the password hash, whose cost varies from round to
# round by more than the limiter's part: it is shown, not judged.)
pg_added=$(awk -v a="$cpu_on_p" -v c="$cpu_off_q" -v d="$cpu_off_p" \
    'BEGIN { printf "%+.2f ms, %+.1f%% of a sign-in", a - d, (a - d) / (c + d) * 100 }')
ratio=$(median "${ratios[@]}")
on_rps=$(for r in $(seq 1 "$rounds"); do rps "$work/on.$r"; done | paste -sd/)
off_rps=$(for r in $(seq 1 "$rounds"); do rps "$work/off.$r"; done | paste -sd/)

e() { jq -r "$1" "$work/events.json"; }
status=0
{
    echo "## Several instances ($(date -u +%Y-%m-%d), $(nproc) cores$([ "$quick" = 1 ] && echo ', --quick: not a measurement'))"
    echo
    echo "| Measure | Value | Target | |"
    echo "|---|---:|---|---|"
    echo "| Cross-instance delivery p50 / p99 / max, ms | $(e '.cross_instance_ms | "\(.p50 | .*100|round/100) / \(.p99 | .*100|round/100) / \(.max | .*100|round/100)"') | p99 ≤ 50 | $(awk -v v="$(e .cross_instance_ms.p99)" 'BEGIN { print (v <= 50 ? "met" : "MISSED") }') |"
    echo "| Same-instance delivery p50 / p99, ms | $(e '.same_instance_ms | "\(.p50 | .*100|round/100) / \(.p99 | .*100|round/100)"') | | |"
    echo "| Delivered ($(e .sockets) sockets × $(e .posts) posts) | $(e '.delivered_share * 100 | .*100|round/100')% | 100% | $( [ "$(e .delivered)" = "$(e .expected_deliveries)" ] && echo met || echo MISSED) |"
    echo "| Duplicates | $(e .duplicates) | 0 | $( [ "$(e .duplicates)" = 0 ] && echo met || echo MISSED) |"
    echo "| A session ended on one instance, still served by another that knew it live, p50 / p99 / max, ms ($(e .revocations) sessions) | $(e '.revocation_ms | "\(.p50 | .*100|round/100) / \(.p99 | .*100|round/100) / \(.max | .*100|round/100)"') | max ≤ 100 | $(awk -v v="$(e .revocation_ms.max)" 'BEGIN { print (v <= 100 ? "met" : "MISSED") }') |"
    echo "| Sign-ins/s, $login_connections connections, on / off in each of $rounds rounds | $on_rps / $off_rps (median ×$ratio; ${ratios[*]}) | within 5% | $(awk -v r="$ratio" 'BEGIN { print (r >= 0.95 ? "met" : "MISSED") }') |"
    echo "| CPU per sign-in, quire + PostgreSQL, on / off, ms | $cpu_on_q + $cpu_on_p / $cpu_off_q + $cpu_off_p (PostgreSQL $pg_added) | | |"
    echo "| The limiter's statements in one sign-in, one connection (the settling one alongside the session's transaction) | $limiter | | |"
    echo "| p50 of the statement a sign-in waits for (median of $rounds rounds), ms | $attempt_p50 | < 1 | $(awk -v a="$attempt_p50" 'BEGIN { print (a < 1 ? "met" : "MISSED") }') |"
    echo "| Sign-in p50 on one connection, on − off (median of $rounds rounds: ${diffs[*]}), ms | $added | | |"
} | tee "$work/report.md"
[ "$(e .duplicates)" = 0 ] || { echo "FAIL: posts delivered twice" >&2; status=1; }
[ "$(e .revocations_still_served)" = 0 ] || { echo "FAIL: an ended session was still served after 10 s" >&2; status=1; }
[ "$(e .delivered)" = "$(e .expected_deliveries)" ] || { echo "FAIL: posts not delivered to every subscriber" >&2; status=1; }
for f in "$work"/on.* "$work"/off.* "$work"/on1.* "$work"/off1.*; do
    [[ "$f" == *.limiter* || "$f" == *.cpu ]] && continue
    if [ "$(errors "$f")" != 0 ]; then
        echo "FAIL: sign-ins failed ($f):" >&2
        cat "$f" >&2
        status=1
    fi
done
exit "$status"
