"""Typed user settings: a TOML file in the config dir, overridden by ``BDC_*`` environment variables.

Precedence (highest first): explicit overrides passed by the CLI, ``BDC_<SECTION>__<FIELD>`` env vars,
``config.toml``, defaults. Unknown keys and bad values are a :class:`ConfigError` that names the key and
the file (or env var) it came from. ``bdc config`` prints the resolved settings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError
from .paths import app_paths


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsSettings(_Section):
    """Which model files to use. Empty paths mean the embedded defaults."""

    solver: Literal["coder-0.5b", "coder-1.5b", "gemma-270m"] = Field(
        "coder-0.5b",
        description="embedded base solver: Qwen2.5-Coder-0.5B/1.5B-Instruct Q4_K_M (1.5b: `bdc models install "
        "coder-1.5b` first) or the gemma-3-270m base model; ignored when base_gguf is set",
    )
    base_gguf: str = Field("", description="GGUF of the base solver model; empty = the embedded `solver`")
    base_hf_dir: str = Field(
        "", description="HF model dir for the torch backend; empty = dequantize base_gguf once and cache it"
    )
    small_gguf: str = Field(
        "", description="GGUF of the small second agent; empty = embedded SmolLM2-135M-Instruct"
    )
    encoder: str = Field("", description="sentence-transformers model dir; empty = embedded all-MiniLM-L6-v2")
    encoder_backend: Literal["auto", "llamacpp", "sentence-transformers"] = Field(
        "auto",
        description="what runs the encoder: auto = llama.cpp when the model converts to GGUF and matches "
        "sentence-transformers on the parity probes (checked once per machine), else sentence-transformers",
    )
    chat_template: Literal["auto", "completion", "chat"] = Field(
        "auto", description="'completion' for base models (few-shot frame), 'chat' for instruction-tuned ones"
    )


class BackendSettings(_Section):
    """Which generation backend runs the local solver."""

    name: Literal["auto", "llamacpp", "torch"] = Field(
        "auto", description="auto: CUDA → torch, else llama.cpp"
    )
    threads: int = Field(0, ge=0, le=512, description="CPU threads for llama.cpp; 0 = all cores")
    n_ctx: int = Field(4096, ge=256, le=131072, description="context window in tokens")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="torch device; 'cuda' refuses to start without a CUDA GPU"
    )
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="torch weights dtype; auto = bfloat16 on CUDA, float32 on CPU"
    )
    seed: int = Field(0, description="sampling seed")


class SolverSettings(_Section):
    """The two-stage answer: problem → thought, thought → solution."""

    thought_tokens: int = Field(160, ge=8, le=8192, description="max tokens of the plan (stage 1)")
    max_tokens: int = Field(384, ge=8, le=32768, description="max tokens of the code (stage 2)")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    plan: Literal["auto", "on", "off"] = Field(
        "auto",
        description="on = plan first, then code (two stages); off = code in one turn; auto = the mode that won "
        "on the validation split for this prompt style (completion: on, chat: see solver/session.py)",
    )
    repair_rounds: int = Field(
        3,
        ge=0,
        le=8,
        description="chat models: when the code fails an example the problem states (run in the sandbox), write "
        "it again, told what failed, up to N times; the version passing the most examples is kept; 0 = off",
    )
    repair_temperature: float = Field(
        0.7,
        ge=0.0,
        le=2.0,
        description="sampling temperature of those retries (greedy decoding would write the same code again)",
    )


class BundleSettings(_Section):
    """The DisenLoRA solver bundle (experts + hypernetwork)."""

    path: str = Field(
        "", description="bundle directory; empty = the active registered bundle, else the shipped one"
    )
    enabled: bool = Field(True, description="false = always answer with the plain base model")


class SandboxSettings(_Section):
    """Limits for running model-written code."""

    timeout_s: float = Field(4.0, gt=0, le=600, description="wall-clock limit per test")
    memory_mb: int = Field(1024, ge=64, le=65536, description="address-space limit per run")
    workers: int = Field(0, ge=0, le=64, description="warm workers; 0 = number of cores")
    output_limit_kb: int = Field(1024, ge=1, le=65536, description="stdout/stderr cap per run")
    isolation: Literal["strict", "landlock", "weak"] = Field(
        "strict",
        description="strict = user/mount/net/pid namespaces + chroot + seccomp, no root needed (falls back to "
        "landlock where user namespaces are off; refuses if neither works); landlock = Landlock + seccomp "
        "only; weak = rlimits + seccomp + clean env only, the program can read and write your files",
    )
    scratch_mb: int = Field(
        64, ge=1, le=4096, description="size of each worker's tmpfs scratch dir (disk cap)"
    )
    nproc: int = Field(32, ge=1, le=4096, description="max processes/threads per run (RLIMIT_NPROC, own uid)")


class DeepSettings(_Section):
    """Deep mode (MC-Tree-of-Agents over remote LLMs). Off until the user consents.

    The defaults follow the paper where it is explicit (γ = 0.9, PUCB, prune, refine) and the public BDC
    code where the paper is silent (width per policy, one solution per policy per simulation).
    """

    agents: list[str] = Field(default_factory=list, description="provider:URL:MODEL specs")
    max_calls: int = Field(60, ge=1, le=100000, description="cap on LLM calls per problem (cache hits count)")
    budget_usd: float = Field(
        1.0, ge=0.0, description="cap on spend per problem; a call is refused if its worst case would pass it"
    )
    max_tokens_total: int = Field(0, ge=0, description="cap on input+output tokens per problem; 0 = none")
    wall_clock_s: float = Field(0.0, ge=0.0, description="cap on search wall time per problem; 0 = none")
    method: Literal["mc-toa", "reflexion", "tot", "rap", "lats", "ldb", "rethinkmcts"] = Field(
        "mc-toa",
        description="search method: MC-Tree-of-Agents (the paper's), or one of its Table-1 baselines "
        "(single-agent: reflexion, tot, rap, lats, ldb, rethinkmcts)",
    )
    rollouts: int = Field(8, ge=1, le=10000)
    width: int = Field(2, ge=1, le=16, description="thoughts proposed by each policy per expansion")
    samples: int = Field(
        1, ge=1, le=8, description="solutions each policy writes per simulation (BDC code: 2)"
    )
    max_depth: int = Field(4, ge=1, le=64, description="a node with this many thoughts is terminal")
    gamma: float = Field(0.9, gt=0.0, le=1.0)
    c_puct: float = Field(1.0, ge=0.0)
    selection: Literal["pucb", "var_p_ucb"] = "pucb"
    q_mode: Literal["mean", "max"] = Field(
        "mean", description="Q(S) from backed-up returns: mean, or max as in the BDC code"
    )
    prune: bool = True
    refine: bool = True
    refine_local_limit: int = Field(1, ge=0, le=16, description="refines per tree slot")
    refine_global_limit: int = Field(4, ge=0, le=1000, description="refines per problem")
    early_stop: bool = Field(True, description="stop when a solution passes every public test")
    seed: int = Field(0, description="seeds the per-problem RNG (critic choice, tie-breaks)")
    idle_rollouts: int = Field(
        16,
        ge=0,
        le=10000,
        description="stop ('converged') after this many rollouts in a row that spend nothing "
        "(only finished leaves left to revisit); 0 = never",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_output_tokens: int = Field(1024, ge=16, le=32768, description="max_tokens of every LLM call")
    timeout_s: float = Field(120.0, gt=0.0, description="per-request timeout")
    max_retries: int = Field(4, ge=0, le=20, description="retries on 429/5xx/timeouts/malformed replies")
    concurrency: int = Field(4, ge=1, le=64, description="concurrent requests per provider")
    generate_tests: int = Field(0, ge=0, le=50, description="LLM-generated tests to add (marked generated)")
    pick: Literal["first", "sstar"] = Field(
        "first",
        description="final program among those tied on the public tests: first (earliest) or sstar "
        "(one extra LLM call asks for distinguishing inputs; the largest behaviour cluster wins)",
    )
    pick_programs: int = Field(
        4, ge=2, le=16, description="sstar: tied programs shown and clustered, at most"
    )
    pick_inputs: int = Field(5, ge=1, le=20, description="sstar: distinguishing inputs asked for, at most")
    resample_temperature: float = Field(
        0.8,
        ge=0.0,
        le=2.0,
        description="deep-bench: temperature of resampled attempts (a method that converged before its "
        "budget starts over with a new seed) when `temperature` is 0",
    )


class TuiSettings(_Section):
    """The Textual app."""

    theme: Literal["dark", "light"] = Field("dark", description="dark or light Textual theme")
    enter_sends: bool = Field(
        True, description="Enter sends the problem and Ctrl+J inserts a newline; false swaps the two keys"
    )
    history: bool = Field(
        True, description="keep every conversation in the local SQLite history (FTS search)"
    )
    native_clipboard: bool = Field(
        True, description="copy with pbcopy / wl-copy / xclip when present, then OSC 52; false = OSC 52 only"
    )


class RetrainSettings(_Section):
    min_new: int = Field(
        50, ge=1, description="trajectories needed since the active bundle before retraining"
    )
    config: str = Field(
        "", description="trainer config; empty = trainer/configs/cpu.toml (gpu.toml with CUDA)"
    )


SECTIONS: dict[str, type[_Section]] = {
    "models": ModelsSettings,
    "backend": BackendSettings,
    "solver": SolverSettings,
    "bundle": BundleSettings,
    "sandbox": SandboxSettings,
    "deep": DeepSettings,
    "tui": TuiSettings,
    "retrain": RetrainSettings,
}


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    """All user settings. Build with :func:`load_settings`, not directly."""

    model_config = SettingsConfigDict(env_prefix="BDC_", env_nested_delimiter="__", extra="ignore")

    models: ModelsSettings = Field(default_factory=ModelsSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    solver: SolverSettings = Field(default_factory=SolverSettings)
    bundle: BundleSettings = Field(default_factory=BundleSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    deep: DeepSettings = Field(default_factory=DeepSettings)
    tui: TuiSettings = Field(default_factory=TuiSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)

    _toml_data: dict[str, Any] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls, cls._toml_data))


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The config file {path} is not valid TOML: {exc}.") from exc
    for key, value in data.items():
        if key not in SECTIONS:
            raise ConfigError(
                f"Unknown config key '{key}' in {path}; known sections are: {', '.join(SECTIONS)}."
            )
        if not isinstance(value, dict):
            raise ConfigError(f"Config key '{key}' in {path} must be a [{key}] table.")
        section = SECTIONS[key]
        for sub in value:
            if sub not in section.model_fields:
                raise ConfigError(
                    f"Unknown config key '{key}.{sub}' in {path}; "
                    f"known keys of [{key}] are: {', '.join(section.model_fields)}."
                )
    return data


def _describe(exc: ValidationError, origin: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    env = "BDC_" + "__".join(str(p).upper() for p in err["loc"])
    return f"Bad config value for '{loc}' (from {origin} or env {env}): {err['msg']}."


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read ``config.toml`` (or ``config_file``), apply env vars and ``overrides`` (``section={...}``)."""
    path = config_file or app_paths().config_file
    data = _read_toml(path)
    Settings._toml_data = data
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from exc
    finally:
        Settings._toml_data = {}


def settings_as_toml(settings: Settings) -> str:
    """Render settings as TOML (used by ``bdc config`` and saved next to training/eval outputs)."""
    return sections_to_toml(settings, SECTIONS)


def sections_to_toml(obj: BaseModel, names: Iterable[str]) -> str:
    """Render the named sub-models of ``obj`` as TOML tables."""
    return toml_tables({name: getattr(obj, name).model_dump(mode="json") for name in names})


def toml_tables(data: dict[str, dict[str, Any]]) -> str:
    """The one TOML writer: ``{table: {key: value}}`` with flat scalar and list values only."""
    lines: list[str] = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
