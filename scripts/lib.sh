# Helpers for ./test.sh and the steps it sources (scripts/setup/*.sh,
# scripts/suite/*.sh). Sourced, not run.

# step TITLE prints a section header.
step() { printf '\n== %s\n' "$*"; }

# die MESSAGE prints MESSAGE on stderr and exits 1.
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# as_root CMD... runs CMD as root (directly, or with sudo when there is one).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"
  fi
}

_apt_updated=
# apt_install PACKAGE... installs Debian packages (apt-get update once first).
apt_install() {
  command -v apt-get >/dev/null || die "not a Debian machine: install $* by hand"
  if [ -z "$_apt_updated" ]; then
    as_root apt-get update -qq
    _apt_updated=1
  fi
  echo "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# need COMMAND PACKAGE installs Debian's PACKAGE unless COMMAND is on PATH.
need() {
  local cmd=$1 pkg=$2
  if command -v "$cmd" >/dev/null; then
    printf '%-16s %s\n' "$cmd" "$(command -v "$cmd")"
  else
    apt_install "$pkg"
    command -v "$cmd" >/dev/null || die "$pkg installed but $cmd is not on PATH"
    printf '%-16s %s (installed %s)\n' "$cmd" "$(command -v "$cmd")" "$pkg"
  fi
}

# tree_hash PATH... prints one hash of the files under PATHs (names and
# contents, caches left out): a stamp to redo a step only when they change.
tree_hash() {
  find "$@" -type f -not -path '*/__pycache__/*' -not -path '*/.mypy_cache/*' \
    -not -path '*/.pytest_cache/*' -not -path '*.egg-info/*' -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

_suite_names=()
_suite_results=()
_suite_secs=()
# suite NAME CMD... runs one test suite (unless ./test.sh was given suite
# names and NAME is not one of them), recording whether it passed and how
# long it took; a failing suite does not stop the others.
suite() {
  local name=$1; shift
  if [ "${#TEST_SH_ONLY[@]}" -gt 0 ] && [[ " ${TEST_SH_ONLY[*]} " != *" $name "* ]]; then return 0; fi
  step "suite $name: $*"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  _suite_names+=("$name")
  _suite_secs+=($((SECONDS - start)))
  if [ "$rc" -eq 0 ]; then _suite_results+=(ok); else _suite_results+=("FAIL (exit $rc)"); fi
}

# summary prints every suite's result and time, and fails when one failed
# or when none ran.
summary() {
  step "summary"
  local i failed=0 n=${#_suite_names[@]}
  for ((i = 0; i < n; i++)); do
    printf '%-12s %-14s %4ds\n' "${_suite_names[$i]}" "${_suite_results[$i]}" "${_suite_secs[$i]}"
    [ "${_suite_results[$i]}" = ok ] || failed=$((failed + 1))
  done
  echo "suites: $((n - failed)) passed, $failed failed"
  [ "$n" -gt 0 ] || die "no suite ran (names: ${TEST_SH_ONLY[*]})"
  [ "$failed" -eq 0 ]
}

# mvn_plain ARGS... runs Maven in batch mode without colours (Debian's Maven
# writes colour codes even in batch mode).
mvn_plain() {
  mvn -B -ntp -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
}
