"""pandera schemas of the retail example, checked on every materialization as asset checks.

Three ways to declare one, from the lightest to the most explicit:

* ``CleanCustomers``: the schema generated from its typedspark ``CleanCustomer`` Schema
  (columns and types), extended with a regex on emails and a unique, non-null key.
* ``CleanOrders``: a ``pandera.pyspark.DataFrameModel``; blocking, so bad orders are never
  published.
* ``CleanProducts``: blocking too: a price above 10,000 means a broken feed (see the README's
  "blocked bad input" demo with ``definitions/data_bad``).
* ``CustomerLifetimeValue``: business rules, one of them only a warning.

Every other Factory typed ``DataSet[Schema]`` gets its generated schema automatically.
"""

from __future__ import annotations

import pandera.pyspark as pa
import pyspark.sql.types as T

from pysetl_dagster import Validation, pandera_schema_from_typedspark

from .schemas import VALID_ORDER_STATUSES, CleanCustomer, CustomerValue

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

CUSTOMERS = Validation(
    pandera_schema_from_typedspark(CleanCustomer, unique=["customer_id"]).update_columns(
        {
            "customer_id": {"nullable": False, "checks": [pa.Check.gt(0)]},
            "email": {"checks": [pa.Check.str_matches(EMAIL_PATTERN)]},
            "country": {"checks": [pa.Check.str_matches(r"^[A-Z][a-z]+( [A-Z][a-z]+)*$")]},
        }
    )
)


class CleanOrderModel(pa.DataFrameModel):
    """A valid order: positive ids and quantity, a known status, one row per order_id."""

    order_id: T.LongType() = pa.Field(gt=0)  # type: ignore[valid-type]
    customer_id: T.LongType() = pa.Field(gt=0)  # type: ignore[valid-type]
    product_id: T.LongType() = pa.Field(gt=0)  # type: ignore[valid-type]
    quantity: T.IntegerType() = pa.Field(gt=0, le=1000)  # type: ignore[valid-type]
    order_date: T.DateType() = pa.Field()  # type: ignore[valid-type]
    status: T.StringType() = pa.Field(isin=list(VALID_ORDER_STATUSES))  # type: ignore[valid-type]

    class Config:
        unique = ["order_id"]


ORDERS = Validation(CleanOrderModel, blocking=True)

PRODUCTS = Validation(
    pa.DataFrameSchema(
        {
            "product_id": pa.Column(T.LongType(), pa.Check.gt(0)),
            "product_name": pa.Column(T.StringType(), pa.Check.str_length(1, 100)),
            "category": pa.Column(T.StringType(), nullable=True),
            "unit_price": pa.Column(T.DecimalType(10, 2), pa.Check.in_range(0.01, 10000)),
        },
        unique=["product_id"],
        name="CleanProduct",
    ),
    blocking=True,
)

CUSTOMER_VALUE = Validation(
    pandera_schema_from_typedspark(CustomerValue).update_columns(
        {
            "lifetime_value": {"checks": [pa.Check.ge(0)]},
            "value_tier": {"checks": [pa.Check.isin(["gold", "silver", "bronze", "none"])]},
            # worth a look, not a reason to stop: an unusually loyal customer
            "order_count": {"checks": [pa.Check.le(50, raise_warning=True)]},
        }
    )
)
