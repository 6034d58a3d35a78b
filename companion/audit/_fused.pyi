from typing import Any

def pair(
    a: Any,
    kind_a: int,
    b: Any,
    kind_b: int,
    n: int,
    cols: int,
    ka: float,
    kb: float,
    gain_a: Any,
    gain_b: Any,
    /,
) -> tuple[
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    int,
    int,
    tuple[float, float, float, float, float],
]: ...
