"""Render the JSON reports of benchmarks/voiceprint_eval.sh as the markdown tables of docs/voiceprint.md.

.venv/bin/python benchmarks/voiceprint_eval_table.py docs/voiceprint-eval
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONDITIONS = ["clean", "crop3", "aac32-noise10", "tel8k"]
LABELS = {
    "clean": "clean",
    "crop3": "3 s crops",
    "aac32-noise10": "AAC 32k + noise 10 dB",
    "tel8k": "8 kHz telephone",
}


def cell(block: dict, kind: str) -> str:
    if kind not in block:
        return "-"
    return f"{block[kind]['eer_percent']:.2f} / {block[kind]['min_dcf']:.3f}"


def main(directory: Path) -> None:
    for dataset in ("librispeech", "fsdd"):
        rows = []
        for backend in ("ecapa", "resemblyzer"):
            for cond in CONDITIONS:
                path = directory / f"{dataset}-{backend}-{cond}.json"
                if not path.is_file() or path.stat().st_size == 0:
                    continue
                r = json.loads(path.read_text())
                ref = r.get("reference", {})
                rows.append(
                    f"| {backend} | {LABELS[cond]} | {r['trials']['target']} / {r['trials']['nontarget']} "
                    f"| {r['utterances']['left_out_too_little_speech']} "
                    f"| {cell(r['pipeline'], 'raw')} | {cell(r['pipeline'], 'asnorm')} "
                    f"| {cell(ref, 'raw')} | {cell(ref, 'asnorm')} |"
                )
        if not rows:
            continue
        print(f"\n**{dataset}** (EER % / minDCF at p_target 0.01)\n")
        print(
            "| backend | condition | trials tar / non | left out | pipeline raw | pipeline AS-norm "
            "| reference raw | reference AS-norm |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/voiceprint-eval"))
