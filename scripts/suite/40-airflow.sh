suite airflow-pytest "$TASKWIRE_AIRFLOW_VENV/bin/python" -m pytest -q -p no:cacheprovider integrations/airflow/tests
