"""Crash-safe Trainer checkpoints: written whole or not at all, and a resume that takes the newest complete one.

A checkpoint is first written into a hidden staging folder beside the run's checkpoints (`.staging-checkpoint-N/`):
the Trainer's files (weights, optimiser, scheduler, RNG, trainer state), then whatever the trainer adds
(`_save_extra_state`, e.g. R-AIRL's discriminator state), every file flushed to disk, then a completion marker
(`rairl_complete.json`, listing the files and their sizes). Only then is the folder renamed into place as
`checkpoint-N/` (one atomic rename), and only after that are old checkpoints rotated (`save_total_limit`). A kill
at any moment leaves either no `checkpoint-N/` or a complete one; a staging folder left by a kill is removed by
the next save or resume.

Starting a run over one in the same folder is refused unless `--resume_from_checkpoint` says what to do
(`refuse_existing_run`); what killed saves left (staging folders) is removed at start. Resuming with `last` /
`auto` takes the newest checkpoint whose marker is there and whose files match it, and logs
each newer folder it skipped and why. A run whose chosen checkpoint already holds every step asked for does not
train again (`already_finished`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from rairl.io import DataError, read_json
from rairl.trainers.common import FINAL_STAGING, SUMMARY_FILE

logger = logging.getLogger(__name__)

COMPLETE_FILE = "rairl_complete.json"
STAGING_PREFIX = ".staging-"
_RESUME_LAST = ("auto", "last")
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def _fsync_tree(folder: Path) -> dict[str, int]:
    """Flush every file under `folder` (and the folders themselves) to disk; returns {relative path: size}."""
    sizes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            sizes[str(path.relative_to(folder))] = path.stat().st_size
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return sizes


def mark_complete(folder: Path) -> None:
    """Flush `folder` and write its completion marker (itself flushed): the last file of a checkpoint."""
    sizes = _fsync_tree(folder)
    marker = folder / COMPLETE_FILE
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"files": sizes}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` cannot be resumed from (None when it is a complete checkpoint)."""
    folder = Path(folder)
    marker = folder / COMPLETE_FILE
    if not marker.is_file():
        return f"no {COMPLETE_FILE} (its save was interrupted, or an older rairl wrote it)"
    try:
        files = read_json(marker)
    except DataError as err:
        return f"{COMPLETE_FILE} is not a file list ({err})"
    files = files.get("files") if isinstance(files, dict) else None
    if not isinstance(files, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in files.values()):
        return f"{COMPLETE_FILE} is not a file list"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    if "trainer_state.json" not in files:
        return "no trainer_state.json"
    return None


def checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """`checkpoint-N` folders of `output_dir`, newest (largest N) first."""
    found = []
    for path in Path(output_dir).iterdir() if Path(output_dir).is_dir() else []:
        if (m := _CHECKPOINT_RE.match(path.name)) and path.is_dir():
            found.append((int(m.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def remove_staging(output_dir: str | os.PathLike) -> None:
    """Delete what a killed save left behind: checkpoint staging folders, and the final save's staging folder and
    its temporaries (`rairl.io.atomic_dir` of `FINAL_STAGING`)."""
    patterns = (f"{STAGING_PREFIX}*", FINAL_STAGING, f".{FINAL_STAGING}.*")
    for path in (
        (p for pattern in patterns for p in Path(output_dir).glob(pattern)) if Path(output_dir).is_dir() else []
    ):
        logger.info("removing %s, left by a save that was cut short", path)
        shutil.rmtree(path, ignore_errors=True)


def refuse_existing_run(output_dir: str | os.PathLike) -> None:
    """An `output_dir` that holds a run (a checkpoint, or a finished run's `SUMMARY_FILE`) is not trained over from
    step 0 unless asked: FileExistsError saying how to resume it or start over."""
    held = checkpoint_folders(output_dir)
    if Path(output_dir, SUMMARY_FILE).is_file():
        what = f"a finished run ({SUMMARY_FILE})"
    elif held:
        what = f"a run's checkpoints ({', '.join(p.name for p in held)})"
    else:
        return
    raise FileExistsError(
        f"--output_dir {output_dir} already holds {what}: pass --resume_from_checkpoint last to continue it (or "
        "auto: continue when there is a checkpoint, else start fresh), or give another --output_dir (or delete this "
        "one) to start over"
    )


def newest_complete(output_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint of `output_dir` (None if there is none); every newer one is logged as
    skipped, with the reason."""
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("resume: skipping %s: %s", folder, problem)
    return None


def resolve_resume(resume: str | None, output_dir: str | os.PathLike) -> str | None:
    """The checkpoint folder to resume from, or None to start fresh (see `RunArgs.resume_from_checkpoint`); what
    killed saves left is removed first, and without `resume` an `output_dir` holding a run is refused
    (`refuse_existing_run`)."""
    remove_staging(output_dir)
    if not resume:
        refuse_existing_run(output_dir)
        return None
    if resume in _RESUME_LAST:
        found = newest_complete(output_dir)
        if found is None and resume == "last":
            raise FileNotFoundError(
                f"--resume_from_checkpoint last: no complete checkpoint-STEP folder in {output_dir}; "
                "use --resume_from_checkpoint auto to start fresh when there is none"
            )
        if found is None:
            logger.info("--resume_from_checkpoint auto: no complete checkpoint in %s, starting fresh", output_dir)
        else:
            logger.info("resuming from %s", found)
        return found
    if not Path(resume, "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {resume}: not a Trainer checkpoint (no trainer_state.json there); "
            f"pass a checkpoint-STEP folder, 'last' or 'auto'"
        )
    if problem := checkpoint_problem(resume):
        logger.warning("--resume_from_checkpoint %s: %s; trying it as given", resume, problem)
    return resume


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    """The global step a checkpoint was written at (its trainer_state.json; a DataError naming it when unreadable)."""
    path = Path(checkpoint, "trainer_state.json")
    state = read_json(path)
    step = state.get("global_step") if isinstance(state, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise DataError(path, None, "global_step", f"expected a step number >= 0, got {step!r}")
    return step


class AtomicCheckpoints:
    """Mixin for a `transformers.Trainer` subclass (put it first in the bases): checkpoints written whole, then
    renamed into place, then rotated (module docstring). Subclasses add files in `_save_extra_state(folder)`."""

    _staging_dir: Path | None = None

    def _get_output_dir(self, trial):
        if self._staging_dir is not None:  # the Trainer writes (and rotates) inside the staging folder
            return str(self._staging_dir)
        return super()._get_output_dir(trial=trial)

    def _save_extra_state(self, folder: Path) -> None:
        """Files beyond the Trainer's, written into the staging checkpoint before it is marked complete."""

    def _load_extra_state(self, folder: Path) -> None:
        """Read back what `_save_extra_state` wrote."""

    def train_to_end(self, resume_from: str | None) -> bool:
        """`train(resume_from_checkpoint=...)`, unless that checkpoint already holds every step asked for: then
        its weights (and extra state) are loaded, nothing is trained, and this says so. Returns whether it trained."""
        if resume_from is not None and (step := checkpoint_step(resume_from)) >= self.args.max_steps:
            logger.info(
                "%s holds step %d of %d: the run is finished, nothing left to train",
                resume_from,
                step,
                self.args.max_steps,
            )
            self._load_from_checkpoint(resume_from)
            self._load_extra_state(Path(resume_from))
            self.state.global_step = step
            return False
        self.train(resume_from_checkpoint=resume_from)
        return True

    def _save_checkpoint(self, model, trial):
        run_dir = Path(self._get_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f"{STAGING_PREFIX}{name}"
        main = self.args.should_save
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._staging_dir = staging
        try:
            super()._save_checkpoint(model, trial)
            if main:
                self._save_extra_state(staging / name)
                mark_complete(staging / name)
        finally:
            self._staging_dir = None
        self.accelerator.wait_for_everyone()  # every process has written its RNG state into the staging folder
        if not main:
            return
        final = run_dir / name
        old = run_dir / f"{STAGING_PREFIX}old-{name}"
        if final.exists():  # the same step saved again (a resumed run): the new copy replaces it whole
            os.replace(final, old)
        os.replace(staging / name, final)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        rotate_checkpoints(
            output_dir=str(run_dir),
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,
            use_mtime=False,
        )
