"""The study's report: learning rates chosen by validation loss, the answer and
every number in it computed from the rows (the same rows written to study.csv)
and the run's settings, the summary tables and the plots."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...common.atomic import atomic_path, write_text
from ..convert import keras_to_torch
from ..predict import predict_stateful, predict_stateless
from .grid import PREDICT_MODES, TRAIN_MODES, StudyConfig
from .groups import CONSTANT_LEVEL, study_series

matplotlib.use("Agg")  # files only, no window
MIN_CONVERGED = 0.95  # a learning rate qualifies when this share of its models converged


def models(df):
    """One row per model (its stateless-prediction row carries the model's columns)."""
    return df[df.predict_mode == "stateless"]


def choose_lrs(df, sweep: tuple[float, ...]):
    """Per (hidden, training mode): each swept lr's mean log10 validation loss and share
    of converged models; the chosen lr is the lowest loss among the lrs whose models
    converged (>= MIN_CONVERGED), or among all when none did. Test losses are never used."""
    m = models(df)
    m = m[m.lr.isin(sweep)].assign(log_val=np.log10(m.val_loss.clip(lower=1e-30)))
    table = (
        m.groupby(["hidden", "train_mode", "lr"])
        .agg(log_val=("log_val", "mean"), converged=("converged", "mean"), n=("seed", "size"))
        .reset_index()
    )
    table["log_val"] = table["log_val"].fillna(np.inf)
    chosen = {}
    for (h, mode), t in table.groupby(["hidden", "train_mode"]):
        ok = t[t.converged >= MIN_CONVERGED]
        pick = (ok if len(ok) else t).sort_values(["log_val", "lr"]).iloc[0]
        chosen[(int(h), mode)] = float(pick.lr)
    table["chosen"] = [
        chosen[(int(h), mode)] == lr
        for h, mode, lr in zip(table.hidden, table.train_mode, table.lr, strict=True)
    ]
    return chosen, pd.DataFrame(table)


def mark_selected(df, chosen: dict):
    """The rows of the models the answer uses: each (hidden, mode) at its chosen lr."""
    sel = [
        chosen.get((int(h), mode)) == lr
        for h, mode, lr in zip(df.hidden, df.train_mode, df.lr, strict=True)
    ]
    return df.assign(selected=sel)


def mode_counts(df) -> dict:
    """Per (hidden, training mode), over the models not at the constant level:
    (models where stateful prediction beats stateless, models, median MSE ratio)."""
    d = df[~df.constant_level.astype(bool)]
    piv = d.pivot_table(
        index=["hidden", "train_mode", "noise", "seq_len", "seed", "lr"],
        columns="predict_mode",
        values="mse",
    ).dropna()
    out = {}
    for (h, mode), p in piv.groupby(level=["hidden", "train_mode"]):
        ratio = p["stateful"] / p["stateless"]
        out[(int(h), mode)] = (
            int((p["stateful"] < p["stateless"]).sum()),
            len(p),
            float(np.median(ratio)),
        )
    return out


def verdict(df) -> str:
    """The answer in one paragraph, per hidden size, from the (selected) rows."""
    counts = mode_counts(df)
    parts, kinds = [], []
    for h in sorted({h for h, _ in counts}):
        per = {mode: c for (hh, mode), c in counts.items() if hh == h and c[1] > 0}
        if not per:
            continue
        wins = {mode: c for mode, c in per.items() if c[0] > c[1] / 2}
        if all(b == 0 for b, _, _ in per.values()):
            kinds.append("yes")
            n = sum(c[1] for c in per.values())
            parts.append(
                f"hidden {h}: yes, stateful prediction is worse in every one of its {n} models"
            )
        elif wins:
            kinds.append("no")
            each = " and ".join(
                f"`{mode}` in {b} of {n} models (median MSE ratio stateful/stateless {r:.2f})"
                for mode, (b, n, r) in sorted(wins.items(), key=lambda kv: kv[1][2])
            )
            parts.append(
                f"hidden {h}: no, stateful prediction beats stateless prediction of the same "
                f"weights trained {each}"
            )
        else:
            kinds.append("mostly")
            b = sum(c[0] for c in per.values())
            n = sum(c[1] for c in per.values())
            parts.append(f"hidden {h}: mostly, stateful prediction wins in {b} of {n} models only")
    if not kinds:
        return "**No answer**: no model left once the constant-level ones are set aside."
    if all(k == "yes" for k in kinds):
        head = "**Yes**, in every model of this grid."
    elif "no" in kinds:
        head = "**No.** It depends on how the weights were trained:"
    else:
        head = "**Mostly, not always.**"
    text = head + " " + "; ".join(parts) + "."
    mean = df.groupby(["hidden", "noise", "train_mode", "predict_mode", "seq_len"])["mse"].mean()
    best = {i[2:4] for i in mean.groupby(level=["hidden", "noise"]).idxmin()}  # (train, predict)
    if best == {("stateless", "stateless")}:
        text += (
            " Yet the lowest test MSE at every noise level comes from stateless training with "
            "stateless prediction, at every hidden size of the grid."
        )
    return text


def _e(x: float) -> str:
    return f"{x:.2e}"


def answer_lines(df, cfg: StudyConfig, chosen: dict) -> list[str]:
    """The lines under the verdict: per mode counts, the lesson's cell, the best per noise,
    convergence and the constant-level models. ``df``: all rows, with ``selected``."""
    sel = df[df.selected]
    lines = []
    for (h, mode), (b, n, r) in sorted(mode_counts(sel).items()):
        lines.append(
            f"- hidden {h}, trained **{mode}** (lr {chosen[(h, mode)]:g}): stateful prediction "
            f"beats stateless in {b} of {n} models; median MSE ratio stateful/stateless {r:.3g}"
        )
    lesson = df[(df.train_mode == "stateless") & (df.seq_len == 2) & (df.noise == 0.0)]
    for h in sorted(lesson.hidden.unique()):
        cell = lesson[lesson.hidden == h]
        lrs = sorted({chosen.get((int(h), "stateless")), cfg.lesson_lr} & set(cell.lr))
        for lr in lrs:
            c = cell[cell.lr == lr]
            mean = c.groupby("predict_mode")["mse"].mean()
            m = models(c)
            lines.append(
                f"- the lesson's cell (clean wave, seq_len 2, trained stateless), hidden {h}, "
                f"lr {lr:g}: test MSE stateless {_e(mean['stateless'])}, stateful "
                f"{_e(mean['stateful'])} (mean over {len(m)} seeds; {int(m.converged.sum())} "
                f"converged, {int(m.epochs_trained.min())}–{int(m.epochs_trained.max())} epochs)"
            )
    for h, noise in itertools.product(sorted(sel.hidden.unique()), sorted(sel.noise.unique())):
        s = sel[(sel.hidden == h) & (sel.noise == noise)]
        mean = s.groupby(["seq_len", "train_mode", "predict_mode"])["mse"].mean()
        (L, tm, pm), best = mean.idxmin(), mean.min()
        sf = mean.xs("stateful", level="predict_mode")
        (Ls, tms), best_sf = sf.idxmin(), sf.min()
        lines.append(
            f"- hidden {h}, noise {noise:g}: lowest test MSE {_e(best)} from training {tm}, "
            f"predicting {pm}, seq_len {L}; the best stateful prediction {_e(best_sf)} "
            f"(trained {tms}, seq_len {Ls})"
        )
    m = models(sel)
    const = m[m.constant_level.astype(bool)]
    lines.append(
        f"- {int(m.converged.sum())} of {len(m)} models ({100 * m.converged.mean():.1f} %) "
        f"converged (stopped by early stopping before the {cfg.max_epochs}-epoch cap); "
        f"{len(const)} stay at the constant-prediction level and are left out of the counts "
        "above (see below)"
    )
    return lines


def target_phases(cfg: StudyConfig, seq_len: int) -> list[int]:
    """The phases (point index modulo the period) of the stateful-last training targets:
    the point after each chunk of each stream."""
    n_fit, P = cfg.parts()[0], cfg.steps_per_cycle
    S = n_fit // cfg.streams
    K = (S - 1) // seq_len
    return sorted({(i * S + (k + 1) * seq_len) % P for i in range(cfg.streams) for k in range(K)})


def one_value_targets(cfg: StudyConfig, train_mode: str, seq_len: int) -> float | None:
    """For ``stateful-last``: the one value the clean wave takes at every training target's
    phase, when there is one (then a constant is the best fit: the phase noise on the
    targets cannot be predicted); otherwise None."""
    if train_mode != "stateful-last":
        return None
    clean = np.sin(2 * np.pi * np.array(target_phases(cfg, seq_len)) / cfg.steps_per_cycle)
    return float(np.round(clean[0], 12)) if np.ptp(clean) < 1e-9 else None


def constant_lines(df, cfg: StudyConfig) -> list[str]:
    """Which selected models sit at the constant-prediction level, and why where known."""
    m = models(df[df.selected])
    const = m[m.constant_level.astype(bool)]
    if not len(const):
        return ["No model stays at the constant-prediction level."]
    lines, unexplained = [], []
    for (mode, L), g in const.groupby(["train_mode", "seq_len"]):
        value = one_value_targets(cfg, mode, int(L))
        if value is None:
            unexplained.append(g)
            continue
        phases = target_phases(cfg, int(L))
        lines.append(
            f"- {len(g)} trained `{mode}` at seq_len {L} (noise "
            f"{', '.join(f'{n:g}' for n in sorted(g.noise.unique()))}): with one target a "
            f"chunk, the targets are the points after every {L}-th, which on the "
            f"{cfg.steps_per_cycle}-point period fall on phase{'s' if len(phases) > 1 else ''} "
            f"{', '.join(map(str, phases))} only, where the clean wave is {value:g}"
            f"{' (zero crossings)' if value == 0 else ''}. The targets vary "
            f"{g.target_spread.min():.1%}–{g.target_spread.max():.1%} as much as the series, "
            "by phase noise alone, which no model can predict: a constant is their best fit. "
            "The training data, not the optimizer, is the cause."
        )
    if unexplained:
        other = pd.concat(unexplained)
        cells = sorted(
            {
                (int(r.hidden), r.train_mode, int(r.seq_len), float(r.noise))
                for r in other.itertuples()
            }
        )
        shown = "; ".join(f"hidden {h} {t} seq_len {L} noise {n:g}" for h, t, L, n in cells[:8])
        lines.append(
            f"- {len(other)} other models, reason not established here ({shown}"
            f"{'; …' if len(cells) > 8 else ''})"
        )
    return lines


def summary_table(sel, hidden: int) -> list[str]:
    s = sel[sel.hidden == hidden]
    g = s.groupby(["noise", "seq_len", "train_mode", "predict_mode"])["mse"]
    summ = g.agg(["mean", "std"]).reset_index()
    summ["cell"] = [
        f"{m:.2e} ± {d:.1e}" for m, d in zip(summ["mean"], summ["std"].fillna(0), strict=True)
    ]
    table = summ.pivot_table(
        index=["noise", "seq_len"],
        columns=["train_mode", "predict_mode"],
        values="cell",
        aggfunc="first",
    )
    cols = [(t, p) for t in TRAIN_MODES for p in PREDICT_MODES if (t, p) in table.columns]
    table = table[cols]
    lines = [
        "| noise | seq_len | " + " | ".join(f"{t} → predict {p}" for t, p in cols) + " |",
        "|" + "---|" * (2 + len(cols)),
    ]
    for (noise, L), row in table.iterrows():
        lines.append(f"| {noise:g} | {L} | " + " | ".join(str(v) for v in row.values) + " |")
    return lines


def sweep_lines(table) -> list[str]:
    lines = [
        "| hidden | training mode | lr | mean log10 validation loss | converged | chosen |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.hidden} | {r.train_mode} | {r.lr:g} | {r.log_val:.2f} | "
            f"{r.converged:.0%} | {'**yes**' if r.chosen else ''} |"
        )
    return lines


def frame(rows: list[dict], cfg: StudyConfig):
    df = pd.DataFrame([{k: v for k, v in r.items() if k != "weights"} for r in rows])
    return df


def write_report(out: Path, cfg: StudyConfig, rows: list[dict], seconds: float) -> dict:
    """study.csv, sweep.csv, report.md and the two plots. Returns the chosen lrs."""
    df = frame(rows, cfg)
    chosen, table = choose_lrs(df, cfg.lrs)
    df = mark_selected(df, chosen)
    with atomic_path(out / "study.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out / "sweep.csv") as tmp:
        table.to_csv(tmp, index=False)
    sel = df[df.selected]
    n_fit, n_val, n_test = cfg.parts()
    groups = df.drop_duplicates(["hidden", "seq_len", "train_mode"])
    cpu, busiest = groups.group_cpu_seconds.sum(), groups.group_seconds.max()
    extra = (
        f", and the lesson's cell also at train.py's default {cfg.lesson_lr:g}"
        if cfg.lesson_lr not in cfg.lrs
        else ""
    )
    settings = textwrap.fill(
        f"Test MSE of both prediction modes for every trained model. The grid: seq_len "
        f"{', '.join(map(str, cfg.seq_lens))}; phase noise "
        f"{', '.join(f'{n:g}' for n in cfg.noises)}; hidden size "
        f"{', '.join(map(str, cfg.hiddens))}; training modes {', '.join(cfg.train_modes)}; "
        f"seeds {', '.join(map(str, cfg.seeds))}; learning rates "
        f"{', '.join(f'{x:g}' for x in cfg.lrs)} swept{extra}. Data: {cfg.cycles} periods of "
        f"{cfg.steps_per_cycle} points, cut into {n_fit} fitted, {n_val} validation and "
        f"{n_test} test points; batch {cfg.batch_size} (stateless), {cfg.streams} streams "
        f"(stateful); Keras's RMSprop. Each model trains until its validation loss has not "
        f"fallen by {cfg.min_improvement:.0%} for {cfg.patience} epochs (at most "
        f"{cfg.max_epochs} epochs) and keeps its best weights. {len(models(df))} models "
        f"trained in {seconds:.0f} s ({len(groups)} groups over {cfg.workers} worker "
        f"processes, {cpu:.0f} s of CPU time in training, the longest group {busiest:.0f} s); "
        f"the answer uses the {len(models(sel))} at their training mode's chosen learning rate.",
        width=88,
    )
    text = f"""# Is stateful prediction always worse?

{settings}

Training modes: `stateless` = the lesson's `fit` on shuffled windows from the zero
state; `stateful-last` = Keras `stateful=True` training, one target a chunk (the
point after it, `return_sequences=False`); `stateful-seq` = the same chunks with a
loss at every step (truncated BPTT, `return_sequences=True`). Stateless prediction
restarts from h = 0 for every window of seq_len points; stateful prediction carries
one state through the whole test series. The MSE is against the (noisy) test
series; a constant prediction scores about 0.5.

## Answer

{verdict(sel)}

{chr(10).join(answer_lines(df, cfg, chosen))}

## Learning rates, chosen by validation loss

Per hidden size and training mode, the swept learning rate with the lowest mean
log10 validation loss among those where at least {MIN_CONVERGED:.0%} of the models
converged (the test part plays no part in the choice):

{chr(10).join(sweep_lines(table))}

## Models at the constant-prediction level

A model is marked when, predicting either way, its validation MSE stays at
{100 * CONSTANT_LEVEL:.0f} % or more of the best constant's (the validation part's variance).

{chr(10).join(constant_lines(df, cfg))}

## Summary

Test MSE, mean ± standard deviation over seeds, at the chosen learning rates.
"""
    for h in sorted(sel.hidden.unique()):
        text += f"\n### Hidden size {h}\n\n" + "\n".join(summary_table(sel, h)) + "\n"
    text += "\n![MSE against seq_len](mse_vs_seq_len.png)\n\n![Example predictions](traces.png)\n"
    write_text(out / "report.md", text)
    plot_study(out / "mse_vs_seq_len.png", sel, cfg)
    plot_traces(out / "traces.png", cfg, rows, chosen)
    return chosen


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_study(path: Path, sel, cfg: StudyConfig) -> None:
    """Mean test MSE against seq_len: a row per hidden size, a column per noise level."""
    hs, noises = sorted(sel.hidden.unique()), sorted(sel.noise.unique())
    fig, axes = plt.subplots(
        len(hs),
        len(noises),
        figsize=(4.6 * len(noises), 3.8 * len(hs)),
        sharey=True,
        squeeze=False,
    )
    styles = {"stateless": "-", "stateful": "--"}
    colors = dict(zip(TRAIN_MODES, ("C0", "C1", "C2"), strict=True))
    summ = sel.groupby(["hidden", "noise", "train_mode", "predict_mode", "seq_len"])["mse"]
    summ = summ.agg(["mean", "min", "max"]).reset_index()
    for (i, h), (j, noise) in itertools.product(enumerate(hs), enumerate(noises)):
        ax = axes[i, j]
        for mode, pm in itertools.product(cfg.train_modes, PREDICT_MODES):
            s = summ[
                (summ.hidden == h)
                & (summ.noise == noise)
                & (summ.train_mode == mode)
                & (summ.predict_mode == pm)
            ]
            ax.errorbar(
                s.seq_len,
                s["mean"],
                yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                fmt="o" + styles[pm],
                color=colors[mode],
                capsize=2,
                ms=4,
                label=f"train {mode}, predict {pm}",
            )
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", title=f"hidden {h}, noise {noise:g}")
        ax.set_xticks(cfg.seq_lens, [str(L) for L in cfg.seq_lens])
        ax.grid(True, which="both", alpha=0.3)
        if i == len(hs) - 1:
            ax.set_xlabel("seq_len")
        if j == 0:
            ax.set_ylabel("test MSE (mean; bars min..max)")
    axes[0, -1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Stateless vs stateful prediction by training mode (dotted: a constant's 0.5)")
    fig.tight_layout()
    _save(fig, path)


def plot_traces(path: Path, cfg: StudyConfig, rows: list[dict], chosen: dict) -> None:
    """The first 60 test points predicted both ways: seed 0 (or the first), seq_len 2
    (or the first), clean wave (or the lowest noise), each training mode, hidden sizes
    side by side, at the chosen learning rates."""
    L = 2 if 2 in cfg.seq_lens else cfg.seq_lens[0]
    noise, seed, hs = min(cfg.noises), cfg.seeds[0], sorted(cfg.hiddens)
    fig, axes = plt.subplots(
        len(cfg.train_modes),
        len(hs),
        figsize=(7.5 * len(hs), 2.5 * len(cfg.train_modes)),
        squeeze=False,
    )
    test = study_series(cfg, noise, seed)[2]
    t = np.arange(min(60, len(test)))
    for (i, mode), (j, h) in itertools.product(enumerate(cfg.train_modes), enumerate(hs)):
        ax = axes[i, j]
        lr = chosen.get((h, mode))
        w = next(
            r["weights"]
            for r in rows
            if (r["hidden"], r["train_mode"], r["seq_len"], r["noise"], r["seed"], r["lr"])
            == (h, mode, L, noise, seed, lr)
        )
        m = keras_to_torch(w)
        ax.plot(t, test[t], "k-", lw=2.5, alpha=0.3, label="truth")
        ax.plot(t, predict_stateless(m, test, L)[0][t], "o-", ms=3, label="predict stateless")
        ax.plot(t, predict_stateful(m, test)[0][t], "s--", ms=3, label="predict stateful")
        ax.set_title(
            f"hidden {h}, trained {mode} (lr {lr:g}), seq_len {L}, noise {noise:g}, seed {seed}",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("test time step")
    fig.tight_layout()
    _save(fig, path)
