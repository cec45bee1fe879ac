"""Typed schemas and external-input configuration for the retail example.

Every factory in :mod:`definitions.retail.factories` produces a ``DataSet`` of a
schema defined here, and every schema is used by exactly one factory (PySetl
matches deliveries by type, so output types must be distinct).

Nothing in this module touches Spark at import time or when a :class:`CsvSource`
is constructed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from pyspark.sql.types import DateType, IntegerType, LongType, StringType
from typedspark import Column, DataSet, DecimalType, Schema

# Monetary types (exact decimals, so aggregations are deterministic).
Price = DecimalType[Literal[10], Literal[2]]
Amount = DecimalType[Literal[12], Literal[2]]
Total = DecimalType[Literal[18], Literal[2]]

# Delivery ids of the three external inputs registered on the pipeline.
CUSTOMERS_CSV = "customers_csv"
ORDERS_CSV = "orders_csv"
PRODUCTS_CSV = "products_csv"

# Statuses that CleanOrders keeps (anything else is dropped as invalid).
VALID_ORDER_STATUSES = ("completed", "cancelled", "returned")
COMPLETED = "completed"


@dataclass(frozen=True)
class CsvSource:
    """Location of a CSV input: a single file or a directory of CSV part files.

    Pure configuration: creating one does not start Spark or touch the path.
    """

    path: str


# --------------------------------------------------------------------------- #
# Raw inputs (the column order is the CSV column order: files are read
# positionally with an explicit schema).
# --------------------------------------------------------------------------- #
class Customer(Schema):
    """A customer row as found in ``customers.csv``."""

    customer_id: Column[LongType]
    name: Column[StringType]
    email: Column[StringType]
    country: Column[StringType]
    signup_date: Column[DateType]


class Order(Schema):
    """An order row as found in ``orders.csv`` (one product per order)."""

    order_id: Column[LongType]
    customer_id: Column[LongType]
    product_id: Column[LongType]
    quantity: Column[IntegerType]
    order_date: Column[DateType]
    status: Column[StringType]


class Product(Schema):
    """A product row as found in ``products.csv``."""

    product_id: Column[LongType]
    product_name: Column[StringType]
    category: Column[StringType]
    unit_price: Column[Price]


# --------------------------------------------------------------------------- #
# Stage 0 outputs: cleaned inputs.
# --------------------------------------------------------------------------- #
class CleanCustomer(Schema):
    """A valid, de-duplicated customer with a normalised email and country."""

    customer_id: Column[LongType]
    name: Column[StringType]
    email: Column[StringType]
    country: Column[StringType]
    signup_date: Column[DateType]


class CleanOrder(Schema):
    """A valid, de-duplicated order with a positive quantity and a known status."""

    order_id: Column[LongType]
    customer_id: Column[LongType]
    product_id: Column[LongType]
    quantity: Column[IntegerType]
    order_date: Column[DateType]
    status: Column[StringType]


class CleanProduct(Schema):
    """A valid, de-duplicated product with a positive unit price."""

    product_id: Column[LongType]
    product_name: Column[StringType]
    category: Column[StringType]
    unit_price: Column[Price]


# --------------------------------------------------------------------------- #
# Stage 1 output: orders joined with their customer and product.
# --------------------------------------------------------------------------- #
class EnrichedOrder(Schema):
    """An order line joined with its customer and product, priced."""

    order_id: Column[LongType]
    order_date: Column[DateType]
    order_month: Column[DateType]
    status: Column[StringType]
    customer_id: Column[LongType]
    customer_name: Column[StringType]
    country: Column[StringType]
    product_id: Column[LongType]
    product_name: Column[StringType]
    category: Column[StringType]
    quantity: Column[IntegerType]
    unit_price: Column[Price]
    line_amount: Column[Amount]


# --------------------------------------------------------------------------- #
# Stage 2 outputs: business aggregates (completed orders only).
# --------------------------------------------------------------------------- #
class CountryRevenue(Schema):
    """Revenue and volume of completed orders per customer country."""

    country: Column[StringType]
    order_count: Column[LongType]
    customer_count: Column[LongType]
    units_sold: Column[LongType]
    revenue: Column[Total]
    avg_order_value: Column[Amount]


class CustomerValue(Schema):
    """Lifetime value of every clean customer (zero if they never completed an order)."""

    customer_id: Column[LongType]
    customer_name: Column[StringType]
    country: Column[StringType]
    order_count: Column[LongType]
    units_purchased: Column[LongType]
    lifetime_value: Column[Total]
    first_order_date: Column[DateType]
    last_order_date: Column[DateType]
    value_tier: Column[StringType]


class TopProduct(Schema):
    """Best-selling products by revenue of completed orders, with their ranks."""

    revenue_rank: Column[IntegerType]
    category_rank: Column[IntegerType]
    product_id: Column[LongType]
    product_name: Column[StringType]
    category: Column[StringType]
    order_count: Column[LongType]
    units_sold: Column[LongType]
    revenue: Column[Total]


# --------------------------------------------------------------------------- #
# DataSet types exchanged between factories.
#
# ``DataSet[X]`` creates a NEW class on every subscription, and PySetl's DAG
# inspector (``Node.find_input_by_type``) compares a factory's output type with
# its consumers' ``Delivery`` types using plain ``==``. Subscribing once here and
# using these aliases both in ``Factory[...]`` and ``Delivery[...]`` makes the
# types identical, so the inspector sees the internal flows between factories.
# --------------------------------------------------------------------------- #
CleanCustomerDataSet: TypeAlias = DataSet[CleanCustomer]
CleanOrderDataSet: TypeAlias = DataSet[CleanOrder]
CleanProductDataSet: TypeAlias = DataSet[CleanProduct]
EnrichedOrderDataSet: TypeAlias = DataSet[EnrichedOrder]
CountryRevenueDataSet: TypeAlias = DataSet[CountryRevenue]
CustomerValueDataSet: TypeAlias = DataSet[CustomerValue]
TopProductDataSet: TypeAlias = DataSet[TopProduct]
