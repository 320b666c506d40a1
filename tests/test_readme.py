"""The README's first taste runs, and each line gives what its comment says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_first_taste_gives_what_the_readme_says():
    text = README.read_text()
    block = re.search(r"## A first taste\s+```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its 'A first taste' example"
    namespace: dict = {}
    checked = 0
    for line in block[1].splitlines():
        code, _, expected = line.partition("#")
        code, expected = code.strip(), expected.strip()
        if not code:
            continue
        if code.startswith(("import ", "from ")) or not expected:
            exec(code, namespace)
            continue
        value = eval(code, namespace)
        shown = repr(value)
        assert shown == expected or shown.startswith(expected.removesuffix("...)")), (
            f"README: {code} gives {shown}, the comment says {expected}"
        )
        checked += 1
    assert checked >= 3
