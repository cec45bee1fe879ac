"""PySetl factories of the retail example.

Three stages:

* Stage 0 reads and cleans the raw CSV inputs: :class:`CleanCustomers`,
  :class:`CleanOrders`, :class:`CleanProducts`.
* Stage 1 joins them: :class:`EnrichedOrders`.
* Stage 2 aggregates completed orders: :class:`RevenueByCountry`,
  :class:`CustomerLifetimeValue`, :class:`TopProducts`.

Factories only build lazy Spark plans: they never collect, count or write data.
Persisting outputs is left to whoever runs the factory (an orchestrator's IO
manager, or the caller through ``get()``), so every ``write()`` is a no-op.
All transforms are deterministic (no clocks, no randomness, total orderings
wherever a single row is picked).
"""

from __future__ import annotations

from typing import Self, TypeVar

from pysetl.workflow import Delivery, Factory
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from typedspark import Schema

from .schemas import (
    COMPLETED,
    CUSTOMERS_CSV,
    ORDERS_CSV,
    PRODUCTS_CSV,
    VALID_ORDER_STATUSES,
    CleanCustomer,
    CleanCustomerDataSet,
    CleanOrder,
    CleanOrderDataSet,
    CleanProduct,
    CleanProductDataSet,
    CountryRevenue,
    CountryRevenueDataSet,
    CsvSource,
    Customer,
    CustomerValue,
    CustomerValueDataSet,
    EnrichedOrder,
    EnrichedOrderDataSet,
    Order,
    Product,
    TopProduct,
    TopProductDataSet,
)
from .validation import CUSTOMER_VALUE, CUSTOMERS, ORDERS, PRODUCTS

__all__ = [
    "CleanCustomers",
    "CleanOrders",
    "CleanProducts",
    "CustomerLifetimeValue",
    "EnrichedOrders",
    "RevenueByCountry",
    "TopProducts",
]

_T = TypeVar("_T")

# A deliberately simple "something@something" check; anything else becomes null.
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

_AMOUNT = "decimal(12,2)"
_TOTAL = "decimal(18,2)"


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _spark() -> SparkSession:
    """Return the active SparkSession, or the default one (created if needed)."""
    spark = SparkSession.getActiveSession()
    return spark if spark is not None else SparkSession.builder.getOrCreate()


def _read_csv(source: CsvSource, schema: type[Schema]) -> DataFrame:
    """Lazily read a headered CSV file or directory with an explicit schema.

    Columns are mapped by position; values that do not parse become null.
    """
    return (
        _spark()
        .read.schema(schema.get_structtype())
        .option("header", True)
        .option("mode", "PERMISSIVE")
        .csv(source.path)
    )


def _keep_first(df: DataFrame, key: str, *order: SparkColumn) -> DataFrame:
    """Keep one row per ``key``: the first one according to ``order``.

    ``order`` should be a total ordering of the remaining columns so that the
    surviving row does not depend on partitioning.
    """
    window = Window.partitionBy(key).orderBy(*order)
    return (
        df.withColumn("__row_number", F.row_number().over(window))
        .where(F.col("__row_number") == 1)
        .drop("__row_number")
    )


def _require(value: _T | None, factory: object, step: str) -> _T:
    """Return ``value`` or fail with a clear message if ``step`` has not run."""
    if value is None:
        raise RuntimeError(f"{type(factory).__name__}: {step}() must run first")
    return value


def _completed(orders: EnrichedOrderDataSet) -> DataFrame:
    """Only the order lines that count towards revenue."""
    return orders.where(EnrichedOrder.status == F.lit(COMPLETED))


# --------------------------------------------------------------------------- #
# Stage 0: clean the raw inputs
# --------------------------------------------------------------------------- #
class CleanCustomers(Factory[CleanCustomerDataSet]):
    """Reads the customers CSV and cleans it: trims names, lower-cases emails (invalid ones
    become null), normalises country names, drops rows without a customer_id and keeps one row
    per customer_id."""

    customers_src = Delivery[CsvSource](delivery_id=CUSTOMERS_CSV)

    validation = CUSTOMERS

    def __init__(self) -> None:
        super().__init__()
        self.raw: DataFrame | None = None
        self.output: CleanCustomerDataSet | None = None

    def read(self) -> Self:
        """Lazily read the customers CSV given by the ``customers_csv`` external input."""
        self.raw = _read_csv(self.customers_src.get(), Customer)
        return self

    def process(self) -> Self:
        """Normalise, filter and de-duplicate (earliest signup wins)."""
        raw = _require(self.raw, self, "read")
        email = F.lower(F.trim(Customer.email))
        cleaned = raw.where(Customer.customer_id.isNotNull()).select(
            Customer.customer_id,
            F.trim(Customer.name).alias(CleanCustomer.name.str),
            F.when(email.rlike(_EMAIL_PATTERN), email).alias(CleanCustomer.email.str),
            F.initcap(F.trim(Customer.country)).alias(CleanCustomer.country.str),
            Customer.signup_date,
        )
        deduped = _keep_first(
            cleaned,
            CleanCustomer.customer_id.str,
            CleanCustomer.signup_date.asc_nulls_last(),
            CleanCustomer.email.asc_nulls_last(),
            CleanCustomer.name.asc_nulls_last(),
            CleanCustomer.country.asc_nulls_last(),
        )
        self.output = CleanCustomerDataSet(deduped.select(*CleanCustomer.all_column_names()))
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> CleanCustomerDataSet | None:
        """Return the cleaned customers (None before ``process()``)."""
        return self.output


class CleanOrders(Factory[CleanOrderDataSet]):
    """Reads the orders CSV and cleans it: drops rows with a missing key or date, a non-positive
    quantity or an unknown status, normalises the status and keeps one row per order_id."""

    orders_src = Delivery[CsvSource](delivery_id=ORDERS_CSV)

    validation = ORDERS

    def __init__(self) -> None:
        super().__init__()
        self.raw: DataFrame | None = None
        self.output: CleanOrderDataSet | None = None

    def read(self) -> Self:
        """Lazily read the orders CSV given by the ``orders_csv`` external input."""
        self.raw = _read_csv(self.orders_src.get(), Order)
        return self

    def process(self) -> Self:
        """Normalise, filter and de-duplicate (earliest order_date wins)."""
        raw = _require(self.raw, self, "read")
        status = F.lower(F.trim(Order.status))
        cleaned = raw.withColumn(Order.status.str, status).where(
            Order.order_id.isNotNull()
            & Order.customer_id.isNotNull()
            & Order.product_id.isNotNull()
            & Order.order_date.isNotNull()
            & (Order.quantity > 0)
            & Order.status.isin(*VALID_ORDER_STATUSES)
        )
        deduped = _keep_first(
            cleaned,
            CleanOrder.order_id.str,
            CleanOrder.order_date.asc(),
            CleanOrder.customer_id.asc(),
            CleanOrder.product_id.asc(),
            CleanOrder.quantity.asc(),
            CleanOrder.status.asc(),
        )
        self.output = CleanOrderDataSet(deduped.select(*CleanOrder.all_column_names()))
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> CleanOrderDataSet | None:
        """Return the cleaned orders (None before ``process()``)."""
        return self.output


class CleanProducts(Factory[CleanProductDataSet]):
    """Reads the products CSV and cleans it: trims names, normalises categories, drops rows without
    a product_id or a positive unit price and keeps one row per product_id."""

    products_src = Delivery[CsvSource](delivery_id=PRODUCTS_CSV)

    validation = PRODUCTS

    def __init__(self) -> None:
        super().__init__()
        self.raw: DataFrame | None = None
        self.output: CleanProductDataSet | None = None

    def read(self) -> Self:
        """Lazily read the products CSV given by the ``products_csv`` external input."""
        self.raw = _read_csv(self.products_src.get(), Product)
        return self

    def process(self) -> Self:
        """Normalise, filter and de-duplicate (alphabetically first name wins)."""
        raw = _require(self.raw, self, "read")
        cleaned = raw.where(
            Product.product_id.isNotNull()
            & Product.product_name.isNotNull()
            & (Product.unit_price > 0)
        ).select(
            Product.product_id,
            F.trim(Product.product_name).alias(CleanProduct.product_name.str),
            F.initcap(F.trim(Product.category)).alias(CleanProduct.category.str),
            Product.unit_price,
        )
        deduped = _keep_first(
            cleaned,
            CleanProduct.product_id.str,
            CleanProduct.product_name.asc(),
            CleanProduct.unit_price.asc(),
            CleanProduct.category.asc_nulls_last(),
        )
        self.output = CleanProductDataSet(deduped.select(*CleanProduct.all_column_names()))
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> CleanProductDataSet | None:
        """Return the cleaned products (None before ``process()``)."""
        return self.output


# --------------------------------------------------------------------------- #
# Stage 1: join
# --------------------------------------------------------------------------- #
class EnrichedOrders(Factory[EnrichedOrderDataSet]):
    """Joins clean orders with their customer and product and prices each line
    (line_amount = quantity * unit_price); orders with an unknown customer or product are
    dropped."""

    orders = Delivery[CleanOrderDataSet](producer=CleanOrders)
    customers = Delivery[CleanCustomerDataSet](producer=CleanCustomers)
    products = Delivery[CleanProductDataSet](producer=CleanProducts)

    def __init__(self) -> None:
        super().__init__()
        self.clean_orders: CleanOrderDataSet | None = None
        self.clean_customers: CleanCustomerDataSet | None = None
        self.clean_products: CleanProductDataSet | None = None
        self.output: EnrichedOrderDataSet | None = None

    def read(self) -> Self:
        """Take the cleaned orders, customers and products from the upstream factories."""
        self.clean_orders = self.orders.get()
        self.clean_customers = self.customers.get()
        self.clean_products = self.products.get()
        return self

    def process(self) -> Self:
        """Inner-join orders, customers and (broadcast) products; compute line amounts."""
        orders = _require(self.clean_orders, self, "read")
        customers = _require(self.clean_customers, self, "read").select(
            CleanCustomer.customer_id,
            CleanCustomer.name.alias(EnrichedOrder.customer_name.str),
            CleanCustomer.country,
        )
        products = _require(self.clean_products, self, "read")
        joined = orders.join(customers, on=CleanOrder.customer_id.str, how="inner").join(
            F.broadcast(products), on=CleanOrder.product_id.str, how="inner"
        )
        enriched = joined.select(
            CleanOrder.order_id,
            CleanOrder.order_date,
            F.trunc(CleanOrder.order_date, "month").alias(EnrichedOrder.order_month.str),
            CleanOrder.status,
            CleanOrder.customer_id,
            EnrichedOrder.customer_name,
            CleanCustomer.country,
            CleanOrder.product_id,
            CleanProduct.product_name,
            CleanProduct.category,
            CleanOrder.quantity,
            CleanProduct.unit_price,
            (CleanOrder.quantity * CleanProduct.unit_price)
            .cast(_AMOUNT)
            .alias(EnrichedOrder.line_amount.str),
        )
        self.output = EnrichedOrderDataSet(enriched)
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> EnrichedOrderDataSet | None:
        """Return the enriched order lines (None before ``process()``)."""
        return self.output


# --------------------------------------------------------------------------- #
# Stage 2: aggregates over completed orders
# --------------------------------------------------------------------------- #
class RevenueByCountry(Factory[CountryRevenueDataSet]):
    """Aggregates completed orders per customer country: number of orders and customers,
    units sold, revenue and average order value, sorted by revenue."""

    enriched_orders = Delivery[EnrichedOrderDataSet](producer=EnrichedOrders)

    def __init__(self) -> None:
        super().__init__()
        self.enriched: EnrichedOrderDataSet | None = None
        self.output: CountryRevenueDataSet | None = None

    def read(self) -> Self:
        """Take the enriched order lines from EnrichedOrders."""
        self.enriched = self.enriched_orders.get()
        return self

    def process(self) -> Self:
        """Group completed order lines by country."""
        enriched = _require(self.enriched, self, "read")
        aggregated = (
            _completed(enriched)
            .groupBy(EnrichedOrder.country)
            .agg(
                F.count(F.lit(1)).alias(CountryRevenue.order_count.str),
                F.countDistinct(EnrichedOrder.customer_id).alias(CountryRevenue.customer_count.str),
                F.sum(EnrichedOrder.quantity).cast("long").alias(CountryRevenue.units_sold.str),
                F.sum(EnrichedOrder.line_amount).cast(_TOTAL).alias(CountryRevenue.revenue.str),
            )
            .withColumn(
                CountryRevenue.avg_order_value.str,
                (CountryRevenue.revenue / CountryRevenue.order_count).cast(_AMOUNT),
            )
            .orderBy(CountryRevenue.revenue.desc(), CountryRevenue.country.asc())
        )
        self.output = CountryRevenueDataSet(aggregated.select(*CountryRevenue.all_column_names()))
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> CountryRevenueDataSet | None:
        """Return revenue per country (None before ``process()``)."""
        return self.output


class CustomerLifetimeValue(Factory[CustomerValueDataSet]):
    """Computes every clean customer's lifetime value from their completed orders (zero when
    they have none), with first/last order dates and a gold/silver/bronze/none value tier."""

    enriched_orders = Delivery[EnrichedOrderDataSet](producer=EnrichedOrders)
    customers = Delivery[CleanCustomerDataSet](producer=CleanCustomers)

    gold_threshold: int = 1000
    silver_threshold: int = 250

    validation = CUSTOMER_VALUE

    def __init__(self) -> None:
        super().__init__()
        self.enriched: EnrichedOrderDataSet | None = None
        self.clean_customers: CleanCustomerDataSet | None = None
        self.output: CustomerValueDataSet | None = None

    def read(self) -> Self:
        """Take the enriched order lines and the clean customers."""
        self.enriched = self.enriched_orders.get()
        self.clean_customers = self.customers.get()
        return self

    def process(self) -> Self:
        """Aggregate completed orders per customer and left-join them onto all clean customers."""
        enriched = _require(self.enriched, self, "read")
        customers = _require(self.clean_customers, self, "read")
        per_customer = (
            _completed(enriched)
            .groupBy(EnrichedOrder.customer_id)
            .agg(
                F.count(F.lit(1)).alias("completed_orders"),
                F.sum(EnrichedOrder.quantity).cast("long").alias("units"),
                F.sum(EnrichedOrder.line_amount).cast(_TOTAL).alias("value"),
                F.min(EnrichedOrder.order_date).alias(CustomerValue.first_order_date.str),
                F.max(EnrichedOrder.order_date).alias(CustomerValue.last_order_date.str),
            )
        )
        value = F.coalesce(F.col("value"), F.lit(0).cast(_TOTAL))
        tier = (
            F.when(value >= self.gold_threshold, "gold")
            .when(value >= self.silver_threshold, "silver")
            .when(value > 0, "bronze")
            .otherwise("none")
        )
        result = (
            customers.join(per_customer, on=CleanCustomer.customer_id.str, how="left")
            .select(
                CleanCustomer.customer_id,
                CleanCustomer.name.alias(CustomerValue.customer_name.str),
                CleanCustomer.country,
                F.coalesce(F.col("completed_orders"), F.lit(0))
                .cast("long")
                .alias(CustomerValue.order_count.str),
                F.coalesce(F.col("units"), F.lit(0))
                .cast("long")
                .alias(CustomerValue.units_purchased.str),
                value.alias(CustomerValue.lifetime_value.str),
                CustomerValue.first_order_date,
                CustomerValue.last_order_date,
                tier.alias(CustomerValue.value_tier.str),
            )
            .orderBy(CustomerValue.lifetime_value.desc(), CustomerValue.customer_id.asc())
        )
        self.output = CustomerValueDataSet(result)
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> CustomerValueDataSet | None:
        """Return the customer lifetime values (None before ``process()``)."""
        return self.output


class TopProducts(Factory[TopProductDataSet]):
    """Ranks products by revenue from completed orders (overall and within their category)
    and keeps the top ``top_n`` overall."""

    enriched_orders = Delivery[EnrichedOrderDataSet](producer=EnrichedOrders)

    top_n: int = 10

    def __init__(self) -> None:
        super().__init__()
        self.enriched: EnrichedOrderDataSet | None = None
        self.output: TopProductDataSet | None = None

    def read(self) -> Self:
        """Take the enriched order lines from EnrichedOrders."""
        self.enriched = self.enriched_orders.get()
        return self

    def process(self) -> Self:
        """Aggregate per product, rank (ties broken by product_id) and keep the top ``top_n``."""
        enriched = _require(self.enriched, self, "read")
        per_product = (
            _completed(enriched)
            .groupBy(EnrichedOrder.product_id, EnrichedOrder.product_name, EnrichedOrder.category)
            .agg(
                F.count(F.lit(1)).alias(TopProduct.order_count.str),
                F.sum(EnrichedOrder.quantity).cast("long").alias(TopProduct.units_sold.str),
                F.sum(EnrichedOrder.line_amount).cast(_TOTAL).alias(TopProduct.revenue.str),
            )
        )
        by_revenue = (TopProduct.revenue.desc(), TopProduct.product_id.asc())
        category_window = Window.partitionBy(TopProduct.category).orderBy(*by_revenue)
        # Aggregated data is small (one row per product): a global window is fine here.
        overall_window = Window.orderBy(*by_revenue)
        ranked = (
            per_product.withColumn(
                TopProduct.category_rank.str, F.row_number().over(category_window)
            )
            .withColumn(TopProduct.revenue_rank.str, F.row_number().over(overall_window))
            .where(TopProduct.revenue_rank <= self.top_n)
            .orderBy(TopProduct.revenue_rank.asc())
        )
        self.output = TopProductDataSet(ranked.select(*TopProduct.all_column_names()))
        return self

    def write(self) -> Self:
        """No-op: persistence is done by whoever runs the factory.

        That is the orchestrator's IO manager, or the caller (through ``get()``).
        """
        return self

    def get(self) -> TopProductDataSet | None:
        """Return the top products (None before ``process()``)."""
        return self.output
