"""Environment profiles: one file, `base` plus `dev` / `staging` / `prod` that override it.

    # profiles.yaml (or .toml)
    base:
      spark: {master: "local[2]", config: {spark.sql.shuffle.partitions: "4"}}
      schedules: {enabled: false}
    prod:
      extends: base                     # the default; any other section may be named
      spark: {master: "spark://spark-master:7077"}
      storage: {root: /opt/dagster/storage}
      schedules: {enabled: true}

`PYSETL_DAGSTER_PROFILE` picks the section (default `dev`) when definitions load and again in
the run worker, which imports the same code with the same environment. The merged section is
validated with pydantic *before* any SparkSession starts: an unknown key, a wrong type or a
missing value is one `PySetlProfileError` naming the file, the profile and the key.

Secrets never appear in a profile: a value is written `{env: NAME}` and becomes Dagster's
`EnvVar("NAME")`, so run config, the UI and logs show the variable's name, not its value. A
literal string under a secret-looking key (password, secret, token, key) is rejected.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from dagster import ConfigurableResource, DefaultScheduleStatus, EnvVar
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pysetl_dagster.errors import PySetlProfileError

PROFILE_ENV = "PYSETL_DAGSTER_PROFILE"
"""Names the profile (section of the profile file) to use; `dev` when unset."""
PROFILE_FILE_ENV = "PYSETL_DAGSTER_PROFILE_FILE"
"""Overrides the profile file a project passes to `load_profile`."""
DEFAULT_PROFILE = "dev"
BASE = "base"

_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|credential|(^|[._])key$)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvRef(_Strict):
    """`{env: NAME}` in a profile: the value of environment variable NAME, read by Dagster."""

    env: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    def to_env_var(self) -> EnvVar:
        return EnvVar(self.env)


ConfigValue = str | int | float | bool
SPARK_REMOTE_ENV = "PYSETL_SPARK_REMOTE"
"""Environment variable: the Spark Connect URL every profile's session uses (or `classic`)."""


class SparkSettings(_Strict):
    """Where Spark runs and how it is tuned."""

    master: str = "local[*]"
    app_name: str = "pysetl-dagster"
    remote: str | None = Field(
        default=None,
        description="Spark Connect URL (sc://host:port): runs start no JVM; each run gets its "
        "own session on that server. `$PYSETL_SPARK_REMOTE` overrides it.",
    )
    max_concurrent_factories: int | None = Field(
        default=None,
        ge=1,
        description="Independent Factories a run executes at once (1: one after another); "
        "default: the Spark resource's.",
    )
    config: dict[str, ConfigValue] = Field(default_factory=dict)
    secret_config: dict[str, EnvRef] = Field(
        default_factory=dict,
        description="Spark properties whose values come from environment variables.",
    )

    @field_validator("config")
    @classmethod
    def _no_literal_secrets(cls, value: dict[str, ConfigValue]) -> dict[str, ConfigValue]:
        for key in value:
            if _SECRET_KEY.search(key):
                raise ValueError(
                    f"{key!r} looks like a secret: move it to secret_config as "
                    f"{{{key}: {{env: SOME_VARIABLE}}}} and set SOME_VARIABLE in the environment"
                )
        return value


class StorageSettings(_Strict):
    """Root folder of the versioned Parquet outputs (`$PYSETL_DAGSTER_STORAGE` wins)."""

    root: str | None = None
    keep_versions: int = Field(default=2, ge=1)


class ScheduleSettings(_Strict):
    """Whether the project's schedules start running when deployed, and an optional cron."""

    enabled: bool = False
    cron: str | None = None


class MetricsSettings(_Strict):
    """Where run metrics go: a Pushgateway `host:port` (`$VARS` expanded). When set, sensors
    push every finished run's metrics there (they run with the Dagster daemon)."""

    pushgateway: str | None = None


class ResourceSettings(_Strict):
    """A Dagster resource: `class: package.module:ClassName` and its config."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    class_path: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    config: dict[str, ConfigValue | EnvRef] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _no_literal_secrets(
        cls, value: dict[str, ConfigValue | EnvRef]
    ) -> dict[str, ConfigValue | EnvRef]:
        for key, item in value.items():
            if _SECRET_KEY.search(key) and not isinstance(item, EnvRef):
                raise ValueError(
                    f"{key!r} is a secret: write {{env: SOME_VARIABLE}} and set SOME_VARIABLE "
                    "in the environment, never the value in the profile file"
                )
        return value

    def build(self) -> Any:
        module_name, _, class_name = self.class_path.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        config = {k: v.to_env_var() if isinstance(v, EnvRef) else v for k, v in self.config.items()}
        return cls(**config)


class Profile(_Strict):
    """One validated profile: everything that differs between dev, staging and prod."""

    name: str
    file: str | None = None
    spark: SparkSettings = Field(default_factory=SparkSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    resources: dict[str, ResourceSettings] = Field(default_factory=dict)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    validation: Literal["schema_only", "data_only", "schema_and_data"] = "schema_and_data"
    """Default depth of pandera asset checks (a Factory's `Validation(depth=...)` overrides)."""
    flags: dict[str, ConfigValue | EnvRef] = Field(default_factory=dict)
    """Values of config flags (`when_config(name)`) the pipelines' branching sensors decide
    with, per environment: a value or `{env: NAME}` (read where the daemon runs). A sensor's
    own `flags` or `pysetl/<flag>` tags override them."""

    def flag_values(self) -> dict[str, Any]:
        """The profile's flags as a branching sensor takes them (`{env: NAME}` -> `EnvVar`)."""
        return {
            name: value.to_env_var() if isinstance(value, EnvRef) else value
            for name, value in self.flags.items()
        }

    @property
    def schedule_status(self) -> DefaultScheduleStatus:
        """The default status of the pipelines' schedules under this profile: RUNNING when
        `schedules.enabled`, so production runs them and a laptop does not."""
        return (
            DefaultScheduleStatus.RUNNING
            if self.schedules.enabled
            else DefaultScheduleStatus.STOPPED
        )

    def spark_resource(self, extra_config: Mapping[str, Any] | None = None) -> Any:
        """The `PySparkSessionResource` this profile describes (secrets as `EnvVar`).

        `$PYSETL_SPARK_REMOTE` (a Spark Connect URL, e.g. the server `scripts/dev` started)
        wins over the profile's `remote`; set to `classic` it turns a profile's Connect
        session back into a classic in-process one.
        """
        from pysetl_dagster.spark.resource import PySparkSessionResource

        config: dict[str, Any] = {k: str(v) for k, v in self.spark.config.items()}
        config.update(extra_config or {})
        concurrency: dict[str, Any] = (
            {"max_concurrent_factories": self.spark.max_concurrent_factories}
            if self.spark.max_concurrent_factories is not None
            else {}
        )
        return PySparkSessionResource(
            **concurrency,
            secret_config={k: v.to_env_var() for k, v in self.spark.secret_config.items()},
            master=self.spark.master,
            app_name=self.spark.app_name,
            remote=self.spark_remote(),
            spark_config=config,
        )

    def spark_remote(self) -> str | None:
        """The Spark Connect URL runs use: `$PYSETL_SPARK_REMOTE`, else the profile's `remote`
        (`classic` in the variable means none)."""
        explicit = os.environ.get(SPARK_REMOTE_ENV, "").strip()
        if explicit:
            return None if explicit == "classic" else explicit
        return self.spark.remote

    def storage_root(self) -> str | None:
        """`$PYSETL_DAGSTER_STORAGE`, else the profile's root (with `$VARS` expanded)."""
        explicit = os.environ.get("PYSETL_DAGSTER_STORAGE")
        if explicit:
            return explicit
        if self.storage.root is None:
            return None
        root = os.path.expandvars(self.storage.root)
        if "$" in root:
            raise PySetlProfileError(
                f"{self.file}: profile {self.name!r}: key 'storage.root': {self.storage.root!r} "
                "names an environment variable that is not set: set it or change the root."
            )
        return root

    def metric_sensors(self) -> list[Any]:
        """Run-status sensors pushing run metrics to the profile's Pushgateway (running by
        default: the profile asked for them)."""
        if not self.metrics.pushgateway:
            return []
        from dagster import DefaultSensorStatus

        from pysetl_dagster.spark.prometheus import prometheus_sensors

        gateway = os.path.expandvars(self.metrics.pushgateway)
        if "$" in gateway:
            raise PySetlProfileError(
                f"{self.file}: profile {self.name!r}: key 'metrics.pushgateway': "
                f"{self.metrics.pushgateway!r} names an environment variable that is not set."
            )
        return prometheus_sensors(gateway, default_status=DefaultSensorStatus.RUNNING)

    def build_resources(self) -> dict[str, Any]:
        """The profile's extra Dagster resources, by key."""
        return {key: settings.build() for key, settings in self.resources.items()}


class Credentials(ConfigurableResource):
    """A user and a password for an external system; the password comes from `{env: NAME}`."""

    user: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(user={self.user!r}, password=***)"


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise PySetlProfileError(f"{path}: cannot read the profile file: {e.strerror}") from e
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise PySetlProfileError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PySetlProfileError(
            f"{path}: the top level must map section names ({BASE}, dev, staging, prod) to "
            "settings."
        )
    return data


def _section(
    data: Mapping[str, Any], name: str, path: Path, chain: tuple[str, ...]
) -> dict[str, Any]:
    if name in chain:
        raise PySetlProfileError(
            f"{path}: profile {chain[0]!r}: key 'extends': inheritance cycle "
            f"{' -> '.join((*chain, name))}"
        )
    if name not in data:
        known = ", ".join(sorted(data)) or "none"
        raise PySetlProfileError(
            f"{path}: profile {name!r} is not defined (sections: {known}); set "
            f"{PROFILE_ENV} to one of them or add it."
        )
    section = data[name] if data[name] is not None else {}
    if not isinstance(section, Mapping):
        raise PySetlProfileError(f"{path}: profile {name!r}: must be a mapping of settings.")
    parent = section.get("extends", BASE if name != BASE and BASE in data else None)
    own = {k: v for k, v in section.items() if k != "extends"}
    if parent is None:
        return own
    return _deep_merge(_section(data, str(parent), path, (*chain, name)), own)


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(
        str(p) for p in error["loc"] if p not in ("str", "int", "float", "bool", "EnvRef")
    )
    if error["type"] == "extra_forbidden":
        return f"key {key!r}: unknown key (check its spelling)"
    if error["type"] == "missing" or error.get("input", ...) is None:
        return f"key {key!r}: missing value"
    if error["type"] == "value_error":  # our own checks: the input may be a secret, never echo it
        return f"key {key!r}: {error['msg']}"
    return f"key {key!r}: {error['msg']} (got {error.get('input')!r})"


def load_profile(path: str | os.PathLike[str], name: str | None = None) -> Profile:
    """Read, merge (`extends`, default `base`) and validate one profile of a profile file.

    `name` defaults to `$PYSETL_DAGSTER_PROFILE`, else `dev`; `$PYSETL_DAGSTER_PROFILE_FILE`
    replaces `path` when set.

    Args:
        path: the profile file (YAML or TOML).
        name: the profile to load (default `$PYSETL_DAGSTER_PROFILE`, else `dev`).
    """
    file = Path(os.environ.get(PROFILE_FILE_ENV) or path)
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    merged = _section(_read(file), name, file, ())
    try:
        return Profile.model_validate({**merged, "name": name, "file": str(file)})
    except ValidationError as e:
        errors = e.errors()
        # A union of a value and {env: NAME} reports both branches; keep the clearest.
        lines = sorted({_describe(err) for err in errors})
        raise PySetlProfileError(f"{file}: profile {name!r}: " + "; ".join(lines)) from None
