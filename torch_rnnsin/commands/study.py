"""``study``: its flags (built from ``StudyConfig``), then the grid trained and reported.

``--out`` is checked before any training: a new folder, an empty one, or a study
folder of ours (then its outputs are written anew); a file, a place where no
folder can be made, or a folder of someone else's files is refused in one line.
Only argparse and the settings are imported until the arguments are good.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..common.args import number
from ..common.atomic import PRIVATE, write_json
from ..common.errors import Refused
from ..common.runfolder import MARKER, check_out_path, folder_arg, is_run_folder, open_run_folder
from ..lesson.study.grid import StudyConfig, validate

DEFAULT_OUT = Path("runs") / "study"
KIND = "study"


def _list_of(kind: type):
    def parse(text: str) -> tuple:
        try:
            items = tuple(kind(t) for t in text.split(",") if t.strip())
        except ValueError:
            what = "integers" if kind is int else "numbers" if kind is float else "names"
            raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated {what}") from None
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r}: an empty list")
        return items

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per ``StudyConfig`` field (not given: absent, so ``--quick`` can set it),
    plus ``--quick`` and ``--out``."""
    p.add_argument(
        "--out", type=folder_arg, default=DEFAULT_OUT, help=f"folder (default: {DEFAULT_OUT})"
    )
    p.add_argument("--quick", action="store_true", help="a reduced grid in well under a minute")
    full = StudyConfig()
    for f in dataclasses.fields(StudyConfig):
        default = getattr(full, f.name)
        if isinstance(default, tuple):
            item = type(default[0])
            kind, shown = (
                _list_of(item),
                ",".join(f"{v:g}" if item is float else str(v) for v in default),
            )
            metavar = "A,B,…"
        else:
            kind, shown, metavar = (
                number(type(default)),
                str(default),
                "N" if type(default) is int else "X",
            )
        p.add_argument(
            f.metadata["flag"],
            dest=f.name,
            type=kind,
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=f"{f.metadata['help']} (default: {shown})",
        )


def config_from(args: argparse.Namespace) -> StudyConfig:
    base = StudyConfig.quick() if args.quick else StudyConfig()
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(StudyConfig)
        if hasattr(args, f.name)
    }
    cfg = dataclasses.replace(base, **given)
    validate(cfg)
    return cfg


def study_folder_kind(out: Path) -> str | None:
    """The kind written in a run folder of ours (``study``, ``train``…), or None."""
    if not is_run_folder(out):
        return None
    try:
        kind = json.loads((out / PRIVATE / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return kind if isinstance(kind, str) else "unknown"


def check_out(out: Path) -> bool:
    """Refuse an ``--out`` the study may not write (one line). Returns True when it is a
    study folder of ours (its outputs are then written anew)."""
    check_out_path(out)
    if not out.exists():
        return False
    kind = study_folder_kind(out)
    if kind == KIND:
        return True
    entries = sorted(os.listdir(out))
    if kind is not None:
        raise Refused(f"--out {out}: holds a {kind} run, not a study; choose another folder")
    if entries:
        shown = ", ".join(entries[:4]) + (
            f", … ({len(entries)} entries)" if len(entries) > 4 else ""
        )
        raise Refused(
            f"--out {out}: holds files that are not a study's ({shown}); "
            "choose a new or empty folder"
        )
    return False


def run(args: argparse.Namespace) -> int:
    """Check the settings and ``--out``, train the grid, write the report."""
    cfg = config_from(args)
    ours = check_out(args.out)
    from ..lesson.study.groups import run_grid
    from ..lesson.study.report import write_report

    with open_run_folder(args.out, resume=ours, kind=KIND) as out:
        rows, seconds = run_grid(cfg, progress=sys.stderr.isatty())
        chosen = write_report(out, cfg, rows, seconds)
        write_json(
            out / "study.json",
            {
                "settings": cfg.to_dict(),
                "train_seconds": round(seconds, 1),
                "chosen_lr": {f"hidden {h}, {m}": lr for (h, m), lr in chosen.items()},
            },
        )
    n = sum(r["predict_mode"] == "stateless" for r in rows)
    print(f"{n} models, {seconds:.1f} s of training; report: {out / 'report.md'}")
    return 0
