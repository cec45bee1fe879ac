"""A pyflakes-like pass over generated code: names a run would find unbound.

Generation moves statements between scopes (module level, a Factory's method, the script's
flow function). A name read where nothing binds it is a `NameError` or `UnboundLocalError`
at run time, long after the migration said it succeeded; this pass finds it before anything is
written, and the engine turns each one into a report line (or a coarser migration).

Two checks, both on the standard library's `symtable` and `ast`:

* a free name of any scope that no enclosing scope, the module or the builtins bind;
* a local of a function read before any statement of that function binds it, in source order
  (`inputs = inputs`, an accumulator read in a loop whose initialisation stayed elsewhere).
"""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass

ALWAYS = set(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__", "__spec__"}


@dataclass(frozen=True)
class Unbound:
    """A name read at `line` of the generated file that nothing binds there."""

    line: int
    name: str
    why: str


def unbound_names(code: str, filename: str = "pipeline.py") -> list[Unbound]:
    """The unbound reads of `code` (empty: every name it reads is bound)."""
    tree = ast.parse(code, filename=filename)
    table = symtable.symtable(code, filename, "exec")
    module_names = {s.get_name() for s in table.get_symbols() if _binds(s)}
    module_names |= _declared_global_and_bound(tree)
    if any(isinstance(n, ast.ImportFrom) and n.names[0].name == "*" for n in tree.body):
        return []  # a star import binds names no static pass can list
    found: list[Unbound] = []
    lines = _first_lines(tree)
    _free(table, module_names, found, lines)
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            found += _read_before_bound(fn)
    unique = {(u.line, u.name): u for u in found}
    return sorted(unique.values(), key=lambda u: (u.line, u.name))


def _binds(symbol: symtable.Symbol) -> bool:
    return symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()


def assigned_or_imported(node: ast.AST) -> set[str]:
    """Names anywhere under `node` that an assignment stores or an import binds (a dotted
    import binds its first part)."""
    names = {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    names |= {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(node)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    return names


def _declared_global_and_bound(tree: ast.Module) -> set[str]:
    """Names a function declares `global` and binds: module names once it has run."""
    names: set[str] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        declared = {n for g in ast.walk(fn) if isinstance(g, ast.Global) for n in g.names}
        stored = assigned_or_imported(fn)
        stored |= {
            d.name
            for d in ast.walk(fn)
            if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and d is not fn
        }
        names |= declared & stored
    return names


def _first_lines(tree: ast.Module) -> dict[str, int]:
    lines: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            lines[node.id] = min(lines.get(node.id, node.lineno), node.lineno)
    return lines


def _free(
    table: symtable.SymbolTable,
    module_names: set[str],
    found: list[Unbound],
    lines: dict[str, int],
) -> None:
    """Global reads of every scope that the module does not bind."""
    for symbol in table.get_symbols():
        name = symbol.get_name()
        if not symbol.is_referenced() or name in ALWAYS or name in module_names:
            continue
        if table.get_type() == "module" or symbol.is_global():
            found.append(
                Unbound(
                    lines.get(name, table.get_lineno()), name, "read but never bound in the module"
                )
            )
    for child in table.get_children():
        _free(child, module_names, found, lines)


def _read_before_bound(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Unbound]:
    """Locals of `fn` whose first read comes before their first binding (source order)."""
    declared = {
        name
        for node in ast.walk(fn)
        if isinstance(node, ast.Global | ast.Nonlocal)
        for name in node.names
    }
    params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    params |= {a.arg for a in (fn.args.vararg, fn.args.kwarg) if a is not None}
    bound: set[str] = set(params)
    locals_: set[str] = set()
    for node in _own_nodes(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            locals_.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            locals_.add(node.name)
        elif isinstance(node, ast.alias):
            locals_.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            locals_.add(node.name)
    locals_ -= declared
    out: list[Unbound] = []
    reported: set[str] = set()
    for stmt in fn.body:
        for name, line in _reads_then_binds(stmt, bound):
            if name in locals_ and name not in reported:
                out.append(Unbound(line, name, f"read in {fn.name}() before {fn.name}() binds it"))
                reported.add(name)
    return out


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """Nodes of `fn`'s own scope (nested functions, classes, lambdas and comprehensions
    excluded, their names included)."""
    out: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(
            node,
            ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.ClassDef
            | ast.Lambda
            | ast.ListComp
            | ast.SetComp
            | ast.DictComp
            | ast.GeneratorExp,
        ):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _reads_then_binds(stmt: ast.stmt, bound: set[str]) -> list[tuple[str, int]]:
    """Walk `stmt` in evaluation order: reads not yet bound are returned, bindings recorded
    in `bound` (a binding anywhere in a branch counts: the check is optimistic)."""
    reads: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            if isinstance(node, ast.AugAssign):
                visit_expr(node.target, load_too=True)
            if node.value is not None:
                visit_expr(node.value)
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                visit_expr(target)
            return
        if isinstance(node, ast.For | ast.AsyncFor):
            visit_expr(node.iter)
            visit_expr(node.target)
            for inner in [*node.body, *node.orelse]:
                visit(inner)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for deco in node.decorator_list:
                visit_expr(deco)
            bound.add(node.name)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
            return
        if isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        if isinstance(node, ast.expr):
            visit_expr(node)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    def visit_expr(node: ast.AST, load_too: bool = False) -> None:
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp):
            return  # their own scopes: a read there happens later, if at all
        if isinstance(node, ast.GeneratorExp):
            return
        if isinstance(node, ast.NamedExpr):
            visit_expr(node.value)
            bound.add(node.target.id)
            return
        if isinstance(node, ast.Name):
            if (isinstance(node.ctx, ast.Load) or load_too) and node.id not in bound:
                reads.append((node.id, node.lineno))
            if isinstance(node.ctx, ast.Store | ast.Del):
                bound.add(node.id)
            return
        for child in ast.iter_child_nodes(node):
            visit_expr(child)

    visit(stmt)
    return reads


def raw_argv_reads(code: str, filename: str = "pipeline.py") -> list[Unbound]:
    """`sys.argv` reads of a generated split outside the script's own argument handling (the
    `script_settings()` run on the Config's command line, a `with script_argv(...)` block):
    in a Factory they would read the Dagster process's command line, not the script's."""
    tree = ast.parse(code, filename)
    safe: set[int] = set()
    for node in ast.walk(tree):
        handled = isinstance(node, ast.FunctionDef) and node.name == "script_settings"
        if isinstance(node, ast.With):
            handled = any("script_argv" in ast.unparse(item.context_expr) for item in node.items)
        if handled:
            safe |= {id(inner) for inner in ast.walk(node)}
    return [
        Unbound(
            node.lineno,
            "sys.argv",
            "there it is the Dagster process's command line, not the script's",
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and ast.unparse(node) == "sys.argv"
        and id(node) not in safe
    ]
