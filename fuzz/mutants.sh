#!/usr/bin/env bash
# Mutation fuzzing of the real thing (issue 13, item 2): editcap -E mutants of the
# bundled, real-world and hostile captures through tshark with the ASan+UBSan build
# of the plugin; a failure is run again without the plugin to tell mailsec's own
# from Wireshark's. See fuzz/MUTANTS.md. The work is done by fuzz/mutants.py.
#
#   fuzz/mutants.sh                      # CI size: 2000 mutants, 2 at once
#   fuzz/mutants.sh --long --jobs 2      # 100000 mutants
#   fuzz/mutants.sh --count 60 --jobs 1 --sample 2 --plugin-asan /path/mailsec.so
#
# Prints progress on stderr and one line on stdout:
#   mutants=N ours=K wireshark=W timeouts=T valgrind=V
# and exits 1 when ours > 0 (findings in fuzz/findings/mutants/ours/).
set -euo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
cd "$here/.."

# findings are never committed (fuzz/.gitignore has findings/; in case it has not)
mkdir -p fuzz/findings
if ! git check-ignore -q fuzz/findings/mutants 2>/dev/null && [ ! -e fuzz/findings/.gitignore ]; then
    printf '*\n' > fuzz/findings/.gitignore
fi

# valgrind only when asked for (--sample N, N > 0), installed then if missing
sample=0
args=("$@")
for ((k = 0; k < ${#args[@]}; k++)); do
    case ${args[k]} in
        --sample) sample=${args[k + 1]:-0} ;;
        --sample=*) sample=${args[k]#--sample=} ;;
        -h|--help) exec /usr/bin/python3 fuzz/mutants.py --help ;;
    esac
done
if [[ $sample =~ ^[0-9]+$ ]] && (( sample > 0 )) && ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "mutants.sh: --sample needs valgrind: apt-get install valgrind" >&2
        exit 2
    fi
    echo "mutants.sh: --sample $sample: installing valgrind (apt-get install valgrind)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >&2
fi

for tool in tshark editcap setpriv gcc; do
    command -v "$tool" >/dev/null || { echo "mutants.sh: $tool not found (bash scripts/setup.sh --tests)" >&2; exit 2; }
done
# Debian's python3 (a pyenv python may come first in PATH)
exec /usr/bin/python3 fuzz/mutants.py "$@"
