"""Declarative series-selection rules (MONAI Deploy's series-selector semantics).

A rule set maps an attribute name to a condition:

- a string: a regular expression searched in the attribute value (``re.search``; add
  ``(?i)`` for case-insensitive, ``^...$`` to anchor);
- ``[min, max]`` (two numbers): the numeric value lies in the closed range;
- ``[v, op]`` with ``op`` one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``: numeric comparison;
- a list of strings (for multi-valued attributes such as ``ImageType``): every plain item must be
  one of the values, every ``!item`` must not be (case-insensitive);
- a name ending in ``?`` is optional: its condition is applied only when the attribute exists.

A missing (non-optional) attribute fails the rule.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_RULES: dict[str, Any] = {
    "Modality": "^CT$",
    "ImageType": ["ORIGINAL", "!LOCALIZER", "!DERIVED"],
    "ImageType3?": "(?i)^AXIAL$",
    "NumberOfSlices": [10, ">="],
    "SliceOrientation?": "^AXIAL$",
}
"""CT, original (not derived: no MPR/MIP reformats), not a localizer, axial (when the third
ImageType value or the orientation is known), at least 10 slices. PRIMARY is not required:
acquired axial CT is often stored as ORIGINAL\\SECONDARY\\AXIAL after an export or
anonymisation (LIDC-IDRI-0002 is)."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def matches(rules: Mapping[str, Any], attributes: Mapping[str, Any]) -> tuple[bool, str]:
    """Evaluate ``rules`` on ``attributes``.

    Parameters
    ----------
    rules : mapping
        Attribute name -> condition (see the module docstring).
    attributes : mapping
        Attribute name -> value (str, number, or sequence for multi-valued attributes; a
        backslash-separated string is split).

    Returns
    -------
    ok : bool
        True when every condition holds.
    reason : str
        Empty when ``ok``; otherwise which condition failed and why.

    Raises
    ------
    TypeError
        If ``rules`` or ``attributes`` is not a mapping.
    ValueError
        If a condition has an unsupported form.
    """
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a mapping, got {type(rules).__name__}")
    if not isinstance(attributes, Mapping):
        raise TypeError(f"attributes must be a mapping, got {type(attributes).__name__}")
    for key, condition in rules.items():
        name = key[:-1] if key.endswith("?") else key
        value = attributes.get(name)
        if value is None or value == "":
            if key.endswith("?"):
                continue
            return False, f"{name} is missing"
        ok, why = _check(name, condition, value)
        if not ok:
            return False, why
    return True, ""


def _check(name: str, condition: Any, value: Any) -> tuple[bool, str]:
    if isinstance(condition, str):
        text = _as_text(value)
        if re.search(condition, text) is None:
            return False, f"{name} {text!r} does not match {condition!r}"
        return True, ""
    if isinstance(condition, Sequence) and len(condition) == 2 and _is_number(condition[0]):
        return _check_number(name, condition, value)
    if isinstance(condition, Sequence) and all(isinstance(c, str) for c in condition):
        return _check_values(name, condition, value)
    raise ValueError(f"rule for {name!r} has an unsupported form: {condition!r}")


def _check_number(name: str, condition: Sequence[Any], value: Any) -> tuple[bool, str]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False, f"{name} {value!r} is not a number"
    first, second = condition
    if isinstance(second, str):
        if second not in _OPS:
            raise ValueError(
                f"rule for {name!r}: operator must be one of {list(_OPS)}, got {second!r}"
            )
        ok = _OPS[second](number, float(first))
        return ok, "" if ok else f"{name} {number:g} is not {second} {float(first):g}"
    if not _is_number(second):
        raise ValueError(f"rule for {name!r} has an unsupported form: {list(condition)!r}")
    ok = float(first) <= number <= float(second)
    return ok, "" if ok else f"{name} {number:g} is not in [{first}, {second}]"


def _check_values(name: str, condition: Sequence[str], value: Any) -> tuple[bool, str]:
    values = {v.strip().upper() for v in _as_list(value)}
    for item in condition:
        wanted = item[1:].upper() if item.startswith("!") else item.upper()
        present = wanted in values
        if item.startswith("!") and present:
            return False, f"{name} contains excluded value {wanted}"
        if not item.startswith("!") and not present:
            return False, f"{name} lacks required value {wanted}"
    return True, ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "\\".join(str(v) for v in value)
    return str(value)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split("\\")
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return [str(value)]


def slice_orientation(image_orientation: Sequence[float]) -> str:
    """Name the plane of ImageOrientationPatient: AXIAL, CORONAL, SAGITTAL or OBLIQUE.

    Raises
    ------
    ValueError
        If ``image_orientation`` does not have six values.
    """
    iop = np.asarray([float(v) for v in image_orientation], dtype=np.float64)
    if iop.shape != (6,):
        raise ValueError(f"image_orientation must have 6 values, got {len(iop)}")
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    axis = int(np.argmax(normal))
    if normal[axis] < 0.98:
        return "OBLIQUE"
    return ("SAGITTAL", "CORONAL", "AXIAL")[axis]


def series_attributes(header: Any, number_of_slices: int) -> dict[str, Any]:
    """Build the attributes :func:`matches` reads from one instance header of a series.

    Parameters
    ----------
    header : pydicom.Dataset or mapping
        Any instance of the series (keyword access).
    number_of_slices : int
        Instances in the series.

    Returns
    -------
    dict
        Modality, ImageType (list), ImageType3 (its third value when present), SeriesDescription,
        NumberOfSlices, SliceThickness and SliceOrientation (when known).
    """
    get = header.get
    image_type = _as_list(get("ImageType") or [])
    attrs: dict[str, Any] = {
        "Modality": str(get("Modality") or ""),
        "ImageType": image_type,
        "ImageType3": image_type[2] if len(image_type) > 2 else None,
        "SeriesDescription": str(get("SeriesDescription") or ""),
        "NumberOfSlices": int(number_of_slices),
        "SliceThickness": get("SliceThickness"),
    }
    iop = get("ImageOrientationPatient")
    if iop:
        values = _as_list(iop) if isinstance(iop, str) else list(iop)
        attrs["SliceOrientation"] = slice_orientation(values)
    return attrs
