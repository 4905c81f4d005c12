"""Per-class validators and encoders generated from a record's field types (speed only).

Contract: `make_validator(cls, hints, schema)` and `make_encoder(cls, hints, plain)` return
functions that do for one class what `codec.validate_fields` and `codec.to_wire` describe,
with the same results and the same errors:
- the validator tests each field for its usual shape inline (exact type, size limit, enum
  member, record instance, `None` for an optional) and hands any field that is not in that
  shape to the field's checker from `schema`, which normalises it (a list into a tuple, a raw
  value into an enum member) or refuses it with the error that names the field. So the
  checkers stay the one definition of what is valid; this module only skips calling them
  for values that already are;
- the encoder reads each field once and converts only what msgpack cannot take as it is
  (enum members to their values, tuples and records through `plain`).
- `trusted_builder` gives a constructor that stores keyword arguments through the slots'
  own descriptors and does not validate, for values already validated (its docstring
  says who may use it).
The functions are generated once per class as Python source, as `dataclasses` does for
`__init__`: every message built or decoded runs one of them, and a loop over a schema cost
about three times as much per field (issue 19's breakdown). Pure code, no I/O.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar, cast

T = TypeVar("T")

Validator = Callable[[object], None]
Encoder = Callable[[object], dict[str, object]]

_SCALARS = (int, bool, str, bytes)


def _fast_test(
    annotation: object, var: str, env: dict[str, object], limits: Mapping[type, int]
) -> str | None:
    """A Python expression true when `var` already has the shape `annotation` asks for, or
    None when the field always goes to its checker (maps, unusual shapes)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        test = _fast_test(inner, var, env, limits)
        return None if test is None else f"({var} is None or {test})"
    if origin is tuple:
        item = _fast_test(args[0], "_x", env, limits)
        if item is None:
            return None
        return (
            f"(type({var}) is tuple and len({var}) <= {limits[tuple]}"
            f" and all({item} for _x in {var}))"
        )
    if isinstance(annotation, type):
        name = f"_T{len(env)}"
        env[name] = annotation
        if annotation in limits:  # str, bytes: a size limit too
            return f"(type({var}) is {name} and len({var}) <= {limits[annotation]})"
        # int, bool (exactly: True is no int here), an enum's member, or a record (built,
        # so validated, already)
        return f"type({var}) is {name}"
    return None


def make_validator(
    cls: type,
    hints: Mapping[str, object],
    schema: Mapping[str, Callable[[object, str], object]],
    limits: Mapping[type, int],
) -> Validator:
    """The validator of `cls` (see the module contract). `limits` maps str, bytes and tuple
    to their maximum lengths."""
    env: dict[str, object] = {"_schema": schema, "_set": object.__setattr__}
    lines = ["def validate(obj):"]
    for field_name in schema:
        test = _fast_test(hints[field_name], "v", env, limits)
        lines.append(f"    v = obj.{field_name}")
        slow = (
            f"        n = _schema[{field_name!r}](v, {field_name!r})\n"
            f"        if n is not v:\n"
            f"            _set(obj, {field_name!r}, n)"
        )
        if test is None:
            lines.append("    if True:")
        else:
            lines.append(f"    if not {test}:")
        lines.append(slow)
    lines.append("    return None")
    namespace: dict[str, object] = {}
    exec("\n".join(lines), env, namespace)  # the source is built above from type names
    validate = typing.cast(Validator, namespace["validate"])
    validate.__qualname__ = f"validate_{cls.__name__}"
    return validate


def make_encoder(
    cls: type, hints: Mapping[str, object], plain: Callable[[object], object]
) -> Encoder:
    """The encoder of `cls`: field name to a value msgpack packs as the wire wants it."""
    env: dict[str, object] = {"_plain": plain}
    items = []
    for field_name, annotation in hints.items():
        access = f"obj.{field_name}"
        if annotation in _SCALARS:
            items.append(f"{field_name!r}: {access}")
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            items.append(f"{field_name!r}: {access}._value_")
        else:
            items.append(f"{field_name!r}: _plain({access})")
    source = "def encode(obj):\n    return {" + ", ".join(items) + "}"
    namespace: dict[str, object] = {}
    exec(source, env, namespace)  # the source is built above from field names
    encode = typing.cast(Encoder, namespace["encode"])
    encode.__qualname__ = f"encode_{cls.__name__}"
    return encode


def make_builder(
    cls: type, names: Iterable[str], defaults: Mapping[str, object]
) -> Callable[..., object]:
    """A constructor of `cls` taking the same keyword arguments as its `__init__` (its fields
    `names`, with the same defaults, `defaults` mapping the fields that have one) that stores
    them through the slots' own descriptors and runs no validation (`__post_init__`): see
    `trusted_builder` for who may use it."""
    env: dict[str, object] = {"_new": object.__new__, "_cls": cls}
    params, body = [], ["    obj = _new(_cls)"]
    for field_name in names:
        setter = f"_set_{field_name}"
        env[setter] = getattr(cls, field_name).__set__  # the slot's own descriptor
        if field_name in defaults:
            env[f"_default_{field_name}"] = defaults[field_name]
            params.append(f"{field_name}=_default_{field_name}")
        else:
            params.append(field_name)
        body.append(f"    {setter}(obj, {field_name})")
    signature = f"*, {', '.join(params)}" if params else ""
    source = f"def build({signature}):\n" + "\n".join(body) + "\n    return obj"
    namespace: dict[str, object] = {}
    exec(source, env, namespace)  # the source is built above from field names
    build = typing.cast(Callable[..., object], namespace["build"])
    build.__qualname__ = f"build_{cls.__name__}"
    return build


_BUILDERS: dict[type, Callable[..., object]] = {}


def trusted_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of `cls` that does not validate: for a license server's own documents
    and replies built from values already validated (a decoded request's fields, its own
    rows, names and enum members), on the issuance path, where the checks cost as much as
    the rest of building them (issue 19). Same keyword arguments and defaults as `cls`;
    the caller passes values in their final shape (tuples, enum members).
    tests/protocol/test_trusted_builder.py holds its results equal to validated ones."""
    build = _BUILDERS.get(cls)
    if build is None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} is not a dataclass")
        fields = dataclasses.fields(cls)
        if any(f.default_factory is not dataclasses.MISSING for f in fields):
            raise TypeError(f"{cls.__name__} has a default factory: build it the usual way")
        defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        names = [f.name for f in fields]
        build = _BUILDERS[cls] = make_builder(cls, names, defaults)
    return cast(Callable[..., T], build)
