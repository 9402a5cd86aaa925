"""Frozen models built without validation, for values the library computed itself.

:func:`frozen` is ``model_construct`` without its per-field default handling, and with
one ``__pydantic_fields_set__`` shared by every object of a class: a frozen model never
changes that set in place (pydantic adds to it only on assignment, which a frozen model
refuses, and every copy gets a copy), and a set of a dozen names costs 728 bytes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["frozen"]

M = TypeVar("M", bound=BaseModel)

_FIELDS_SETS: dict[type[BaseModel], set[str]] = {}


def frozen(cls: type[M], values: dict[str, Any]) -> M:
    """A frozen ``cls`` from ``values``: every field, in declaration order, each already of
    its declared type (built from validated models). Not validated."""
    fields = _FIELDS_SETS.get(cls)
    if fields is None:
        if not cls.model_config.get("frozen"):
            raise TypeError(f"{cls.__name__} is not frozen")
        fields = _FIELDS_SETS[cls] = set(cls.__pydantic_fields__)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", fields)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
