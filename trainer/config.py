"""Typed trainer configuration: one TOML file per setting (smoke / cpu / gpu), overridable with ``--set``.

Every section is a pydantic model with ``extra="forbid"`` so a typo in a config file or in ``--set`` is a
one-sentence :class:`ConfigError` instead of a silently ignored knob. The resolved config (after
overrides) is written next to every stage's output, and a hash of the parts a stage depends on decides
whether a finished stage can be skipped on rerun.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import JsonDict

from bdc_assistant.config import sections_to_toml
from bdc_assistant.errors import ConfigError

ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# Marks a field added after runs were made: at its default it is left out of the stage keys, so a finished run
# stays finished (not retrained) when the trainer grows a knob it did not use.
NEW_KNOB: JsonDict = {"key_omit_default": True}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def key_payload(self) -> dict[str, Any]:
        """The section as a stage key sees it: every field, but a ``NEW_KNOB`` field only when not at its default."""
        out = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if (
                isinstance(extra, dict)
                and extra.get("key_omit_default")
                and getattr(self, name) == field.get_default(call_default_factory=True)
            ):
                out.pop(name, None)
        return out


class RunSection(_Section):
    """Identity and seed of a run."""

    name: str = Field("run", description="short name, written into the bundle manifest")
    seed: int = Field(0, description="seeds clustering, SFT, DARE and the hypernetwork")


class BaseSection(_Section):
    """Which base model to tune.

    ``tiny``: a random tiny model built in-process (``bdc_assistant.models.tiny.build_tiny``) for CI;
    ``embedded``: the app's embedded gemma-3-270m (its GGUF dequantized once to an HF dir and cached);
    ``hf``: an HF checkpoint directory (``hf_dir``), optionally with the matching GGUF (``gguf``) for llama.cpp.
    """

    kind: Literal["tiny", "embedded", "hf"] = "tiny"
    arch: Literal["llama", "gemma3"] = Field("llama", description="architecture of the tiny model")
    hf_dir: str = ""
    gguf: str = ""
    name: str = Field("", description="display name; empty = derived from the model")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="training dtype of the frozen base (bf16 on GPUs)"
    )
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = leave torch's default")


class DataSection(_Section):
    """Where trajectories come from and how they are split."""

    inputs: list[str] = Field(default_factory=list, description="JSONL files or directories of trajectories")
    app_trajectories: bool = Field(
        False, description="also read the app's deep-mode trajectories (data_dir/trajectories/*.jsonl)"
    )
    synthetic: int = Field(0, ge=0, description="add this many synthetic trajectories (smoke tests only)")
    bootstrap: list[Literal["mbpp", "codecontests"]] = Field(
        default_factory=list,
        description="bootstrap trajectories from the reference solutions in the shared offline problem sets",
    )
    bootstrap_dir: str = Field("", description="directory of the offline problem sets; empty = auto-detect")
    bootstrap_limit: int = Field(0, ge=0, description="max problems per bootstrap set; 0 = all")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of *problems* held out")
    max_chars: int = Field(6000, ge=100, description="drop trajectories whose text is longer than this")
    holdout_validation: bool = Field(
        True,
        description="never train on the fixed validation problems (mbpp-val, codecontests-val): every choice "
        "is made on them, so they stay unseen",
    )
    negatives: list[str] = Field(
        default_factory=list,
        json_schema_extra=NEW_KNOB,
        description="JSONL files or directories of failing programs (lines marked negative, e.g. "
        "`trainer.sample --negatives true`): the rejected side of preference pairs (sft.objective = 'dpo'); "
        "never training targets",
    )
    min_public_pass_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="drop trajectories whose recorded public pass rate is below this (1.0: only programs "
        "that pass every public test; lines marked negative are dropped whatever this says)",
    )


class ClusterSection(_Section):
    """Cosine k-means over encoder embeddings (paper eq. 12)."""

    k: int = Field(0, ge=0, le=64, description="fixed K; 0 = choose K in [k_min, k_max] by silhouette")
    k_min: int = Field(2, ge=1, le=64)
    k_max: int = Field(4, ge=1, le=64)
    iters: int = Field(100, ge=1, le=10000, description="Lloyd iterations per restart")
    restarts: int = Field(8, ge=1, le=1000, description="k-means++ restarts; the lowest cost wins")
    encoder: str = Field("", description="sentence-transformers dir; empty = the app's embedded encoder")
    embed_fields: list[Literal["problem", "thought", "solution"]] = Field(
        default=["problem", "thought", "solution"],  # pydantic copies mutable defaults
        description="what text of a trajectory is embedded for clustering (the paper embeds <X, y>)",
    )
    plot: bool = Field(True, description="save a 2-D t-SNE picture of the clusters (clusters.png)")


class LoraSection(_Section):
    """One LoRA shape shared by every expert (required by the bundle's A_cat/B_cat layout)."""

    r: int = Field(4, ge=1, le=256)
    alpha: float = Field(8.0, gt=0)
    use_rslora: bool = False
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_TARGETS))


class SftSection(_Section):
    """Supervised fine-tuning of each expert (and of the SFT-on-all baseline). Loss on answer tokens only."""

    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(0, ge=0, description="cap on optimizer steps per adapter; 0 = epochs decide")
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_len: int = Field(
        512, ge=16, description="tokens per example (prompt + answer), truncated from the left"
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    sft_all: bool = Field(True, description="also train the SFT-on-all baseline")
    pair_kinds: list[Literal["p2t", "t2s", "p2s"]] = Field(
        default=["p2t", "t2s", "p2s"],
        description="which pairs each trajectory gives (experts and f): p2t/t2s for the two-stage solver, "
        "p2s for the one-turn answer (chat bases only); train on what the shipped solver mode uses",
    )
    val_examples: int = Field(0, ge=0, description="validation pairs scored per adapter (and for f); 0 = all")
    objective: Literal["sft", "dpo"] = Field(
        "sft",
        json_schema_extra=NEW_KNOB,
        description="sft: answer-token cross-entropy on verified programs; dpo: direct preference optimization "
        "(Rafailov et al. 2023) of each verified program over a failing one of the same problem (data.negatives), "
        "the frozen base as the reference; problems without a failing program do not train the adapters",
    )
    dpo_beta: float = Field(
        0.1,
        gt=0,
        json_schema_extra=NEW_KNOB,
        description="DPO's beta: how far from the base the adapters may move",
    )
    dpo_nll_weight: float = Field(
        0.0,
        ge=0,
        json_schema_extra=NEW_KNOB,
        description="adds this times the chosen program's per-token cross-entropy to the DPO loss (RPO, Pang et al. "
        "2024), which keeps the chosen program's own likelihood from falling; 0 = plain DPO",
    )
    align_to_stub: bool = Field(
        True,
        description="rebuild a stub problem's solution around the stub's own header (its imports, signature and "
        "docstring with the stated example) and drop top-level example usage, so the target is what the "
        "solver's prompt asks for; off = the solution as the agent wrote it (every run before 2026-12-05)",
    )


class HypernetSection(_Section):
    """Training of the input-aware hypernetwork f (everything else frozen, hook mode, per-sample gates)."""

    hidden: int = Field(64, ge=1)
    normalization: str = Field(
        "", description="passed to build_hypernet when it accepts it; empty = its default"
    )
    init_gate: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="start every gate at this value (sets f's output bias; sigmoid/none); 0 = f's own init (0.5). "
        "Near 1 starts DisenLoRA at the sum of the experts, which helps when f gets few steps",
    )
    route_warmup_steps: int = Field(
        0,
        ge=0,
        description="before the LM-loss steps, fit f's gates to the cluster labels this many full-batch steps "
        "(own expert at route_high, others at 1 - route_high); 0 = the paper's LM loss only",
    )
    route_warmup_lr: float = Field(1e-2, gt=0)
    route_high: float = Field(0.9, gt=0.5, lt=1.0, description="the own-cluster gate the warm start aims for")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(0, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(2, ge=1)
    max_len: int = Field(512, ge=16)


class BaselinesSection(_Section):
    """Static merges of the same experts (full-ΔW merges, then truncated SVD back to LoRA form)."""

    methods: list[Literal["ties", "dare", "twin"]] = Field(default=["ties", "dare", "twin"])
    density: float = Field(0.5, gt=0, le=1, description="TIES trim density and DARE keep probability")
    svd_rank: int = Field(0, ge=0, description="rank of the exported merge; 0 = K·r")
    twin_shared: Literal["mean", "ties"] = Field(
        "mean", description="TWIN's shared expert: the mean ΔW (task arithmetic, 1/K) or the TIES merge"
    )
    twin_rank: int = Field(0, ge=0, description="rank of each TWIN exclusive part; 0 = r")
    twin_router: Literal["trained", "cosine"] = Field(
        "trained", description="TWIN router: an MLP trained on the cluster labels, or softmax(cos/0.05)"
    )


class EvaluateSection(_Section):
    """Table-2-shaped evaluation on held-out problems."""

    datasets: list[
        Literal[
            "humaneval",
            "mbpp",
            "codecontests",
            "mbpp-val",
            "codecontests-val",
            "mbpp-train",
            "codecontests-train",
        ]
    ] = Field(
        default=["humaneval"], description="choose on the -val sets; HumanEval is a test set, reported once"
    )
    limit: int = Field(0, ge=0, description="problems per dataset; 0 = all")
    methods: list[str] = Field(
        default_factory=lambda: ["base", "sft_all", "sft_clusters", "ties", "dare", "twin", "disenlora"],
        description="rows of the table",
    )
    backend: Literal["torch", "llamacpp"] = Field("torch", description="which app backend answers")
    thought_tokens: int = Field(96, ge=1)
    max_tokens: int = Field(256, ge=1)
    repair_rounds: int = Field(
        0,
        ge=0,
        le=5,
        description="the app's solver.repair_rounds for every row; 0 (default) scores each row's first answer, "
        "which is what the experts change",
    )
    timeout_s: float = Field(4.0, gt=0)
    threads: int = Field(
        0,
        ge=0,
        le=512,
        description="llama.cpp threads while evaluating; 0 = all cores (answers do not change)",
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="0 = greedy, what the app answers; above 0 every answer is sampled (seed: the sample index)",
    )
    samples: int = Field(
        1,
        ge=1,
        le=64,
        description="answers per problem and row; above 1 pass@1 is the mean over them (Chen et al. 2021) and "
        "rows are paired by each problem's pass fraction, which smooths greedy decoding's flips",
    )

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> EvaluateSection:
        if self.samples > 1 and self.temperature == 0.0:
            raise ValueError(
                "evaluate.samples above 1 needs evaluate.temperature above 0 (greedy answers repeat)"
            )
        return self


class ExportSection(_Section):
    """Writing the final bundle and registering it with the app."""

    register_bundle: bool = Field(True, description="copy the bundle into the app's bundles dir")
    activate: bool = Field(
        False, description="make it the active bundle right away (bdc retrain decides otherwise)"
    )
    gguf_template: bool = Field(
        True, description="also write the llama.cpp adapter template when a GGUF exists"
    )
    dtype: Literal["float16", "float32"] = Field("float16", description="dtype of the shipped expert tensors")
    provenance_note: str = Field("", description="free text recorded in the manifest's provenance")
    refuse_input_invariant: bool = Field(
        False, description="fail instead of warning when f's gates do not vary with the input"
    )


class TrainerConfig(_Section):
    run: RunSection = Field(default_factory=RunSection)
    base: BaseSection = Field(default_factory=BaseSection)
    data: DataSection = Field(default_factory=DataSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    sft: SftSection = Field(default_factory=SftSection)
    hypernet: HypernetSection = Field(default_factory=HypernetSection)
    baselines: BaselinesSection = Field(default_factory=BaselinesSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    export: ExportSection = Field(default_factory=ExportSection)

    def section_hash(self, *names: str) -> str:
        """sha256 over the named sections (what a stage depends on), for skip-on-rerun decisions."""
        payload = {n: getattr(self, n).key_payload() for n in names}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def to_toml(self) -> str:
        return sections_to_toml(self, type(self).model_fields)


def _parse_value(raw: str) -> Any:
    """Parse a ``--set`` value as a TOML value; anything that is not valid TOML is a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_override(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects section.key=value, got '{assignment}'.")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set key '{key}' must look like section.key (for example sft.lr).")
    section, field = parts
    if section not in TrainerConfig.model_fields:
        raise ConfigError(f"--set: unknown config section '{section}'.")
    data.setdefault(section, {})[field] = _parse_value(raw.strip())


def load_config(path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainerConfig:
    """Read a trainer TOML file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"The trainer config {path} does not exist.")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"The trainer config {path} is not valid TOML: {exc}.") from exc
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return TrainerConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"Bad trainer config value for '{loc}' in {path or 'defaults'}: {err['msg']}."
        ) from exc
