"""Loading a run's config: YAML files and `key=value` overrides, merged onto the schema and checked.

The loader validates everything up front: an unknown key, a value of the wrong type, an
unknown provider or a model that names an unknown account fails with a `ConfigError`
that names the key, before any actor starts or any call is paid. The stages' own sections
are typed and checked by the stage registry (`jobs/config.py` puts the two together).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from actors.errors import ConfigError, SettingError
from actors.limiter_core import AccountLimits
from actors.providers.structured import SCHEMA_FORMATS
from actors.settings import RateLimits, field_values
from actors.types import NEUTRAL_PARAMS, Endpoint
from jobs.conf.batching import check_batching
from jobs.conf.schema import PROVIDERS, LimitsConf, RunConf


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Read a YAML file, first merging the files its `include:` list names (relative paths)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path in seen:
        raise ConfigError(f"config include cycle at {path}")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping")
    includes = raw.pop("include", [])
    merged = OmegaConf.create()
    for inc in includes:
        merged = OmegaConf.merge(merged, _read_yaml((path.parent / str(inc)).resolve(), (*seen, path)))
    return OmegaConf.merge(merged, raw)


def read_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), *, stages: type
) -> RunConf:
    """Load, merge overrides (`key=value`) onto the schema with `stages` as the type of the
    `stages:` section, and check everything but the stages. Raises `ConfigError` naming the key."""
    schema = OmegaConf.structured(RunConf)
    schema.stages = OmegaConf.structured(stages)
    try:
        layers = [schema]
        if path is not None:
            layers.append(_read_yaml(Path(path).resolve()))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must look like key=value, got: {', '.join(bad)}")
            layers.append(OmegaConf.from_dotlist([o for o in overrides if not _replaces(schema, o)]))
        merged = OmegaConf.merge(*layers)
        for override in overrides:
            if _replaces(schema, override):
                key = override.split("=", 1)[0]
                value = OmegaConf.select(OmegaConf.from_dotlist([override]), key)
                OmegaConf.update(merged, key, value, merge=False)
        conf: RunConf = _to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"config key '{key}': {msg}" if key else f"config: {msg}") from exc
    validate(conf)
    return conf


def _replaces(schema: DictConfig, override: str) -> bool:
    """Whether an override replaces the setting it names rather than merging into it: a mapping
    whose keys are the user's own labels (a record lists them in `REPLACED_BY_OVERRIDES`, e.g.
    the compliance stage's `specs` and `families`). Merging would join the config's labels and
    the override's: `specs={a: X, b: Y}` on a config judging versions c and d would judge four."""
    key = override.split("=", 1)[0]
    parent, _, name = key.rpartition(".")
    try:
        node = OmegaConf.select(schema, parent) if parent else schema
    except OmegaConfBaseException:
        return False
    record = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    return name in getattr(record, "REPLACED_BY_OVERRIDES", ())


def _to_object(node: DictConfig, key: str = "") -> Any:
    """`OmegaConf.to_object` (interpolations resolved), naming the key of a record's own check.

    A settings record checks itself when built (`actors/settings.py`), and OmegaConf passes
    its `SettingError` on without the key; so on one, the children are built in turn to find
    the record that raised it. (Nodes of frozen records are read-only, which rules out
    `OmegaConf.resolve` in place; `to_object` resolves as it builds.)
    """
    try:
        return OmegaConf.to_object(node)
    except SettingError as exc:
        for name in node:
            child = node[name]
            if isinstance(child, DictConfig):
                _to_object(child, f"{key}{name}.")
        raise _keyed(exc, key) from exc


def _keyed(exc: SettingError, prefix: str) -> ConfigError:
    """`exc` as a `ConfigError` naming the config key: `prefix` (the record's key) and the field."""
    key = prefix + exc.field if exc.field else prefix.rstrip("._")
    return ConfigError(f"config key '{key}': {exc.problem}")


def check(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{key}': {problem}")


def validate(conf: RunConf) -> None:
    """Semantic checks OmegaConf's types cannot express, of everything but the stages' sections."""
    for key, m in conf.models.items():
        where = f"models.{key}"
        check(m.provider in PROVIDERS, f"{where}.provider", f"must be one of {PROVIDERS}, got '{m.provider}'")
        check(
            m.base_url.startswith(("http://", "https://")),
            f"{where}.base_url",
            f"must start with http:// or https://, got '{m.base_url}'",
        )
        check(bool(m.model_id.strip()), f"{where}.model_id", "must not be empty")
        check(
            m.api_key_env is None
            or (m.api_key_env.replace("_", "").isalnum() and not m.api_key_env[0].isdigit()),
            f"{where}.api_key_env",
            f"must be an environment variable name, got '{m.api_key_env}'",
        )
        check(
            m.account is None or m.account in conf.accounts,
            f"{where}.account",
            f"names unknown account '{m.account}' (known: {sorted(conf.accounts)})",
        )
        unknown = set(m.params) - NEUTRAL_PARAMS
        check(
            not unknown,
            f"{where}.params",
            f"unknown parameter(s) {sorted(unknown)}; known: {sorted(NEUTRAL_PARAMS)}",
        )
        schema_format = m.params.get("schema_format", SCHEMA_FORMATS[0])
        check(
            schema_format in SCHEMA_FORMATS,
            f"{where}.params.schema_format",
            f"must be one of {SCHEMA_FORMATS}, got '{schema_format}'",
        )
        check(m.timeout_s > 0, f"{where}.timeout_s", "must be > 0")
    e = conf.engine
    for name in ("num_clients", "batch_size", "window_per_model", "max_attempts", "flush_rows"):
        check(getattr(e, name) >= 1, f"engine.{name}", f"must be >= 1, got {getattr(e, name)}")
    check(0 < e.lease_margin <= 1, "engine.lease_margin", f"must be in (0, 1], got {e.lease_margin}")
    check(e.drain_timeout_s >= 0, "engine.drain_timeout_s", f"must be >= 0, got {e.drain_timeout_s}")
    check(
        e.fail_fast_after is None or e.fail_fast_after >= 0,
        "engine.fail_fast_after",
        f"must be >= 0 or null, got {e.fail_fast_after}",
    )
    check(conf.budget_usd is None or conf.budget_usd >= 0, "budget_usd", "must be >= 0 or null")
    try:
        conf.emulator.batch_behaviour()
    except SettingError as exc:
        raise _keyed(exc, "emulator.batch_") from exc
    check_batching(conf)


def account_of(conf: RunConf, model_key: str) -> str:
    """The account a model draws on: its named account, or one of its own."""
    return conf.models[model_key].account or f"model:{model_key}"


def account_limits(conf: RunConf) -> dict[str, LimitsConf]:
    """Limits per account, including the implicit one-model accounts."""
    out = {name: acc.limits for name, acc in conf.accounts.items()}
    for key, m in conf.models.items():
        if m.account is None:
            out[account_of(conf, key)] = m.limits
    return out


def to_account_limits(lim: LimitsConf, margin: float) -> AccountLimits:
    """The limiter's record of an account: its `RateLimits`, aimed at `margin` of each."""
    return AccountLimits(**field_values(RateLimits, lim), margin=margin)


def endpoint(conf: RunConf, model_key: str) -> Endpoint:
    """The frozen slice of config a client needs for one model key."""
    if model_key not in conf.models:
        raise ConfigError(f"unknown model key '{model_key}' (known: {sorted(conf.models)})")
    m = conf.models[model_key]
    return Endpoint(
        model_key=model_key,
        provider=m.provider,  # type: ignore[arg-type]
        model_id=m.model_id,
        base_url=m.base_url.rstrip("/"),
        api_key_env=m.api_key_env,
        account=account_of(conf, model_key),
        prices=m.prices,
        timeout_s=m.timeout_s,
    )


def resolved_yaml(conf: RunConf) -> str:
    """The resolved config as YAML. Holds env-var names only, never their values."""
    return OmegaConf.to_yaml(OmegaConf.structured(conf))


def missing_keys(conf: RunConf, model_keys: list[str]) -> list[str]:
    """Environment variables the given models need that are unset (names only); a model that
    takes no key needs none."""
    needed = {conf.models[k].api_key_env for k in model_keys} - {None}
    return sorted(str(v) for v in needed - set(os.environ))
