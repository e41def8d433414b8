"""The summary csv_analyze answers: each column's type and statistics, optionally per group."""
import csv
import io
import math
import re
from collections import Counter
from datetime import datetime

from ..errors import ValidationFailed

MAX_ROWS = 100_000
# A one-row CSV of a million empty columns is 1 MB of text but a 72 MB summary.
MAX_COLUMNS = 1_000
MAX_CELLS = 500_000
MAX_GROUPS = 100
TOP_VALUES = 5
SNIFF_SAMPLE_CHARS = 4096
SNIFFED_DELIMITERS = ",;\t|"
NULLS = {"", "na", "n/a", "null", "none", "nan"}
BOOLEANS = {"true", "false"}
INTEGER = re.compile(r"[-+]?\d{1,18}")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def summarize(text, delimiter=None, group_by=None, max_rows=MAX_ROWS):
    if not text.strip():
        raise ValidationFailed(details={"csv": ["the CSV is empty"]})
    delimiter = delimiter or sniffed_delimiter(text)
    header, rows, truncated = read(text, delimiter, max_rows)
    cells_by_column = list(zip(*rows)) if rows else [() for _ in header]
    columns = [column_summary(name, cells) for name, cells in zip(header, cells_by_column)]
    summary = {"rows": len(rows), "truncated": truncated, "delimiter": delimiter,
               "columns": [column for column, _values in columns]}
    if group_by is not None:
        if group_by not in header:
            raise ValidationFailed(details={"group_by": [
                f"no column '{group_by}'; columns: {', '.join(header)}"]})
        keys = cells_by_column[header.index(group_by)]
        numeric = [(column["name"], values) for column, values in columns
                   if column["type"] in ("integer", "number") and column["name"] != group_by]
        summary.update(grouped(keys, numeric))
    return summary


def sniffed_delimiter(text):
    sample = text[:SNIFF_SAMPLE_CHARS]
    if len(text) > SNIFF_SAMPLE_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFFED_DELIMITERS).delimiter
    except csv.Error:
        return ","


def read(text, delimiter, max_rows):
    """(header, rows of stripped cells with None for empty/NA, truncated). Short rows are
    padded with None, cells beyond the header ignored, blank lines skipped; rows past
    MAX_CELLS cells are left out like those past max_rows."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header, rows, truncated = None, [], False
    try:
        for record in reader:
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            if header is None:
                header = column_names(cells)
                if len(header) > MAX_COLUMNS:
                    raise ValidationFailed(details={"csv": [
                        f"the header has {len(header):,} columns; at most {MAX_COLUMNS:,} "
                        "can be analysed"]})
                max_rows = min(max_rows, MAX_CELLS // len(header))
                continue
            if len(rows) == max_rows:
                truncated = True
                break
            cells = (cells + [""] * len(header))[:len(header)]
            rows.append(tuple(None if cell.lower() in NULLS else cell for cell in cells))
    except csv.Error as error:
        raise ValidationFailed(details={"csv": [
            f"invalid CSV at line {reader.line_num}: {error}"]}) from None
    if header is None:
        raise ValidationFailed(details={"csv": ["the CSV has no header row"]})
    return header, rows, truncated


def column_names(cells):
    """Blank names become column_<n>; repeated names get _2, _3 ..."""
    names, seen = [], Counter()
    for position, cell in enumerate(cells, start=1):
        name = cell or f"column_{position}"
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def column_summary(name, cells):
    """(the column's summary, its parsed values with None kept, for groups)."""
    present = [cell for cell in cells if cell is not None]
    kind, values = typed(present)
    summary = {"name": name, "type": kind, "non_null": len(present),
               "unique": len(set(present))}
    if kind in ("integer", "number"):
        summary.update(statistics(values))
    elif kind == "date":
        earliest = min(range(len(values)), key=values.__getitem__)
        latest = max(range(len(values)), key=values.__getitem__)
        summary.update({"min": present[earliest], "max": present[latest]})
    else:
        summary["top"] = [{"value": value, "count": count}
                          for value, count in Counter(present).most_common(TOP_VALUES)]
    parse = PARSERS.get(kind)
    return summary, [None if cell is None else parse(cell) for cell in cells] if parse else []


def typed(present):
    """The narrowest type every present cell fits, and the parsed values."""
    if not present:
        return "text", []
    if all(INTEGER.fullmatch(cell) for cell in present):
        return "integer", [int(cell) for cell in present]
    if all(NUMBER.fullmatch(cell) for cell in present):
        values = [float(cell) for cell in present]
        if all(math.isfinite(value) for value in values):
            return "number", values
    if all(cell.lower() in BOOLEANS for cell in present):
        return "boolean", [cell.lower() == "true" for cell in present]
    moments = dates(present)
    if moments is not None:
        return "date", moments
    return "text", present


def dates(present):
    """ISO 8601 dates or date-times, all with or all without a time zone (else None)."""
    try:
        moments = [datetime.fromisoformat(cell) for cell in present]
    except ValueError:
        return None
    if len({moment.tzinfo is None for moment in moments}) > 1:
        return None
    return moments


def statistics(values):
    """A sum beyond the range of a double is null (JSON has no Infinity); the mean, a sum of
    fractions, still fits."""
    if isinstance(values[0], int):
        total = sum(values)
        mean = total / len(values)
    else:
        try:
            total = math.fsum(values)
            mean = total / len(values)
        except OverflowError:
            total, mean = None, math.fsum(value / len(values) for value in values)
    return {"count": len(values), "mean": mean, "min": min(values), "max": max(values),
            "sum": total}


PARSERS = {"integer": int, "number": float}


def grouped(keys, numeric_columns):
    """Rows and numeric statistics per value of the group column (empty string for a missing
    value); the MAX_GROUPS largest groups when there are more."""
    members = {}
    for row, key in enumerate(keys):
        members.setdefault("" if key is None else key, []).append(row)
    largest = sorted(members, key=lambda key: len(members[key]), reverse=True)[:MAX_GROUPS]
    groups = {}
    for key in largest:
        rows = members[key]
        groups[key] = {"rows": len(rows)}
        for name, values in numeric_columns:
            present = [values[row] for row in rows if values[row] is not None]
            if present:
                groups[key][name] = statistics(present)
    return {"groups": groups, "group_count": len(members),
            "groups_truncated": len(members) > MAX_GROUPS}
