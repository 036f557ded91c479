# fuzz/targets.sh — sourced by build.sh and run.sh: the targets named on the
# command line, or every fuzz_*.c here.
targets=()
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    for f in "$here"/fuzz_*.c; do
        t="$(basename "$f" .c)"
        targets+=("${t#fuzz_}")
    done
fi
