"""`bdc retrain [--min-new N]`: retrain experts + hypernetwork from new trajectories, switch only if not worse.

Safe from cron or a systemd timer: it does nothing until at least N trajectories arrived since the active
bundle was trained; a lock file stops two runs at once (the second exits with code 75); the trainer runs
as a subprocess (``python -m trainer all``; the app never imports ``trainer/``) and registers its bundle
without activating it; only a finished run whose evaluation is not worse than the active bundle's
becomes active. A failed run leaves the active bundle untouched. Only verified trajectories train: the
deep-mode export writes programs that pass every public test on unpruned nodes, and the trainer runs with
``data.min_public_pass_rate=1.0``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-new",
        type=int,
        default=None,
        help="trajectories needed since the active bundle (default: [retrain] min_new in the settings)",
    )
    p.add_argument(
        "--config", default=None, help="trainer config (default: [retrain] config, else cpu.toml / gpu.toml)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra trainer config override, repeatable",
    )
    p.add_argument("--out", default=None, help="trainer output dir (default: state_dir/retrain/<time>)")
    p.add_argument("--force", action="store_true", help="retrain even if too few new trajectories arrived")
    p.add_argument("--dry-run", action="store_true", help="only say whether a retrain would run")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")


def default_config(configured: str) -> Path:
    if configured:
        return Path(configured).expanduser()
    from ..backends.gpu import cuda_available

    return REPO_ROOT / "trainer" / "configs" / ("gpu.toml" if cuda_available() else "cpu.toml")


def _score(summary: Any) -> tuple[float, float] | None:
    if not isinstance(summary, dict) or "ac" not in summary or "pr" not in summary:
        return None
    return float(summary["ac"]), float(summary["pr"])


def should_switch(new_manifest: dict[str, Any], active_manifest: dict[str, Any] | None) -> tuple[bool, str]:
    """Switch iff the new bundle is not worse: first than the plain base on its own validation run (the
    paired comparison of the same problems, with its CI in the message), then than the active bundle, (AC, PR)
    in that order, on the same datasets and backend. Without a comparable active score, a scored new bundle
    that is not worse than the base wins; an unscored one never replaces a scored one."""
    from .. import bundles

    new_m = new_manifest.get("metrics", {})
    new = _score(new_m.get("summary"))
    if new is None:
        return False, "the new bundle has no evaluation score"
    versus = bundles.vs_base(new_manifest)
    if versus is not None and versus["ac_diff"] < 0:
        return False, f"it is worse than the plain base: {bundles.versus_base_text(versus)}"
    switch, why = _versus_active(new, new_m, active_manifest)
    if versus is not None:
        why = f"{why}; {bundles.versus_base_text(versus)}"
    return switch, why


def _versus_active(
    new: tuple[float, float], new_m: dict[str, Any], active_manifest: dict[str, Any] | None
) -> tuple[bool, str]:
    if not active_manifest:
        return True, "no bundle was active"
    old_m = active_manifest.get("metrics", {})
    old = _score(old_m.get("summary"))
    if old is None:
        return True, "the active bundle has no evaluation score"
    same = old_m.get("evaluation_datasets") == new_m.get("evaluation_datasets") and old_m.get(
        "evaluation_backend"
    ) == new_m.get("evaluation_backend")
    if not same:
        return False, (
            "the two bundles were evaluated on different datasets/backends; compare them yourself "
            "and switch with `bdc bundles use`"
        )
    if new >= old:
        return True, f"AC {new[0]:.2f} / PR {new[1]:.2f} is not worse than AC {old[0]:.2f} / PR {old[1]:.2f}"
    return (
        False,
        f"AC {new[0]:.2f} / PR {new[1]:.2f} is worse than the active AC {old[0]:.2f} / PR {old[1]:.2f}",
    )


def trainer_command(config: Path, out: Path, overrides: list[str]) -> list[str]:
    """``python -m trainer all`` on the app's trajectories, registering without activating.

    ``data.min_public_pass_rate=1.0`` is pinned (whatever the config file says) so only programs that pass
    every public test become training pairs; an explicit ``--set`` from the user comes later and wins."""
    cmd = [
        sys.executable,
        "-m",
        "trainer",
        "all",
        "--config",
        str(config),
        "--out",
        str(out),
        "--set",
        "data.app_trajectories=true",
        "--set",
        "data.min_public_pass_rate=1.0",
        "--set",
        "export.register_bundle=true",
        "--set",
        "export.activate=false",
    ]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def run(args: argparse.Namespace) -> int:
    from .. import bundles
    from ..config import load_settings
    from ..errors import BdcError, Busy
    from ..paths import app_paths, ensure

    settings = load_settings()
    min_new = args.min_new if args.min_new is not None else settings.retrain.min_new
    new = bundles.new_trajectories_since_active()
    report: dict[str, Any] = {"new_trajectories": new, "min_new": min_new, "ran": False, "switched": False}

    def finish(msg: str, code: int = 0) -> int:
        report["message"] = msg
        if args.json:
            print(json.dumps(report, default=str))
        else:
            print(msg, file=sys.stderr if code else sys.stdout)
        return code

    if new < min_new and not args.force:
        return finish(f"{new} new trajectories since the active bundle (need {min_new}); nothing to do.")
    if args.dry_run:
        return finish(f"{new} new trajectories (need {min_new}): a retrain would run.")

    state = ensure(app_paths().state_dir)
    lock_path = state / "retrain.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Busy(f"Another `bdc retrain` is running (lock {lock_path}); nothing done.") from exc
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        report["exported_runs"] = len(bundles.sync_store_trajectories())  # the trainer reads trajectories/
        config = default_config(args.config or settings.retrain.config)
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
        out = Path(args.out).expanduser() if args.out else state / "retrain" / stamp
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "retrain.log"
        cmd = trainer_command(config, out, list(args.overrides))
        report.update(ran=True, out=str(out), log=str(log_path), command=cmd)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        before = bundles.active_entry()
        with log_path.open("w") as log:
            proc = subprocess.run(
                cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=False
            )
        report["trainer_exit"] = proc.returncode
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            return finish(
                f"Retraining failed (trainer exit {proc.returncode}: {tail[0][:200]}); the active bundle "
                f"is unchanged; log: {log_path}.",
                1,
            )
        try:
            export = json.loads((out / "export" / "stage.json").read_text())["metrics"]
            new_id = export["registered_id"]
        except (OSError, ValueError, KeyError) as exc:
            return finish(
                f"Retraining finished but registered no bundle ({exc}); the active bundle is unchanged.", 1
            )
        report["new_bundle"] = new_id
        new_manifest = json.loads((Path(export["registered_path"]) / "manifest.json").read_text())
        switch, why = should_switch(new_manifest, before.manifest if before else None)
        report["reason"] = why
        if switch:
            try:
                bundles.use(new_id)
            except BdcError as exc:
                return finish(f"Retrained bundle {new_id} could not be activated: {exc}", 1)
            report["switched"] = True
            return finish(f"Retrained: {new_id} is now active ({why}).")
        return finish(
            f"Retrained: {new_id} is registered but not active ({why}); "
            f"`bdc bundles use {new_id}` switches by hand."
        )
