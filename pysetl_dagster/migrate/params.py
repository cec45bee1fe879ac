"""What a script lets its user change, found statically: these become Dagster `Config` fields.

Three sources, each with the script's own value as the field's default:

* the **command line**: `argparse` arguments (options, positionals, `store_true` flags) and
  `sys.argv[N]` values. The script's own argument and config code is kept verbatim and run, at
  run time, on the command line a Factory's Config stands for (`CommandLine.argv`), so whatever
  the script derives from it (a JSON config it opens, say) follows the Config;
* **constants**: a module-level `NAME = "literal"` that data statements read (and no helper
  function or other setting does) becomes a field of the Factories that read it;
* **hard-coded paths and tables**: the literal first argument of a read or a write
  (`spark.read.csv("data/orders.csv")`, `.save("out/x")`, `saveAsTable("t")`) becomes a field
  of its Factory (`orders_path`, `output_path`, `output_table`).

A command line the analysis cannot describe exactly (`nargs`, sub-commands, `getopt`, slicing
`sys.argv`) is not turned into fields: the script's code then reads `$PYSETL_MIGRATE_ARGS_<NAME>`
as before, and the report says why.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from .analysis import Analysis, Statement, Unit, parse_statement
from .terminals import READ_TERMINALS, TABLE_TERMINALS, WRITE_TERMINALS

ARGV_MARKERS = ("sys.argv", "parse_args(", "getopt", "parse_known_args(")
# Names a pydantic model (dagster.Config) already has: a field may not take them.
RESERVED = {
    "config",
    "copy",
    "dict",
    "json",
    "schema",
    "construct",
    "validate",
    "fields",
    "model_config",
    "model_fields",
}


@dataclass(frozen=True)
class Param:
    """One Config field: where its value goes and the script's own default."""

    field: str
    type_name: str  # "str" | "int" | "float" | "bool"
    default: Any
    required: bool
    line: int
    kind: str  # option | flag | positional | argv | constant | path | table | file
    flag: str = ""  # argparse: the option string ("--orders"); flag: the option
    dest: str = ""  # argparse dest
    index: int = 0  # sys.argv index
    name: str = ""  # constant: the module-level name
    store: bool = True  # flag: store_true (True) or store_false (False)
    default_src: str = ""  # how the script writes the default

    @property
    def on_command_line(self) -> bool:
        return self.kind in {"option", "flag", "positional", "argv"}

    def source_text(self) -> str:
        """What the field stands for in the script (`argument --orders`)."""
        return {
            "option": f"argument `{self.flag}`",
            "flag": f"flag `{self.flag}`",
            "positional": f"argument `{self.dest}`",
            "argv": f"`sys.argv[{self.index}]`",
            "constant": f"constant `{self.name}`",
            "path": "hard-coded path",
            "table": "hard-coded table",
            "file": "`open()` path",
        }[self.kind]

    def annotation(self) -> str:
        """A `None` default (computed by the script) is optional: left out of the argv."""
        return (
            self.type_name
            if self.required or self.default is not None
            else (f"{self.type_name} | None")
        )

    def declaration(self) -> str:
        """`orders: str = "data/orders.csv"` (a required argument has no default)."""
        if self.required:
            return f"{self.field}: {self.type_name}"
        return f"{self.field}: {self.annotation()} = {self.default!r}"

    def spec(self) -> str:
        """The runtime description (`Arg(...)`) `CommandLine` rebuilds the argv from."""
        parts = [repr(self.field), repr(self.kind)]
        extra = {
            "flag": self.flag,
            "index": self.index,
            "default": self.default,
            "type_name": self.type_name,
            "store": self.store,
            "required": self.required,
        }
        skip = {"flag": "", "index": 0, "store": True, "required": False, "type_name": "str"}
        parts += [f"{k}={v!r}" for k, v in extra.items() if skip.get(k, object()) != v]
        return f"Arg({', '.join(parts)})"


@dataclass
class CommandLineParams:
    """The script's command line as fields, or why it could not be described."""

    params: list[Param] = field(default_factory=list)
    unsupported: str = ""
    namespace_vars: set[str] = field(default_factory=set)  # names bound to parse_args()

    @property
    def usable(self) -> bool:
        return not self.unsupported


def _field_name(text: str, used: set[str]) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower() or "value"
    if name[0].isdigit():
        name = f"arg_{name}"
    if keyword.iskeyword(name) or name in RESERVED or name.startswith("model_"):
        name = f"{name}_value"
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}_{k}", k + 1
    used.add(candidate)
    return candidate


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    """(is a plain literal, its value) for str/int/float/bool/None constants."""
    if isinstance(node, ast.Constant) and (
        node.value is None or isinstance(node.value, str | int | float | bool)
    ):
        return True, node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
    ):
        return True, -node.operand.value
    return False, None


def _type_of(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float"}.get(type(value), "str")


def command_line(tree: ast.Module, prelude: list[Statement]) -> CommandLineParams:
    """The script's arguments: argparse calls anywhere in it, `sys.argv[N]` in its settings."""
    result = CommandLineParams()
    used: set[str] = set()
    argparse_calls = [
        c
        for c in ast.walk(tree)
        if isinstance(c, ast.Call)
        and isinstance(c.func, ast.Attribute)
        and c.func.attr
        in {
            "add_argument",
            "add_subparsers",
            "add_mutually_exclusive_group",
            "parse_known_args",
            "add_argument_group",
        }
    ]
    if any(
        isinstance(c.func, ast.Attribute) and c.func.attr != "add_argument" for c in argparse_calls
    ):
        result.unsupported = "argparse sub-commands, groups or parse_known_args"
        return result
    code = "\n".join(s.code for s in prelude)
    if "getopt" in code:
        result.unsupported = "getopt"
        return result
    for call in sorted(argparse_calls, key=lambda c: (c.lineno, c.col_offset)):
        why = _argparse_param(call, used, result.params)
        if why:
            result.unsupported = f"line {call.lineno}: {why}"
            return result
    argv_uses = [
        n
        for s in prelude
        for n in ast.walk(parse_statement(s.code))
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "sys"
        and n.attr == "argv"
    ]
    if argv_uses:
        indexed = [s.start for s in prelude if re.search(r"sys\.argv\s*\[\s*-?\d+\s*\]", s.code)]
        if result.params and indexed:
            result.unsupported = f"line {indexed[0]}: both argparse and sys.argv[N]"
            return result
    if argv_uses and not result.params:
        why = _argv_params(prelude, used, result.params)
        if why:
            result.unsupported = why
            return result
    for st in prelude:
        if "parse_args(" in st.code or any(
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and _returns_args(tree, n.func.id)
            for n in ast.walk(parse_statement(st.code))
        ):
            result.namespace_vars |= st.defs
    return result


def _returns_args(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return "parse_args(" in ast.unparse(node)
    return False


def _argparse_param(call: ast.Call, used: set[str], params: list[Param]) -> str:
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if len(names) != len(call.args) or not names:
        return "add_argument with computed names"
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    for unsupported in ("nargs", "const"):
        if unsupported in kw:
            return f"add_argument({names[0]!r}, {unsupported}=...)"
    action = kw.get("action")
    action_name = action.value if isinstance(action, ast.Constant) else None
    if action is not None and action_name not in {"store", "store_true", "store_false"}:
        return f"add_argument({names[0]!r}, action=...)"
    positional = not names[0].startswith("-")
    long = next((n for n in names if n.startswith("--")), names[0])
    dest_node = kw.get("dest")
    dest = (
        dest_node.value
        if isinstance(dest_node, ast.Constant) and isinstance(dest_node.value, str)
        else long.lstrip("-").replace("-", "_")
    )
    has_default, default = _literal(kw.get("default")) if "default" in kw else (True, None)
    default_src = ast.unparse(kw["default"]) if "default" in kw else ""
    type_node = kw.get("type")
    type_name = type_node.id if isinstance(type_node, ast.Name) else None
    if type_node is not None and type_name not in {"int", "float", "str"}:
        return f"add_argument({names[0]!r}, type={ast.unparse(type_node)})"
    if action_name in {"store_true", "store_false"}:
        store = action_name == "store_true"
        params.append(
            Param(
                field=_field_name(dest, used),
                type_name="bool",
                default=(not store) if "default" not in kw else default,
                required=False,
                line=call.lineno,
                kind="flag",
                flag=long,
                dest=dest,
                store=store,
                default_src=default_src or str(not store),
            )
        )
        return ""
    if not has_default:
        # A computed default (os.environ.get(...)): None leaves it to the script.
        default, type_name = None, type_name or "str"
    required = (positional and "default" not in kw) or _is_true(kw.get("required"))
    if type_name is None:
        type_name = _type_of(default) if default is not None else "str"
    if default is not None and type_name != _type_of(default):
        try:
            default = {"int": int, "float": float, "str": str}[type_name](default)
        except ValueError:
            return f"add_argument({names[0]!r}): default {default!r} is not a {type_name}"
    params.append(
        Param(
            field=_field_name(dest, used),
            type_name=type_name,
            default=default,
            required=required,
            line=call.lineno,
            kind="positional" if positional else "option",
            flag="" if positional else long,
            dest=dest,
            default_src=default_src,
        )
    )
    return ""


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _argv_params(prelude: list[Statement], used: set[str], params: list[Param]) -> str:
    """`x = sys.argv[N] if len(sys.argv) > N else "default"` and `x = sys.argv[N]`."""
    found: dict[int, Param] = {}
    for st in prelude:
        tree = parse_statement(st.code)
        subs = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id == "sys"
            and n.attr == "argv"
        ]
        if not subs:
            continue
        stmt = tree.body[0] if tree.body else None
        target = (
            stmt.targets[0].id
            if isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            else None
        )
        value = stmt.value if isinstance(stmt, ast.Assign) else None
        index, default, required = None, None, True
        if isinstance(value, ast.IfExp) and isinstance(value.body, ast.Subscript):
            index = _argv_index(value.body)
            ok, default = _literal(value.orelse)
            if not ok:
                return f"line {st.start}: sys.argv with a computed default"
            required = False
        elif isinstance(value, ast.Subscript):
            index = _argv_index(value)
        if target is None or index is None:
            return f"line {st.start}: sys.argv used other than `name = sys.argv[N]`"
        found[index] = Param(
            field=_field_name(target, used),
            type_name=_type_of(default) if default is not None else "str",
            default=default,
            required=required,
            line=st.start,
            kind="argv",
            index=index,
            default_src=repr(default) if not required else "",
        )
    if sorted(found) != list(range(1, len(found) + 1)):
        return "sys.argv positions with gaps"
    params.extend(found[i] for i in sorted(found))
    return ""


def _argv_index(node: ast.Subscript) -> int | None:
    if isinstance(node.value, ast.Attribute) and ast.unparse(node.value) == "sys.argv":
        ok, value = _literal(node.slice)
        if ok and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


IO_CALL = re.compile(r"\bopen\(|\bjson\.loads?\(|\byaml\.(?:safe_)?load\(|\.read_text\(")


def settings_statements(prelude: list[Statement]) -> list[Statement]:
    """The settings code that must run at run time, not import: statements that read the
    command line or a file (a JSON/YAML config), and those that build on them."""
    names: set[str] = set()
    out: list[Statement] = []
    for st in prelude:
        if any(m in st.code for m in ARGV_MARKERS) or IO_CALL.search(st.code) or st.uses & names:
            out.append(st)
            names |= st.defs
    return out


class _FindOpens(cst.CSTVisitor):
    """`open("config/job.json")`: a literal file a settings statement opens."""

    def __init__(self) -> None:
        self.found: list[tuple[cst.BaseString, str]] = []

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "open" and node.args:
            arg = node.args[0].value
            if isinstance(arg, cst.SimpleString | cst.ConcatenatedString):
                value = arg.evaluated_value
                if isinstance(value, str) and value:
                    self.found.append((arg, value))


def opened_files(settings: list[Statement], used: set[str]) -> tuple[list[Param], dict[int, str]]:
    """Config fields for the files settings code opens by a literal path, and
    id(literal node) -> field, for generation to read the field instead."""
    params: list[Param] = []
    nodes: dict[int, str] = {}
    for st in settings:
        visitor = _FindOpens()
        st.node.visit(visitor)
        for node, value in visitor.found:
            stem = re.sub(r"\W+", "_", value.rsplit("/", 1)[-1].split(".")[0]) or "settings"
            param = Param(
                field=_field_name(f"{stem}_file", used),
                type_name="str",
                default=value,
                required=False,
                line=st.start,
                kind="file",
                default_src=repr(value),
            )
            params.append(param)
            nodes[id(node)] = param.field
    return params, nodes


def helper_globals(analysis: Analysis) -> set[str]:
    """Names helper functions and classes read (conservatively: every name they load)."""
    names: set[str] = set()
    for kind, node in analysis.helpers:
        if kind != "def":
            continue
        tree = parse_statement(analysis.module.code_for_node(node))
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names


def constants(analysis: Analysis, settings: list[Statement]) -> dict[str, Param]:
    """Module-level `NAME = literal` the data statements read and nothing else does."""
    helper_names = helper_globals(analysis)
    prelude = [s for s in analysis.statements if s.kind == "prelude"]
    found: dict[str, Param] = {}
    for st in prelude:
        if not st.top_level or st in settings:
            continue
        tree = parse_statement(st.code)
        stmt = tree.body[0] if tree.body else None
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            continue
        ok, value = _literal(stmt.value)
        name = stmt.targets[0].id
        if not ok or value is None or name in helper_names:
            continue
        if any(name in o.uses or name in o.defs for o in prelude if o is not st):
            continue
        if any(name in d.defs for d in analysis.statements if d.kind == "data"):
            continue
        found[name] = Param(
            field=name.lower(),
            type_name=_type_of(value),
            default=value,
            required=False,
            line=st.start,
            kind="constant",
            name=name,
            default_src=repr(value),
        )
    return found


# --- hard-coded paths ---------------------------------------------------------------------


def _cst_chain(node: cst.BaseExpression) -> list[str]:
    parts: list[str] = []
    while True:
        if isinstance(node, cst.Call):
            node = node.func
        elif isinstance(node, cst.Attribute):
            parts.append(node.attr.value)
            node = node.value
        elif isinstance(node, cst.Subscript):
            node = node.value
        elif isinstance(node, cst.Name):
            parts.append(node.value)
            break
        else:
            break
    return list(reversed(parts))


@dataclass
class PathLiteral:
    """A literal path or table name in a read or write, and the field it becomes."""

    node: cst.BaseString
    value: str
    is_write: bool
    is_table: bool


class _FindPaths(cst.CSTVisitor):
    def __init__(self, spark_names: set[str]) -> None:
        self.spark_names = spark_names
        self.found: list[PathLiteral] = []

    def visit_Call(self, node: cst.Call) -> None:
        if not isinstance(node.func, cst.Attribute):
            return
        chain = _cst_chain(node)
        last = chain[-1] if chain else ""
        is_write = last in WRITE_TERMINALS and (
            "write" in chain[:-1] or "writeTo" in chain or last in {"saveAsTable", "insertInto"}
        )
        is_read = (
            last in READ_TERMINALS
            and len(chain) >= 2
            and (chain[0] in self.spark_names and chain[1] in {"read", "table"})
        )
        if not (is_write or is_read):
            return
        arg = next(
            (a for a in node.args if a.keyword is None or a.keyword.value in {"path", "tableName"}),
            None,
        )
        if arg is None or not isinstance(arg.value, cst.SimpleString | cst.ConcatenatedString):
            return
        value = arg.value.evaluated_value
        if isinstance(value, str) and value:
            self.found.append(PathLiteral(arg.value, value, is_write, last in TABLE_TERMINALS))


def path_literals(st: Statement, spark_names: set[str]) -> list[PathLiteral]:
    visitor = _FindPaths(spark_names)
    st.node.visit(visitor)
    return visitor.found


@dataclass
class UnitParams:
    """The Config of one Factory: its fields and how its statements reach them."""

    params: list[Param] = field(default_factory=list)
    settings_names: list[str] = field(default_factory=list)  # bound from script_values()
    paths: dict[int, tuple[PathLiteral, Param]] = field(default_factory=dict)  # by id(literal)


def unit_params(
    unit: Unit,
    analysis: Analysis,
    cmd: CommandLineParams,
    settings: list[Statement],
    consts: dict[str, Param],
) -> UnitParams:
    """Which fields a Factory gets: the command-line values its statements depend on, the
    constants they read, and the paths they hard-code."""
    out = UnitParams()
    used = set().union(*(s.uses for s in unit.statements))
    taken: set[str] = set()
    if cmd.usable and settings:
        setting_defs = set().union(*(s.defs for s in settings))
        out.settings_names = sorted(used & setting_defs)
        if out.settings_names:
            wanted = _command_line_fields(unit, cmd, settings, set(out.settings_names))
            out.params += [p for p in cmd.params if p.field in wanted]
    for name in sorted(used & set(consts)):
        out.params.append(consts[name])
    taken |= {p.field for p in out.params}
    by_value: dict[tuple[str, bool], Param] = {}  # a path written, then read back: one field
    for st in unit.statements:
        for lit in path_literals(st, analysis.spark_names):
            same = by_value.get((lit.value, lit.is_table))
            if same is not None:
                out.paths[id(lit.node)] = (lit, same)
                continue
            target = _assigned(st) if not lit.is_write else None
            base = "output" if lit.is_write else (target or "input")
            suffix = "table" if lit.is_table else "path"
            param = Param(
                field=_field_name(f"{base}_{suffix}", taken),
                type_name="str",
                default=lit.value,
                required=False,
                line=st.start,
                kind="table" if lit.is_table else "path",
                default_src=repr(lit.value),
            )
            out.params.append(param)
            out.paths[id(lit.node)] = (lit, param)
            by_value[(lit.value, lit.is_table)] = param
    return out


def _assigned(st: Statement) -> str | None:
    tree = parse_statement(st.code)
    stmt = tree.body[0] if tree.body else None
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Name):
            return target.id
    return None


def _command_line_fields(
    unit: Unit, cmd: CommandLineParams, settings: list[Statement], names: set[str]
) -> set[str]:
    """The command-line fields behind `names`: for an argparse namespace, the attributes the
    unit reads; for anything else, the arguments the settings code that defines it reads."""
    fields: set[str] = set()
    by_dest = {p.dest: p.field for p in cmd.params if p.dest}
    for name in names:
        if name in cmd.namespace_vars and by_dest:
            fields |= _namespace_fields(unit.statements, name, by_dest)
        else:
            fields |= _argv_fields_of(name, cmd, settings)
    return fields


def _namespace_fields(stmts: list[Statement], name: str, by_dest: dict[str, str]) -> set[str]:
    """Fields of the argparse namespace `name` that `stmts` read (`args.orders`); all of them
    when the namespace itself is passed on."""
    attrs: set[str] = set()
    for st in stmts:
        tree = parse_statement(st.code)
        parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and n.id == name:
                parent = parents.get(id(n))
                if not (isinstance(parent, ast.Attribute) and parent.value is n):
                    return set(by_dest.values())
                attrs.add(parent.attr)
    return {by_dest[a] for a in attrs if a in by_dest}


def _argv_fields_of(name: str, cmd: CommandLineParams, settings: list[Statement]) -> set[str]:
    """Fields whose argument flows into `name` through the settings statements."""
    by_dest = {p.dest: p.field for p in cmd.params if p.dest}
    every = {p.field for p in cmd.params}
    arguments = {p.field for p in cmd.params if p.on_command_line}
    reads: dict[str, set[str]] = {}
    for st in settings:
        direct = {
            p.field
            for p in cmd.params
            if (p.kind == "argv" and f"sys.argv[{p.index}]" in st.code.replace(" ", ""))
            or (p.kind == "file" and p.line == st.start)
        }
        if st.defs & cmd.namespace_vars:
            direct |= arguments  # the parse itself
        for ns in st.uses & cmd.namespace_vars:
            direct |= _namespace_fields([st], ns, by_dest) if by_dest else arguments
        plain = st.uses - cmd.namespace_vars
        inherited = set().union(*(reads.get(u, set()) for u in plain))
        for d in st.defs:
            reads[d] = reads.get(d, set()) | direct | inherited
    return reads.get(name, every)


@dataclass
class ConfigPlan:
    """How one script's settings become Config: per Factory fields, and the settings code
    (`settings`) that runs on the command line a Config stands for."""

    command_line: CommandLineParams
    settings: list[Statement]
    units: dict[int, UnitParams]
    fallback: str = ""  # why the command line stays `$PYSETL_MIGRATE_ARGS_<NAME>`
    files: dict[int, str] = field(default_factory=dict)  # id(open literal) -> field
    named: list[tuple[str, UnitParams]] = field(default_factory=list)  # enabled Factories

    @property
    def uses_command_line(self) -> bool:
        return bool(self.settings) and not self.fallback

    def all_params(self) -> list[tuple[str, Param]]:
        """(Factory, field) pairs for the report, in Factory order."""
        return [(name, p) for name, up in self.named for p in up.params]


def plan_config(analysis: Analysis) -> ConfigPlan:
    """The Config plan of an analysed script (see the module docstring)."""
    prelude = [s for s in analysis.statements if s.kind == "prelude"]
    settings = settings_statements(prelude)
    cmd = command_line(ast.parse(analysis.module.code), prelude)
    fallback = ""
    if settings:
        if not cmd.usable:
            fallback = f"the command line cannot be described as fields ({cmd.unsupported})"
        else:
            shared = helper_globals(analysis) & set().union(*(s.defs for s in settings))
            if shared:
                fallback = (
                    "helper functions read the settings "
                    f"({', '.join(sorted(shared))}) as module globals"
                )
    consts = constants(analysis, settings)
    files: dict[int, str] = {}
    if fallback:
        cmd = CommandLineParams(unsupported=cmd.unsupported or fallback)
    elif settings:
        file_params, files = opened_files(settings, {p.field for p in cmd.params})
        cmd.params += file_params
    plan = ConfigPlan(cmd, settings, {}, fallback, files=files)
    for unit in analysis.units:
        up = unit_params(unit, analysis, cmd, settings if not fallback else [], consts)
        plan.units[unit.uid] = up
        if unit.enabled:
            plan.named.append((unit.name, up))
    return plan
