"""What masking costs: linear in its input, whatever the input looks like.

Prints, for each shape of hostile input, the time to mask 1 MB and 4 MB of it and their ratio
(4.0 is linear; a backtracking pattern would show 16 or far more), and the time for plain text
against ``str.lower`` of the same text as a baseline.
"""

from __future__ import annotations

import time

from autopr_migrate.masking import mask_secrets

UNITS = {
    "letters": "a",
    "credential starts without @": "a://b: ",
    "tokens with @": "x:y@z ",
    "@ then colon": "a@b:c ",
    "password= keys": "password=",
    "escaped quotes": "password='\\'",
    "only @": "@",
    "url": "postgresql://app:secret@db:5432/autopr ",
}


def _seconds(text: str) -> float:
    started = time.perf_counter()
    mask_secrets(text)
    return time.perf_counter() - started


def main() -> None:
    print(f"{'input':30} {'1 MB':>9} {'4 MB':>9} {'ratio':>6}")
    for name, unit in UNITS.items():
        small = unit * (2**20 // len(unit))
        one, four = _seconds(small), _seconds(small * 4)
        print(f"{name:30} {one * 1000:7.1f}ms {four * 1000:7.1f}ms {four / one:6.1f}")
    text = "the quick brown fox jumps over the lazy dog " * (2**20 // 44)
    started = time.perf_counter()
    text.lower()
    baseline = time.perf_counter() - started
    print(
        f"plain prose, 1 MB: {_seconds(text) * 1000:.1f} ms, {_seconds(text) / baseline:.0f}x "
        f"str.lower"
    )


if __name__ == "__main__":
    main()
