"""Weights & Biases logging that can never stop or hang training.

W&B's own variables (WANDB_PROJECT, WANDB_NAME, WANDB_RUN_GROUP, WANDB_TAGS, WANDB_RUN_ID,
WANDB_MODE, WANDB_ENTITY, WANDB_JOB_TYPE: the runner sets them) win; the config's `wandb` block
(project, entity, group, tags, id, job_type, mode) fills what they leave unset. Both are
resolved here and passed to wandb.init, so the precedence does not depend on when W&B reads its
environment. Every call is guarded: a failure prints one warning and the tracker turns itself
off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from trainer.key_reads import plain

# Config key -> W&B environment variable that takes precedence over it.
ENV_FIRST = {
    "project": "WANDB_PROJECT",
    "name": "WANDB_NAME",
    "group": "WANDB_RUN_GROUP",
    "tags": "WANDB_TAGS",
    "id": "WANDB_RUN_ID",
    "mode": "WANDB_MODE",
    "entity": "WANDB_ENTITY",
    "job_type": "WANDB_JOB_TYPE",
}


def _warn(what: str, exc: BaseException) -> None:
    print(
        f"warning: W&B {what} failed, training goes on without it ({type(exc).__name__}: "
        f"{' '.join(str(exc).split())[:200]})",
        file=sys.stderr,
    )


def _tags(value: Any) -> list[str] | None:
    """Tags as a list; a string is comma-separated, as in WANDB_TAGS."""
    if isinstance(value, str):
        value = value.split(",")
    return [str(t).strip() for t in value if str(t).strip()] if value else None


def setting(key: str, block: dict[str, Any], default: Any = None) -> Any:
    """A `wandb` block key, unless its W&B environment variable is set."""
    value = os.environ.get(ENV_FIRST[key]) or block.get(key) or default
    return _tags(value) if key == "tags" else value


class Tracker:
    """A W&B run, or nothing when W&B is disabled or fails."""

    def __init__(
        self, cfg: dict[str, Any], run_name: str, run_dir: Path, resume_id: str | None = None
    ) -> None:
        """`resume_id`: the W&B run of the checkpoint a run resumes, used when neither
        WANDB_RUN_ID nor wandb.id names one (resume="allow" then continues that run)."""
        block = cfg.get("wandb") or {}  # read key by key (result.json unused_keys)
        self.mode = setting("mode", block, "disabled")
        self.project = setting("project", block)
        self.name = setting("name", {}, run_name)
        self.run_id: str | None = setting("id", block, resume_id)
        self.tags: list[str] = setting("tags", block) or []
        self.dir: str | None = None
        self.run: Any = None
        log = block.get("log", True)  # the original's switch; read whatever the mode
        self.enabled = self.mode != "disabled" and log is not False
        if not self.enabled:
            return
        try:
            import wandb

            self._start(wandb, self._init_arguments(wandb, cfg, block, run_dir))
        except Exception as exc:
            _warn("init", exc)
            self.run, self.enabled = None, False

    def _init_arguments(
        self, wandb: Any, cfg: dict[str, Any], block: dict[str, Any], run_dir: Path
    ) -> dict[str, Any]:
        """wandb.init's arguments, resolved here (environment first, then the block) so the
        precedence does not depend on when W&B reads its environment."""
        wanted = {
            "project": self.project,
            "name": self.name,
            "group": setting("group", block),
            "tags": setting("tags", block),
            "id": self.run_id,
            "entity": setting("entity", block),
            "job_type": setting("job_type", block),
            "mode": self.mode,
        }
        kwargs = {k: v for k, v in wanted.items() if v}
        timeout = os.environ.get("WANDB_INIT_TIMEOUT") or block.get("init_timeout", 60)
        return dict(
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            config=plain(cfg),  # a plain copy: W&B reading it is not the run reading it
            resume="allow" if self.run_id else None,
            settings=wandb.Settings(init_timeout=float(timeout)),
            **kwargs,
        )

    def _start(self, wandb: Any, init: dict[str, Any]) -> None:
        """Start the run; an online run whose server cannot be reached is logged offline
        instead, with one warning that says how to sync it later."""
        unreachable = None
        try:
            self.run = wandb.init(**init)
        except Exception as exc:  # online but the server cannot be reached: log offline
            if self.mode != "online":
                raise
            unreachable, self.mode = exc, "offline"
            wandb.teardown()  # the failed attempt holds the run id
            self.run = wandb.init(**{**init, "mode": "offline"})
        self.project = self.run.project or self.project
        self.name = self.run.name or self.name
        self.run_id = self.run.id
        self.dir = str(Path(self.run.dir).parent) if self.run.dir else init["dir"]
        if unreachable is not None:
            print(
                f"warning: W&B unreachable ({type(unreachable).__name__}); this run is logged "
                f"offline in {self.dir}; sync it later with: wandb sync {self.dir}",
                file=sys.stderr,
            )

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self.run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            _warn(what, exc)
            self.run = None

    def log_epoch(self, record: dict[str, Any], step: int) -> None:
        """Per-epoch metrics."""
        if self.run is not None:
            self._guard("log", self.run.log, record, step=step)

    def log_final(
        self,
        summary: dict[str, Any],
        y_true: list[int],
        y_pred: list[int],
        classes: list[str],
        figures: dict[str, Path],
    ) -> None:
        """Summary metrics, the confusion matrix and the figures."""
        if self.run is None:
            return

        def _send() -> None:
            import wandb

            for key, value in summary.items():
                if isinstance(value, int | float | str | bool):
                    self.run.summary[key] = value
            payload: dict[str, Any] = {
                "confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=y_true, preds=y_pred, class_names=classes
                )
            }
            payload.update({k: wandb.Image(str(p)) for k, p in figures.items() if p.exists()})
            self.run.log(payload)

        self._guard("summary", _send)

    def add_tag(self, tag: str) -> None:
        """One more tag on the W&B run (e.g. `pruned` after a stop request)."""
        if tag not in self.tags:
            self.tags.append(tag)
        if self.run is not None:
            self._guard("tag", setattr, self.run, "tags", (*(self.run.tags or ()), tag))

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self._guard("finish", self.run.finish, exit_code=exit_code)
            self.run = None

    def describe(self) -> dict[str, Any]:
        """The `wandb` block of result.json."""
        return {
            "project": self.project,
            "name": self.name,
            "run_id": self.run_id,
            "mode": self.mode if self.enabled else "disabled",
            "dir": self.dir,
            "tags": list(self.tags),
        }
