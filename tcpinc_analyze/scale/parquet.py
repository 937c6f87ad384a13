"""``analyze --format parquet -o FILE``: one row per connection, for DuckDB and pandas.

Nested objects are flattened to dotted column names, the same names as the JSON keys
(``eno.status``, ``tcpcrypt.decrypted.ab.ok``); lists stay lists (``findings`` is a list
of structs, ``tcpcrypt.init1.sym_ciphers`` a list of integers). Column types are
inferred over *all* rows first (two passes over the spooled JSON Lines, so memory stays
one batch), a column whose values disagree in type is stored as JSON text. With several
captures the first column is ``capture``. pyarrow is an optional extra
(``pip install 'tcpinc-analyze[parquet]'``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

BATCH = 10_000


class ParquetError(Exception):
    """Cannot write the Parquet file (exit code 2)."""


def _pyarrow():  # noqa: ANN202 - the module
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ParquetError("--format parquet needs pyarrow: pip install "
                           "'tcpinc-analyze[parquet]'") from exc
    return pa, pq


def check_output(output: str | None, inputs: list[str]) -> None:
    """Refuse before any work: no -o, pyarrow missing, or -o naming an input."""
    if not output:
        raise ParquetError("--format parquet writes a file: give -o FILE")
    _pyarrow()
    target = Path(output)
    for path in inputs:
        try:
            if target.exists() and Path(path).exists() and target.samefile(path):
                raise ParquetError(f"-o {output} is one of the captures: refusing to "
                                   "overwrite it")
        except OSError:
            continue


def flatten(obj: dict, prefix: str = "", out: dict | None = None) -> dict:
    """Nested dicts to dotted keys; everything else (lists included) kept as is."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, name + ".", out)
        else:
            out[name] = value if not isinstance(value, dict) else None
    return out


def _rows(sources: list[tuple[str | None, Path]]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for capture, path in sources:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                row = flatten(json.loads(line))
                if capture is not None:
                    row = {"capture": capture, **row}
                batch.append(row)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _schema(sources: list[tuple[str | None, Path]]):  # noqa: ANN202 - pyarrow schema
    """Pass 1: every column's type, unified over all rows; conflicting ones as JSON."""
    pa, _pq = _pyarrow()
    order: dict[str, None] = {}
    types: dict[str, object] = {}
    as_json: set[str] = set()
    for batch in _rows(sources):
        for row in batch:
            for key in row:
                order.setdefault(key)
        for key in order:
            if key in as_json:
                continue
            try:
                kind = pa.array([r.get(key) for r in batch]).type
                if key in types:
                    kind = pa.unify_schemas([pa.schema([(key, types[key])]),
                                             pa.schema([(key, kind)])],
                                            promote_options="permissive").field(key).type
                types[key] = kind
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                as_json.add(key)
    # a parent key whose rows are all null while its children exist (tcpcrypt: null for
    # plain connections) adds nothing: its children are null in those rows
    names = [k for k in order
             if not (str(types.get(k)) == "null" and any(o.startswith(k + ".") for o in order))]
    fields = [(k, pa.string() if k in as_json else types.get(k, pa.null())) for k in names]
    return pa.schema(fields), as_json


def write_parquet(output: str, sources: list[tuple[str | None, Path]],
                  private: bool = False) -> int:
    """Pass 2: write row groups to a temporary file beside ``output``, then rename it.
    Returns the number of rows."""
    pa, pq = _pyarrow()
    schema, as_json = _schema(sources)
    target = Path(output)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    os.close(fd)
    rows = 0
    try:
        if not private:
            os.chmod(tmp, 0o666 & ~_umask())
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in _rows(sources):
                columns = {}
                for name in schema.names:
                    values = [r.get(name) for r in batch]
                    if name in as_json:
                        values = [None if v is None else json.dumps(v) for v in values]
                    columns[name] = pa.array(values, type=schema.field(name).type)
                writer.write_table(pa.table(columns, schema=schema))
                rows += len(batch)
            if not rows:
                writer.write_table(schema.empty_table())
        os.replace(tmp, target)
    except (OSError, pa.ArrowException) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ParquetError(f"{output}: cannot write: {exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
