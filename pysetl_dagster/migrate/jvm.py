"""The Spark settings both sides of `--verify` start with: small-input defaults and a JVM that
starts fast (a class-data archive of Spark's classes).

Most of a verify is two JVMs starting (the original's and the pipeline's), and most of a JVM
start is loading and verifying some ten thousand Spark classes. A dynamic class-data-sharing
archive (JDK 13+, `-XX:ArchiveClassesAtExit`) written once by a small warm-up run lets every
later driver JVM map those classes instead: about half the CPU of a start (see
docs/benchmarks.md). It changes how classes load, nothing a script computes; a JVM that cannot
use the archive (another Java, another Spark) starts as before (`-Xshare:auto`).

The settings reach Spark as `PYSPARK_SUBMIT_ARGS` (what `python script.py` and the Dagster run
both launch Spark with): defaults only, never a script's own choices, because
`spark.driver.defaultJavaOptions` is *prepended* to a script's `spark.driver.extraJavaOptions`,
and the SQL settings a script's builder sets still win in its session. A `SPARK_CONF_DIR` is
not used: Spark puts it on the driver's class path, and a class path holding a non-empty
folder cannot use an archive. The user's own `PYSPARK_SUBMIT_ARGS` comes last and wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SPARK_DEFAULTS = {
    # Defaults only: a script's own builder settings win. Small inputs, quick start-up.
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # an archive it cannot use: no warning

_WARM_UP = """
import sys, tempfile, os
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.appName("pysetl-dagster-class-archive").getOrCreate()
folder = tempfile.mkdtemp()
df = spark.createDataFrame([(1, "a", 2.5), (2, "b", 3.5)], "id int, k string, v double")
df.createOrReplaceTempView("t")
out = spark.sql("select k, sum(v) as v from t group by k").withColumn("n", F.lit(1))
for fmt in ("parquet", "csv", "json", "orc"):
    out.write.mode("overwrite").format(fmt).save(os.path.join(folder, fmt))
    spark.read.format(fmt).load(os.path.join(folder, fmt)).collect()
out.write.mode("overwrite").partitionBy("k").parquet(os.path.join(folder, "parts"))
spark.sparkContext.parallelize(range(3)).map(lambda x: x).collect()
spark.stop()
"""


def archive_path() -> Path | None:
    """Where this Java and this Spark keep their archive (None: no cache folder, or
    `PYSETL_MIGRATE_CLASS_ARCHIVE=0` turns the archive off)."""
    if os.environ.get("PYSETL_MIGRATE_CLASS_ARCHIVE") == "0":
        return None
    java = shutil.which("java")
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        java = os.path.join(home, "bin", "java")
    if java is None:
        return None
    import pyspark

    key = f"{os.path.realpath(java)}|{pyspark.__version__}|{pyspark.__file__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pysetl-dagster" / f"spark-classes-{digest}.jsa"


def ensure_archive(timeout: float = 600) -> Path | None:
    """The class archive, written by one warm-up run the first time (a few tens of seconds,
    once per machine); None when it cannot be written (then JVMs start as before)."""
    path = archive_path()
    if path is None:
        return None
    if path.exists():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = (path.parent / (path.name + ".lock")).open("w")
    except OSError:
        return None
    import fcntl

    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be writing it: wait for it
        if path.exists():
            return path
        partial = path.with_suffix(f".{os.getpid()}.partial")
        env = dict(os.environ)
        env["PYSPARK_SUBMIT_ARGS"] = submit_args(
            f"{JAVA_OPTIONS} -XX:ArchiveClassesAtExit={partial}", env.get("PYSPARK_SUBMIT_ARGS")
        )
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                [sys.executable, "-c", _WARM_UP],
                env=env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        if partial.exists() and partial.stat().st_size > 0:
            partial.replace(path)
            return path
        partial.unlink(missing_ok=True)
        return None


def submit_args(java_options: str, users: str | None) -> str:
    """`PYSPARK_SUBMIT_ARGS`: the defaults, the driver's default Java options, then the
    user's own arguments (which end with `pyspark-shell`, and win)."""
    parts: list[str] = []
    for key, value in SPARK_DEFAULTS.items():
        parts += ["--conf", f"{key}={value}"]
    parts += ["--conf", f"spark.driver.defaultJavaOptions={java_options}"]
    return shlex.join(parts) + " " + (users or "pyspark-shell")


def verify_submit_args(users: str | None) -> str:
    """What both verify runs start Spark with: the archive when there is one."""
    archive = ensure_archive()
    options = JAVA_OPTIONS
    if archive is not None:
        options += f" {_QUIET} -Xshare:auto -XX:SharedArchiveFile={archive}"
    return submit_args(options, users)
