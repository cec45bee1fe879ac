"""Static analysis of a PySpark script: which statements read, transform and write data.

Nothing here imports or runs the input. The script is parsed twice: `libcst` keeps every
statement with its comments and formatting (so generation can carry it over verbatim) and `ast`
answers the questions (which names a statement reads and writes, which calls it makes).

The flow is the script's top-level statements plus the body of the entry point its
`if __name__ == "__main__":` block calls (`main()`). Each statement of the flow is one of:

* `session`  builds the SparkSession: dropped, its `.config(...)` pairs become Spark config;
* `prelude`  touches no data (argparse, constants, a JSON config): kept at module level;
* `data`     reads, transforms or writes DataFrames: grouped into Factories;
* `display`  only shows data (`show()`, `print(df.count())`): dropped with a note.

Statements become Factories by a union-find over the data flow: a value that is not a
DataFrame (a list of frames, a temp view, a table) is merged into its consumers, a
transformation used once is merged into its consumer, and a source read, a value used twice
and a sink each stay their own Factory.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from .naming_rules import camel, identifier
from .terminals import PATH_TERMINALS, READ_TERMINALS, WRITE_TERMINALS
from .terminals import attr_chain as _attr_chain

READ_ROOTS = ("read", "readStream", "table", "sql", "createDataFrame", "range")
DISPLAY_METHODS = {
    "show",
    "printSchema",
    "explain",
    "display",
    "stop",
    "setLogLevel",
    "cache",
    "persist",
    "unpersist",
}
BLOCKING_METHODS = {
    "collect": "collect() brings rows to the driver",
    "toPandas": "toPandas() brings rows to the driver",
    "toLocalIterator": "toLocalIterator() loops over rows on the driver",
    "count": "count() is a driver-side value the pipeline then depends on",
    "first": "first() is a driver-side value the pipeline then depends on",
    "take": "take() brings rows to the driver",
    "head": "head() brings rows to the driver",
}
LOGGERS = {"logging", "logger", "log", "LOGGER", "LOG", "_logger", "_log"}
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
DYNAMIC_CALLS = {"exec", "eval", "compile", "globals", "locals", "__import__", "vars"}
VIEW_METHODS = {
    "createOrReplaceTempView",
    "createTempView",
    "registerTempTable",
    "createOrReplaceGlobalTempView",
}


class MigrationSyntaxError(Exception):
    """The source does not parse: carries file, line and column."""

    def __init__(self, path: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: syntax error: {message}")
        self.path, self.line, self.column = path, line, column


@dataclass
class Statement:
    """One statement of the flow, with what the analysis found out about it."""

    index: int
    node: cst.BaseStatement
    code: str
    start: int
    end: int
    kind: str = "prelude"
    uses: set[str] = field(default_factory=set)
    defs: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)
    df_defs: set[str] = field(default_factory=set)
    is_sink: bool = False
    is_source: bool = False
    top_level: bool = True
    column_only: bool = False
    note: str = ""


@dataclass
class Problem:
    """Something that cannot be migrated safely: the file is reported, not generated."""

    line: int
    reason: str
    suggestion: str


@dataclass
class Unit:
    """A proposed Factory: statements, the DataFrames it receives and the one it returns."""

    name: str
    statements: list[Statement]
    inputs: dict[str, int]  # local name -> producing unit id
    output: str | None  # the DataFrame variable this unit delivers (None: a sink only)
    uid: int = 0
    stage: int = 0
    enabled: bool = True

    @property
    def is_sink(self) -> bool:
        return any(s.is_sink for s in self.statements)

    @property
    def lines(self) -> str:
        return ", ".join(
            f"{s.start}-{s.end}" if s.end != s.start else f"{s.start}" for s in self.statements
        )


@dataclass
class Analysis:
    """Everything generation and the report need about one source."""

    path: Path
    name: str
    module: cst.Module
    imports: list[cst.BaseStatement]
    helpers: list[tuple[str, cst.BaseStatement]]  # ("def"|"prelude"|"argv", node) in order
    main_prelude: list[Statement]
    statements: list[Statement]
    units: list[Unit]
    spark_names: set[str]
    module_spark_names: set[str]
    spark_config: dict[str, str]
    config: dict[str, str]
    problems: list[Problem]
    notes: list[str]
    line_map: dict[int, str] = field(default_factory=dict)
    argv_prelude: bool = False

    @property
    def migratable(self) -> bool:
        return not self.problems

    def span(self, st: Statement) -> str:
        """`line 3-5`, or `cell 2, line 1-3` in a notebook."""
        start, end = self.where(st.start), self.where(st.end)
        if start == end:
            return start
        head, _, last = end.rpartition("line ")
        return f"{start}-{last}" if start.startswith(head) else f"{start} to {end}"

    def where(self, line: int) -> str:
        """A source position for the report (`cell 3, line 2` in a notebook)."""
        return self.line_map.get(line, f"line {line}")


def _names(node: ast.AST) -> tuple[set[str], set[str], set[str]]:
    """(loads, stores, mutated) names in `node`, nested function bodies excluded."""
    loads: set[str] = set()
    stores: set[str] = set()
    mutated: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, n: ast.Name) -> None:
            (stores if isinstance(n.ctx, ast.Store | ast.Del) else loads).add(n.id)

        def visit_Call(self, n: ast.Call) -> None:
            f = n.func
            if (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.attr in {"append", "extend", "update", "add", "insert", "pop"}
            ):
                mutated.add(f.value.id)
            self.generic_visit(n)

        def visit_Subscript(self, n: ast.Subscript) -> None:
            if isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name):
                mutated.add(n.value.id)
            self.generic_visit(n)

        def visit_FunctionDef(self, n: ast.FunctionDef) -> None:
            stores.add(n.name)

        def visit_Lambda(self, n: ast.Lambda) -> None:
            params = {a.arg for a in n.args.args}
            inner = _names(n.body)[0] - params
            loads.update(inner)

        def visit_ListComp(self, n: ast.ListComp) -> None:
            self._comp(n)

        def visit_GeneratorExp(self, n: ast.GeneratorExp) -> None:
            self._comp(n)

        def visit_SetComp(self, n: ast.SetComp) -> None:
            self._comp(n)

        def visit_DictComp(self, n: ast.DictComp) -> None:
            self._comp(n)

        def _comp(self, n: ast.AST) -> None:
            targets: set[str] = set()
            for gen in getattr(n, "generators", []):
                targets |= {t.id for t in ast.walk(gen.target) if isinstance(t, ast.Name)}
            inner: set[str] = set()
            for child in ast.iter_child_nodes(n):
                inner |= _names(child)[0]
            loads.update(inner - targets)

    Visitor().visit(node)
    return loads, stores, mutated


def _calls(node: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _is_builder(node: ast.AST) -> bool:
    return any(
        "builder" in _attr_chain(c) and _attr_chain(c)[-1:] in (["getOrCreate"], ["create"])
        for c in _calls(node)
    )


def _const_str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Source:
    """The parsed source: libcst module with positions, and `ast` for each statement."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        try:
            ast.parse(text, filename=str(path))
        except SyntaxError as exc:
            raise MigrationSyntaxError(
                str(path), exc.lineno or 0, exc.offset or 0, exc.msg or "invalid syntax"
            ) from None
        try:
            self.module = cst.parse_module(text)
        except cst.ParserSyntaxError as exc:
            raise MigrationSyntaxError(
                str(path), exc.raw_line, exc.raw_column, exc.message
            ) from None
        self.wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.positions = self.wrapper.resolve(PositionProvider)

    def statement(
        self, node: cst.BaseStatement, index: int, top_level: bool, line: int | None = None
    ) -> Statement:
        """`line`: where a statement the analysis wrote (a bound parameter) comes from."""
        code = self.module.code_for_node(node)
        if line is not None:
            return Statement(index, node, code, line, line, top_level=top_level)
        pos = self.positions[node]
        # Comments above a statement belong to it (leading_lines); its own lines start after.
        return Statement(
            index=index,
            node=node,
            code=code,
            start=pos.start.line,
            end=pos.end.line,
            top_level=top_level,
        )


def parse_statement(code: str) -> ast.Module:
    """`ast` of one statement's code (dedented when it came from inside a function)."""
    import textwrap

    try:
        return ast.parse(code)
    except SyntaxError:
        return ast.parse(textwrap.dedent(code))


def _is_main_guard(node: cst.BaseStatement) -> bool:
    if not isinstance(node, cst.If):
        return False
    test = cst.Module(body=[]).code_for_node(node.test).replace("'", '"').replace(" ", "")
    return test in ('__name__=="__main__"', '"__main__"==__name__')


@dataclass
class _Flow:
    """The script's entry: its functions, the flow's statements in order, and the entry
    point the `__main__` block calls (its parameters bound from the call)."""

    functions: dict[str, cst.FunctionDef] = field(default_factory=dict)
    function_ast: dict[str, ast.FunctionDef] = field(default_factory=dict)
    nodes: list[tuple[cst.BaseStatement, bool]] = field(default_factory=list)
    synthetic_lines: dict[int, int] = field(default_factory=dict)  # id(node) -> call line
    entry: str | None = None


def analyze(
    path: Path, text: str | None = None, line_map: dict[int, str] | None = None
) -> Analysis:
    """Analyse one script (or a notebook's code already joined into one script).

    Passes, in order: find the entry point and the flow (`_entry_flow`); sort the module's
    statements into imports, helpers and flow (`_module_parts`); find helpers that read or
    write (`_io_helpers`); mark the session statements (`_mark_sessions`); close the set of
    data statements over the names they share (`_mark_data`); classify each data statement
    (`_classify`); note what is dropped or moved (`_flow_notes`); group units.
    """
    text = path.read_text(encoding="utf-8") if text is None else text
    src = _Source(path, text)
    module = src.module
    problems: list[Problem] = []
    notes: list[str] = []
    flow = _entry_flow(src, line_map, problems, notes)
    imports, helpers, top = _module_parts(module, flow.entry)
    guard_rest = [(n, t) for n, t in flow.nodes if t]
    entry_flow = [(n, t) for n, t in flow.nodes if not t]
    # Source order: module statements, then the entry point's body, then the rest of the guard.
    ordered = top + entry_flow + guard_rest
    statements = [
        src.statement(n, i, t, flow.synthetic_lines.get(id(n))) for i, (n, t) in enumerate(ordered)
    ]
    imports = _explicit_star_imports(imports, src, notes, line_map)
    spark_imports = _pyspark_names(imports, module)
    writes_in, reads_in = _io_helpers(src, flow, problems, notes)
    spark_config: dict[str, str] = {}
    spark_names: set[str] = set()
    module_spark_names: set[str] = set()
    views = _mark_sessions(statements, spark_config, spark_names, module_spark_names)
    data = _mark_data(statements, spark_names, writes_in, reads_in, spark_imports)
    defined_views: list[str] = []
    for st in statements:
        if st.kind == "data":
            tree = parse_statement(st.code)
            _classify(st, tree, data, spark_names, writes_in, views, defined_views, problems)
    argv_prelude = any(
        re.search(r"\bsys\.argv\b|parse_args\(|getopt", st.code)
        for st in statements
        if st.kind == "prelude"
    )
    _flow_notes(statements, spark_config, line_map, notes)
    units = propose_units(statements, spark_names) if not problems else []
    main_prelude = [s for s in statements if s.kind == "prelude" and not s.top_level]
    helpers += [("prelude", s.node) for s in statements if s.kind == "prelude" and s.top_level]
    helpers.sort(key=lambda item: src.positions[item[1]].start.line)
    return Analysis(
        path=path,
        name=identifier(path.stem),
        module=module,
        imports=imports,
        helpers=helpers,
        main_prelude=main_prelude,
        statements=statements,
        units=units,
        spark_names=spark_names,
        module_spark_names=module_spark_names,
        spark_config=spark_config,
        config=_config_of(text),
        problems=problems,
        notes=notes,
        line_map=line_map or {},
        argv_prelude=argv_prelude,
    )


def _entry_flow(
    src: _Source, line_map: dict[int, str] | None, problems: list[Problem], notes: list[str]
) -> _Flow:
    """Pass 1: the functions, and the `__main__` block's statements; the entry point it
    calls contributes its body (parameters bound from the call, a final `return` dropped)."""
    module = src.module
    flow = _Flow()
    for node in module.body:
        if isinstance(node, cst.FunctionDef):
            flow.functions[node.name.value] = node
            parsed = parse_statement(module.code_for_node(node)).body[0]
            assert isinstance(parsed, ast.FunctionDef)
            flow.function_ast[node.name.value] = parsed
        elif _is_main_guard(node):
            assert isinstance(node, cst.If)
            body = node.body.body if isinstance(node.body, cst.IndentedBlock) else []
            for inner in body:
                tree = parse_statement(module.code_for_node(inner))
                call = _entry_call(tree.body[0] if tree.body else None, flow.functions)
                if call is not None and flow.entry is None:
                    _enter(src, flow, call, inner, line_map, problems, notes)
                else:
                    flow.nodes.append((inner, True))
    return flow


def _enter(
    src: _Source,
    flow: _Flow,
    call: ast.Call,
    inner: cst.BaseStatement,
    line_map: dict[int, str] | None,
    problems: list[Problem],
    notes: list[str],
) -> None:
    """The entry point's body joins the flow (see `_entry_flow`)."""
    module = src.module
    assert isinstance(call.func, ast.Name)
    entry = flow.entry = call.func.id
    line = src.positions[inner].start.line
    fn = flow.functions[entry]
    bound, why = _bind_entry_args(call, flow.function_ast[entry])
    if why:
        problems.append(
            Problem(
                line,
                f"the entry point {entry}(...) is called with {why}",
                "call it with plain arguments and read argv/config inside it",
            )
        )
    for code in bound:
        node = cst.parse_statement(code + "\n")
        flow.synthetic_lines[id(node)] = line
        flow.nodes.append((node, False))
    fn_body = list(fn.body.body if isinstance(fn.body, cst.IndentedBlock) else [])
    last = parse_statement(module.code_for_node(fn_body[-1])) if fn_body else None
    if last is not None and last.body and isinstance(last.body[0], ast.Return):
        notes.append(
            f"{_pos(line_map, src.positions[fn_body[-1]].start.line)}: what "
            f"{entry}() returns (its exit status) is dropped: a run succeeds or "
            "fails instead"
        )
        fn_body = fn_body[:-1]
    for s in fn_body:
        if any(
            isinstance(n, ast.Return) for n in _walk_flow(parse_statement(module.code_for_node(s)))
        ):
            problems.append(
                Problem(
                    src.positions[s].start.line,
                    f"{entry}() returns early",
                    "let the flow run to the end (move the condition into "
                    "the DataFrame logic or before the pipeline)",
                )
            )
    flow.nodes.extend((s, False) for s in fn_body)


def _module_parts(
    module: cst.Module, entry: str | None
) -> tuple[
    list[cst.BaseStatement],
    list[tuple[str, cst.BaseStatement]],
    list[tuple[cst.BaseStatement, bool]],
]:
    """Pass 2: (imports, helper functions and classes, the other top-level statements)."""
    imports: list[cst.BaseStatement] = []
    helpers: list[tuple[str, cst.BaseStatement]] = []
    top: list[tuple[cst.BaseStatement, bool]] = []
    for node in module.body:
        if isinstance(node, cst.SimpleStatementLine) and all(
            isinstance(s, cst.Import | cst.ImportFrom) for s in node.body
        ):
            imports.append(node)
        elif isinstance(node, cst.FunctionDef):
            if node.name.value != entry:
                helpers.append(("def", node))
        elif isinstance(node, cst.ClassDef):
            helpers.append(("def", node))
        elif not _is_main_guard(node):
            top.append((node, True))
    return imports, helpers, top


def _io_helpers(
    src: _Source, flow: _Flow, problems: list[Problem], notes: list[str]
) -> tuple[dict[str, bool], dict[str, bool]]:
    """Pass 3: which helper functions and classes write and read (by name); dynamic code
    in a helper is a problem."""
    module = src.module
    for fname, fn_ast in flow.function_ast.items():
        for sub in ast.walk(fn_ast):
            is_exec = isinstance(sub, ast.Call) and _attr_chain(sub)[-1:] in (["exec"], ["eval"])
            if is_exec and fname != flow.entry:
                problems.append(
                    Problem(
                        src.positions[flow.functions[fname]].start.line
                        + getattr(sub, "lineno", 1)
                        - 1,
                        f"dynamic code ({_attr_chain(sub)[-1]}) in function {fname}()",
                        "replace it with plain Python the migration can read",
                    )
                )
    classes = {
        node.name.value: parse_statement(module.code_for_node(node))
        for node in module.body
        if isinstance(node, cst.ClassDef)
    }
    named: list[tuple[str, ast.AST]] = [*flow.function_ast.items(), *classes.items()]
    writes_in = {name: _has_write(fn) for name, fn in named if name != flow.entry}
    reads_in = {name: _has_read(fn) for name, fn in named if name != flow.entry}
    job_classes = sorted(n for n in classes if writes_in[n] or reads_in[n])
    if job_classes:
        notes.append(
            f"{', '.join(job_classes)} read or write data inside their methods: each call stays "
            "in one Factory (split the methods into functions that take and return DataFrames "
            "for finer Factories)"
        )
    return writes_in, reads_in


def _mark_sessions(
    statements: list[Statement],
    spark_config: dict[str, str],
    spark_names: set[str],
    module_spark_names: set[str],
) -> set[str]:
    """Pass 4: names, session builders and `spark.conf.set` (their settings collected);
    returns the temp views the script creates."""
    views: set[str] = set()
    for st in statements:
        tree = parse_statement(st.code)
        loads, stores, mutated = _names(tree)
        st.uses, st.defs, st.mutates = loads, stores | mutated, mutated
        if _is_builder(tree):
            st.kind = "session"
            spark_names |= stores
            if st.top_level:
                module_spark_names |= stores
            for call in _calls(tree):
                chain = _attr_chain(call)
                if chain[-1:] == ["enableHiveSupport"]:
                    spark_config["spark.sql.catalogImplementation"] = "hive"
                if chain[-1:] == ["config"] and len(call.args) == 2:
                    key = _const_str(call.args[0])
                    value = call.args[1]
                    if key is not None and isinstance(value, ast.Constant):
                        spark_config[key] = str(value.value)
            continue
        conf = _conf_set(tree, spark_names)
        if conf is not None:
            st.kind, st.note = "session", "conf"
            spark_config[conf[0]] = conf[1]
            continue
        for call in _calls(tree):
            chain = _attr_chain(call)
            if chain and chain[-1] in VIEW_METHODS and call.args:
                view = _const_str(call.args[0])
                if view:
                    views.add(view.lower())
    return views


def _mark_data(
    statements: list[Statement],
    spark_names: set[str],
    writes_in: dict[str, bool],
    reads_in: dict[str, bool],
    spark_imports: set[str],
) -> set[str]:
    """Pass 5: data statements (they read, write, or touch a name another data statement
    defines), to a fixed point; returns the data names."""
    data: set[str] = set(spark_names)
    changed = True
    while changed:
        changed = False
        for st in statements:
            if st.kind == "session":
                continue
            tree = parse_statement(st.code)
            touches = (
                bool(st.uses & data)
                or _has_read(tree)
                or _has_write(tree)
                or any(
                    isinstance(c.func, ast.Name)
                    and (writes_in.get(c.func.id) or reads_in.get(c.func.id))
                    for c in _calls(tree)
                )
            )
            # Column expressions and window specs need a live Spark: not at import time.
            column_only = not touches and _needs_spark(tree, spark_imports)
            st.column_only = column_only
            if (touches or column_only) and st.kind != "data":
                st.kind = "data"
                changed = True
            if st.kind == "data" and not st.defs <= data:
                data |= st.defs
                changed = True
    return data


def _flow_notes(
    statements: list[Statement],
    spark_config: dict[str, str],
    line_map: dict[int, str] | None,
    notes: list[str],
) -> None:
    """Pass 6: a note for each statement dropped or moved into the Spark resource."""
    for st in statements:
        if st.kind == "display":
            notes.append(
                f"{_pos(line_map, st.start)}: `{_short(st.code)}` only shows or logs data: "
                "dropped (Dagster's run logs carry each Factory's metrics)"
            )
        if st.kind == "session" and st.note == "conf":
            notes.append(
                f"{_pos(line_map, st.start)}: `{_short(st.code)}` becomes spark_config "
                "(the Dagster Spark resource's)"
            )
        elif st.kind == "session":
            notes.append(
                f"{_pos(line_map, st.start)}: the SparkSession the script builds is replaced by "
                "the Dagster Spark resource"
                + (f" (its options become spark_config: {spark_config})" if spark_config else "")
            )


def _entry_call(stmt: ast.stmt | None, functions: dict[str, cst.FunctionDef]) -> ast.Call | None:
    """The call of the script's entry point in its `__main__` block: `main()`, `main(argv)`,
    `sys.exit(main())`, `raise SystemExit(main())`."""
    value: ast.expr | None = None
    if isinstance(stmt, ast.Expr):
        value = stmt.value
    elif isinstance(stmt, ast.Raise):
        value = stmt.exc
    if not isinstance(value, ast.Call):
        return None
    if isinstance(value.func, ast.Name) and value.func.id in functions:
        return value
    wrapper = _attr_chain(value)
    if wrapper in (["sys", "exit"], ["exit"], ["SystemExit"]) and len(value.args) == 1:
        inner = value.args[0]
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Name)
            and inner.func.id in functions
        ):
            return inner
    return None


def _bind_entry_args(call: ast.Call, fn: ast.FunctionDef) -> tuple[list[str], str]:
    """`param = argument` for each parameter of the entry point (its default when the call
    leaves it out), so the flow reads them as the function did; or why it cannot."""
    args = fn.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        return [], "*args, **kwargs or keyword-only parameters"
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return [], "* or ** arguments"
    params = [a.arg for a in args.args]
    defaults = dict(zip(params[len(params) - len(args.defaults) :], args.defaults, strict=True))
    given = dict(zip(params, call.args, strict=False))
    given.update({k.arg: k.value for k in call.keywords if k.arg})
    bound: list[str] = []
    for name in params:
        value = given.get(name, defaults.get(name))
        if value is None:
            return [], f"parameter {name} left without a value"
        bound.append(f"{name} = {ast.unparse(value)}")
    return bound, ""


def _walk_flow(node: ast.AST) -> list[ast.AST]:
    """Nodes of a flow statement, not descending into functions or classes it defines."""
    out: list[ast.AST] = []
    todo = [node]
    while todo:
        n = todo.pop()
        out.append(n)
        for child in ast.iter_child_nodes(n):
            if not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ):
                todo.append(child)
    return out


def _conf_set(tree: ast.Module, spark_names: set[str]) -> tuple[str, str] | None:
    """`spark.conf.set("key", "value")` with literal arguments: (key, value)."""
    stmt = tree.body[0] if len(tree.body) == 1 else None
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    chain = _attr_chain(call)
    args = [a.value for a in call.args if isinstance(a, ast.Constant)]
    if len(chain) != 3 or chain[0] not in spark_names or chain[1:] != ["conf", "set"]:
        return None
    if len(args) != 2 or len(call.args) != 2:
        return None
    key, value = args
    return str(key), str(value).lower() if isinstance(value, bool) else str(value)


def _guard_line(src: _Source) -> int:
    for node in src.module.body:
        if _is_main_guard(node):
            return src.positions[node].start.line
    return 10**9


def _pos(line_map: dict[int, str] | None, line: int) -> str:
    return (line_map or {}).get(line, f"line {line}")


def _short(code: str) -> str:
    lines = [
        ln.strip() for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    first = lines[0] if lines else ""
    return first if len(first) <= 70 else first[:67] + "..."


def _explicit_star_imports(
    imports: list[cst.BaseStatement],
    src: _Source,
    notes: list[str],
    line_map: dict[int, str] | None,
) -> list[cst.BaseStatement]:
    """`from pyspark.sql.functions import *` becomes an import of the names the script uses
    from it, so the generated code passes ruff (F403/F405) and says where each name comes
    from. Names the star import shadowed (`sum`, `max`) still come from pyspark."""
    import importlib

    tree = ast.parse(src.module.code)
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)} | {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    providers: dict[str, str] = {}  # name -> the last star-imported module that has it
    stars: list[tuple[int, str]] = []
    for i, node in enumerate(imports):
        parsed = ast.parse(src.module.code_for_node(node).strip()).body
        for imp in parsed:
            if not (
                isinstance(imp, ast.ImportFrom)
                and [a.name for a in imp.names] == ["*"]
                and (imp.module or "").startswith("pyspark")
                and len(parsed) == 1
            ):
                continue
            try:
                mod = importlib.import_module(imp.module or "")
            except ImportError:
                continue
            public = getattr(mod, "__all__", None) or [n for n in dir(mod) if n[:1] != "_"]
            for name in public:
                providers[name] = imp.module or ""
            stars.append((i, imp.module or ""))
    out: list[cst.BaseStatement | None] = list(imports)
    for i, module_name in stars:
        names = sorted(n for n in loaded - defined if providers.get(n) == module_name)
        node = imports[i]
        line = _pos(line_map, src.positions[node].start.line)
        if not names:
            out[i] = None
            notes.append(f"{line}: `from {module_name} import *` is unused: dropped")
            continue
        new = cst.parse_statement(f"from {module_name} import {', '.join(names)}\n")
        if isinstance(node, cst.SimpleStatementLine) and isinstance(new, cst.SimpleStatementLine):
            new = new.with_changes(leading_lines=node.leading_lines)
        out[i] = new
        notes.append(
            f"{line}: `from {module_name} import *` becomes an import of the "
            f"{len(names)} names the script uses from it"
        )
    return [node for node in out if node is not None]


def _pyspark_names(imports: list[cst.BaseStatement], module: cst.Module) -> set[str]:
    """Names the script imports from pyspark, except data types (those need no session)."""
    names: set[str] = set()
    for node in imports:
        for imp in ast.parse(module.code_for_node(node).strip()).body:
            if isinstance(imp, ast.ImportFrom) and (imp.module or "").startswith("pyspark"):
                if imp.module != "pyspark.sql.types":
                    names |= {a.asname or a.name for a in imp.names}
            elif isinstance(imp, ast.Import):
                names |= {
                    (a.asname or a.name).split(".")[0]
                    for a in imp.names
                    if a.name.startswith("pyspark")
                }
    return names


def _needs_spark(node: ast.AST, spark_imports: set[str]) -> bool:
    """Calls into pyspark that build columns or window specs (UDF wrappers excepted)."""
    for call in _calls(node):
        chain = _attr_chain(call)
        if chain and chain[0] in spark_imports and chain[-1] not in {"udf", "pandas_udf"}:
            if chain[0] in {"SparkSession", "DataFrame"}:
                continue
            return True
    return False


def _has_write(node: ast.AST) -> bool:
    for call in _calls(node):
        chain = _attr_chain(call)
        if "write" in chain[:-1] or "writeTo" in chain or chain[-1:] == ["insertInto"]:
            return True
        if chain[-1:] == ["saveAsTable"]:
            return True
    return False


def _has_read(node: ast.AST) -> bool:
    for call in _calls(node):
        chain = _attr_chain(call)
        if len(chain) >= 2 and chain[1] in READ_ROOTS:
            return True
    return False


def _classify(
    st: Statement,
    tree: ast.Module,
    data: set[str],
    spark_names: set[str],
    writes_in: dict[str, bool],
    views: set[str],
    defined_views: list[str],
    problems: list[Problem],
) -> None:
    """Sinks, sources, temp views, tables, DataFrame-valued names, and what cannot migrate."""
    stmt = tree.body[0] if tree.body else None
    calls = _calls(tree)
    # Display-only statements (show, printSchema, print(df.count()), a bare `df` in a notebook).
    if isinstance(stmt, ast.Expr):
        value = stmt.value
        if isinstance(value, ast.Name):
            st.kind = "display"
            return
        if isinstance(value, ast.Call):
            chain = _attr_chain(value)
            last = chain[-1] if chain else ""
            shows = (
                last in DISPLAY_METHODS
                or (isinstance(value.func, ast.Name) and value.func.id in {"print", "display"})
                or (len(chain) == 2 and chain[0] in LOGGERS and last in LOG_METHODS)
            )
            if shows and not _has_write(value):
                st.kind = "display"
                return
    for call in calls:
        if isinstance(call.func, ast.Name) and call.func.id in DYNAMIC_CALLS:
            problems.append(
                Problem(
                    st.start,
                    f"dynamic code: {call.func.id}() builds code or names at run time",
                    "write the step out as plain PySpark",
                )
            )
        chain = _attr_chain(call)
        last = chain[-1] if chain else ""
        streaming = {"readStream", "writeStream"} & set(chain)
        if streaming and not any(p.line == st.start and "streaming" in p.reason for p in problems):
            problems.append(
                Problem(
                    st.start,
                    f"`{_short(st.code)}`: a streaming query ({', '.join(sorted(streaming))})",
                    "keep it a Structured Streaming job; a Factory can read what it writes "
                    "as a batch source",
                )
            )
        grouped = {"groupBy", "groupby", "rollup", "cube", "pivot", "agg"} & set(chain)
        if (
            last in BLOCKING_METHODS
            and len(chain) >= 2
            and chain[0] in data
            and not (last == "count" and grouped)
        ):
            problems.append(
                Problem(
                    st.start,
                    f"`{_short(st.code)}`: {BLOCKING_METHODS[last]}",
                    "keep the logic in DataFrame operations (join, groupBy, a window) or move "
                    "the driver-side step after the pipeline",
                )
            )
        if last in VIEW_METHODS and call.args:
            view = _const_str(call.args[0])
            if view:
                st.defs.add(f"view:{view.lower()}")
                defined_views.append(view.lower())
        if len(chain) >= 2 and chain[0] in spark_names and chain[1] == "sql":
            query = _const_str(call.args[0]) if call.args else None
            if query is None:
                st.uses |= {f"view:{v}" for v in defined_views}
            else:
                for table in re.findall(
                    r"\b(?:create|replace|insert\s+(?:into|overwrite)(?:\s+table)?)\s+"
                    r"(?:or\s+replace\s+)?(?:table\s+)?(?:if\s+not\s+exists\s+)?"
                    r"([A-Za-z_][A-Za-z0-9_.]*)",
                    query,
                    flags=re.IGNORECASE,
                ):
                    st.defs.add(f"table:{table.lower()}")
                    st.uses.add(f"table:{table.lower()}")
                words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query.lower()))
                st.uses |= {f"view:{v}" for v in views if v in words}
        if (
            len(chain) >= 2
            and chain[0] in spark_names
            and chain[1:] in (["table"], ["read", "table"])
        ):
            table = _const_str(call.args[0]) if call.args else None
            if table:
                st.uses |= {f"view:{table.lower()}", f"table:{table.lower()}"}
        if last in {"saveAsTable", "insertInto"} and call.args:
            table = _const_str(call.args[0])
            if table:
                st.defs.add(f"table:{table.lower()}")
                st.uses.add(f"table:{table.lower()}")
        location = _io_location(call, chain, spark_names)
        if location is not None:
            # A path written and read back later: reader and writer stay in order, in one
            # Factory (like a table), never as a read of whatever was there before.
            kind, path = location
            if kind == "write":
                st.defs.add(f"path:{path}")
                st.uses.add(f"path:{path}")
            else:
                st.uses |= {f"path:{p}" for p in _with_parents(path)}
        if (
            isinstance(call.func, ast.Name)
            and call.func.id in {"open"}
            and (st.uses & data - spark_names)
        ):
            problems.append(
                Problem(
                    st.start,
                    f"`{_short(st.code)}`: file I/O outside Spark on pipeline data",
                    "write the data with DataFrame.write so it becomes a sink",
                )
            )
    if isinstance(stmt, ast.For | ast.While) and isinstance(stmt, ast.For):
        iter_chain = _attr_chain(stmt.iter)
        if iter_chain and iter_chain[0] in data - spark_names:
            problems.append(
                Problem(
                    st.start,
                    f"`{_short(st.code)}`: a driver-side loop over DataFrame rows",
                    "express the loop as a DataFrame transformation",
                )
            )
    st.is_sink = _has_write(tree) or any(
        isinstance(c.func, ast.Name) and writes_in.get(c.func.id, False) for c in calls
    )
    df_uses = (st.uses & data) - spark_names
    st.is_source = not st.is_sink and not {u for u in df_uses if ":" not in u}
    if st.column_only:
        return
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        value = stmt.value
        non_df = isinstance(
            value,
            ast.List | ast.Dict | ast.Set | ast.Tuple | ast.Constant | ast.ListComp | ast.DictComp,
        )
        if isinstance(target, ast.Name) and not non_df:
            st.df_defs.add(target.id)
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
        st.df_defs.add(stmt.target.id)


def _io_location(call: ast.Call, chain: list[str], spark_names: set[str]) -> tuple[str, str] | None:
    """("write" | "read", normalised literal path) of a file read or write, if literal."""
    last = chain[-1] if chain else ""
    if last not in PATH_TERMINALS:
        return None
    if "write" in chain[:-1] and last in WRITE_TERMINALS:
        kind = "write"
    elif chain[0] in spark_names and chain[1:2] == ["read"] and last in READ_TERMINALS:
        kind = "read"
    else:
        return None
    arg = call.args[0] if call.args else None
    if arg is None:
        arg = next((k.value for k in call.keywords if k.arg == "path"), None)
    text = _const_str(arg) if arg is not None else None
    if not text:
        return None
    return kind, os.path.normpath(text).rstrip("/") or "/"


def _with_parents(path: str) -> list[str]:
    """`out/x/day=1` -> itself, `out/x`, `out`: a read of a partition depends on its table."""
    found = [path]
    while (parent := os.path.dirname(found[-1])) and parent not in (found[-1], "/"):
        found.append(parent)
    return found


def _config_of(text: str) -> dict[str, str]:
    """Arguments and config the script reads, with the defaults it gives them."""
    config: dict[str, str] = {}
    tree = ast.parse(text)
    for st in [tree]:
        for call in _calls(st):
            chain = _attr_chain(call)
            if chain[-1:] == ["add_argument"] and call.args:
                flag = _const_str(call.args[0]) or "?"
                default = next((k.value for k in call.keywords if k.arg == "default"), None)
                config[f"argument {flag}"] = ast.unparse(default) if default else "(required)"
            if chain[-1:] == ["load"] and chain[:1] == ["json"]:
                config["JSON config"] = ast.unparse(call)
        for sub in ast.walk(st):
            if isinstance(sub, ast.IfExp) and "sys.argv[" in ast.unparse(sub.body):
                config[ast.unparse(sub.body)] = ast.unparse(sub.orelse)
                continue
            if isinstance(sub, ast.Subscript) and _attr_chain(sub.value) == ["sys", "argv"]:
                config.setdefault(f"sys.argv[{ast.unparse(sub.slice)}]", "(required)")
            if isinstance(sub, ast.Call) and _attr_chain(sub)[:2] == ["os", "environ"]:
                config["environment"] = ast.unparse(sub)
    return config


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def propose_units(statements: list[Statement], spark_names: set[str]) -> list[Unit]:
    """Group the data statements into Factories (see the module docstring)."""
    # Every use resolves to the statement that last defined the name before it.
    data, edges = data_edges(statements, spark_names)
    consumers: dict[int, set[int]] = {}
    for p, c, _ in edges:
        consumers.setdefault(p, set()).add(c)
    uf = _UnionFind(len(data))
    for p, c, name in edges:
        if name not in data[p].df_defs or name in data[p].mutates:
            uf.union(p, c)
    for p, cs in consumers.items():
        st = data[p]
        if not st.is_source and not st.is_sink and len(cs) == 1:
            consumer = data[next(iter(cs))]
            # A result that is written gets its own Factory; the write is a Factory of its own.
            if consumer.is_sink and st.df_defs:
                continue
            uf.union(p, next(iter(cs)))

    changed = True
    while changed:
        changed = False
        groups = _groups(uf, len(data))
        # One exported DataFrame per Factory: consumers of any other export join the group.
        for members in groups.values():
            exports: dict[str, int] = {}
            for p, c, name in edges:
                if p in members and c not in members:
                    exports.setdefault(name, p)
            if len(exports) > 1:
                keep = max(exports, key=lambda n: exports[n])
                for p, c, name in edges:
                    if p in members and c not in members and name != keep:
                        changed |= uf.union(p, c)
        if changed:
            continue
        # No cycles between groups.
        groups = _groups(uf, len(data))
        root_of = {i: uf.find(i) for i in range(len(data))}
        deps: dict[int, set[int]] = {r: set() for r in groups}
        for p, c, _ in edges:
            if root_of[p] != root_of[c]:
                deps[root_of[c]].add(root_of[p])
        for r in groups:
            for d in _reachable(deps, r):
                if r in _reachable(deps, d):
                    changed |= uf.union(r, d)
    groups = _groups(uf, len(data))
    return build_units(data, edges, list(groups.values()))


def data_edges(
    statements: list[Statement], spark_names: set[str]
) -> tuple[list[Statement], list[tuple[int, int, str]]]:
    """The data statements and (producer, consumer, name) edges between them."""
    data = [s for s in statements if s.kind == "data"]
    current: dict[str, int] = {}
    edges: list[tuple[int, int, str]] = []
    for i, st in enumerate(data):
        for name in sorted(st.uses - spark_names):
            if name in current:
                edges.append((current[name], i, name))
        for name in st.defs:
            current[name] = i
    return data, edges


def build_units(
    data: list[Statement],
    edges: list[tuple[int, int, str]],
    groups: list[set[int]],
    names: dict[int, str] | None = None,
) -> list[Unit]:
    """Units from a grouping of the data statements (positions in `data`).

    Raises ValueError when the grouping cannot be a pipeline: a group that would deliver two
    DataFrames (or a value that is not one), or two groups that need each other.
    """
    order = sorted(range(len(groups)), key=lambda g: min(groups[g]))
    group_of = {m: g for g in range(len(groups)) for m in groups[g]}
    deps: dict[int, set[int]] = {g: set() for g in range(len(groups))}
    for p, c, name in edges:
        gp, gc = group_of[p], group_of[c]
        if gp != gc:
            deps[gc].add(gp)
            if name not in data[p].df_defs or name in data[p].mutates or ":" in name:
                raise ValueError(
                    f"`{name}` (line {data[p].start}) is not a DataFrame: line {data[p].start} "
                    f"and line {data[c].start} must stay in one Factory"
                )
    for g in deps:
        if g in _reachable(deps, g):
            raise ValueError(
                "these Factories would need each other: lines "
                + ", ".join(str(data[m].start) for m in sorted(groups[g]))
            )
    units: list[Unit] = []
    used_names: set[str] = set()
    for uid, g in enumerate(order):
        members = groups[g]
        inputs: dict[str, int] = {}
        exports: set[str] = set()
        for p, c, name in edges:
            if c in members and p not in members:
                inputs[name] = order.index(group_of[p])
            if p in members and c not in members:
                exports.add(name)
        if len(exports) > 1:
            raise ValueError(
                f"one Factory would deliver {len(exports)} DataFrames "
                f"({', '.join(sorted(exports))}): a Factory delivers one"
            )
        output = next(iter(exports), None)
        stmts = [data[m] for m in sorted(members)]
        if output is None and not any(s.is_sink for s in stmts):
            last_df = [n for s in stmts for n in sorted(s.df_defs)]
            output = last_df[-1] if last_df else None
        wanted = (names or {}).get(min(members)) or _unit_name(stmts, output, inputs)
        units.append(
            Unit(
                name=_unique(wanted, used_names),
                statements=stmts,
                inputs=inputs,
                output=output,
                uid=uid,
            )
        )
    assign_stages(units)
    return units


def assign_stages(units: list[Unit]) -> None:
    """Stage = longest path from a source: a Stage only reads from earlier Stages."""
    by_uid = {u.uid: u for u in units}
    done: dict[int, int] = {}

    def stage(uid: int) -> int:
        if uid not in done:
            done[uid] = max((stage(p) + 1 for p in by_uid[uid].inputs.values()), default=0)
        return done[uid]

    for u in units:
        u.stage = stage(u.uid)


def _groups(uf: _UnionFind, n: int) -> dict[int, set[int]]:
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), set()).add(i)
    return groups


def _reachable(deps: dict[int, set[int]], start: int) -> set[int]:
    seen: set[int] = set()
    todo = list(deps.get(start, ()))
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(deps.get(d, ()))
    return seen


def _unit_name(stmts: list[Statement], output: str | None, inputs: dict[str, int]) -> str:
    if any(s.is_sink for s in stmts) and not output:
        written = [n for n in sorted(inputs) if ":" not in n]
        local = [n for s in stmts for n in sorted(s.df_defs)]
        target = output or (local[-1] if local else written[0] if written else "output")
        return "Write" + camel(target)
    base = camel(output or "step")
    if all(s.is_source for s in stmts[:1]) and len(stmts) == 1:
        return "Read" + base
    return base


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}{k}", k + 1
    used.add(candidate)
    return candidate
