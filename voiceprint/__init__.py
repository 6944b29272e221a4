"""Voiceprint: speaker embedders (ECAPA-TDNN, Resemblyzer), enrollment, calibrated verification with
score normalization, challenge prompts, and cross-account voice search.

Weights come only through models/.
"""
