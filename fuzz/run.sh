#!/usr/bin/env bash
# fuzz/run.sh — run the fuzz targets one after another, each for SECONDS.
#
#   fuzz/run.sh                 every target, 30 s each
#   fuzz/run.sh 10              every target, 10 s each (CI)
#   fuzz/run.sh 3600 session    one target for an hour
#   MS_FUZZ_MAX_LEN=4096 fuzz/run.sh 600 session
#                               inputs of at most 4 KiB (more executions a second;
#                               the default is the target's own, up to 64 KiB)
#
# Each target runs with fuzz/dict/mail.dict and its corpus fuzz/corpus-work/<target>/
# (fuzz/seeds.sh makes it; new inputs the fuzzer finds are added to it). Prints
# one line per target:
#   TARGET executions=N crashes=K seconds=S
# and exits 1 if any target found a crash, a leak, a timeout or ran out of
# memory; the input that did it is left in fuzz/crashes/<target>/ and the
# fuzzer's log in fuzz/build/logs/<target>.log. Reproduce with
#   fuzz/build/fuzz_<target> fuzz/crashes/<target>/<file>
# Targets are built first when missing or older than their sources. Before a
# target fuzzes, the inputs of its fixed findings (fuzz/regress/<target>/, and
# <target>-oom/ with failing allocations) are run once: each must pass.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

seconds=30
if [ "$#" -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi

# The longest input per target (seeds.py keeps its seeds within these).
max_len() {
    case "$1" in
        detect) echo 1024 ;;
        sasl | ntlm | sha256 | registry) echo 4096 ;;
        seq) echo 8192 ;;
        lines | smuggle | tlshello) echo 16384 ;;
        msg | imap | session) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

. "$here/targets.sh"

# Build what is missing or stale.
stale=()
for t in "${targets[@]}"; do
    t="${t#fuzz_}"
    bin="$here/build/fuzz_$t"
    if [ ! -x "$bin" ] || [ -n "$(find "$here" "$root/plugin/core" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) -newer "$bin" -print -quit)" ]; then
        stale+=("$t")
    fi
done
if [ "${#stale[@]}" -gt 0 ]; then
    "$here/build.sh" "${stale[@]}" >/dev/null || exit 2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$here/build/logs"
failed=0
for t in "${targets[@]}"; do
    t="${t#fuzz_}"
    bin="$here/build/fuzz_$t"
    corpus="$here/corpus-work/$t"
    crashes="$here/crashes/$t"
    log="$here/build/logs/$t.log"
    mkdir -p "$corpus" "$crashes"
    if [ -z "$(ls -A "$corpus")" ]; then
        echo "fuzz/run.sh: $t: empty corpus (run fuzz/seeds.sh): starting from nothing" >&2
    fi
    # findings fixed before: each must still run clean (fuzz/regress/<target>[-oom]/)
    for reg in "$here/regress/$t" "$here/regress/$t-oom"; do
        [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ] || continue
        oom=""
        [ "$reg" = "$here/regress/$t-oom" ] && oom=1
        if ! MS_FUZZ_OOM="$oom" "$bin" "$reg"/* >"$log.regress" 2>&1; then
            failed=1
            echo "fuzz/run.sh: $t: a fixed finding in ${reg#"$root"/} fails again; log: $log.regress" >&2
            grep -E '^(==[0-9]+==ERROR|SUMMARY|FZ_CHECK|.*runtime error)' "$log.regress" | head -5 >&2
        fi
    done
    before="$(find "$crashes" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)"
    start="$(date +%s)"
    "$bin" -max_total_time="$seconds" -max_len="${MS_FUZZ_MAX_LEN:-$(max_len "$t")}" -timeout=10 -rss_limit_mb=2048 \
        -dict="$here/dict/mail.dict" -print_final_stats=1 -artifact_prefix="$crashes/" \
        "$corpus" >"$log" 2>&1
    rc=$?
    end="$(date +%s)"
    after="$(find "$crashes" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    found=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then
        found=1 # failed without leaving an input (it died before writing one): still a failure
    fi
    echo "$t executions=${execs:-0} crashes=$found seconds=$((end - start))"
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "fuzz/run.sh: $t failed (exit $rc); log: fuzz/build/logs/$t.log; input(s) in fuzz/crashes/$t/" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|FZ_CHECK|.*runtime error)|^ +#[0-9]+ ' "$log" | head -25 >&2
    fi
done
exit "$failed"
