"""Audio: decoding any supported container to float32 under hard limits, resampling, the recording
checks (loudness, true peak, clipping, silence, bandwidth, noise, hum, vocal activity).

audio/ knows nothing about HTTP or the database; it takes paths or arrays and returns arrays,
dataclasses and plain dicts.
"""
