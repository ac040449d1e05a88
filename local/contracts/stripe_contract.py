"""Stripe's request contract, read from the official SDK (stripe-python, pinned in
local/requirements.txt): which method and path exist, and which form or query fields each takes,
with their types and enum values. The SDK's services and `stripe/params/*Params` TypedDicts are
generated from Stripe's OpenAPI spec, so a field the SDK does not know is one Stripe refuses
(`parameter_unknown`).

    contract = Contract.load()
    contract.check("POST", "/v1/customers", [("email", "a@b.c"), ("metdata[userId]", "u")])
    -> ['POST /v1/customers: unknown parameter metdata[userId]']
"""

import ast
import importlib
import pathlib
import re
import sys
import types
import typing
from dataclasses import dataclass
from urllib.parse import parse_qsl

import stripe
from stripe._api_version import _ApiVersion

# Fields every request may carry that are not request parameters.
_OPTIONS = {"api_key", "idempotency_key", "stripe_account", "stripe_context", "stripe_version", "headers", "base_address"}


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern
    params: tuple[str, str] | None  # (module, TypedDict) of its parameters; None when it takes none


class Contract:
    def __init__(self, routes):
        # Literal paths before templated ones: /v1/customers/search before /v1/customers/{customer}.
        self.routes = sorted(routes, key=lambda r: (r.template.count("{"), -len(r.template)))
        self.version = _ApiVersion.CURRENT

    @classmethod
    def load(cls):
        root = pathlib.Path(stripe.__file__).parent
        routes = []
        for path in sorted(root.rglob("*_service.py")):
            routes.extend(_routes_of(ast.parse(path.read_text())))
        return cls(routes)

    def route(self, method, path):
        for route in self.routes:
            if route.method == method and route.pattern.fullmatch(path):
                return route
        return None

    def check(self, method, path, fields):
        """The ways a request breaks the contract (empty when it keeps it). `fields` are the
        query's pairs for GET and DELETE, the form body's for POST, keys bracket-nested."""
        route = self.route(method, path)
        if route is None:
            return [f"{method} {path}: no such endpoint in stripe-python {stripe.VERSION}"]
        problems = []
        params = getattr(importlib.import_module(route.params[0]), route.params[1]) if route.params else None
        for key, value in fields:
            problem = _field_problem(params, _key_path(key), value)
            if problem:
                problems.append(f"{method} {route.template}: {problem} ({key}={value!r})")
        return problems


def _routes_of(module):
    imported = {
        alias.asname or alias.name: node.module
        for node in ast.walk(module)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    for node in ast.walk(module):
        if not isinstance(node, ast.FunctionDef):  # the async twins say the same
            continue
        call = next(
            (
                c
                for c in ast.walk(node)
                if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "_request"
            ),
            None,
        )
        if call is None or len(call.args) < 2 or not isinstance(call.args[0], ast.Constant):
            continue
        method = call.args[0].value.upper()
        target = call.args[1]
        if isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute) and target.func.attr == "format":
            target = target.func.value
        if not isinstance(target, ast.Constant) or not target.value.startswith("/v1/"):
            continue
        template = target.value
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
        routes_params = None
        for arg in node.args.args + node.args.kwonlyargs:
            if arg.arg == "params" and arg.annotation is not None:
                found = re.search(r"\w+Params", ast.unparse(arg.annotation))
                routes_params = (imported[found.group(0)], found.group(0)) if found else None
        yield Route(method, template, pattern, routes_params)


def _key_path(key):
    """`items[0][price]` -> ['items', '0', 'price']; `expand[]` -> ['expand', '']."""
    head, _, rest = key.partition("[")
    return [head] + re.findall(r"\[([^\]]*)\]", "[" + rest if rest else "")


def _field_problem(kind, path, value):
    """Why `value` at `path` does not fit `kind` (a type from the SDK's params), or None."""
    if kind is None:
        return "this endpoint takes no parameters"
    return _fits(kind, path, value, [])


def _fits(kind, path, value, seen):
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    where = _render(seen)

    if origin in (typing.Union, types.UnionType):
        args = _closed(args)
        problems = [_fits(a, path, value, seen) for a in args]
        if any(p is None for p in problems):
            return None
        # The most telling refusal: one that went deepest into the path.
        return max(problems, key=lambda p: p.count("["))
    if _is_typeddict(kind):
        if not path:
            return f"{where} is an object, not a value"
        name = path[0]
        if name not in kind.__annotations__ or (not seen and name in _OPTIONS):
            return f"unknown parameter {_render(seen + [name])}"
        return _fits(_hint(kind, name), path[1:], value, seen + [name])
    if origin in (list, typing.List):
        if not path or not (path[0] == "" or path[0].isdigit()):
            return f"{where} is a list: index it ({where}[0] or {where}[])"
        return _fits(args[0], path[1:], value, seen + [path[0]])
    if origin in (dict, typing.Dict) or getattr(kind, "__name__", "") == "UntypedStripeObject":
        if not path:
            return f"{where} is a map: give it keys"
        return _fits(args[-1] if args else str, path[1:], value, seen + [path[0]])
    if path:
        return f"unknown parameter {_render(seen + path[:1])}"
    if origin is typing.Literal:
        return None if value in args else f"{where} must be one of {', '.join(map(str, args))}"
    if kind is bool:
        return None if value in ("true", "false") else f"{where} must be true or false"
    if kind is int:
        return None if re.fullmatch(r"-?\d+", value) else f"{where} must be an integer"
    if kind is float:
        return None if re.fullmatch(r"-?\d+(\.\d+)?", value) else f"{where} must be a number"
    return None  # str, and what the SDK leaves untyped


def _closed(alternatives):
    """An enumeration as the SDK types it, `Literal['a', 'b']|str`, is closed: the `str` is the
    SDK's room for values Stripe adds later, not something the API version accepts today. (A
    `Literal['']` alone is the "unset" sentinel beside a free string, and stays open.)"""
    values = [v for a in alternatives if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
    if any(v != "" for v in values) and str in alternatives:
        return tuple(a for a in alternatives if a is not str)
    return alternatives


def _hint(owner, name):
    """The type of one field of a params TypedDict, its forward references resolved in the SDK
    module that declares it (the whole class is never resolved: its request options refer to
    names the SDK imports only for type checkers)."""
    kind = owner.__annotations__[name]
    namespace = vars(sys.modules[owner.__module__])
    return _unwrap(typing._eval_type(kind, namespace, None))


def _unwrap(kind):
    """NotRequired[X] / Required[X] -> X."""
    while getattr(kind, "__origin__", None) is not None and getattr(kind.__origin__, "_name", "") in (
        "NotRequired",
        "Required",
    ):
        kind = kind.__args__[0]
    return kind


def _is_typeddict(kind):
    return isinstance(kind, type) and hasattr(kind, "__annotations__") and hasattr(kind, "__total__")


def _render(path):
    if not path:
        return "the body"
    return path[0] + "".join(f"[{p}]" for p in path[1:])


def fields_of(query, body, content_type):
    """A request's parameter pairs: the query's, and the body's when it is a form."""
    fields = parse_qsl(query, keep_blank_values=True)
    if body and "application/x-www-form-urlencoded" in (content_type or ""):
        fields += parse_qsl(body.decode(), keep_blank_values=True)
    return fields
