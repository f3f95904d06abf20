"""Airflow glue shared by the DAG files: settings from connections and variables.

Only this package and the DAG files import Airflow; the logic lives in `securepipe`.
Nothing here runs at parse time: every function is called inside a task.
"""
