"""``python -m trainer STAGE --config FILE.toml [--set key=value ...] --out DIR``.

Stages: data, cluster, sft, hypernet, baselines, evaluate, export, or ``all`` (in that order). A stage
whose inputs and config did not change since it last finished is skipped; ``--force`` reruns the named
stage (with ``all``: every stage). Exit codes: 0 done, the BdcError's code on a one-sentence error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bdc_assistant.errors import BdcError

from .config import load_config
from .distributed import ABORT_MARKER, Launch, launch_from_env
from .runner import Context, run_stage
from .sft import sft_worker
from .stages import STAGE_FNS, STAGES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=[*STAGES, "all"])
    p.add_argument(
        "--config", type=Path, default=None, help="trainer TOML (trainer/configs/{smoke,cpu,gpu}.toml)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (TOML syntax), repeatable",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output directory (reused across stages and reruns)"
    )
    p.add_argument("--force", action="store_true", help="rerun even if the stage already finished")
    return p


def _input_fingerprint(inputs: list[str], include_app: bool) -> str:
    """Size and mtime of every input file, so new trajectories rerun the data stage."""
    from bdc_assistant import bundles

    from .data import expand_inputs

    paths = list(inputs)
    if include_app and bundles.trajectories_dir().is_dir():
        paths.append(str(bundles.trajectories_dir()))
    try:
        files = expand_inputs(paths)
    except BdcError:
        return "missing-input"
    items = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    started = time.time()
    out = args.out.expanduser().resolve()
    launch = Launch()
    try:
        launch = launch_from_env()
        cfg = load_config(args.config, args.overrides)
        out.mkdir(parents=True, exist_ok=True)
        ctx = Context(
            cfg,
            out,
            {"data": _input_fingerprint([*cfg.data.inputs, *cfg.data.negatives], cfg.data.app_trajectories)},
        )
        stages = STAGES if args.stage == "all" else (args.stage,)
        forced = args.force
        if not launch.is_main:  # accelerate launch / torchrun: the other ranks only train adapters
            if "sft" in stages:
                sft_worker(ctx, started, fresh=forced)
            print(f"trainer: rank {launch.rank} of {launch.world} finished its share.", file=sys.stderr)
            return 0
        (out / "config.resolved.toml").write_text(cfg.to_toml())
        for stage in stages:
            record = run_stage(ctx, stage, STAGE_FNS[stage], force=forced)
            if args.stage != "all":
                print(json.dumps({"stage": stage, "metrics": record["metrics"]}, default=str)[:4000])
        if args.stage == "all":
            final = json.loads((out / "export" / "stage.json").read_text())
            print(
                json.dumps(
                    {
                        "bundle": final["metrics"].get("bundle"),
                        "registered_id": final["metrics"].get("registered_id"),
                    }
                )
            )
        return 0
    except BdcError as exc:
        _tell_other_ranks(launch, out, str(exc))
        print(f"trainer: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _tell_other_ranks(launch, out, "interrupted")
        print("trainer: interrupted.", file=sys.stderr)
        return 130
    except BaseException as exc:
        _tell_other_ranks(launch, out, f"{type(exc).__name__}: {exc}")
        raise


def _tell_other_ranks(launch: Launch, out: Path, message: str) -> None:
    """Rank 0 failing leaves a marker, so waiting ranks stop with its reason instead of waiting on."""
    if launch.distributed and launch.is_main:
        with contextlib.suppress(OSError):
            out.mkdir(parents=True, exist_ok=True)
            (out / ABORT_MARKER).write_text(message + "\n")


if __name__ == "__main__":
    sys.exit(main())
