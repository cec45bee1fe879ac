"""Deterministic, Spark-based generator of large retail inputs (for benchmarks).

:func:`generate_data` writes ``customers.csv/``, ``orders.csv/`` and
``products.csv/`` (CSV directories with a header, in the column order of the raw
schemas) so that ``build_pipeline(out_dir)`` runs on them unchanged. Values are
derived from row ids with ``xxhash64`` only, so the same arguments always
produce the same data. A small share of rows is deliberately dirty (messy
emails and countries, unknown or invalid values, duplicated ids, null keys,
non-positive quantities) to exercise the cleaning factories.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from typedspark import DataSet, Schema

from .pipeline import INPUT_FILES
from .schemas import CUSTOMERS_CSV, ORDERS_CSV, PRODUCTS_CSV, Customer, Order, Product

__all__ = ["generate_data"]

# fmt: off
_FIRST_NAMES = ("Alice", "Bruno", "Chloe", "Diego", "Emma", "Farid", "Greta", "Hiro",
                "Ines", "Jonas", "Keiko", "Liam", "Marta", "Noah", "Olga", "Pedro")
_LAST_NAMES = ("Smith", "Muller", "Dubois", "Garcia", "Tanaka", "Silva", "Brown", "Rossi",
               "Nowak", "Lee")
# Some countries are spelled messily on purpose; CleanCustomers normalises them.
_COUNTRIES = ("United States", "United Kingdom", "Germany", "France", "Spain", "Japan",
              "Brazil", "Canada", "  germany ", "FRANCE")
# fmt: on
_CATEGORIES = ("Electronics", "Home", "Books", "Sports", "Toys", "Garden")
# Weighted: 85% completed (5% of them messily spelled), 14% cancelled/returned, 1% invalid.
_STATUSES = (
    ("completed",) * 80
    + (" Completed ",) * 5
    + ("cancelled",) * 8
    + ("returned",) * 6
    + ("unknown",)
)

_ROWS_PER_ORDER_FILE = 1_000_000


def _h(seed: int, n: int) -> SparkColumn:
    """Deterministic pseudo-random integer in ``[0, n)`` derived from ``id`` and ``seed``."""
    return F.pmod(F.xxhash64(F.col("id"), F.lit(seed)), F.lit(n))


def _pick(values: tuple[str, ...], seed: int) -> SparkColumn:
    """Deterministic pseudo-random choice among ``values``."""
    array = F.array(*[F.lit(v) for v in values])
    return F.element_at(array, (_h(seed, len(values)) + 1).cast("int"))


def _every(n: int) -> SparkColumn:
    """True for one row id in ``n``."""
    return F.col("id") % n == 0


def _customers(spark: SparkSession, n_customers: int) -> DataFrame:
    """Raw customers; some with messy or invalid emails, messy countries or a null id."""
    first = _pick(_FIRST_NAMES, 1)
    last = _pick(_LAST_NAMES, 2)
    email = F.lower(
        F.concat(first, F.lit("."), last, F.col("id").cast("string"), F.lit("@example.com"))
    )
    messy_email = F.concat(F.lit("  "), F.upper(email), F.lit(" "))
    return spark.range(1, n_customers + 1).select(
        F.when(_every(1009), F.lit(None).cast("long"))
        .otherwise(F.col("id"))
        .alias(Customer.customer_id.str),
        F.concat_ws(" ", first, last).alias(Customer.name.str),
        F.when(_every(50), messy_email)
        .when(_every(333), F.lit("not-an-email"))
        .otherwise(email)
        .alias(Customer.email.str),
        _pick(_COUNTRIES, 3).alias(Customer.country.str),
        F.date_add(F.lit("2021-01-01").cast("date"), _h(4, 1000).cast("int")).alias(
            Customer.signup_date.str
        ),
    )


def _products(spark: SparkSession, n_products: int) -> DataFrame:
    """Raw products; about 1% have an invalid (negative) price."""
    category = _pick(_CATEGORIES, 5)
    return spark.range(1, n_products + 1).select(
        F.col("id").alias(Product.product_id.str),
        F.concat(category, F.lit(" item "), F.col("id").cast("string")).alias(
            Product.product_name.str
        ),
        category.alias(Product.category.str),
        # 1.00 .. 499.99, with a few invalid (negative) prices.
        F.when(_every(97), F.lit(-1).cast("decimal(10,2)"))
        .otherwise(((_h(6, 49_900) + 100) / 100).cast("decimal(10,2)"))
        .alias(Product.unit_price.str),
    )


def _orders(spark: SparkSession, n_orders: int, n_customers: int, n_products: int) -> DataFrame:
    """Raw orders; some with a null or unknown customer, a bad quantity or status, or duplicated."""
    base = spark.range(1, n_orders + 1)
    orders = base.select(
        F.col("id").alias(Order.order_id.str),
        # ids up to 1% beyond n_customers do not exist (dropped by the join)
        F.when(_every(1777), F.lit(None).cast("long"))
        .otherwise(_h(7, n_customers + max(1, n_customers // 100)) + 1)
        .alias(Order.customer_id.str),
        (_h(8, n_products) + 1).alias(Order.product_id.str),
        F.when(_every(1000), F.lit(-1))
        .otherwise(_h(9, 5) + 1)
        .cast("int")
        .alias(Order.quantity.str),
        F.date_add(F.lit("2023-01-01").cast("date"), _h(10, 731).cast("int")).alias(
            Order.order_date.str
        ),
        _pick(_STATUSES, 11).alias(Order.status.str),
    )
    # Exact duplicates of ~0.1% of the orders.
    return orders.unionByName(orders.where(F.col(Order.order_id.str) % 997 == 0))


def _write(df: DataFrame, schema: type[Schema], path: Path, num_files: int) -> None:
    """Write ``df`` as a headered CSV directory with ``num_files`` part files."""
    # Validate against the raw schema and write the columns in schema order,
    # because the pipeline reads the CSVs positionally.
    checked = DataSet[schema](df.select(*schema.get_structtype().fieldNames()))  # type: ignore[valid-type]
    (
        checked.coalesce(num_files)
        .write.mode("overwrite")
        .option("header", True)
        # keep the deliberate leading/trailing whitespace (trimmed by default)
        .option("ignoreLeadingWhiteSpace", False)
        .option("ignoreTrailingWhiteSpace", False)
        .csv(str(path))
    )


def generate_data(
    spark: SparkSession,
    out_dir: str | Path,
    n_orders: int,
    n_customers: int,
    n_products: int,
) -> Path:
    """Write deterministic retail inputs of the given sizes into ``out_dir``.

    Creates (overwriting) the CSV directories ``customers.csv``, ``orders.csv``
    and ``products.csv``, about one orders part file per million orders (at most
    8), and returns ``out_dir`` as an absolute path, ready for
    ``build_pipeline(out_dir)``.
    """
    if min(n_orders, n_customers, n_products) < 1:
        raise ValueError("n_orders, n_customers and n_products must all be >= 1")
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)

    order_files = min(8, max(1, -(-n_orders // _ROWS_PER_ORDER_FILE)))
    _write(_customers(spark, n_customers), Customer, out / INPUT_FILES[CUSTOMERS_CSV], 1)
    _write(_products(spark, n_products), Product, out / INPUT_FILES[PRODUCTS_CSV], 1)
    _write(
        _orders(spark, n_orders, n_customers, n_products),
        Order,
        out / INPUT_FILES[ORDERS_CSV],
        order_files,
    )
    return out
