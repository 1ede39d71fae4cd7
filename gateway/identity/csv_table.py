"""Reading an MIS-style CSV export: a header row names the columns, unknown columns are ignored, and every
problem is reported with its line number before anything is imported."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class CsvImportError(Exception):
    """The file cannot be imported; `problems` names every bad line. Nothing was changed."""

    def __init__(self, path: str, problems: list[RowProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems[:5]) + (" …" if len(problems) > 5 else ""))


def header_key(text: str) -> str:
    """'Date of Birth', 'date_of_birth' and 'DateOfBirth' all become 'dateofbirth'."""
    return re.sub(r"[^a-z0-9]", "", text.strip().lower())


def read_rows(
    path: Path, aliases: Mapping[str, str], required: set[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {field: stripped value}) for each non-blank row.

    `aliases` maps header_key(column heading) to a field name. Raises CsvImportError for an undecodable file,
    a missing header or a missing required column.
    """
    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raw = path.read_bytes()
        line = raw[: e.start].count(b"\n") + 1
        raise CsvImportError(
            name, [RowProblem(line, "the file is not UTF-8 text; save it from the MIS or a spreadsheet as 'CSV UTF-8'")]
        ) from None
    except OSError as e:
        raise CsvImportError(name, [RowProblem(0, f"cannot read the file: {e.strerror}")]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise CsvImportError(name, [RowProblem(reader.line_num, f"not valid CSV: {e}")]) from None
    if not header or not any(h.strip() for h in header):
        raise CsvImportError(name, [RowProblem(1, "the first line must be a header row naming the columns")])
    columns: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i, heading in enumerate(header):
        field = aliases.get(header_key(heading))
        if field is None:
            continue
        if field in seen:
            raise CsvImportError(
                name, [RowProblem(1, f"columns {seen[field] + 1} and {i + 1} both give the {field.replace('_', ' ')}")]
            )
        seen[field] = i
        columns[i] = field
    missing = sorted(required - set(seen))
    if missing:
        raise CsvImportError(
            name,
            [RowProblem(1, "missing column(s): " + ", ".join(m.replace("_", " ") for m in missing)
                        + f" (found: {', '.join(h.strip() for h in header)})")],
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise CsvImportError(name, [RowProblem(reader.line_num, f"not valid CSV: {e}")]) from None
        if not any(cell.strip() for cell in row):
            continue
        values = {field: (row[i].strip() if i < len(row) else "") for i, field in columns.items()}
        yield reader.line_num, values
