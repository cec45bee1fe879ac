"""The example project `dagster dev` loads: the retail PySetl pipeline as Dagster assets.

Storage goes to `$PYSETL_DAGSTER_STORAGE`, else `$DAGSTER_HOME/pysetl_storage`. Inputs are read
from `$RETAIL_DATA_DIR` (default: the sample CSVs in `definitions/data`; `definitions/data_bad`
has a broken product feed that the blocking check on `clean_products` stops).
"""

from __future__ import annotations

import os

from pysetl_dagster import build_definitions, pysetl_pipeline

from .retail.pipeline import build_pipeline

retail = pysetl_pipeline(build_pipeline(os.environ.get("RETAIL_DATA_DIR")), name="retail")
retail.daily_schedule(cron="0 2 * * *")

defs = build_definitions(
    retail,
    spark_config={
        # Small example data: a few shuffle partitions keep local runs quick.
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.showConsoleProgress": "false",
    },
)
