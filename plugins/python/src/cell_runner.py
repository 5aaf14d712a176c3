"""Runs one notebook cell inside cellrun's embedded interpreter.

The Rust side compiles, runs and captures a cell itself, as `run_cell`
does, and calls in here for what is not the common path: `_failure` for the
error of a cell that raised, `_placed` for a syntax error, `_evaluate` for
code awaiting at its top level, and `run_cell` (the cell's code, the
notebook's path, the code's first notebook line and the globals dictionary
shared by every cell) for code it could not cut before its output
expression, which compiles here to fail with Python's own error.  Compiling
against the notebook's path with shifted line numbers makes tracebacks and
`linecache` point at the notebook file itself.
"""

# Only what every cell needs is imported here: the helper loads as the
# interpreter starts, and asyncio alone takes about 0.1 s to import.  The
# other modules are imported where they are used.
import _ast
import io
import marshal
import sys
import types

# `inspect.CO_COROUTINE`: the code awaits at its top level.
_CO_COROUTINE = 0x0080

_loop = None


def _event_loop():
    """One event loop for the whole run, so async cells share it as in marimo."""
    global _loop
    if _loop is None or _loop.is_closed():
        import asyncio

        _loop = asyncio.new_event_loop()
    return _loop


def _ends_with_semicolon(code):
    """Whether the last token of the code, comments aside, is `;`."""
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code.rstrip().endswith(";")
    ignored = {
        tokenize.ENDMARKER,
        tokenize.NEWLINE,
        tokenize.NL,
        tokenize.COMMENT,
        tokenize.INDENT,
        tokenize.DEDENT,
    }
    for token in reversed(tokens):
        if token.type not in ignored:
            return token.string == ";"
    return False


class _Capture(io.StringIO):
    """A text stream that collects what a cell writes (C-implemented, so
    making one per cell costs little)."""

    name = "<stdout>"

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        return super().write(text)

    def text(self):
        return self.getvalue()


def _shifted(code, delta):
    """`code` with every line number `delta` lines further, nested code too.

    Shifting the first line of each code object moves the whole line table,
    which is cheaper than shifting every node of the syntax tree.
    """
    consts = code.co_consts
    for const in consts:
        if type(const) is types.CodeType:
            consts = tuple(
                _shifted(const, delta) if type(const) is types.CodeType else const
                for const in consts
            )
            return code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)
    return code.replace(co_firstlineno=code.co_firstlineno + delta)


def _placed(error, delta):
    """`error`, a SyntaxError raised compiling code that starts `delta`
    lines into the notebook, with its lines made the notebook's."""
    if error.lineno is not None:
        error.lineno += delta
    if getattr(error, "end_lineno", None) is not None:
        error.end_lineno += delta
    return error


def _compiled(source, filename, mode, delta):
    """`source` (text or a syntax tree) compiled for code that starts
    `delta` lines into the notebook: the code object's lines, and a
    SyntaxError's, are the notebook's."""
    try:
        code = compile(
            source, filename, mode, flags=_ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
    except SyntaxError as error:
        raise _placed(error, delta) from None
    return _shifted(code, delta)


def _compile(code, filename, first_line):
    import ast

    delta = first_line - 1
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        tree = compile(code, filename, "exec", flags=flags, dont_inherit=True)
    except SyntaxError as error:
        raise _placed(error, delta) from None
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(code):
        last = tree.body.pop()
    body = _compiled(tree, filename, "exec", delta)
    expr = None
    if last is not None:
        expression = ast.Expression(last.value)
        ast.copy_location(expression, last)
        expr = _compiled(expression, filename, "eval", delta)
    return body, expr


def _compile_split(split, filename, first_line):
    """Compiles code already cut before its output expression: the
    statements, and the expression starting `output_line` lines further."""
    body, output, output_line = split
    delta = first_line - 1
    compiled = _compiled(body, filename, "exec", delta)
    expr = None
    if output is not None:
        expr = _compiled(output, filename, "eval", delta + output_line)
    return compiled, expr


def serve_compiles():
    """The loop of the helper process that compiles cells ahead (see the
    plugin's `ahead.rs` for the protocol): cells in, marshal dumps out."""
    import struct
    import warnings

    # A compile that warns is done again where the cell runs, which shows
    # the warning in the cell's output.
    warnings.simplefilter("error")
    # The run's memory limit bounds this process too (see `spawn` in
    # ahead.rs): a compile past it raises MemoryError, and that cell
    # compiles where it runs.
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if limit > 0:
        import resource

        # Never above a limit the process already has.
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        for bound in (soft, hard):
            if bound != resource.RLIM_INFINITY:
                limit = min(limit, bound)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    unpack_from, pack, dumps = struct.unpack_from, struct.pack, marshal.dumps
    absent = 0xFFFFFFFF

    def frame():
        # One read of a whole frame: its length, then its bytes.
        head = inp.read(4)
        if len(head) != 4:
            raise SystemExit(0)
        size = unpack_from("<I", head)[0]
        data = inp.read(size)
        if len(data) != size:
            raise SystemExit(0)
        return data

    version = sys.version.encode()
    out.write(pack("<I", len(version)) + version)
    out.flush()
    filename = frame().decode()
    while True:
        batch = frame()
        (count,) = unpack_from("<I", batch)
        at = 4
        replies = [pack("<I", count)]
        for _ in range(count):
            first_line, output_line, size = unpack_from("<III", batch, at)
            at += 12
            body = batch[at : at + size].decode()
            at += size
            (size,) = unpack_from("<I", batch, at)
            at += 4
            output = None
            if size != absent:
                output = batch[at : at + size].decode()
                at += size
            try:
                data = dumps(_compile_split((body, output, output_line), filename, first_line))
            except BaseException:  # noqa: BLE001 - the cell compiles where it runs
                data = b""
            replies.append(pack("<II", first_line, len(data)))
            replies.append(data)
        out.write(b"".join(replies))
        out.flush()


def _evaluate(code_object, globals_):
    result = eval(code_object, globals_)
    if code_object.co_flags & _CO_COROUTINE:
        result = _event_loop().run_until_complete(result)
    return result


def _notebook_frames(error, filename):
    """The traceback of `error` limited to frames in the notebook file."""
    import traceback

    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == filename
    ]
    return frames


def _failure(error, filename):
    import traceback

    frames = _notebook_frames(error, filename)
    line = frames[-1].lineno if frames else None
    if isinstance(error, SyntaxError) and error.filename == filename:
        line = error.lineno
    summary = "".join(traceback.format_exception_only(type(error), error)).strip()
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames))
    lines.append(summary + "\n")
    kind = "interrupted" if isinstance(error, KeyboardInterrupt) else "runtime"
    missing = getattr(error, "name", None) if isinstance(error, NameError) else None
    return {
        "missing_name": missing if isinstance(missing, str) else None,
        "kind": kind,
        "message": summary.splitlines()[-1] if summary else type(error).__name__,
        "type": type(error).__name__,
        "line": line,
        "traceback": "".join(lines) if frames else "",
    }


def run_cell(code, filename, first_line, globals_):
    """Runs `code` in `globals_`: returns (output, stdout, failure or None).

    stdout and stderr are captured for the cell's duration and returned
    together, in the order written.
    """
    capture = _Capture()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = capture
    output = None
    failure = None
    try:
        body, expr = _compile(code, filename, first_line)
        _evaluate(body, globals_)
        if expr is not None:
            output = _evaluate(expr, globals_)
    except BaseException as error:  # noqa: BLE001 - every failure is the cell's
        failure = _failure(error, filename)
        output = None
    finally:
        sys.stdout, sys.stderr = saved
    return output, capture.text(), failure


def _json_form(value, depth=0):
    """The value as JSON-ready data, or raises TypeError when it has no JSON form."""
    if depth > 100:
        raise TypeError("too deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        import math

        if math.isfinite(value):
            return value
        raise TypeError("not finite")
    if isinstance(value, (list, tuple)):
        return [_json_form(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("non-string keys")
        return {key: _json_form(item, depth + 1) for key, item in value.items()}
    raise TypeError(type(value).__name__)


def to_json(value):
    """The value as JSON text, or None when it has no natural JSON form."""
    import json

    try:
        return json.dumps(_json_form(value))
    except (TypeError, ValueError, RecursionError):
        return None


_REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
)


def _text(data):
    import base64
    import json

    if isinstance(data, bytes):
        return base64.b64encode(data).decode("ascii")
    if isinstance(data, str):
        return data
    return json.dumps(data)


def rich_display(value):
    """(mime, data) from marimo's `_mime_` or an IPython `_repr_*_`, else None."""
    if value is None or isinstance(value, type):
        return None
    try:
        mime = getattr(value, "_mime_", None)
        if callable(mime):
            kind, data = mime()
            return str(kind), _text(data)
        for method, kind in _REPR_METHODS:
            render = getattr(value, method, None)
            if callable(render):
                data = render()
                if data is not None:
                    return kind, _text(data)
    except Exception:  # noqa: BLE001 - a broken renderer falls back to repr
        return None
    return None


def display(value):
    """A one-line human form: the text of a rich display when short, else repr."""
    try:
        return repr(value)
    except Exception as error:  # noqa: BLE001
        return f"<{type(value).__name__} object (repr failed: {error})>"


def _shared(value):
    """Values handed to cells as they are, never copied: modules, functions, classes."""
    return isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))


def deep_copy(value):
    """An independent copy for `--strict`, or None when the value cannot be copied."""
    if _shared(value):
        return value
    import copy

    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an uncopyable value is refused, not fatal
        return None


_PLAIN = frozenset((type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict))


def _code_key(code):
    """What a code object computes: its bytecode, constants and names."""
    consts = tuple(
        _code_key(const) if isinstance(const, types.CodeType) else const
        for const in code.co_consts
    )
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )


def _global_names(code):
    """Every global name the code and the code nested in it may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _function_key(function):
    namespace = function.__globals__
    read = {
        name: namespace[name]
        for name in sorted(_global_names(function.__code__))
        if name in namespace and name != "__builtins__"
    }
    closure = tuple(cell.cell_contents for cell in function.__closure__ or ())
    return (
        function.__qualname__,
        _code_key(function.__code__),
        function.__defaults__,
        function.__kwdefaults__,
        closure,
        read,
    )


def _class_key(cls):
    members = {}
    for name, member in sorted(vars(cls).items()):
        if name in ("__dict__", "__weakref__", "__module__", "__doc__", "__qualname__"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = (type(member).__name__, member.__func__)
        elif isinstance(member, property):
            member = ("property", member.fget, member.fset, member.fdel)
        members[name] = member
    return (cls.__qualname__, cls.__bases__, members)


def fingerprint(value):
    """Bytes equal exactly when the values are equal, or None."""
    try:
        buffer = io.BytesIO()
        fingerprinter, _ = _picklers()
        fingerprinter(buffer).dump(value)
        return buffer.getvalue()
    except Exception:  # noqa: BLE001 - unpicklable values make the cell run live
        return None


_PICKLERS = None


def _picklers():
    """The fingerprinting and storing picklers, made on first use: pickle
    is imported only when `--cache` asks."""
    global _PICKLERS
    if _PICKLERS is not None:
        return _PICKLERS
    import importlib
    import pickle

    class _Fingerprinter(pickle.Pickler):
        """A pickler whose output is equal exactly when the values are equal.

        It differs from a plain pickle where a plain pickle is not a faithful
        key: a function or class defined in the notebook pickles by its name
        alone, so here it is its code, defaults, closure and the globals its code
        names (recursively); a module is its name and version; a set is its
        items' fingerprints sorted, since its order changes with string hashing
        from one process to the next.
        """

        def __init__(self, file, active=None):
            super().__init__(file, protocol=5)
            # The notebook functions and classes being fingerprinted, by id.
            self._active = set() if active is None else active

        def persistent_id(self, obj):
            kind = type(obj)
            if kind in _PLAIN:
                return None
            if isinstance(obj, types.ModuleType):
                return ("module", obj.__name__, str(getattr(obj, "__version__", "")))
            if kind in (set, frozenset):
                return (kind.__name__, sorted(self._nested(item) for item in obj))
            if isinstance(obj, (types.FunctionType, type)) and getattr(obj, "__module__", None) == "__main__":
                if id(obj) in self._active:
                    # A recursive function or a class naming itself: its name
                    # stands for the code already being fingerprinted.
                    return ("recursive", obj.__qualname__)
                self._active.add(id(obj))
                try:
                    if isinstance(obj, type):
                        return ("class", self._nested(_class_key(obj)))
                    return ("function", self._nested(_function_key(obj)))
                finally:
                    self._active.discard(id(obj))
            return None

        def _nested(self, value):
            """The fingerprint of a part, made now, while `_active` says what
            encloses it."""
            buffer = io.BytesIO()
            _Fingerprinter(buffer, self._active).dump(value)
            return buffer.getvalue()

    class _Storer(pickle.Pickler):
        """A pickler for the cache: a module is stored as its name and imported
        again."""

        def __init__(self, file):
            super().__init__(file, protocol=5)

        def reducer_override(self, obj):
            if isinstance(obj, types.ModuleType):
                return importlib.import_module, (obj.__name__,)
            return NotImplemented

    _PICKLERS = (_Fingerprinter, _Storer)
    return _PICKLERS


def _defined_in_notebook(value):
    return isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == "__main__"


def encode(value):
    """A pickle of the value for the cache, or None when it cannot be stored.

    A function or class the notebook defines is not stored: only running its
    cell defines it in a later run.  Inside another value one pickles by
    name, which resolves on a later run since the cell defining it is an
    ancestor and always runs.
    """
    if _defined_in_notebook(value):
        return None
    try:
        buffer = io.BytesIO()
        _, storer = _picklers()
        storer(buffer).dump(value)
        data = buffer.getvalue()
        import pickle

        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001
        return None


def encode_portable(value):
    """A pickle of the value for another process, or None.

    Unlike `encode`, a function or class the notebook defines travels by
    value (its code, defaults, closure and the globals it reads), with
    cloudpickle, so that a worker without the defining cell can call it.
    Without cloudpickle it falls back to `encode`.
    """
    try:
        import cloudpickle
    except ImportError:
        return encode(value)
    try:
        return cloudpickle.dumps(value, protocol=5)
    except Exception:  # noqa: BLE001 - no wire form: the worker says which name
        return None


def decode(data):
    import pickle

    return pickle.loads(data)
