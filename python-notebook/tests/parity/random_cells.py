"""Prints random cells and what CPython's compile makes of each, as JSON.

Used by the compile-error test: cells of nested functions, lambdas,
classes, loops, comprehensions, assignment expressions, `await`, `global`
and `nonlocal`, most of them refused by CPython for one reason or another.
Each entry is `{"code": ..., "error": [message, line, column] or null}`.
"""

import json
import random
import sys

NAMES = ["a", "b", "x", "y"]


def expression(rng, depth=0):
    draw = rng.random()
    name = rng.choice(NAMES)
    if depth > 2 or draw < 0.3:
        return name
    inner = lambda: expression(rng, depth + 1)  # noqa: E731
    if draw < 0.4:
        return f"lambda {rng.choice(NAMES)}: {inner()}"
    if draw < 0.5:
        return f"[{inner()} for {rng.choice(NAMES)} in {inner()}]"
    if draw < 0.55:
        return f"({inner()} for {rng.choice(NAMES)} in {inner()})"
    if draw < 0.62:
        return f"(await {inner()})"
    if draw < 0.68:
        return f"({name} := {inner()})"
    if draw < 0.75:
        return f"{{{inner()}: 1 for {rng.choice(NAMES)} in {inner()}}}"
    return f"{inner()} + {inner()}"


def statements(rng, indent, depth):
    lines = []
    pad = "    " * indent
    for _ in range(rng.randint(1, 3)):
        draw = rng.random()
        name = rng.choice(NAMES)
        if draw < 0.15:
            lines.append(f"{pad}{name} = {expression(rng)}")
        elif draw < 0.25:
            lines.append(f"{pad}global {name}")
        elif draw < 0.33:
            lines.append(f"{pad}nonlocal {name}")
        elif draw < 0.4:
            lines.append(f"{pad}print({expression(rng)})")
        elif draw < 0.46:
            lines.append(f"{pad}{name}: int = 1")
        elif draw < 0.5:
            lines.append(f"{pad}break")
        elif draw < 0.53:
            lines.append(f"{pad}continue")
        elif draw < 0.56:
            lines.append(f"{pad}del {name}")
        elif draw < 0.6:
            lines.append(f"{pad}import {name}")
        elif draw < 0.63:
            lines.append(f"{pad}return {name}")
        elif depth < 3 and draw < 0.73:
            parameters = rng.sample(NAMES, rng.randint(0, 2))
            if rng.random() < 0.1:
                parameters.append(rng.choice(NAMES))
            keyword = "async def" if rng.random() < 0.3 else "def"
            lines.append(f"{pad}{keyword} f{depth}({', '.join(parameters)}):")
            lines += statements(rng, indent + 1, depth + 1)
        elif depth < 3 and draw < 0.8:
            lines.append(f"{pad}class C{depth}:")
            lines += statements(rng, indent + 1, depth + 1)
        elif depth < 3 and draw < 0.9:
            lines.append(f"{pad}for {name} in {expression(rng)}:")
            lines += statements(rng, indent + 1, depth + 1)
            if rng.random() < 0.3:
                lines.append(f"{pad}else:")
                lines += statements(rng, indent + 1, depth + 1)
        elif depth < 3:
            lines.append(f"{pad}try:")
            lines += statements(rng, indent + 1, depth + 1)
            lines.append(f"{pad}except E as {name}:")
            lines += statements(rng, indent + 1, depth + 1)
        else:
            lines.append(f"{pad}pass")
    return lines


def main(seed, count):
    rng = random.Random(seed)
    cells = []
    for _ in range(count):
        code = "\n".join(statements(rng, 0, 0)) + "\n"
        try:
            # As marimo compiles a cell: top-level `await` allowed.
            compile(code, "<cell>", "exec", flags=0x2000, dont_inherit=True)
            error = None
        except SyntaxError as raised:
            error = [raised.msg, raised.lineno, raised.offset]
        cells.append({"code": code, "error": error})
    json.dump(cells, sys.stdout)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
