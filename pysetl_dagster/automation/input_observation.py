"""External inputs as observable source assets: their data version is the input's fingerprint.

A Factory's cache key already counts its external inputs (files by path, size and mtime), so a
changed input file is recomputed at once. Dagster's UI only learns that the input changed when
the source asset is *observed*: observing records the fingerprint as the source's data version,
and every Factory materialized from an older version shows as stale ("new data upstream").
Observing runs no Spark job and starts no SparkSession: local files are stat'ed; a remote URI
(hdfs://, s3a://) is listed through an already active session, or reported as not observable.
"""

import warnings
from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    MetadataValue,
    ObserveResult,
    multi_observable_source_asset,
)
from dagster._utils.warnings import BetaWarning

from pysetl_dagster.metadata import MetadataKey
from pysetl_dagster.storage.fingerprints import Unfingerprintable, value_fingerprint
from pysetl_dagster.translation.graph import ExternalInput


def observe_external(external: ExternalInput) -> tuple[DataVersion | None, str]:
    """(data version, why none): the fingerprint the cache key uses for this input."""
    try:
        return DataVersion(value_fingerprint(external.payload)), ""
    except Unfingerprintable as exc:
        return None, str(exc)


def build_input_observation(
    specs: dict[ExternalInput, AssetSpec], name: str = "pysetl_inputs"
) -> AssetsDefinition:
    """One observable source asset definition for these external inputs (each key once: an
    input several pipelines share is observed by one definition)."""
    by_key: dict[AssetKey, ExternalInput] = {spec.key: ext for ext, spec in specs.items()}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return _observation(specs, by_key, name)


def _observation(
    specs: dict[ExternalInput, AssetSpec], by_key: dict[AssetKey, ExternalInput], name: str
) -> AssetsDefinition:
    @multi_observable_source_asset(
        specs=list(specs.values()),
        name=name,
        can_subset=True,
        description="Observe the pipeline's external inputs: their fingerprints become data "
        "versions, so Factories built from older inputs show as stale.",
    )
    def observe_inputs(context: AssetExecutionContext) -> Iterator[ObserveResult]:
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            version, why = observe_external(by_key[key])
            if version is None:
                context.log.warning(f"{key.to_user_string()} has no data version: {why}")
                yield ObserveResult(
                    asset_key=key,
                    metadata={MetadataKey.NOT_OBSERVABLE: MetadataValue.text(why)},
                )
                continue
            yield ObserveResult(
                asset_key=key,
                data_version=version,
                metadata={MetadataKey.FINGERPRINT: MetadataValue.text(version.value)},
            )

    return observe_inputs
