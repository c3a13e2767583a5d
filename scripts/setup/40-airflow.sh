# .venv-airflow/: the pinned Apache Airflow and the taskwire-airflow package
# (scripts/airflow-env.sh, a no-op when ready), and Debian's PostgreSQL for
# the Airflow integration test's metadata database (scripts/airflow-pg.sh).
# Tests find the venv through $TASKWIRE_AIRFLOW_VENV.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi
echo "scripts/airflow-env.sh"
TASKWIRE_AIRFLOW_VENV=$(scripts/airflow-env.sh)
export TASKWIRE_AIRFLOW_VENV
"$TASKWIRE_AIRFLOW_VENV/bin/airflow" version
