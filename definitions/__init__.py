"""The example project `dagster dev` loads: the retail PySetl pipeline as Dagster assets.

Spark, storage and schedules come from the profile `$PYSETL_DAGSTER_PROFILE` (default `dev`)
of `profiles.yaml` beside this file (`$PYSETL_DAGSTER_PROFILE_FILE` points elsewhere). The
profile is validated here, at code load, before any SparkSession exists. Storage goes to
`$PYSETL_DAGSTER_STORAGE`, else the profile's root, else `$DAGSTER_HOME/pysetl_storage`.
Inputs are read from `$RETAIL_DATA_DIR` (default: the sample CSVs in `definitions/data`;
`definitions/data_bad` has a broken product feed that the blocking check on `clean_products`
stops). A second pipeline, `returns` (definitions/returns), reads return slips from an inbox
folder (file sensor) and retail's `enriched_orders` (cross-pipeline link and sensor). A third,
`review` (definitions/review), has a data condition and a branch.
"""

from __future__ import annotations

import os
from pathlib import Path

from pysetl_dagster import build_definitions, load_profile, pysetl_pipeline

from .regional import regional_pipelines
from .retail.pipeline import build_pipeline
from .returns import build_returns, watch_failures
from .review import build_review

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")

profile = load_profile(PROFILES_FILE)
retail = pysetl_pipeline(build_pipeline(os.environ.get("RETAIL_DATA_DIR")), name="retail")
retail.daily_schedule(cron="0 2 * * *")
watch_failures(retail)
returns = build_returns(retail)  # a second pipeline reading retail's enriched_orders

review = build_review(retail)  # conditions and a branch (definitions/review)

defs = build_definitions(
    retail,
    returns,
    review,
    *regional_pipelines(os.environ.get("RETAIL_DATA_DIR")),
    profile=profile,
)
