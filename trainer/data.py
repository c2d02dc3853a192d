"""The ``data`` stage: trajectories → deduplicated (problem, thought, solution) records, split by problem.

Inputs are JSONL files in the trajectory schema shared with deep mode
(``problem_id, problem, thought, solution, public_pass_rate, source, policy``, plus ``verified`` /
``negative`` on deep-mode exports), optionally the app's own trajectory exports, synthetic records for
smoke runs, and records bootstrapped from the reference solutions of the offline problem sets (their
thoughts are short, rule-written summaries of the reference code; the manifest says so). Splitting is by
problem, never by record, so no problem leaks from train into validation. Each record later yields two SFT
pairs (p2t and t2s, paper §4.2.1).

Wrong code must never reach training: a line marked ``"verified": false`` or ``"negative": true`` (a
deep-mode export with ``--include-negatives``) is never a training record, whatever the config, and
``data.min_public_pass_rate`` (default 1.0) drops every record whose recorded public pass rate is below it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bdc_assistant import atomic
from bdc_assistant.errors import DatasetError

if TYPE_CHECKING:
    from .config import DataSection
    from .runner import Context

FIELDS = ("problem_id", "problem", "thought", "solution", "public_pass_rate", "source", "policy", "verified")


@dataclass(frozen=True)
class Trajectory:
    problem_id: str
    problem: str
    thought: str
    solution: str
    public_pass_rate: float | None = None
    source: str = ""
    policy: str | None = None
    # deep-mode exports: True = passes every public test on an unpruned node; False = a negative (never
    # trained on); None = the line does not say (older exports, hand-made files, synthetic, bootstrap)
    verified: bool | None = None

    def key(self) -> str:
        """Content key for deduplication (whitespace-insensitive)."""
        norm = "\x00".join(_squash(x) for x in (self.problem, self.thought, self.solution))
        return hashlib.sha256(norm.encode()).hexdigest()

    def group(self) -> str:
        """The problem this record belongs to (the unit of the train/validation split)."""
        return self.problem_id or hashlib.sha256(_squash(self.problem).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return asdict(self)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_record(obj: object, where: str) -> Trajectory:
    """Validate one JSON object against the trajectory schema; a bad record is a one-sentence error."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: a trajectory must be a JSON object.")
    missing = [f for f in ("problem", "thought", "solution") if not isinstance(obj.get(f), str)]
    if missing:
        raise DatasetError(f"{where}: the trajectory lacks string field(s) {', '.join(missing)}.")
    rate = obj.get("public_pass_rate")
    if rate is not None and not isinstance(rate, int | float):
        raise DatasetError(f"{where}: public_pass_rate must be a number or null.")
    for flag in ("verified", "negative"):
        if obj.get(flag) is not None and not isinstance(obj.get(flag), bool):
            raise DatasetError(f"{where}: {flag} must be true, false or null.")
    return Trajectory(
        problem_id=str(obj.get("problem_id") or ""),
        problem=obj["problem"],
        thought=obj["thought"],
        solution=obj["solution"],
        public_pass_rate=None if rate is None else float(rate),
        source=str(obj.get("source") or ""),
        policy=None if obj.get("policy") is None else str(obj.get("policy")),
        verified=False if obj.get("negative") is True else obj.get("verified"),
    )


def read_jsonl(path: Path) -> Iterator[Trajectory]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"The trajectory file {path} cannot be read: {exc}.") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n} is not valid JSON: {exc.msg}.") from exc
        yield parse_record(obj, f"{path}:{n}")


# The repository root: a relative input that is not found from the working directory is looked up here, so a
# config naming a committed dataset (``trainer/datasets/...``) works from any directory.
REPO_ROOT = Path(__file__).resolve().parents[1]


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories contribute their ``*.jsonl`` files (sorted, for a stable data hash).
    A relative path missing from the working directory is read from the repository root."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
            path = REPO_ROOT / path
        if path.is_dir():
            files.extend(sorted(path.glob("*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"The trajectory input {path} does not exist.")
    return files


# ---- synthetic and bootstrapped trajectories ------------------------------------------------------------

_SYNTH = [
    (
        "strings",
        "Write a function {f}(s) that returns s reversed.",
        "Walk the string backwards; slicing does it.",
        "def {f}(s):\n    return s[::-1]\n",
    ),
    (
        "strings",
        "Write a function {f}(s) that counts the vowels in s.",
        "Loop over the characters and count those in 'aeiou', ignoring case.",
        "def {f}(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')\n",
    ),
    (
        "strings",
        "Write a function {f}(s) that returns True if s is a palindrome.",
        "Compare the string with its reverse.",
        "def {f}(s):\n    return s == s[::-1]\n",
    ),
    (
        "math",
        "Write a function {f}(n) that returns the sum of 1..n.",
        "Use the closed form n*(n+1)//2.",
        "def {f}(n):\n    return n * (n + 1) // 2\n",
    ),
    (
        "math",
        "Write a function {f}(n) that returns n factorial.",
        "Multiply the numbers from 1 to n in a loop.",
        "def {f}(n):\n    r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r\n",
    ),
    (
        "math",
        "Write a function {f}(a, b) that returns the greatest common divisor of a and b.",
        "Apply Euclid's algorithm until b is zero.",
        "def {f}(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n",
    ),
    (
        "lists",
        "Write a function {f}(xs) that returns the largest element of xs.",
        "Scan the list keeping the best value so far.",
        "def {f}(xs):\n    return max(xs)\n",
    ),
    (
        "lists",
        "Write a function {f}(xs) that returns xs without duplicates, keeping order.",
        "Remember seen values in a set and keep first occurrences.",
        "def {f}(xs):\n    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
        "            seen.add(x)\n            out.append(x)\n    return out\n",
    ),
    (
        "lists",
        "Write a function {f}(xs) that returns the even numbers of xs.",
        "Filter with a list comprehension on x % 2 == 0.",
        "def {f}(xs):\n    return [x for x in xs if x % 2 == 0]\n",
    ),
]


def synthetic(n: int, seed: int) -> list[Trajectory]:
    """``n`` small, valid trajectories in three visibly different families (for smoke runs and tests)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        family, problem, thought, code = _SYNTH[i % len(_SYNTH)]
        fname = f"f{i}_{rng.randrange(1000)}"
        out.append(
            Trajectory(
                problem_id=f"synthetic/{i}",
                problem=problem.format(f=fname),
                thought=thought,
                solution=code.format(f=fname),
                public_pass_rate=1.0,
                source=f"synthetic:{family}",
                policy=None,
            )
        )
    return out


def heuristic_thought(code: str) -> str:
    """A short plan written by rules from a reference solution (honest bootstrapping, no LLM involved)."""
    steps: list[str] = []
    if re.search(r"\binput\(|sys\.stdin", code):
        steps.append("Read the input.")
    if re.search(r"\bsorted?\(|\.sort\(", code):
        steps.append("Sort the data first.")
    if re.search(r"\bset\(|\{\s*\}", code) or "dict(" in code or "defaultdict" in code or "Counter" in code:
        steps.append("Keep counts or seen values in a hash map / set.")
    if re.search(r"\bwhile\b", code):
        steps.append("Iterate with a while loop until the condition fails.")
    if re.search(r"\bfor\b.*\bfor\b", code, flags=re.S):
        steps.append("Use nested loops over the elements.")
    elif re.search(r"\bfor\b", code):
        steps.append("Loop over the elements once.")
    defs = re.findall(r"def (\w+)\(", code)
    if any(len(re.findall(rf"\b{d}\(", code)) > 1 for d in defs):
        steps.append("Solve it recursively.")
    if re.search(r"\bdp\b|\bmemo|lru_cache", code):
        steps.append("Use dynamic programming over subproblems.")
    if re.search(r"\bmath\.|\*\*|%|//", code):
        steps.append("Use arithmetic (modulo, integer division, powers).")
    if re.search(r"\bprint\(", code):
        steps.append("Print the answer.")
    else:
        steps.append("Return the result.")
    return " ".join(steps)


def _shared_data_dir(configured: str) -> Path:
    from bdc_assistant.evaluation.datasets import shared_data_dir

    path = Path(configured).expanduser() if configured else shared_data_dir()
    if path.is_dir():
        return path
    raise DatasetError(
        f"The offline problem sets were not found in {path}; set data.bootstrap_dir or BDC_SHARED_DATA."
    )


def bootstrap(sets: Iterable[str], data_dir: str, limit: int) -> list[Trajectory]:
    """Trajectories from reference solutions (MBPP canonical solutions, CodeContests Python references)."""
    root = _shared_data_dir(data_dir)
    out: list[Trajectory] = []
    for name in sets:
        try:
            out += _bootstrap_set(root, name, limit)
        except KeyError as exc:
            raise DatasetError(f"A row of the '{name}' problem set in {root} lacks the field {exc}.") from exc
    return out


def _bootstrap_set(root: Path, name: str, limit: int) -> list[Trajectory]:
    """One set's reference solutions as trajectories. The problem is the text the app's solver is shown for it
    (``solver_text``: MBPP with its public example, CodeContests with the stdin note), so experts and f are
    trained on what they will see at answer time."""
    from bdc_assistant.evaluation.datasets import load_codecontests, load_mbpp
    from bdc_assistant.evaluation.problem_text import solver_text

    if name == "mbpp":
        problems, source = load_mbpp(_existing(root / "mbpp_sanitized_train_val.jsonl")), "mbpp"
    elif name == "codecontests":
        problems, source = load_codecontests(_existing(root / "codecontests_240.jsonl")), "codecontests"
    else:
        raise DatasetError(f"Unknown bootstrap set '{name}'.")
    out: list[Trajectory] = []
    for p in [p for p in problems if p.reference_solution][: limit or None]:
        solution = str(p.reference_solution)
        out.append(
            Trajectory(
                problem_id=str(p.id) if name == "mbpp" else f"codecontests/{p.id}",
                problem=solver_text(p),
                thought=heuristic_thought(solution),
                solution=solution,
                public_pass_rate=None,
                source=f"bootstrap:{source}-reference",
                policy="reference+rule-thought",
            )
        )
    return out


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"The problem set {path} does not exist.")
    return path


def source_kind(source: str) -> str:
    """What made a record, without the per-run / per-sample tail: ``deep:<run id>`` (one MC-ToA run of deep
    mode or ``bdc collect``) is ``deep``, ``rejection-sampling:<set>:t<T>:s<seed>`` and
    ``selfinstruct:<set>:t<T>:s<seed>`` (``trainer.synthesize``) drop the seed; the bootstrap and synthetic
    labels stay as they are."""
    if not source:
        return "unknown"
    if source.startswith("deep:"):
        return "deep"
    if source.startswith(("rejection-sampling:", "selfinstruct:")):
        return source.rsplit(":s", 1)[0]
    return source


def count_by(keys: Iterable[str]) -> dict[str, int]:
    """{key: how many}, most frequent first (ties in first-seen order), for a manifest a person reads."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ---- dedupe, filter, split ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataReport:
    read: int
    negatives: int  # lines marked as not verified: dropped before anything else
    held_out_validation: int  # trajectories of the fixed validation problems, never trained on
    duplicates: int
    filtered: int
    train: int
    validation: int
    train_problems: int
    validation_problems: int
    data_hash: str


def is_negative(rec: Trajectory) -> bool:
    """A record its exporter marked as not verified: never a training pair, whatever the config says."""
    return rec.verified is False


def usable(rec: Trajectory, *, max_chars: int, min_public_pass_rate: float) -> bool:
    """The config's filters: length, a non-empty program, and the recorded public pass rate.

    What is verified, and what is not: a deep-mode record's rate is the share of the run's *public* tests
    its program passed in the sandbox (with the default 1.0, all of them). Private tests are not checked
    here, also for dataset problems that have them: a deep run never sees them (the store holds the public
    view of the problem only) and this stage runs no code. Records without a rate are kept: the
    bootstrap's reference solutions (labelled ``bootstrap:<set>-reference``, trusted as the datasets'
    own solutions) and hand-made files whose author vouches for them.
    """
    return (
        len(rec.problem) + len(rec.thought) + len(rec.solution) <= max_chars
        and bool(rec.solution.strip())
        and (rec.public_pass_rate is None or rec.public_pass_rate >= min_public_pass_rate)
    )


def dedupe(records: Iterable[Trajectory]) -> tuple[list[Trajectory], int]:
    seen: set[str] = set()
    out: list[Trajectory] = []
    dups = 0
    for rec in records:
        k = rec.key()
        if k in seen:
            dups += 1
            continue
        seen.add(k)
        out.append(rec)
    return out, dups


def split_by_problem(
    records: list[Trajectory], val_fraction: float, seed: int
) -> tuple[list[Trajectory], list[Trajectory]]:
    """Deterministic split of *problems* (hash order under the seed); every record follows its problem."""
    groups = sorted(
        {r.group() for r in records}, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest()
    )
    n_val = round(len(groups) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(groups) >= 2:
        n_val = 1
    val_groups = set(groups[:n_val])
    train = [r for r in records if r.group() not in val_groups]
    val = [r for r in records if r.group() in val_groups]
    return train, val


def data_hash(train: list[Trajectory], val: list[Trajectory]) -> str:
    digest = hashlib.sha256()
    for tag, recs in (("train", train), ("val", val)):
        for r in recs:
            digest.update(tag.encode() + json.dumps(r.as_dict(), sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


def write_jsonl(path: Path, records: Iterable[Trajectory]) -> None:
    atomic.write_text(path, "".join(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in records))


def build(
    files: list[Path],
    *,
    synthetic_n: int,
    bootstrap_sets: list[str],
    bootstrap_dir: str,
    bootstrap_limit: int,
    val_fraction: float,
    max_chars: int,
    min_public_pass_rate: float,
    seed: int,
    holdout_validation: bool = True,
) -> tuple[list[Trajectory], list[Trajectory], DataReport]:
    """All of the data stage except I/O of the outputs."""
    raw: list[Trajectory] = []
    for f in files:
        raw.extend(read_jsonl(f))
    raw.extend(synthetic(synthetic_n, seed))
    raw.extend(bootstrap(bootstrap_sets, bootstrap_dir, bootstrap_limit))
    candidates = [r for r in raw if not is_negative(r)]  # before dedupe: a negative never shadows a pair
    n_candidates = len(candidates)
    if holdout_validation:
        from bdc_assistant.evaluation.splits import is_validation_id

        candidates = [r for r in candidates if not is_validation_id(r.problem_id)]
    held_out = n_candidates - len(candidates)
    unique, dups = dedupe(candidates)
    kept = [r for r in unique if usable(r, max_chars=max_chars, min_public_pass_rate=min_public_pass_rate)]
    if len(kept) < 2:
        raise DatasetError(
            f"Only {len(kept)} usable trajectories after deduplication and filtering; at least 2 are needed."
        )
    train, val = split_by_problem(kept, val_fraction, seed)
    report = DataReport(
        read=len(raw),
        negatives=len(raw) - n_candidates,
        held_out_validation=held_out,
        duplicates=dups,
        filtered=len(unique) - len(kept),
        train=len(train),
        validation=len(val),
        train_problems=len({r.group() for r in train}),
        validation_problems=len({r.group() for r in val}),
        data_hash=data_hash(train, val),
    )
    return train, val, report


# ---- failing programs: the rejected side of preference pairs -------------------------------------------


def rejected_programs(
    files: list[Path], kept: list[Trajectory], *, max_chars: int, holdout_validation: bool
) -> list[Trajectory]:
    """The failing programs (``data.negatives``) of the problems in ``kept``, deduplicated; never a training
    target. Every line of such a file must be marked as a negative: a verified program there is a mistake in
    the config, not something to guess about."""
    from bdc_assistant.evaluation.splits import is_validation_id

    problems = {r.group() for r in kept}
    out: list[Trajectory] = []
    for f in files:
        for n, rec in enumerate(read_jsonl(f), 1):
            if not is_negative(rec):
                raise DatasetError(
                    f'{f}: line {n} is not marked as failing ("verified": false or "negative": true); '
                    "data.negatives takes failing programs only."
                )
            if holdout_validation and is_validation_id(rec.problem_id):
                continue
            if rec.group() in problems and usable(rec, max_chars=max_chars, min_public_pass_rate=0.0):
                out.append(rec)
    return dedupe(out)[0]


# ---- the stage -------------------------------------------------------------------------------------------


def configured_inputs(d: DataSection) -> tuple[list[Path], int]:
    """The data section's input files, plus the app's trajectory exports when ``app_trajectories`` is on, and
    how many trajectories the app holds (0 when off)."""
    from bdc_assistant import bundles

    inputs: list[str | Path] = list(d.inputs)
    app_seen = 0
    if d.app_trajectories:
        app_seen = bundles.count_trajectories()
        tdir = bundles.trajectories_dir()
        if tdir.is_dir():
            inputs.append(tdir)
    return expand_inputs(inputs), app_seen


def build_configured(
    d: DataSection, files: list[Path], seed: int, *, val_fraction: float | None = None
) -> tuple[list[Trajectory], list[Trajectory], DataReport]:
    """:func:`build` with the data section's settings (``val_fraction`` overrides the section's)."""
    return build(
        files,
        synthetic_n=d.synthetic,
        bootstrap_sets=list(d.bootstrap),
        bootstrap_dir=d.bootstrap_dir,
        bootstrap_limit=d.bootstrap_limit,
        val_fraction=d.val_fraction if val_fraction is None else val_fraction,
        max_chars=d.max_chars,
        min_public_pass_rate=d.min_public_pass_rate,
        seed=seed,
        holdout_validation=d.holdout_validation,
    )


def stage_data(ctx: Context) -> dict[str, Any]:
    d = ctx.cfg.data
    files, app_seen = configured_inputs(d)
    train, val, report = build_configured(d, files, ctx.cfg.run.seed)
    write_jsonl(ctx.dir("data") / "train.jsonl", train)
    write_jsonl(ctx.dir("data") / "val.jsonl", val)
    rejected: list[Trajectory] = []
    negative_files = expand_inputs(d.negatives)
    if d.negatives:
        rejected = rejected_programs(
            negative_files,
            train + val,
            max_chars=d.max_chars,
            holdout_validation=d.holdout_validation,
        )
        write_jsonl(ctx.dir("data") / "negatives.jsonl", rejected)
    sources = count_by(source_kind(r.source) for r in train + val)
    # Who wrote the programs: two samplers share a source kind (the 0.5B and the 1.5B at the same temperature).
    policies = count_by(r.policy or "unknown" for r in train + val)
    note = None
    if d.bootstrap:
        note = (
            "bootstrapped from reference solutions of the offline problem sets "
            f"({', '.join(d.bootstrap)}); thoughts are rule-written summaries of the reference code, not LLM search"
        )
    return {
        **asdict(report),
        "files": [str(f) for f in files],
        "sources": sources,
        "policies": policies,
        "bootstrap_note": note,
        "app_trajectories_seen": app_seen,
        **(
            {
                "negative_files": [str(f) for f in negative_files],
                "rejected_programs": len(rejected),
                "rejected_problems": {
                    split: len({r.group() for r in recs} & {r.group() for r in rejected})
                    for split, recs in (("train", train), ("val", val))
                },
            }
            if d.negatives
            else {}
        ),
    }
