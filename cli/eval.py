"""`songgate eval voiceprint DIR`: speaker-verification EER / minDCF, plots and calibration."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Evaluation commands")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="eval")


@app.command("voiceprint")
def voiceprint_cmd(
    directory: Annotated[
        Path, typer.Argument(help="One sub-folder of audio per speaker (or flat, with --speaker-regex)")
    ],
    backend: Annotated[str, typer.Option(help="ecapa or resemblyzer")] = "ecapa",
    trials: Annotated[
        Path | None,
        typer.Option("--trials", help="Trial list: 'LABEL ENROLL TEST' per line; default all pairs"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON")] = False,
    calibrate: Annotated[
        bool, typer.Option(help="Store thresholds at --target-far with the model's registry entry")
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a score-distribution PNG here")] = None,
    condition: Annotated[str, typer.Option(help="clean, crop3, aac32-noise10 or tel8k")] = "clean",
    speaker_regex: Annotated[
        str | None, typer.Option(help="Regex whose group 1 is the speaker, for flat folders")
    ] = None,
    segments: Annotated[
        int, typer.Option(min=1, help="Split each file into N non-overlapping utterances")
    ] = 1,
    concat: Annotated[int, typer.Option(min=1, help="Join K files of a speaker into one utterance")] = 1,
    max_speakers: Annotated[int | None, typer.Option(min=2, help="Use the first N speakers (sorted)")] = None,
    max_per_speaker: Annotated[
        int | None, typer.Option(min=1, help="At most N utterances per speaker")
    ] = None,
    cohort_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Speakers held out as the AS-norm cohort")
    ] = 0.2,
    cohort: Annotated[
        Path | None, typer.Option(help="Cohort from another dataset instead (speakers disjoint)")
    ] = None,
    cohort_regex: Annotated[str | None, typer.Option(help="--speaker-regex for --cohort")] = None,
    cohort_segments: Annotated[int | None, typer.Option(min=1, help="--segments for --cohort")] = None,
    cohort_max_speakers: Annotated[
        int | None, typer.Option(min=2, help="Use the first N cohort speakers")
    ] = None,
    top_n: Annotated[
        int | None, typer.Option(min=2, help="AS-norm top-N (default: settings asnorm_top_n)")
    ] = None,
    reference: Annotated[bool, typer.Option(help="Also score the backend's plain documented usage")] = True,
    target_far: Annotated[
        float | None, typer.Option(help="FAR for thresholds (default: settings target_far)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for cohort choice, crops, noise")] = 0,
    model_dir: Annotated[Path | None, typer.Option(help="Model cache (default: settings' model dir)")] = None,
) -> None:
    """Evaluate a backend on a speaker dataset; report eer_percent and minDCF (p_target 0.01)."""
    from core.settings import Settings
    from models import registry
    from voiceprint.embedders import BACKENDS, load_embedder
    from voiceprint.errors import ModelUnavailable
    from voiceprint.eval.plot import plot_scores
    from voiceprint.eval.run import EvalConfig, calibration_record, evaluate

    settings = Settings()
    vp = settings.voiceprint
    root = model_dir.resolve() if model_dir else settings.resolved_model_dir
    if backend not in BACKENDS:
        raise typer.BadParameter(f"backend must be one of {', '.join(BACKENDS)}")
    try:
        embedder = load_embedder(backend, model_dir=root, settings=vp)
    except ModelUnavailable as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    cfg = EvalConfig(
        root=directory,
        condition=condition,
        speaker_regex=speaker_regex,
        segments=segments,
        concat=concat,
        max_speakers=max_speakers,
        max_per_speaker=max_per_speaker,
        trials_file=trials,
        cohort_fraction=cohort_fraction,
        cohort_dir=cohort,
        cohort_regex=cohort_regex,
        cohort_segments=cohort_segments,
        cohort_max_speakers=cohort_max_speakers,
        top_n=top_n or vp.asnorm_top_n,
        reference=reference,
        target_far=target_far or vp.target_far,
        seed=seed,
        vad_threshold=vp.vad_threshold,
        vad_min_silence_ms=vp.vad_min_silence_ms,
        vad_pad_ms=vp.vad_pad_ms,
        vad_speech_threshold=vp.vad_speech_threshold,
    )
    try:
        report, scores, labels = evaluate(cfg, embedder=embedder, progress=lambda s: typer.echo(s, err=True))
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if plot is not None:
        report["plot"] = str(plot_scores(plot, scores, labels, report))
    if calibrate:
        command = "songgate " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = registry.write_calibration(BACKENDS[backend], root, calibration_record(report, command))
        report["calibration"] = {"path": str(path), **registry.thresholds(BACKENDS[backend], root)}
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"{report['model_id']}  {directory}  condition={condition}  "
        f"trials: {report['trials']['target']} target / {report['trials']['nontarget']} non-target"
    )
    for system in ("pipeline", "reference"):
        if system not in report:
            continue
        for kind in ("raw", "asnorm"):
            if kind in report[system]:
                s = report[system][kind]
                typer.echo(
                    f"  {system:9s} {kind:6s}  EER {s['eer_percent']:6.2f} %   minDCF(0.01) {s['min_dcf']:.4f}"
                    f"   thr@FAR{100 * cfg.target_far:g}% {s['threshold_at_far']:.4f} "
                    f"(FRR {s['frr_percent_at_threshold']:.2f} %)"
                )
    if "calibration" in report:
        typer.echo(f"  calibration written to {report['calibration']['path']}")
    if "plot" in report:
        typer.echo(f"  plot: {report['plot']}")
