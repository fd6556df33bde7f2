"""Avro schema of the canonical order, derived from the pydantic model, and record conversion.

The model is the single source of truth: ``service_order_schema()`` walks its fields and produces the
Avro schema that ``contracts/avro/service_order.avsc`` commits (a test keeps the two equal). Rules:

* optional fields become ``["null", T]`` unions with a ``null`` default; other defaults are carried;
* ``Money`` becomes a record of ``amount_minor`` (long, minor units) and ``currency``, so that no amount
  is ever a float on the wire;
* other ``Decimal`` fields use the ``decimal`` logical type with the field's declared precision/scale;
* times are ``timestamp-micros`` (UTC instants), ids the ``uuid`` logical type, enums Avro enums;
* a nested model becomes a named record, defined at first use and referenced by name afterwards.
"""

from __future__ import annotations

import types
import typing
import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from canonical.codes import currency_minor_digits
from canonical.model import AVRO_CONTEXT, Money, ServiceOrder

__all__ = ["AVRO_NAMESPACE", "order_from_avro", "order_to_avro", "service_order_schema"]

AVRO_NAMESPACE = "saleshub.canonical"

AvroSchema = Any  # a JSON-like Avro schema: str, list or dict


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0], True
        raise TypeError(f"unsupported union {annotation!r}")
    return annotation, False


def _strip_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if get_origin(annotation) is typing.Annotated:
        base, *metadata = get_args(annotation)
        inner, more = _strip_annotated(base)
        return inner, metadata + more
    return annotation, []


def _decimal_schema(metadata: list[Any]) -> AvroSchema:
    precision, scale = 18, 6
    for item in metadata:
        max_digits = getattr(item, "max_digits", None)
        decimal_places = getattr(item, "decimal_places", None)
        precision = max_digits if isinstance(max_digits, int) else precision
        scale = decimal_places if isinstance(decimal_places, int) else scale
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


class _SchemaBuilder:
    def __init__(self) -> None:
        self.defined: set[str] = set()

    def type_of(self, annotation: Any, metadata: list[Any]) -> AvroSchema:
        annotation, more = _strip_annotated(annotation)
        metadata = metadata + more
        annotation, optional = _split_optional(annotation)
        annotation, more = _strip_annotated(annotation)
        metadata = metadata + more
        schema = self._required_type(annotation, metadata)
        return ["null", schema] if optional else schema

    def _required_type(self, annotation: Any, metadata: list[Any]) -> AvroSchema:
        origin = get_origin(annotation)
        if origin is list:
            (item,) = get_args(annotation)
            return {"type": "array", "items": self.type_of(item, [])}
        if origin is dict:
            key, value = get_args(annotation)
            if key is not str:
                raise TypeError("Avro maps need str keys")
            return {"type": "map", "values": self.type_of(value, [])}
        if isinstance(annotation, type):
            return self._class_type(annotation, metadata)
        raise TypeError(f"no Avro type for {annotation!r}")

    def _class_type(self, cls: type, metadata: list[Any]) -> AvroSchema:
        simple: dict[type, AvroSchema] = {
            str: "string",
            bool: "boolean",
            int: "long",
            uuid.UUID: {"type": "string", "logicalType": "uuid"},
            datetime: {"type": "long", "logicalType": "timestamp-micros"},
            AwareDatetime: {"type": "long", "logicalType": "timestamp-micros"},
        }
        if cls in simple:
            return simple[cls]
        if cls is Decimal:
            return _decimal_schema(metadata)
        if issubclass(cls, Enum):
            return self._named(cls, lambda: {"type": "enum", "symbols": [m.value for m in cls]})
        if cls is Money:
            return self._named(
                cls,
                lambda: {
                    "type": "record",
                    "doc": "An exact amount: integer minor units (cents, grosze) and ISO 4217 code.",
                    "fields": [
                        {"name": "amount_minor", "type": "long"},
                        {"name": "currency", "type": "string"},
                    ],
                },
            )
        if issubclass(cls, BaseModel):
            return self._named(cls, lambda: self._record_body(cls))
        raise TypeError(f"no Avro type for {cls!r}")

    def _named(self, cls: type, body: typing.Callable[[], dict[str, Any]]) -> AvroSchema:
        if cls.__name__ in self.defined:
            return cls.__name__
        self.defined.add(cls.__name__)
        schema = body()
        doc_lines = (cls.__doc__ or "").strip().splitlines()
        doc = schema.pop("doc", doc_lines[0] if doc_lines else "")
        return {"type": schema.pop("type"), "name": cls.__name__, "doc": doc, **schema}

    def _record_body(self, model: type[BaseModel]) -> dict[str, Any]:
        fields = [self._field(name, info) for name, info in model.model_fields.items()]
        return {"type": "record", "fields": fields}

    def _field(self, name: str, info: FieldInfo) -> dict[str, Any]:
        field: dict[str, Any] = {"name": name, "type": self.type_of(info.annotation, info.metadata)}
        if info.default is not PydanticUndefined:
            field["default"] = _avro_default(info.default)
        elif info.default_factory is not None:
            field["default"] = _avro_default(info.default_factory())  # type: ignore[call-arg]
        return field


def _avro_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return value


def service_order_schema() -> dict[str, Any]:
    """The Avro schema of ``ServiceOrder`` (as committed in ``contracts/avro/service_order.avsc``)."""
    schema: dict[str, Any] = _SchemaBuilder().type_of(ServiceOrder, [])
    return {"namespace": AVRO_NAMESPACE, **schema}


def order_to_avro(order: ServiceOrder) -> dict[str, Any]:
    """The order as an Avro record (a dict that fastavro writes against ``service_order_schema``).

    pydantic's own serialiser does the walk; ``Money`` switches to its minor-unit form in the Avro
    context, enums stay ``StrEnum`` members (their values are the Avro symbols).
    """
    return order.model_dump(context=AVRO_CONTEXT)


def _money_from_avro(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"amount_minor", "currency"}:
        digits = currency_minor_digits(value["currency"])
        amount = Decimal(value["amount_minor"]).scaleb(-digits)
        return {"amount": amount, "currency": value["currency"]}
    if isinstance(value, dict):
        # system_metadata is free text: its keys are never mistaken for a Money record.
        return {
            key: item if key == "system_metadata" else _money_from_avro(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_money_from_avro(item) for item in value]
    return value


def order_from_avro(record: dict[str, Any]) -> ServiceOrder:
    """Rebuild a validated ``ServiceOrder`` from a record that fastavro read."""
    return ServiceOrder.model_validate(_money_from_avro(record))


if __name__ == "__main__":  # regenerate the committed schema: python -m canonical.avro > FILE
    import json
    import sys

    sys.stdout.write(json.dumps(service_order_schema(), indent=2) + "\n")
