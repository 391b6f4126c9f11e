"""Name -> merge method. A new method: add its module under methods/ and one line here."""

from __future__ import annotations

from mixmerge.merge.base import MergeMethod
from mixmerge.merge.errors import MergeError
from mixmerge.merge.methods.linear import LinearMerge
from mixmerge.merge.methods.task_arithmetic import TaskArithmeticMerge

METHODS: dict[str, type[MergeMethod]] = {
    cls.name: cls
    for cls in (
        LinearMerge,
        TaskArithmeticMerge,
    )
}

METHOD_NAMES: list[str] = list(METHODS)


def get_method(name: object) -> MergeMethod:
    if not isinstance(name, str) or name not in METHODS:
        raise MergeError(f"unknown merge_method {name!r}; known: {', '.join(METHOD_NAMES)}")
    return METHODS[name]()
