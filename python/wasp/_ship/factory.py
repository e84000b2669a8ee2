"""How a shipped definition's source becomes code, the same on the caller (to check it) and
inside the sandbox (to run it): this file is also part of wasp's Python runner, so it must
work on every Python from 3.9 on and import nothing beyond ``ast``, ``copy`` and ``sys``.

A statement travels as its text and the line of the file its first line is at. An indented
statement (a method, a function inside a function, a ``def`` under an ``if``) travels with
its indentation, under an ``if 1:`` line, so that its text is the file's, byte for byte, and
its line numbers are the file's.
"""

import ast
import copy
import sys

#: The name of the function that rebuilds a local function inside the sandbox.
FACTORY = "__wasp_local__"

#: The line that holds an indented statement.
HOLDER = "if 1:\n"


def parse(source, lineno, wrapped, filename):
    """The statement (or lambda) in ``source``, with the file's line numbers."""
    text = f"({source})" if source.startswith("lambda") else source
    tree = ast.parse(text, filename)
    ast.increment_lineno(tree, lineno - 1)
    node = tree.body[0]
    if wrapped:
        node = node.body[0]  # the statement under `if 1:`
    if isinstance(node, ast.Expr):
        node = node.value  # a lambda
    return node


def compile_global(source, lineno, filename, flags, imported=()):
    """The module-level code of a statement at ``lineno`` of ``filename``. ``imported``:
    the names the rest of its module binds by ``import`` (the compiler calls methods of
    those differently), for a caller that compares the code with its module's."""
    text = "\n" * (lineno - 1) + source + _imports(imported)
    return compile(text, filename, "exec", flags, dont_inherit=True)


def _imports(imported):
    if not imported:
        return ""
    lines = "".join(f" import {name}\n" for name in sorted(imported))
    return f"\nif 0:\n{lines}"


def compile_local(node, freevars, filename, flags, imported=()):
    """The code of a module defining ``__wasp_local__()``, which makes the function of
    ``node`` (a ``def`` or a ``lambda``) without its decorators and with ``None`` for its
    defaults, closing over ``freevars``: its real defaults, closure and attributes are set
    once it is made."""
    node = _bare(node)
    line = node.lineno
    body = []
    if freevars:
        targets = [_at(ast.Name(id=name, ctx=ast.Store()), line) for name in freevars]
        body.append(_at(ast.Assign(targets=targets, value=_at(ast.Constant(None), line)), line))
    if isinstance(node, ast.Lambda):
        body.append(_at(ast.Return(value=node), line))
    else:
        body.append(node)
        body.append(_at(ast.Return(value=_at(ast.Name(id=node.name, ctx=ast.Load()), line)), line))
    arguments = ast.arguments(
        posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
    )
    fields = {"type_params": []} if sys.version_info >= (3, 12) else {}
    factory = ast.FunctionDef(
        name=FACTORY,
        args=arguments,
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
        **fields,
    )
    body = [_at(factory, line)]
    if imported:
        stub = ast.parse(_imports(imported)).body
        for statement in ast.walk(ast.Module(body=stub, type_ignores=[])):
            if hasattr(statement, "lineno"):
                _at(statement, line)
        body += stub
    module = ast.Module(body=body, type_ignores=[])
    return compile(module, filename, "exec", flags, dont_inherit=True)


def _at(node, line):
    node.lineno = node.end_lineno = line
    node.col_offset = node.end_col_offset = 0
    return node


def _bare(node):
    node = copy.deepcopy(node)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []
    args = node.args
    args.defaults = [ast.copy_location(ast.Constant(None), d) for d in args.defaults]
    args.kw_defaults = [
        None if d is None else ast.copy_location(ast.Constant(None), d) for d in args.kw_defaults
    ]
    return node
