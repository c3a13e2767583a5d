#!/usr/bin/env bash
# Installs schemathesis (pinned) into the repo's .venv/ and runs it:
#   scripts/schemathesis.sh --install-only
#   scripts/schemathesis.sh run http://127.0.0.1:8080/api/v1/openapi.json [st options…]
# The suite's schemathesis test (integration/schemathesis_test.go) calls it
# with --install-only and then runs .venv/bin/st itself.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
# schemathesis 4 needs Python 3.11 or newer: the first such of $PYTHON,
# python3, python3.13, python3.12, python3.11.
python=
for p in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
	if command -v "$p" >/dev/null && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
		python=$p
		break
	fi
done
if [ -z "$python" ]; then
	echo "schemathesis.sh: schemathesis $SCHEMATHESIS_VERSION needs Python ≥ 3.11 (set PYTHON to one)" >&2
	exit 1
fi

# One installer at a time: go test runs packages in parallel, and other
# test tools install into the same .venv/ (take this lock there too).
if command -v flock >/dev/null; then
	exec 9>"$root/.venv.lock"
	flock 9
fi
if [ ! -x "$venv/bin/python" ]; then
	if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
		# Debian and Ubuntu keep venv (and its pip) in a package of its own.
		rm -rf "$venv"
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			echo "schemathesis.sh: installing python3-venv" >&2
			apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
		fi
		"$python" -m venv "$venv" || {
			echo "schemathesis.sh: cannot create $venv: install Python's venv module (Debian: apt-get install python3-venv)" >&2
			exit 1
		}
	fi
fi
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
	echo "schemathesis.sh: $venv has Python $("$venv/bin/python" -V 2>&1); schemathesis needs ≥ 3.11: remove $venv and run again" >&2
	exit 1
fi
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$have" != "$SCHEMATHESIS_VERSION" ]; then
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
exec 9>&- # the lock is for installing only
if [ "${1:-}" = "--install-only" ]; then
	echo "$venv/bin/st"
	exit 0
fi
exec "$venv/bin/st" "$@"
