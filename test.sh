#!/usr/bin/env bash
# The test suite, on a fresh Debian machine with Go, python3 and apt-get:
#
#   ./test.sh                 install what is missing, then run every suite
#   ./test.sh go pytest       the same, running only the suites named
#   ./test.sh --setup-only    install what is missing, run nothing
#
# Setup installs only what is missing (a second run takes seconds): Debian's
# chromium, iproute2, iptables, docker-compose, a JDK and Maven; .venv/ with
# the pinned tools of requirements-test.txt and the Python SDK installed as a
# package; the Java SDK's jar. It exports TASKWIRE_TEST_PYTHON and
# TASKWIRE_TEST_JAVA_SDK_JAR for the tests that run the SDKs. Then every
# suite runs (go test -race, pytest, mypy, the Java SDK's JUnit tests), even
# after one failed, and a summary says which failed; the exit code is 1 if any
# did.
#
# To add a step, add a file: scripts/setup/NN-name.sh is sourced in name order
# before the suites (it may call need/apt_install from scripts/lib.sh and
# export variables for the tests), scripts/suite/NN-name.sh calls
# `suite NAME CMD...` for each suite it adds.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
. scripts/lib.sh

setup_only=
TEST_SH_ONLY=()
for arg in "$@"; do
  case $arg in
    --setup-only) setup_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown flag $arg (see ./test.sh --help)" ;;
    *) TEST_SH_ONLY+=("$arg") ;;
  esac
done

command -v go >/dev/null || die "go is not on PATH: install Go (see go.mod for the version)"
for f in scripts/setup/*.sh; do
  step "setup: $f"
  . "$f"
done
[ -z "$setup_only" ] || exit 0

for f in scripts/suite/*.sh; do
  . "$f"
done
summary
