# A realistic notebook with only the standard library: a small shop's sales
# log, parsed, cleaned and summarised. Run it with `cellrun run
# examples/inventory.py` (or `python examples/inventory.py`).

import marimo

__generated_with = "0.25.2"
app = marimo.App()


with app.setup:
    import csv
    import io
    import statistics
    from collections import Counter, defaultdict
    from datetime import date


@app.cell
def raw_log():
    raw_log = """date,item,quantity,unit_price
2026-03-02,notebook,3,4.50
2026-03-02,pen,10,0.80
2026-03-03,notebook,1,4.50
2026-03-03,stapler,1,12.00
2026-03-04,pen,-2,0.80
2026-03-05,notebook,5,4.25
2026-03-05,ink,2,7.10
2026-03-06,pen,4,0.80
2026-03-06,stapler,not-a-number,12.00
2026-03-07,ink,1,7.10
"""
    return (raw_log,)


@app.cell
def parsed(raw_log):
    # Rows that do not parse are kept aside, with the reason; loop variables
    # start with `_` so they stay private to the cell.
    sales = []
    rejected = []
    for _row in csv.DictReader(io.StringIO(raw_log)):
        try:
            _quantity = int(_row["quantity"])
            _price = float(_row["unit_price"])
        except ValueError as error:
            rejected.append({"row": _row, "reason": str(error)})
            continue
        sales.append({
            "day": date.fromisoformat(_row["date"]),
            "item": _row["item"],
            "quantity": _quantity,
            "price": _price,
        })
    len(sales), len(rejected)
    return rejected, sales


@app.cell
def cleaned(sales):
    # Returns (negative quantities) are counted separately from sales.
    returns = [sale for sale in sales if sale["quantity"] < 0]
    sold = [sale for sale in sales if sale["quantity"] > 0]
    return returns, sold


@app.cell
def revenue(sold):
    revenue_by_item = defaultdict(float)
    for _sale in sold:
        revenue_by_item[_sale["item"]] += _sale["quantity"] * _sale["price"]
    revenue_by_item = {item: round(total, 2) for item, total in sorted(revenue_by_item.items())}
    revenue_by_item
    return (revenue_by_item,)


@app.cell
def daily(sold):
    daily_units = Counter()
    for _sale in sold:
        daily_units[_sale["day"].isoformat()] += _sale["quantity"]
    busiest_day, busiest_units = daily_units.most_common(1)[0]
    {"busiest_day": busiest_day, "units": busiest_units, "mean_units": statistics.mean(daily_units.values())}
    return (daily_units,)


@app.cell
def summary(daily_units, rejected, returns, revenue_by_item):
    total = round(sum(revenue_by_item.values()), 2)
    print(f"{len(daily_units)} trading days, revenue {total:.2f}")
    print(f"{len(returns)} return(s), {len(rejected)} rejected row(s)")
    {"revenue": total, "best_item": max(revenue_by_item, key=revenue_by_item.get)}
    return


if __name__ == "__main__":
    app.run()
