"""Model registry: names, versions, files with sha256, sources tried in order, offline loading.

No weights live in git: ``songgate models pull`` fills the model directory.
"""
