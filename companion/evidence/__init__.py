"""Training-log evidence: logs in every common format -> LossSeries -> findings -> verdict.

Pure engine: never imports pygls or lsprotocol. `read_log` parses, `summarize` analyses.
"""
