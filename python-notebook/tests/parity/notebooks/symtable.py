import marimo

__generated_with = "0.25.2"
app = marimo.App()


@app.cell
def parameter_and_global():
    def f(x):
        global x
    return


@app.cell
def used_before_global():
    def f():
        print(x)
        global x
    return


@app.cell
def assigned_before_global():
    def f():
        x = 1
        global x
    return


@app.cell
def imported_before_global():
    def f():
        import os
        global os
    return


@app.cell
def assigned_before_global_at_the_top():
    x_top = 1
    global x_top
    return


@app.cell
def no_binding_for_nonlocal():
    def f():
        nonlocal zz
    return


@app.cell
def a_top_level_name_is_no_binding():
    zz_top = 1

    def f():
        nonlocal zz_top
    return


@app.cell
def a_class_name_is_no_binding():
    def f():
        class C:
            y = 1

            def g():
                nonlocal y
    return


@app.cell
def bound_later_in_the_function():
    def f():
        def g():
            nonlocal x

        x = 1
    return


@app.cell
def nonlocal_and_global():
    def f():
        x = 1

        def g():
            global x
            nonlocal x
    return


@app.cell
def annotated_then_global():
    def f():
        x: int = 1
        global x
    return


@app.cell
def global_then_annotated():
    def f():
        global x
        x: int = 1
    return


@app.cell
def parameter_and_nonlocal():
    def f(x):
        def g(x):
            nonlocal x
    return


@app.cell
def a_lambda_reads_in_its_own_scope():
    def f():
        g = lambda: x
        global x
    return


@app.cell
def symbol_table_before_compiler():
    def f():
        x = 1
        global x

    return 1
    return


@app.cell
def walrus_in_a_comprehension():
    def f():
        [y := 1 for _ in ()]
        global y
    return


@app.cell
def comprehension_iterable_outside():
    def f():
        [y for y in x]
        global x
    return


@app.cell
def star_import_in_a_function():
    def f():
        from os import *
    return


@app.cell
def match_capture_before_global():
    def f(v):
        match v:
            case [a]:
                pass
        global a
    return


@app.cell
def global_first_is_fine():
    def f():
        global fine_global
        fine_global = 1
    return


@app.cell
def duplicate_parameter():
    def f(a, a):
        pass
    return


@app.cell
def await_in_a_plain_function():
    def f():
        await x
    return


@app.cell
def await_in_a_lambda():
    async def f():
        lambda: (await x)
    return


@app.cell
async def await_at_the_top_is_fine():
    import asyncio

    await asyncio.sleep(0)
    return


@app.cell
def break_outside_a_loop():
    for i in range(3):
        def f():
            break
    return


@app.cell
def continue_in_a_loops_else():
    for i in range(3):
        pass
    else:
        continue
    return


@app.cell
def break_in_finally_is_fine():
    while True:
        try:
            pass
        finally:
            break
    return


@app.cell
def awaiting_comprehension_in_a_function():
    def f(z):
        return [await y for y in z]
    return


@app.cell
def awaiting_generator_in_a_function_is_fine():
    def f(z):
        return (await y for y in z)
    return


@app.cell
def awaited_first_iterable():
    def f():
        return [y for y in await z]
    return


if __name__ == "__main__":
    app.run()
