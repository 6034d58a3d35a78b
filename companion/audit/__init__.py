"""Weight audit engine: streamed safetensors forensics with calibrated verdicts.

Layers, bottom up: `safetensors` (strict header parser, memory-mapped reader, writer),
`checkpoint` (file / folder / sharded index), `alignment` (names -> layer, role, expert),
`metrics` (streamed float64 accumulators), `baselines`, `matching` (permutation-robust),
`verdict`, `engine` (orchestration), `models` + `report` (output) and `tool` (registry entry).
"""
