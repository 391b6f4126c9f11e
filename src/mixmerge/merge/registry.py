"""Name -> merge method. A new method: add its module under methods/ and one line here."""

from __future__ import annotations

from mixmerge.merge.base import MergeMethod
from mixmerge.merge.errors import MergeError
from mixmerge.merge.methods.breadcrumbs import BreadcrumbsMerge, BreadcrumbsTiesMerge
from mixmerge.merge.methods.dare import DareLinearMerge, DareTiesMerge
from mixmerge.merge.methods.della import DellaLinearMerge, DellaMerge
from mixmerge.merge.methods.linear import LinearMerge
from mixmerge.merge.methods.model_stock import ModelStockMerge
from mixmerge.merge.methods.r_tsvm import RTSVMerge
from mixmerge.merge.methods.task_arithmetic import TaskArithmeticMerge
from mixmerge.merge.methods.ties import TiesMerge
from mixmerge.merge.methods.tsvm import TSVMerge

METHODS: dict[str, type[MergeMethod]] = {
    cls.name: cls
    for cls in (
        LinearMerge,
        TaskArithmeticMerge,
        TiesMerge,
        DareLinearMerge,
        DareTiesMerge,
        DellaLinearMerge,
        DellaMerge,
        BreadcrumbsMerge,
        BreadcrumbsTiesMerge,
        ModelStockMerge,
        TSVMerge,
        RTSVMerge,
    )
}

METHOD_NAMES: list[str] = list(METHODS)


def get_method(name: object) -> MergeMethod:
    if not isinstance(name, str) or name not in METHODS:
        raise MergeError(f"unknown merge_method {name!r}; known: {', '.join(METHOD_NAMES)}")
    return METHODS[name]()
