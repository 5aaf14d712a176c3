# A tour of cellrun on a marimo notebook: the same file runs with
# `cellrun run examples/tour.py`, `python examples/tour.py` and `marimo edit`.
# Cells share names: a cell that reads a name runs after the cell defining it.

import marimo

__generated_with = "0.25.2"
app = marimo.App()


with app.setup:
    # The setup cell runs first; its names are visible to every cell.
    import math


@app.cell
def settings():
    greeting = "hello"
    factor = 3
    return factor, greeting


@app.function
def shout(text):
    # A function cell: callable from every cell.
    return text.upper() + "!"


@app.cell
def helpers(factor):
    def scale(x):
        return x * factor
    return (scale,)


@app.cell
def numbers(scale):
    numbers = [1, 2, 3, 4, 5]
    [scale(n) for n in numbers]
    return (numbers,)


@app.cell
def record(greeting, numbers):
    # Dicts and lists come out as JSON objects and arrays.
    record = {"name": shout(greeting), "size": len(numbers), "total": sum(numbers)}
    record
    return (record,)


@app.cell
def report(factor, record):
    print(f"{record['name']} {record['size']} numbers add up to {record['total']}")
    record["total"] * factor
    return


@app.cell
def risky(factor, record):
    # This cell fails: its descendants are cancelled, the rest still runs.
    ratio = record["total"] / (factor - 3)
    return (ratio,)


@app.cell
def uses_ratio(ratio):
    doubled = ratio * 2
    return


@app.cell
def _private(numbers):
    # Names starting with `_` stay private to their cell.
    _scratch = len(numbers) * 10
    math.floor(_scratch / 3) + 1
    return


if __name__ == "__main__":
    app.run()
