#!/usr/bin/env bash
# Reproduce the evaluation tables of docs/voiceprint.md.
#   bash benchmarks/voiceprint_eval.sh [OUT_DIR] [ecapa|resemblyzer ...]
# Writes one JSON report per (dataset, backend, condition) to OUT_DIR (default docs/voiceprint-eval)
# and the clean-condition score plots. Needs `songgate models pull` and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/voiceprint-eval}
shift || true
BACKENDS=${*:-ecapa resemblyzer}
DATA=../shared/data/speech
LIBRI=$DATA/librispeech-train-clean-100-excerpts
FSDD=$DATA/fsdd/recordings
SG=${SONGGATE:-.venv/bin/songgate}
# Subsample so that each run takes minutes on 2 cores: the first 100 LibriSpeech speakers (sorted id).
MAX_SPEAKERS=${MAX_SPEAKERS:-100}
mkdir -p "$OUT"
for backend in $BACKENDS; do
  for cond in clean crop3 aac32-noise10 tel8k; do
    plot=(); [ "$cond" = clean ] && plot=(--plot "$OUT/librispeech-$backend-clean.png")
    # LibriSpeech: 100 speakers; 30 held out as the AS-norm cohort, each other recording split in 3.
    "$SG" eval voiceprint "$LIBRI" --speaker-regex '^(\d+)-' --segments 3 --max-speakers "$MAX_SPEAKERS" \
      --cohort-fraction 0.3 --top-n 50 \
      --backend "$backend" --condition "$cond" --json "${plot[@]}" > "$OUT/librispeech-$backend-$cond.json"
    # FSDD: 6 speakers; 20 eight-digit utterances each (8 different recordings joined);
    # cohort: 30 LibriSpeech speakers (3 segments each) under the same condition.
    "$SG" eval voiceprint "$FSDD" --speaker-regex '^\d+_([a-z]+)_' --concat 8 --max-per-speaker 20 \
      --cohort "$LIBRI" --cohort-regex '^(\d+)-' --cohort-max-speakers 30 --cohort-segments 3 --top-n 50 \
      --backend "$backend" --condition "$cond" --json > "$OUT/fsdd-$backend-$cond.json"
  done
done
