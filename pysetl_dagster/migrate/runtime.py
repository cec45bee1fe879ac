"""What migrated pipelines import at run time: the active SparkSession and the script's argv.

Kept tiny and free of Dagster imports: generated modules use it at import time, and it must
never start Spark then (a session is only looked up when a Factory runs).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


def active_spark() -> SparkSession:
    """The session the run started (Dagster's resource), else a default one."""
    session = SparkSession.getActiveSession()
    return session if session is not None else SparkSession.builder.getOrCreate()


def ship_by_value(module: str) -> None:
    """Spark's Python workers get the functions of `module` (a generated pipeline: the
    script's UDFs, lambdas and helpers) by value, as `python script.py` ships those of
    `__main__`: a worker never imports the generated package, so it needs it on no executor
    and never finds a same-named module instead (the original script, in the folder the
    workers start in, whose import would build a session on a worker)."""
    found = sys.modules.get(module)
    if found is None or module in sys.builtin_module_names or not getattr(found, "__file__", None):
        # Code run without a module of its own (exec of the text: `__name__` then falls back
        # to "builtins"): its functions pickle by value anyway, and registering builtins by
        # value would break every later pickle of the process (deep recursion).
        return
    from pyspark import cloudpickle

    register: Callable[[Any], None] = cloudpickle.register_pickle_by_value
    register(found)


class ActiveSpark:
    """Stands in for a script's module-level `spark = SparkSession.builder...getOrCreate()`:
    helpers that use the global keep working, and nothing starts at import time."""

    def __getattr__(self, name: str) -> Any:
        return getattr(active_spark(), name)


def script_file(module: str, relative: str) -> str:
    """The original script's absolute path, from the generated module's own location (the
    module named `module`, being imported) and the path between the two: they move together (a
    clone elsewhere) and it still resolves."""
    module_file = getattr(sys.modules[module], "__file__", None) or "."
    here = os.path.dirname(os.path.abspath(module_file))
    return os.path.normpath(os.path.join(here, relative))


def script_args(env_var: str, default: list[str] | None = None) -> list[str]:
    """The command line the original script would get: `$env_var` (shell syntax) when set,
    else `default` (the command line given to the migration)."""
    if env_var in os.environ:
        return shlex.split(os.environ[env_var])
    return list(default or [])


@contextmanager
def script_argv(env_var: str, script_name: str, default: list[str] | None = None) -> Iterator[None]:
    """Run the script's own argument handling (argparse, sys.argv) on `$env_var`'s arguments
    (unset: `default`, the command line given to the migration)."""
    saved = sys.argv
    sys.argv = [script_name, *script_args(env_var, default)]
    try:
        yield
    finally:
        sys.argv = saved


@dataclass(frozen=True)
class Arg:
    """One argument of a migrated script's command line and the Config field it became."""

    field: str
    kind: str  # "option" | "flag" | "positional" | "argv"
    flag: str = ""
    dest: str = ""
    index: int = 0
    default: Any = None
    type_name: str = "str"
    store: bool = True
    required: bool = False


class ScriptArgumentError(ValueError):
    """The script's own argument handling rejected the command line a Config stands for."""


@dataclass(frozen=True)
class CommandLine:
    """A script's command line, rebuilt from a Factory's Config so the script's own argument
    and config code (kept verbatim) runs on it: `script_values(COMMAND_LINE.argv(config))`."""

    script: str
    args: tuple[Arg, ...]

    def argv(self, config: Any = None) -> list[str]:
        """The command line for `config`'s fields; fields it lacks take the script's default."""

        def value(arg: Arg) -> Any:
            return getattr(config, arg.field, arg.default) if config is not None else arg.default

        out: list[str] = []
        positionals = [a for a in self.args if a.kind in {"positional", "argv"}]
        for arg in sorted(positionals, key=lambda a: a.index):
            v = value(arg)
            if v is None:
                break  # later positions cannot be given without this one
            out.append(str(v))
        for arg in self.args:
            v = value(arg)
            if arg.kind == "option" and v is not None:
                out += [arg.flag, str(v)]
            elif arg.kind == "flag" and v is not None and bool(v) == arg.store:
                out.append(arg.flag)
        return out

    def fields(self, argv: list[str]) -> dict[str, Any]:
        """Field values for a command line (what `$PYSETL_MIGRATE_ARGS_<NAME>` holds)."""
        parser = argparse.ArgumentParser(prog=self.script, add_help=False, exit_on_error=False)
        values: dict[str, Any] = {}
        argv_args = sorted((a for a in self.args if a.kind == "argv"), key=lambda a: a.index)
        for arg in self.args:
            kind = {"int": int, "float": float}.get(arg.type_name, str)
            if arg.kind == "option":
                parser.add_argument(
                    arg.flag, dest=arg.field, type=kind, default=arg.default, required=arg.required
                )
            elif arg.kind == "flag":
                action = "store_true" if arg.store else "store_false"
                parser.add_argument(arg.flag, dest=arg.field, action=action, default=arg.default)
            elif arg.kind == "positional":
                if arg.required:
                    parser.add_argument(arg.field, type=kind)
                else:
                    parser.add_argument(arg.field, type=kind, nargs="?", default=arg.default)
        rest = list(argv)
        if argv_args:
            for arg in argv_args:
                values[arg.field] = rest.pop(0) if rest else arg.default
            return values
        try:
            parsed = parser.parse_args(rest)
        except (argparse.ArgumentError, SystemExit) as exc:
            raise ScriptArgumentError(f"{self.script}: command line {argv!r}: {exc}") from None
        return {**values, **vars(parsed)}


def setting(config: Any, name: str, default: Any) -> Any:
    """A Config field of the Factory running the settings code, else the script's value."""
    return getattr(config, name, default) if config is not None else default


def run_settings(
    script: str, argv: list[str], settings: Callable[[], Mapping[str, Any]]
) -> dict[str, Any]:
    """Run a script's argument and config code on `argv`; its own `SystemExit` (argparse's
    answer to a bad value) becomes an error naming the script and the command line."""
    saved = sys.argv
    sys.argv = [script, *argv]
    try:
        return dict(settings())
    except SystemExit as exc:
        raise ScriptArgumentError(
            f"{script}'s argument handling rejected {argv!r} (exit {exc.code}): fix the "
            "Factory's Config in the Launchpad or the run config"
        ) from None
    finally:
        sys.argv = saved


@contextmanager
def script_run(script: str, argv: list[str]) -> Iterator[None]:
    """Run a script's own code as `python script.py ARGV` would: `sys.argv` is the whole
    command line, the script's folder comes first on `sys.path` (its own modules, job modules
    it imports by name), and an exit with status 0 is a normal end. Any other exit status is
    an error naming the script and the command line."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    builder = SparkSession.Builder
    saved_get = builder.getOrCreate
    builder.getOrCreate = _carrying_files(saved_get)  # type: ignore[method-assign]
    try:
        yield
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ScriptArgumentError(
                f"{os.path.basename(script)} exited with status {exc.code!r} on the command "
                f"line {argv!r}: fix the Factory's Config (argv) in the Launchpad or run config"
            ) from None
    finally:
        builder.getOrCreate = saved_get  # type: ignore[method-assign]
        sys.argv = saved_argv
        sys.path[:] = saved_path


FILE_OPTIONS = ("spark.files", "spark.submit.pyFiles")
"""Builder options Spark reads only when it starts a session: the files shipped with the job
(`SparkFiles.get()` finds them) and Python files put on the path."""


def _carrying_files(get_or_create: Callable[..., SparkSession]) -> Callable[..., SparkSession]:
    """`getOrCreate` of a script's own builder (or a helper's) inside the run: the run's
    session already exists, so Spark keeps only the builder's runtime SQL settings and would
    ignore the files the script ships (`.config("spark.files", ...)`, a `start_spark(files=)`
    helper): they are added to the running session, as `python script.py` would have them."""

    def get(self: Any) -> SparkSession:
        session = get_or_create(self)
        options = getattr(self, "_options", {})
        context = getattr(session, "_sc", None)  # None under Spark Connect
        for key in FILE_OPTIONS:
            for path in str(options.get(key) or "").split(","):
                if path.strip() and context is not None:
                    add = context.addPyFile if key == "spark.submit.pyFiles" else context.addFile
                    try:
                        add(path.strip())
                    except Exception as exc:  # already added, or missing: as a real start does
                        print(f"pysetl-dagster migrate: {key} {path.strip()!r} not added: {exc}")
        return session

    return get


def display(*values: Any, **_: Any) -> None:
    """What a Jupyter kernel (or Databricks) provides to a notebook: DataFrames are shown,
    other values printed (into the run's logs)."""
    for value in values:
        show = getattr(value, "show", None)
        if callable(show):
            show()
        else:
            print(value)
