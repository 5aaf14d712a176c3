import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")

with app.setup:
    # The setup cell's names are globals of every cell.
    import os.path
    import collections as coll


@app.cell
def assignments():
    a = 1
    b, (c, *d) = 2, (3, 4, 5)
    e: int = a + b
    f: "typing.List[int]"
    g = h = c
    a += 1
    return


@app.cell
def augmented(x_in):
    x_in += 1
    counter = 0
    counter += x_in
    return


@app.cell
def attribute_targets():
    obj.attr = 1
    table[key] = 2
    del table[other]
    return


@app.cell
def imports():
    import numpy.linalg
    import json as _json
    from os import path as p, sep
    from . import sibling
    from _private_mod import thing
    import _thread
    return


@app.cell
def functions():
    @decorate(arg)
    def f(x, y=default_y, *args, z=default_z, **kw) -> ret_type:
        inner = x + y + free_in_f
        return inner + z

    async def g(q: q_annotation):
        await q
        return used_before_defined

    used_before_defined = 1
    return


@app.cell
def classes():
    class A(Base, metaclass=Meta):
        attr = outer_value
        other = attr + 1

        def method(self):
            return attr + self.other + method_free

        @property
        def prop(self):
            return self._p

        @prop.setter
        def prop(self, value):
            self._p = value
    return


@app.cell
def loops():
    for i, (j, k) in enumerate(items):
        total = i + j + k
    else:
        finished = True
    while cond():
        pass
    for x in x:
        pass
    return


@app.cell
def withs():
    with open(path_in) as fh, lock:
        content = fh.read()
    with ctx() as (left, right):
        pass
    return


@app.cell
def walrus():
    if (n := len(data)) > 10:
        big = n
    squares = [y for v in values if (y := v * v) > 2]
    nested = [[w := q for q in row] for row in grid]
    return


@app.cell
def comprehensions():
    evens = [i for i in range(n_items) if i % 2 == 0]
    pairs = {k: v for k, v in mapping.items()}
    gen = (z * scale for z in zs)
    sets = {s for s in ss for _t in s}
    shadow = [shadow_name for shadow_name in shadow_name]
    return


@app.cell
def lambdas():
    fn = lambda a, b=lambda_default: a + b + lambda_free
    nullary = lambda: nullary_free
    return


@app.cell
def exceptions():
    try:
        risky()
    except ValueError as err:
        message = str(err)
    except (KeyError, TypeError):
        pass
    else:
        ok = True
    finally:
        cleanup()
    print(err)
    return


@app.cell
def deletes():
    local_thing = 1
    del local_thing
    del shared_thing
    return


@app.cell
def privates():
    _hidden = 1
    _ = 2
    __ = 3
    __dunder = 4
    visible = _hidden + _ + __ + __dunder + _not_defined_here
    def _helper():
        return _hidden
    return


@app.cell
def globals_in_functions():
    def setter():
        global configured
        configured = True

    def reader():
        global only_read
        return only_read
    return


@app.cell
def matching():
    match command:
        case [first, *rest]:
            kind = "seq"
        case {"k": value, **others}:
            kind = "map"
        case Point(x=px, y=0) as point:
            kind = "class"
        case Color.RED | Color.GREEN:
            kind = "enum"
        case _:
            kind = None
    return


@app.cell
def ref_before_def():
    print(later)
    later = 1
    def uses_later_global():
        return later_global
    later_global = 2
    return


@app.cell
def nested_scopes():
    def outer():
        value = 1
        def inner():
            nonlocal value
            value += 1
            return value + outer_free
        return inner
    return


@app.cell
def fstrings():
    greeting = f"hello {who!r} at {when:{width}}"
    plain = "not {a} ref"
    return


@app.cell
def decorator_order():
    @dec_name
    def dec_name():
        pass
    return


@app.cell
def class_scope_quirks():
    class B:
        x = x
        y = [x for _ in range(3)]
    return


@app.cell
def defaults_read_outer():
    def k(a=late_default):
        return a
    late_default = 3
    return


@app.cell
def subscript_and_slices():
    part = seq[lo:hi:step]
    matrix[0][1] += 1
    return


@app.cell
def starred_and_calls():
    result = func(*args_in, **kwargs_in, key=kw_value)
    first, *others = result
    return


@app.cell
def _():
    # An unnamed cell with only a comment and an expression.
    anonymous_ref
    return


@app.cell
async def awaiting():
    data_out = await fetch(url)
    async for item in stream:
        pass
    async with session as s:
        pass
    return


@app.function
def standalone(x, y=1):
    """A top-level function cell."""
    return x + y + coll.Counter()


@app.class_definition
class Standalone:
    field = standalone(1)


@app.cell(hide_code=True)
def hidden(a, b, c):
    # The signature is not trusted: refs come from the body.
    summary = a + 1
    return (summary,)


@app.cell
def builtins_and_dunders():
    n = len(range(10))
    me = __file__
    name = __name__
    return


@app.cell
def conditional_defs():
    if flag:
        maybe = 1
    else:
        import math as maybe_math
    return


@app.cell
def annotations_only():
    declared: SomeType
    def annotated(p: ParamType = param_default) -> ReturnType:
        return p
    return


@app.cell
def chained_comparisons():
    inside = low < value_in < high
    membership = needle in haystack and needle not in blocked
    return


@app.cell
def dict_literals():
    d = {key_a: val_a, **extra, "lit": val_b}
    return


@app.cell
def ternary_and_bool():
    picked = choice_a if predicate else choice_b
    either = left_in or right_in
    return


@app.cell
def assert_and_raise():
    assert invariant, explanation
    raise SomeError("x") from cause
    return


if __name__ == "__main__":
    app.run()
