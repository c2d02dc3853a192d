"""The stages, in order, what each depends on, and which function runs it. Each stage's body lives in the
module named after it and writes only into ``OUT/<stage>/``:

    data      → data/train.jsonl, data/val.jsonl
    cluster   → cluster/centroids.safetensors, cluster/assignments.json, cluster/clusters.png
    sft       → sft/expert_<k>/ (peft), sft/sft_all/, sft/bundles/<name>/ (one-expert static bundles)
    hypernet  → hypernet/bundle/ (the DisenLoRA candidate: experts + centroids + trained f)
    baselines → baselines/<ties|dare>/adapter/ and .../bundle/, baselines/twin/experts/ and .../bundle/
    evaluate  → evaluate/report.json, evaluate/report.md, evaluate/results.jsonl
    export    → export/bundle/ (+ adapter_template.gguf), registered in the app's bundles dir
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .baselines import stage_baselines
from .cluster import stage_cluster
from .data import stage_data
from .evaluate import stage_evaluate
from .export import stage_export
from .hypernet import stage_hypernet
from .sft import stage_sft

if TYPE_CHECKING:
    from .runner import Context

StageFn = Callable[["Context"], dict[str, Any]]

STAGES = ("data", "cluster", "sft", "hypernet", "baselines", "evaluate", "export")

# stage -> (config sections it depends on, upstream stages it reads)
DEPENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "data": (("run", "data"), ()),
    "cluster": (("cluster",), ("data",)),
    "sft": (("base", "lora", "sft"), ("cluster",)),
    "hypernet": (("hypernet",), ("sft",)),
    "baselines": (("baselines",), ("sft",)),
    "evaluate": (("evaluate",), ("hypernet", "baselines")),
    "export": (("export",), ("evaluate",)),
}

STAGE_FNS: dict[str, StageFn] = {
    "data": stage_data,
    "cluster": stage_cluster,
    "sft": stage_sft,
    "hypernet": stage_hypernet,
    "baselines": stage_baselines,
    "evaluate": stage_evaluate,
    "export": stage_export,
}
