suite pytest .venv/bin/python -m pytest -q -p no:cacheprovider sdk/python/tests
suite mypy .venv/bin/python -m mypy --config-file sdk/python/pyproject.toml sdk/python/src/taskwire
