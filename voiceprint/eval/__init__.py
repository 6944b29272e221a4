"""Speaker-verification evaluation: trials, conditions, AS-norm, EER / minDCF, plots, calibration.

Entry point: ``songgate eval voiceprint DIR`` (cli/eval.py), which calls :func:`voiceprint.eval.run.evaluate`.
"""
