"""Prints marimo's own view of a notebook's cells as JSON, one object per cell.

Used by the parity tests: marimo's parser splits the file and marimo's
`compile_cell` computes each cell's definitions and references.
"""

import json
import sys

from marimo._ast.compiler import compile_cell
from marimo._ast.parse import parse_notebook


def main(path):
    with open(path, encoding="utf-8") as f:
        notebook = parse_notebook(f.read(), filepath=path)
    cells = []
    for position, cell in enumerate(notebook.cells, start=1):
        # An unparsable cell keeps its name among its options.
        name = cell.options.get("name", cell.name)
        if name in ("_", "__"):
            name = f"cell-{position}"
        entry = {"name": name, "code": cell.code}
        try:
            compiled = compile_cell(cell.code, cell_id=f"c{position}")
            entry["defs"] = sorted(compiled.defs)
            entry["refs"] = sorted(compiled.refs)
            entry["deleted_refs"] = sorted(compiled.deleted_refs)
        except SyntaxError as error:
            entry["syntax_error"] = {"line": error.lineno, "message": error.msg}
        cells.append(entry)
    json.dump(cells, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
