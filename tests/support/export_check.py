"""Reads a `mediation export` folder back with DuckDB, an independent
reader, and prints what the suite's export test checks, as JSON.

usage: python3 export_check.py DIR FORMAT NAME...
"""
import json
import pathlib
import sys

import duckdb

out = pathlib.Path(sys.argv[1])
fmt = sys.argv[2]
names = sys.argv[3:]
con = duckdb.connect()
glob = str(out / "events" / "**" / f"*.{fmt}")
if fmt == "parquet":
    events = f"read_parquet('{glob}', hive_partitioning = true)"
else:
    events = f"read_json_auto('{glob}', hive_partitioning = true, format = 'newline_delimited')"
con.execute(f"CREATE VIEW events AS SELECT * FROM {events}")

counts = con.execute(
    "SELECT event_type, CAST(month AS VARCHAR), count(*) FROM events GROUP BY ALL ORDER BY ALL"
).fetchall()
total, distinct = con.execute("SELECT count(*), count(DISTINCT position) FROM events").fetchone()
# The partition a row sits in is the month it happened in.
misplaced = con.execute(
    "SELECT count(*) FROM events "
    "WHERE CAST(month AS VARCHAR) <> strftime(CAST(occurred_time AS TIMESTAMPTZ) AT TIME ZONE 'UTC', '%Y-%m')"
).fetchone()[0]
result = {
    "counts": [[t, m, n] for t, m, n in counts],
    "total": total,
    "distinct_positions": distinct,
    "misplaced": misplaced,
}

cases = out / "read_models" / "cases.parquet"
if cases.exists():
    result["joined_cases"] = con.execute(
        "SELECT count(DISTINCT (e.case_type, e.case_id)) FROM events e "
        f"JOIN read_parquet('{cases}') c ON c.aggregate_type = e.case_type AND c.case_id = e.case_id"
    ).fetchone()[0]
    result["cases"] = con.execute(f"SELECT count(*) FROM read_parquet('{cases}')").fetchone()[0]

# Every value of every file, as text, searched for the names.
found = set()
for path in sorted(out.rglob("*")):
    if not path.is_file():
        continue
    if path.suffix == ".parquet":
        rows = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
        text = "\n".join(repr(r) for r in rows)
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    found.update(n for n in names if n in text)
result["found"] = sorted(found)
print(json.dumps(result))
