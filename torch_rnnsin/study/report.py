"""The study's report: the summary table, the answer computed from the numbers, plots."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from .study import PREDICT_MODES, TRAIN_MODES, StudyConfig, study_series


def summarize(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows)
    g = df.groupby(["noise", "seq_len", "train_mode", "predict_mode"])["mse"]
    return df, g.agg(["mean", "std", "min", "max"]).reset_index()


def answer(df) -> str:
    """The plain-language answer; every number and every verdict is computed here."""
    piv = df.pivot_table(
        index=["train_mode", "noise", "seq_len", "seed"], columns="predict_mode", values="mse"
    )
    per_mode = {}
    for mode in [m for m in TRAIN_MODES if m in piv.index.get_level_values(0)]:
        p = piv.loc[mode]
        per_mode[mode] = (
            int((p["stateful"] < p["stateless"]).sum()),
            len(p),
            float(np.median(p["stateful"] / p["stateless"])),
        )
    wins_somewhere = any(b > n / 2 for b, n, _ in per_mode.values())
    always_worse = all(b == 0 for b, _, _ in per_mode.values())
    if always_worse:
        verdict = (
            "**Yes, in every model of this grid** stateful prediction is worse than stateless."
        )
    elif wins_somewhere:
        best_mode = min(per_mode, key=lambda m: per_mode[m][2])
        b, n, r = per_mode[best_mode]
        verdict = (
            f"**No.** Stateful prediction is worse for the lesson's weights (trained stateless), "
            f"but with weights trained `{best_mode}` it beats stateless prediction of the same "
            f"weights in {b} of {n} models (median MSE ratio stateful/stateless {r:.2f}). Which "
            "prediction is better depends on how the weights were trained: a model predicts best "
            "the way it was trained."
        )
    else:
        verdict = "**Mostly, not always**: stateful prediction wins in a minority of models only."
    lines = [verdict, ""]
    for mode, (b, n, r) in per_mode.items():
        lines.append(
            f"- trained **{mode}**: stateful prediction beats stateless in {b} of {n} models; "
            f"median ratio stateful/stateless MSE = {r:.3g}"
        )
    mean = df.groupby(["noise", "seq_len", "train_mode", "predict_mode"])["mse"].mean()
    if (0.0, 2, "stateless", "stateless") in mean.index:
        lines.append(
            f"- the lesson's case (clean wave, seq_len 2, trained stateless): stateless "
            f"{mean[(0.0, 2, 'stateless', 'stateless')]:.2e}, stateful "
            f"{mean[(0.0, 2, 'stateless', 'stateful')]:.2e} (mean over seeds)"
        )
    for noise in sorted(df["noise"].unique()):
        m = mean.xs(noise, level="noise")
        (L, tm, pm), best = m.idxmin(), m.min()
        sf = m.xs("stateful", level="predict_mode")
        (Ls, tms), best_sf = sf.idxmin(), sf.min()
        lines.append(
            f"- noise {noise}: lowest test MSE {best:.2e} from training {tm}, predicting {pm}, "
            f"seq_len {L}; the best stateful prediction {best_sf:.2e} (trained {tms}, seq_len {Ls})"
        )
    failed = df[df["mse"] > 0.4]
    long_stateful = failed[(failed.train_mode != "stateless") & (failed.seq_len >= 5)]
    lines.append(
        f"- {len(failed)} of {len(df)} (model, prediction) pairs have a test MSE above 0.4, near "
        f"the 0.5 of a constant prediction; {len(long_stateful)} of them are stateful-trained "
        "with seq_len >= 5 (few optimizer steps an epoch: 1000 epochs at lr 0.001 are not "
        "enough, and seq_len 5 is the trap below)"
    )
    winners = {mean.xs(n, level="noise").idxmin()[1:] for n in df["noise"].unique()}
    if winners == {("stateless", "stateless")}:
        lines[0] += (
            " Yet the lowest test MSE at every noise level still comes from stateless training "
            "with stateless prediction: carrying the state is not what this 1-unit model needs."
        )
    return "\n".join(lines)


def write_report(out: Path, cfg: StudyConfig, rows: list[dict], seconds: float) -> None:
    from .atomic import atomic_path, write_text

    df, summ = summarize(rows)
    with atomic_path(out / "study.csv") as tmp:
        df.drop(columns=["group_seconds", "weights"]).to_csv(tmp, index=False)
    wide = summ.assign(
        cell=[
            f"{m:.2e} ± {s:.1e}" for m, s in zip(summ["mean"], summ["std"].fillna(0), strict=True)
        ]
    )
    table = wide.pivot_table(
        index=["noise", "seq_len"],
        columns=["train_mode", "predict_mode"],
        values="cell",
        aggfunc="first",
    )
    table = table[[(t, p) for t in TRAIN_MODES for p in PREDICT_MODES if (t, p) in table.columns]]
    header = (
        "| noise | seq_len | " + " | ".join(f"{t} → predict {p}" for t, p in table.columns) + " |"
    )
    lines = [header, "|" + "---|" * (2 + len(table.columns))]
    for (noise, L), row in table.iterrows():
        lines.append(f"| {noise} | {L} | " + " | ".join(str(v) for v in row.values) + " |")
    trap = df[(df.train_mode == "stateful-last") & (df.seq_len == 5)]
    text = f"""# Is stateful prediction always worse?

Test MSE of both prediction modes for every trained model: mean ± standard
deviation over {len(cfg.seeds)} seeds (seeds {", ".join(map(str, cfg.seeds))}),
{cfg.epochs} epochs, {cfg.cycles} cycles of {cfg.steps_per_cycle} points, batch {cfg.batch_size},
{cfg.streams} streams for stateful training, Keras's RMSprop (lr {cfg.lr}), hidden size {cfg.hidden}.
Noise is phase noise; the MSE is against the (noisy) test series. {len(df) // 2} models,
trained in {seconds:.0f} s.

Training modes: `stateless` = the lesson's `fit` on shuffled windows from the zero
state; `stateful-last` = Keras `stateful=True` training, one target a chunk (the
point after it, `return_sequences=False`); `stateful-seq` = the same chunks with a
loss at every step (truncated BPTT, `return_sequences=True`). Stateless prediction
restarts from h = 0 for every window of seq_len points; stateful prediction carries
one state through the whole test series.

## Answer

{answer(df)}

Note the trap of SPEC §4: with `stateful-last` and seq_len 5, every target is a
zero crossing of the clean wave, and training fits a near-constant output: mean
test MSE {trap[trap.noise == 0]["mse"].mean() if len(trap) else float("nan"):.3g} on the clean wave, against 0.5 for a constant 0.

## Summary

{chr(10).join(lines)}

![MSE against seq_len](mse_vs_seq_len.png)

![Example predictions](traces.png)
"""
    write_text(out / "report.md", text)
    plot_study(out, summ, cfg)
    plot_traces(out, cfg, rows)


def plot_study(out: Path, summ, cfg: StudyConfig) -> None:
    from .plots import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(
        1, len(cfg.noises), figsize=(4.8 * len(cfg.noises), 4.2), sharey=True, squeeze=False
    )
    styles = {"stateless": "-", "stateful": "--"}
    colors = dict(zip(TRAIN_MODES, ("C0", "C1", "C2"), strict=True))
    for ax, noise in zip(axes[0], cfg.noises, strict=True):
        for mode, pm in itertools.product(cfg.train_modes, PREDICT_MODES):
            s = summ[(summ.noise == noise) & (summ.train_mode == mode) & (summ.predict_mode == pm)]
            ax.errorbar(
                s.seq_len,
                s["mean"],
                yerr=s["std"].fillna(0),
                fmt="o" + styles[pm],
                color=colors[mode],
                capsize=2,
                ms=4,
                label=f"train {mode}, predict {pm}",
            )
        ax.set(xscale="log", yscale="log", xlabel="seq_len", title=f"noise {noise}")
        ax.set_xticks(cfg.seq_lens, [str(L) for L in cfg.seq_lens])
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("test MSE (mean; bars: min..max over seeds)")
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.suptitle("Stateless vs stateful prediction, by training mode")
    fig.tight_layout()
    _save(fig, out / "mse_vs_seq_len.png")


def plot_traces(out: Path, cfg: StudyConfig, rows: list[dict]) -> None:
    """Predictions of seed 0 at seq_len 2 (or the first), clean wave, each training mode."""
    from .plots import _plt, _save

    L = 2 if 2 in cfg.seq_lens else cfg.seq_lens[0]
    noise = cfg.noises[0]
    plt = _plt()
    fig, axes = plt.subplots(
        len(cfg.train_modes), 1, figsize=(9, 2.6 * len(cfg.train_modes)), squeeze=False
    )
    from .convert import keras_to_torch
    from .predict import predict_stateful, predict_stateless

    weights = {
        r["train_mode"]: r["weights"]
        for r in rows
        if r["seq_len"] == L and r["noise"] == noise and r["seed"] == cfg.seeds[0]
    }
    _, test = study_series(cfg, noise, cfg.seeds[0])
    t = np.arange(60)
    for ax, mode in zip(axes[:, 0], cfg.train_modes, strict=True):
        m = keras_to_torch(weights[mode])
        ax.plot(t, test[t], "k-", lw=2.5, alpha=0.3, label="truth")
        ax.plot(t, predict_stateless(m, test, L)[0][t], "o-", ms=3, label="predict stateless")
        ax.plot(t, predict_stateful(m, test)[0][t], "s--", ms=3, label="predict stateful")
        ax.set(
            title=f"trained {mode} (seq_len {L}, noise {noise}, seed {cfg.seeds[0]})",
            ylabel="value",
        )
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("test time step")
    fig.tight_layout()
    _save(fig, out / "traces.png")
