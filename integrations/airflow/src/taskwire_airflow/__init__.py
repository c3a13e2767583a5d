"""taskwire as Apache Airflow's executor.

``AIRFLOW__CORE__EXECUTOR=taskwire_airflow.executor.TaskwireExecutor`` on the
scheduler; ``taskwire_airflow.run`` on the taskwire workers.
"""
