# .venv/: the pinned test tools of requirements-test.txt and the Python SDK
# (sdk/python) installed as a package, each redone only when its files
# changed. Tests find the venv's python through $TASKWIRE_TEST_PYTHON.
need python3 python3
# One installer at a time in .venv/ (scripts/schemathesis.sh takes the same lock).
exec 9>.venv.lock
if command -v flock >/dev/null; then flock 9; fi
if [ ! -x .venv/bin/python ]; then
  echo "python3 -m venv .venv"
  if ! python3 -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv            # Debian's python3 lacks ensurepip without it
    python3 -m venv .venv
  fi
fi
if [ "$(cat .venv/.requirements-test.sha 2>/dev/null)" != "$(tree_hash requirements-test.txt)" ]; then
  echo "pip install -r requirements-test.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
  tree_hash requirements-test.txt >.venv/.requirements-test.sha
  rm -f .venv/.sdk-python.sha
fi
if [ "$(cat .venv/.sdk-python.sha 2>/dev/null)" != "$(tree_hash sdk/python/pyproject.toml sdk/python/README.md sdk/python/src)" ]; then
  echo "pip install ./sdk/python"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./sdk/python
  tree_hash sdk/python/pyproject.toml sdk/python/README.md sdk/python/src >.venv/.sdk-python.sha
fi
exec 9>&-
.venv/bin/python -c 'import sys, taskwire; print(".venv/bin/python", sys.version.split()[0], "taskwire", taskwire.__version__)'
export TASKWIRE_TEST_PYTHON="$PWD/.venv/bin/python"
