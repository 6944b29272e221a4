"""Jobs: batch re-scoring of stored recordings or manifests (checks, effects, voiceprints) on a local
process pool or Ray, resumable, with idempotent upserts. Per-item logic lives in the other packages.
"""
