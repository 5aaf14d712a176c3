# A hand-edited notebook: odd signatures, bodies on the def line, strings
# spanning lines, comments everywhere and cells marimo could not parse.

import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def messy(first,
          second,  # a comment inside the signature
          third,) -> int:
    # A leading comment.

    # Another one after a blank line.
    total = first + second + third
    return (total,)


@app.cell
def one_line(a: int, b: int) -> None: c = a + b; print(c); return (c,)


@app.cell
def ellipsis_only(): ...


@app.cell
def comment_after_signature(): # trailing comment
    shown = "hi"
    return


@app.cell
def multiline_string():
    text = """
first line
    indented line"""
    # a comment before the return
    return (text,)


@app.cell
def no_return():
    value = compute(total)
    # a trailing comment at body indentation


@app.cell
def _():
    # Only a comment.
    return


app._unparsable_cell(
    r"""
    this is not python
    """,
    name="broken",
)


app._unparsable_cell(
    r"""
    fine_now = 1
    """,
    name="_"
)


@app.cell
def expression_last():
    total * 2
    return


@app.cell
def semicolon_last():
    total * 3;
    return


@app.function(hide_code=True)
def helper(n):
    # Functions are cells of their own.
    return n * scale_factor


@app.class_definition
class Point:
    x: float = 0.0

    def norm(self):
        return abs(self.x) + offset


@app.cell(disabled=True)
def disabled_cell(total):
    doubled = total * 2
    return (doubled,)


if __name__ == "__main__":
    app.run()
