"""Runs a notebook with marimo's `app.run()` and prints each cell's output as JSON.

The run-parity tests compare these outputs with cellrun's: values with a JSON
form as that form, other values as their repr.
"""

import contextlib
import importlib.util
import json
import sys


def json_form(value):
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


def main(path):
    spec = importlib.util.spec_from_file_location("notebook_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    # The notebook's own prints go to stderr, so stdout carries only the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        outputs, _defs = app.run()
    # The outputs are in file order and leave out the setup cell.
    names = [cell.name for cell in app._cell_manager.cells() if cell.name != "setup"]
    json.dump([[name, json_form(output)] for name, output in zip(names, outputs)], sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
