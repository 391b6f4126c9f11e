"""What the report prints for the models: display names and the paper's row order of the groups,
mixtures, continual stages and merging methods (tables and figures alike), and the text of a
missing number."""

from __future__ import annotations

MISSING = "n/a"

GROUP_LABELS: dict[str, str] = {
    "helpfulness": "Helpfulness",
    "honesty": "Honesty",
    "harmlessness": "Harmlessness",
    "helpful_honest": "Helpful&Honest",
    "helpful_harmless": "Helpful&Harmless",
}
MIXTURE_LABELS: dict[str, str] = {"heuristic": "Heuristic", "armorm": "ArmoRM", "hummer": "Hummer"}
# The paper's row order; methods not listed here follow, alphabetically.
METHOD_LABELS: dict[str, str] = {
    "weight_average": "Weight Average",
    "rewarded_soup": "Rewarded Soup",
    "task_arithmetic": "Task Arithmetic",
    "ties": "TIES",
    "dare_linear": "DARE",
    "dare_ties": "DARE-TIES",
    "della_linear": "DELLA",
    "della": "DELLA-TIES",
    "breadcrumbs": "Breadcrumbs",
    "breadcrumbs_ties": "Breadcrumbs-TIES",
    "model_stock": "Model Stock",
    "tsvm": "TSVM",
    "r_tsvm_wo_outlier": "R-TSVM w/o outlier weighting",
    "r_tsvm_wo_rank": "R-TSVM w/o rank selection",
    "r_tsvm": "R-TSVM",
}
ABLATION_METHODS = ("tsvm", "r_tsvm_wo_outlier", "r_tsvm_wo_rank", "r_tsvm")
CONTINUAL_STAGES: dict[str, str] = {
    "stage1": "Stage 1 (Helpful&Honest)",
    "stage2": "Stage 2 (+Helpful&Harmless)",
    "stage3": "Stage 3 (+Helpful)",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_order(method: str) -> tuple[int, str]:
    order = list(METHOD_LABELS)
    return (order.index(method), "") if method in order else (len(order), method)
