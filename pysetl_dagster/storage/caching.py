"""Skipping unchanged Factories: the cache key of a Factory's output and the decision to reuse.

A Factory's output is identified by its *cache key*, a hash of:

    code        the Factory's methods and, transitively, the user code they call
    config      its run config (`self.config`) and its instance state
    inputs      the data version of every upstream output it reads (from the manifests)
    externals   a fingerprint of every external input (local files: size, mtime, ctime, inode,
                device, or their content when asked; remote files: their checksum)
    partition   the partition materialized
    checks      its validation (a new check re-audits, so it recomputes)

When a stored version with the same key exists and has not expired, the step reuses it: no
Spark job runs, the asset is recorded as materialized by this run with `pysetl/cached: true`.
When any part of the key cannot be computed, the Factory recomputes and its metadata says which
part was missing: never a silent wrong hit.

The key is emitted as the asset's Dagster `DataVersion`, so the UI's staleness markers agree
with the cache: downstream keys include upstream data versions, exactly as Dagster's do. A
recompute of a key that was already stored (forced, or expired) gets a data version of its own
(`<key>@<storage version>`), so its consumers recompute too: the data may differ.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import MetadataValue

from pysetl_dagster.metadata import MetadataKey, TagKey
from pysetl_dagster.storage.fingerprints import (
    FingerprintOptions,
    Unfingerprintable,
    code_fingerprint,
    value_fingerprint,
)

FORCE_TAG = TagKey.FORCE
"""Run tag forcing a recompute: `all` (or `true`, `*`), or asset keys / Factory names separated by
commas. Set it in the Launchpad (Edit tags) or with `dagster ... --tags`."""
CACHE_TAG = TagKey.CACHE
"""Run tag `off`: this run neither reuses stored versions nor counts as a cache."""
CACHE_FORMAT = "2"
"""Bumped when what goes into the key changes: old keys then never match."""

_ALL = {"all", "true", "*", "1", "yes"}


@dataclass(frozen=True)
class CachePolicy:
    """Whether a Factory's output may be reused, and for how long."""

    enabled: bool = True
    ttl_s: float | None = None


def cache_policy(
    enabled: bool, ttl_seconds: float | None, default_ttl_seconds: float | None = None
) -> CachePolicy:
    """A Factory's policy from its declarations (`cache = False`, `cache_ttl`), else the
    storage's default TTL."""
    ttl = ttl_seconds if ttl_seconds is not None else default_ttl_seconds
    return CachePolicy(enabled=enabled, ttl_s=ttl)


@dataclass
class CacheKey:
    """The parts of a Factory's cache key, and the parts that could not be computed."""

    parts: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    """External input part -> the kind of fingerprint that decided it (`FingerprintKind`s)."""

    @property
    def value(self) -> str | None:
        if self.missing:
            return None
        text = json.dumps({"format": CACHE_FORMAT, **self.parts}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def add(self, name: str, compute: Any) -> None:
        """Compute one part; a part that cannot be computed is recorded as missing."""
        try:
            self.parts[name] = compute()
        except Unfingerprintable as exc:
            self.missing[name] = str(exc)


def upstream_data_version(manifest: Mapping[str, Any] | None) -> str:
    """What a consumer's key records of an upstream output it read: the output's data version
    (its own cache key), or its storage version when it has none."""
    if manifest is None:
        raise Unfingerprintable("it was not loaded from this project's storage (no manifest)")
    version = manifest.get("data_version") or f"version:{manifest['version']}"
    return str(version)


def compute_key(
    factory_type: type,
    *,
    config: Any,
    instance_state: Mapping[str, Any],
    upstream: Mapping[str, Mapping[str, Any] | None],
    externals: Mapping[str, Any],
    partition: str | None,
    checks: Sequence[str] = (),
    content_hash: bool = False,
) -> CacheKey:
    """The cache key of one Factory execution (see the module docstring).

    `content_hash` hashes the bytes of every local file an external input names (the
    storage's `input_fingerprint="content"`) instead of their stat fields."""
    key = CacheKey()

    def code() -> str:
        digest, unstable = code_fingerprint(factory_type)
        if unstable:
            raise Unfingerprintable("no stable value for " + "; ".join(unstable))
        return digest

    key.add("code", code)
    key.add("config", lambda: value_fingerprint(_config_values(config)))
    key.add("state", lambda: value_fingerprint(dict(instance_state)))
    for attribute, manifest in sorted(upstream.items()):
        key.add(f"input:{attribute}", lambda m=manifest: upstream_data_version(m))
    for attribute, value in sorted(externals.items()):
        options = FingerprintOptions(content=content_hash)
        name = f"external:{attribute}"
        key.add(name, lambda v=value, o=options: value_fingerprint(v, options=o))
        key.fingerprints[name] = options.summary()
    if partition is not None:
        key.parts["partition"] = partition
    if checks:
        key.parts["checks"] = hashlib.sha256("\n".join(sorted(checks)).encode()).hexdigest()[:16]
    return key


def _config_values(config: Any) -> Any:
    if config is None:
        return None
    dump = getattr(config, "model_dump", None)
    return dump(mode="json") if callable(dump) else config


def factory_state(factory: Any) -> dict[str, Any]:
    """A Factory instance's own attributes (constructor arguments and the like), without the
    per-instance id PySetl gives every Factory."""
    return {k: v for k, v in sorted(vars(factory).items()) if k not in {"uuid", "_uuid"}}


def force_requested(tags: Mapping[str, str], names: Sequence[str]) -> bool:
    """True when the run's `pysetl/force` tag names this asset or Factory (or everything)."""
    raw = tags.get(FORCE_TAG)
    if not raw:
        return False
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    return bool(wanted & _ALL) or bool(wanted & set(names))


@dataclass
class CacheDecision:
    """Whether a Factory step reuses a stored version, and why (shown as metadata)."""

    key: CacheKey
    policy: CachePolicy
    reuse: dict[str, Any] | None = None
    reason: str = ""
    recompute_of_stored_key: bool = False

    @property
    def hit(self) -> bool:
        return self.reuse is not None

    def data_version(self, storage_version: str) -> str:
        """The DataVersion of the output this step records."""
        if self.reuse is not None:
            return str(self.reuse.get("data_version") or self.key.value)
        value = self.key.value
        if value is None:
            return f"uncached@{storage_version}"
        return f"{value}@{storage_version}" if self.recompute_of_stored_key else value

    def manifest_fields(self, storage_version: str, run_id: str) -> dict[str, Any]:
        """What the manifest of a newly computed version records for later lookups."""
        return {
            "cache_key": self.key.value,
            "cache_parts": self.key.parts,
            "cache_missing": self.key.missing,
            "cache_fingerprint": self.key.fingerprints,
            "data_version": self.data_version(storage_version),
            "computed_by_run": run_id,
            "computed_at": time.time(),
        }

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            MetadataKey.CACHED: MetadataValue.bool(self.reuse is not None),
            MetadataKey.CACHE_REASON: MetadataValue.text(self.reason),
        }
        if self.key.value is not None:
            meta[MetadataKey.CACHE_KEY] = MetadataValue.text(self.key.value)
        meta[MetadataKey.CACHE_PARTS] = MetadataValue.json(self.key.parts)
        if self.key.missing:
            meta[MetadataKey.CACHE_MISSING] = MetadataValue.json(self.key.missing)
        if self.key.fingerprints:
            meta[MetadataKey.CACHE_FINGERPRINT] = MetadataValue.json(self.key.fingerprints)
        if self.reuse is not None:
            run = self.reuse.get("computed_by_run") or self.reuse.get("run_id")
            if run:
                meta[MetadataKey.COMPUTED_BY_RUN] = MetadataValue.dagster_run(str(run))
            computed_at = self.reuse.get("computed_at") or self.reuse.get("created_at")
            if computed_at:
                meta[MetadataKey.COMPUTED_AT] = MetadataValue.timestamp(float(computed_at))
        return meta


def decide(
    key: CacheKey,
    policy: CachePolicy,
    records: Sequence[Mapping[str, Any]],
    *,
    forced: bool = False,
    disabled_by_run: bool = False,
    invalidated_at: float | None = None,
    now: float | None = None,
) -> CacheDecision:
    """Reuse the newest stored version (`records`, newest first) with this key, unless the
    key is incomplete, the Factory opted out, the run forces a recompute, or it expired."""
    decision = CacheDecision(key, policy)
    value = key.value
    same_key = [r for r in records if value is not None and r.get("cache_key") == value]
    decision.recompute_of_stored_key = bool(same_key)
    if value is None:
        decision.reason = (
            "recomputed: the cache key is incomplete ("
            + "; ".join(f"{part}: {why}" for part, why in key.missing.items())
            + ")"
        )
        return decision
    if not policy.enabled:
        decision.reason = "recomputed: the Factory opts out of caching (cache = False)"
        return decision
    if disabled_by_run:
        decision.reason = f"recomputed: the run has tag {CACHE_TAG}=off"
        return decision
    if forced:
        decision.reason = f"recomputed: forced by run tag {FORCE_TAG}"
        return decision
    now = time.time() if now is None else now
    for record in same_key:
        computed_at = float(record.get("computed_at") or record.get("created_at") or 0)
        if invalidated_at is not None and computed_at <= invalidated_at:
            decision.reason = "recomputed: the stored version was invalidated"
            decision.recompute_of_stored_key = True
            continue
        if policy.ttl_s is not None and now - computed_at > policy.ttl_s:
            decision.reason = (
                f"recomputed: the stored version expired (computed {now - computed_at:.0f} s "
                f"ago, time-to-live {policy.ttl_s:g} s)"
            )
            continue
        decision.reuse = dict(record)
        decision.reason = f"reused version {record['version']}: code, config and inputs unchanged"
        return decision
    if not decision.reason:
        decision.reason = "computed: " + _what_changed(key, records)
    return decision


def _what_changed(key: CacheKey, records: Sequence[Mapping[str, Any]]) -> str:
    """Which parts of the key differ from the current stored version's (for the UI)."""
    if not records:
        return "nothing stored yet"
    previous = records[0].get("cache_parts")
    if not isinstance(previous, Mapping):
        return "the stored version has no cache key (written before caching, or uncached)"
    changed = sorted(
        name for name in set(key.parts) | set(previous) if key.parts.get(name) != previous.get(name)
    )
    return "changed since the stored version: " + (", ".join(changed) or "cache format")
