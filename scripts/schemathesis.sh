#!/usr/bin/env bash
# Installs schemathesis (pinned) into the repo's .venv/ and runs it:
#   scripts/schemathesis.sh --install-only
#   scripts/schemathesis.sh run http://127.0.0.1:8080/api/v1/openapi.json [st options…]
# The executor's schemathesis test (executor/schemathesis_test.go) calls it
# with --install-only and then runs .venv/bin/st itself.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
	"$python" -m venv "$venv"
fi
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$have" != "$SCHEMATHESIS_VERSION" ]; then
	"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
if [ "${1:-}" = "--install-only" ]; then
	echo "$venv/bin/st"
	exit 0
fi
exec "$venv/bin/st" "$@"
