"""Assembly of the retail example into a PySetl :class:`~pysetl.workflow.Pipeline`.

Building a pipeline is cheap: it only instantiates factories and registers
:class:`~definitions.retail.schemas.CsvSource` configs. Spark is first used when
the pipeline (or a factory) actually runs.
"""

from __future__ import annotations

from pathlib import Path

from pysetl.workflow import Deliverable, Factory, Pipeline, Stage

from .factories import (
    CleanCustomers,
    CleanOrders,
    CleanProducts,
    CustomerLifetimeValue,
    EnrichedOrders,
    RevenueByCountry,
    TopProducts,
)
from .schemas import CUSTOMERS_CSV, ORDERS_CSV, PRODUCTS_CSV, CsvSource

__all__ = [
    "DEFAULT_DATA_DIR",
    "FACTORIES",
    "INPUT_FILES",
    "STAGES",
    "build_pipeline",
    "input_sources",
]

#: The small, dirty sample inputs shipped with the repository.
DEFAULT_DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data"

#: External input delivery id -> file (or directory of part files) inside a data dir.
INPUT_FILES: dict[str, str] = {
    CUSTOMERS_CSV: "customers.csv",
    ORDERS_CSV: "orders.csv",
    PRODUCTS_CSV: "products.csv",
}

#: Factory classes per stage, in execution order.
STAGES: tuple[tuple[type[Factory], ...], ...] = (
    (CleanCustomers, CleanOrders, CleanProducts),
    (EnrichedOrders,),
    (RevenueByCountry, CustomerLifetimeValue, TopProducts),
)

#: Every factory class of the pipeline, in execution order.
FACTORIES: tuple[type[Factory], ...] = tuple(f for stage in STAGES for f in stage)


def input_sources(data_dir: str | Path | None = None) -> dict[str, CsvSource]:
    """Return the external inputs (delivery id -> CsvSource) for ``data_dir``.

    Does not check that the paths exist and does not start Spark.
    """
    base = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    base = base.expanduser().resolve()
    return {
        delivery_id: CsvSource(str(base / file_name))
        for delivery_id, file_name in INPUT_FILES.items()
    }


def build_pipeline(data_dir: str | Path | None = None) -> Pipeline:
    """Build a fresh, not yet run, retail pipeline reading its CSVs from ``data_dir``.

    ``data_dir`` defaults to the sample data shipped in ``definitions/data``; it
    must contain ``customers.csv``, ``orders.csv`` and ``products.csv`` (each a
    file or a directory of CSV part files, e.g. the output of
    :func:`definitions.retail.datagen.generate_data`).
    """
    pipeline = Pipeline()
    for delivery_id, source in input_sources(data_dir).items():
        pipeline.set_input_from_deliverable(Deliverable[CsvSource](source, delivery_id=delivery_id))
    for factory_types in STAGES:
        stage = Stage()
        for factory_type in factory_types:
            stage.add_factory(factory_type())
        pipeline.add_stage(stage)
    return pipeline
