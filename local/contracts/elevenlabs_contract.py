"""ElevenLabs' request contract, read from the official SDK (`elevenlabs`, pinned in
local/requirements.txt, generated from ElevenLabs' OpenAPI spec): for each endpoint the SDK
calls, the query parameters, JSON fields and multipart fields it sends, with the types its
methods declare for them. A field the SDK never sends is one ElevenLabs does not read (its API
ignores unknown JSON fields, so a misspelling there would be silently lost in production).

    contract = Contract.load()
    contract.check("POST", "/v1/text-to-speech/abc", {"output_format": "mp3_44100_128"},
                   json={"text": "hi", "model_id": "m", "voice_setings": {}})
    -> ["POST /v1/text-to-speech/{voice_id}: unknown field voice_setings"]
"""

import ast
import importlib
import inspect
import pathlib
import re
import types
import typing
from dataclasses import dataclass, field

import elevenlabs
import pydantic

_REQUEST_METHODS = {"request", "stream"}


@dataclass
class Endpoint:
    method: str
    template: str
    pattern: re.Pattern
    query: dict = field(default_factory=dict)  # name -> type
    json: dict = field(default_factory=dict)
    form: dict = field(default_factory=dict)  # multipart fields and files


class Contract:
    def __init__(self, endpoints):
        self.endpoints = sorted(endpoints, key=lambda e: (e.template.count("{"), -len(e.template)))
        self.version = elevenlabs.__version__ if hasattr(elevenlabs, "__version__") else "?"

    @classmethod
    def load(cls):
        root = pathlib.Path(elevenlabs.__file__).parent
        endpoints = {}
        for path in sorted(root.rglob("raw_client.py")):
            module_name = "elevenlabs." + ".".join(path.relative_to(root).with_suffix("").parts)
            for endpoint in _endpoints_of(ast.parse(path.read_text()), module_name):
                endpoints.setdefault((endpoint.method, endpoint.template), endpoint)
        return cls(endpoints.values())

    def endpoint(self, method, path):
        for endpoint in self.endpoints:
            if endpoint.method == method and endpoint.pattern.fullmatch(path):
                return endpoint
        return None

    def check(self, method, path, query, json=None, form=()):
        """The ways a request breaks the contract: `query` a dict of its query parameters, `json`
        its JSON body (or None), `form` the names of its multipart fields."""
        endpoint = self.endpoint(method, path)
        if endpoint is None:
            return [f"{method} {path}: no such endpoint in the elevenlabs SDK"]
        where = f"{method} {endpoint.template}"
        problems = []
        for name, value in query.items():
            if name not in endpoint.query:
                problems.append(f"{where}: unknown query parameter {name}")
            elif (problem := _text_fits(endpoint.query[name], value)) is not None:
                problems.append(f"{where}: query parameter {name} {problem}")
        if json is not None:
            problems += [f"{where}: {p}" for p in _object_problems(endpoint.json, json, [])]
        for name in form:
            if name not in endpoint.form:
                problems.append(f"{where}: unknown multipart field {name}")
        return problems


def _endpoints_of(module, module_name):
    for cls in (n for n in module.body if isinstance(n, ast.ClassDef) and not n.name.startswith("Async")):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for call in ast.walk(method):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr in _REQUEST_METHODS
                    and ast.unparse(call.func.value).endswith("httpx_client")
                    and call.args
                ):
                    continue
                template = _template(call.args[0])
                keywords = {k.arg: k.value for k in call.keywords}
                if template is None or "method" not in keywords:
                    continue
                hints = _hints(module_name, cls.name, method.name)
                pattern = re.compile("/" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
                yield Endpoint(
                    method=keywords["method"].value,
                    template="/" + template,
                    pattern=pattern,
                    query=_fields(keywords.get("params"), hints),
                    json=_fields(keywords.get("json"), hints),
                    form={**_fields(keywords.get("data"), hints), **_fields(keywords.get("files"), hints)},
                )


def _template(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            else:
                inner = ast.unparse(value.value)
                parts.append("{" + re.sub(r"^jsonable_encoder\((\w+)\)$", r"\1", inner) + "}")
        return "".join(parts)
    return None


def _hints(module_name, class_name, method_name):
    """The declared types of the method's arguments."""
    method = getattr(getattr(importlib.import_module(module_name), class_name), method_name)
    try:
        return typing.get_type_hints(method)
    except Exception:  # an annotation only type checkers can resolve: fall back to no types
        return {name: typing.Any for name in inspect.signature(method).parameters}


def _fields(node, hints):
    """name -> type of each key of a dict literal the SDK sends, typed by the argument it holds."""
    if not isinstance(node, ast.Dict):
        return {}
    fields = {}
    for key, value in zip(node.keys, node.values):
        if not isinstance(key, ast.Constant):
            continue
        argument = _argument(value)
        fields[key.value] = hints.get(argument, typing.Any) if argument else typing.Any
    return fields


def _argument(node):
    """The method argument a value expression sends: `text`, or the object_ of a conversion."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        for keyword in node.keywords:
            if keyword.arg == "object_":
                return _argument(keyword.value)
        if node.args:
            return _argument(node.args[0])
    return None


def _object_problems(fields, value, path):
    if not isinstance(value, dict):
        return [f"{_render(path) or 'the body'} must be an object"]
    problems = []
    for name, item in value.items():
        if name not in fields:
            problems.append(f"unknown field {_render(path + [name])}")
        else:
            problems += _json_problems(fields[name], item, path + [name])
    return problems


def _json_problems(kind, value, path):
    kind = _strip(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is typing.Any:
        return []
    if value is None:
        return [] if _optional(kind) else [f"{_render(path)} may not be null"]
    if origin in (typing.Union, types.UnionType):
        literals = _literals(args)
        if literals:
            return [] if value in literals else [f"{_render(path)} must be one of {', '.join(literals)}"]
        tried = [_json_problems(a, value, path) for a in args if a is not type(None)]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{_render(path)} must be one of {', '.join(map(str, args))}"]
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        fields = {(f.alias or n): f.annotation for n, f in kind.model_fields.items()}
        return _object_problems(fields, value, path)
    if origin in (list, typing.List, typing.Sequence, collections_abc_sequence()):
        if not isinstance(value, list):
            return [f"{_render(path)} must be a list"]
        return [p for i, v in enumerate(value) for p in _json_problems(args[0] if args else typing.Any, v, path + [str(i)])]
    if origin in (dict, typing.Dict):
        return [] if isinstance(value, dict) else [f"{_render(path)} must be an object"]
    expected = {str: (str,), bool: (bool,), int: (int,), float: (int, float)}.get(kind)
    if expected and (not isinstance(value, expected) or (kind is not bool and isinstance(value, bool))):
        return [f"{_render(path)} must be {kind.__name__}"]
    return []


def _text_fits(kind, text):
    """Why a query parameter's text does not fit its type, or None."""
    kind = _strip(kind)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        literals = _literals(args)
        if literals:
            return None if text in literals else f"must be one of {', '.join(literals)}"
        tried = [_text_fits(a, text) for a in args if a is not type(None)]
        return None if any(t is None for t in tried) else tried[0]
    if origin is typing.Literal:
        return None if text in args else f"must be one of {', '.join(map(str, args))}"
    if kind is bool:
        return None if text in ("true", "false") else "must be true or false"
    if kind is int:
        return None if re.fullmatch(r"-?\d+", text) else "must be an integer"
    return None


def _literals(alternatives):
    """The values of an enumeration typed `Union[Literal[...], Any]`: the `Any` is the SDK's room
    for values ElevenLabs adds later, so today's enumeration is closed."""
    return [v for a in alternatives if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]


def _strip(kind):
    """Optional[X] stays a Union with None; typing_extensions' Annotated is unwrapped."""
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    return kind


def _optional(kind):
    return type(None) in typing.get_args(kind)


def collections_abc_sequence():
    import collections.abc

    return collections.abc.Sequence


def _render(path):
    return ".".join(path)
