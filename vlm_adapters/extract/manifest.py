"""Manifests: the samples of an extraction, read one row at a time (never the whole dataset at once).

A row is one sample, a dict with:

* ``id``: unique name of the sample (string or int);
* ``image``: a path (relative paths are read from the manifest's folder) or, from a ``datasets``
  dataset or Python, a decoded image;
* ``text``: the caption or referring expression, teacher-forced as the answer;
* ``phrases`` (optional, default: the whole text): what to ground, as strings of the text,
  character spans ``[start, end]`` of the text, or one object id per token of the text (-1 = none);
* ``prompt`` (optional): the user turn before the answer;
* ``image_id`` (optional): which rows show the same image, when ``image`` is not a path.

From Python, rows may also be research-format samples that ``adapter.normalize`` accepts
(``input_ids``, ``mask_ids``, ``pixel_values`` ...; ``id`` optional).

Files: JSONL (``.jsonl``), CSV (``.csv``; ``phrases`` as a JSON list) and Parquet (``.parquet``,
needs ``pyarrow``: ``pip install 'vlm-adapters[parquet]'``); a folder written by
``datasets.Dataset.save_to_disk`` (``pip install 'vlm-adapters[datasets]'``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ManifestError, SampleError

REQUIRED = ("id", "image", "text")
"""Columns every manifest file has (``phrases``, ``prompt`` and ``image_id`` are optional)."""
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Row:
    """One manifest row: its position in the manifest, and its fields (or why it could not be read)."""

    position: int
    data: Mapping[str, Any]
    error: SampleError | None = None

    @property
    def sample_id(self) -> str:
        value = self.data.get("id")
        return f"#{self.position}" if value is None or value == "" else str(value)

    @property
    def share_key(self) -> str:
        """Rows with the same key in a row show the same image and stay together (one rank, one prefix)."""
        for key in ("image_id", "image"):
            value = self.data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return f"{key}:{value}"
        return f"#{self.position}"


class Manifest:
    """Rows from a file, a dataset folder or a Python iterable, in order, read lazily."""

    def __init__(self, rows: Iterable[Any], description: str, base_dir: Path | None = None) -> None:
        self._rows = rows
        self.description = description
        self.base_dir = base_dir

    def __iter__(self) -> Iterator[Row]:
        for position, data in enumerate(self._rows):
            if isinstance(data, Row):
                yield Row(position, data.data, data.error)
            elif isinstance(data, Mapping):
                yield Row(position, data)
            else:
                error = SampleError(
                    "manifest row is not a dict",
                    found=type(data).__name__,
                    expected="a mapping with id, image, text (and phrases)",
                    fix="give one dict per sample",
                )
                yield Row(position, {}, error)

    def __len__(self) -> int:
        return len(self._rows)  # type: ignore[arg-type]

    @property
    def sized(self) -> bool:
        return hasattr(self._rows, "__len__")


def open_manifest(path: str | Path) -> Manifest:
    """A manifest file, checked (exists, known format, needed columns) without reading it all."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            "manifest file not found",
            found=f"{str(path)!r} ({'a folder' if path.is_dir() else 'no such file'})",
            expected="a .jsonl, .csv or .parquet file with one row per sample",
            fix="check the path given to --manifest (a datasets folder goes to --dataset)",
        )
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(
            "unknown manifest format",
            found=f"{path.name!r}",
            expected=f"a file ending in one of {sorted(FORMATS)}",
            fix="write the manifest as JSON lines, CSV or Parquet",
        )
    readers: dict[str, type[_JsonLines | _CsvRows | _ParquetRows]] = {
        "jsonl": _JsonLines,
        "csv": _CsvRows,
        "parquet": _ParquetRows,
    }
    reader = readers[kind](path)
    return Manifest(reader, f"{kind} manifest {path.resolve()}", path.parent.resolve())


def open_dataset_folder(path: str | Path, split: str | None = None) -> Manifest:
    """A ``datasets`` dataset saved with ``save_to_disk`` (memory-mapped, so rows are read lazily)."""
    path = Path(path)
    try:
        import datasets
    except ImportError:
        raise ManifestError(
            "--dataset needs the datasets library",
            found="datasets is not installed",
            expected="the optional extra vlm-adapters[datasets]",
            fix="pip install 'vlm-adapters[datasets]'",
        ) from None
    if not path.is_dir():
        raise ManifestError(
            "dataset folder not found",
            found=str(path),
            expected="a folder written by datasets' save_to_disk",
            fix="check the path given to --dataset",
        )
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise ManifestError(
            "not a saved datasets dataset",
            found=f"{path}: {str(exc).splitlines()[0][:160]}",
            expected="a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk",
            fix="save the dataset with save_to_disk, or export it to JSONL / Parquet and use --manifest",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ManifestError(
                "choose a split of the dataset",
                found=f"--split {split!r}",
                expected=f"one of {sorted(loaded)}",
                fix="pass --split NAME",
            )
        loaded = loaded[split]
    _check_columns(list(loaded.column_names), f"dataset {path}")
    rows: Any = loaded
    return Manifest(rows, f"dataset {path.resolve()}" + (f" [{split}]" if split else ""), path.resolve())


def as_manifest(source: Any, base_dir: str | Path | None = None) -> Manifest:
    """A manifest from a file path, a :class:`Manifest`, or any iterable of sample dicts."""
    if isinstance(source, Manifest):
        return source
    if isinstance(source, (str, Path)):
        return open_manifest(source)
    if isinstance(source, Mapping) or not isinstance(source, Iterable):
        raise ManifestError(
            "samples are not an iterable of dicts",
            found=type(source).__name__,
            expected="a manifest path, a datasets dataset, or an iterable of sample dicts",
            fix="pass a list (or generator) of dicts with id, image, text and phrases",
        )
    return Manifest(source, f"{type(source).__name__} of samples", Path(base_dir) if base_dir else None)


def _check_columns(columns: list[str], where: str) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ManifestError(
            f"{where} lacks columns",
            found=f"columns {columns}",
            expected=f"at least {list(REQUIRED)} (phrases, prompt and image_id optional)",
            fix=f"add the columns {missing}",
        )


class _JsonLines:
    """One JSON object per line; blank lines are skipped, a broken line is a bad sample."""

    def __init__(self, path: Path) -> None:
        self.path = path
        first = next((line for line in self._lines() if line.strip()), None)
        if first is None:
            raise ManifestError(
                "manifest is empty", found=str(path), expected="one JSON object per line", fix="add samples"
            )
        try:
            row = json.loads(first)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                "manifest is not JSON lines",
                found=f"first line: {first[:80]!r} ({exc.msg})",
                expected="one JSON object per line",
                fix="write one sample per line as a JSON object",
            ) from None
        _check_columns(list(row) if isinstance(row, dict) else [], f"manifest {path.name} (first row)")

    def _lines(self) -> Iterator[str]:
        with open(self.path, encoding="utf-8") as f:
            yield from f

    def __iter__(self) -> Iterator[Mapping[str, Any] | Row]:
        for line in self._lines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                error = SampleError(
                    "manifest line is not JSON",
                    found=f"{line.strip()[:80]!r} ({exc.msg})",
                    expected="one JSON object per line",
                    fix="repair or remove the line in the manifest",
                )
                yield Row(-1, {}, error)
                continue
            yield row

    def __len__(self) -> int:
        return sum(1 for line in self._lines() if line.strip())


class _CsvRows:
    """CSV with a header; ``phrases`` holds a JSON list (strings, spans or per-token ids)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
        _check_columns(header or [], f"manifest {path.name}")

    def __iter__(self) -> Iterator[Mapping[str, Any] | Row]:
        with open(self.path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                phrases = row.get("phrases")
                if phrases:
                    try:
                        row["phrases"] = json.loads(phrases)  # type: ignore[assignment]
                    except json.JSONDecodeError:
                        error = SampleError(
                            "CSV phrases are not a JSON list",
                            found=repr(phrases[:80]),
                            expected='a JSON list such as ["red circle", "blue square"] or [[4, 14]]',
                            fix="write the phrases column as JSON (quoted for CSV)",
                        )
                        yield Row(-1, row, error)
                        continue
                yield row

    def __len__(self) -> int:
        with open(self.path, newline="", encoding="utf-8") as f:
            return sum(1 for _ in csv.DictReader(f))


class _ParquetRows:
    """Parquet read a record batch at a time (needs pyarrow)."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ManifestError(
                "Parquet manifests need pyarrow",
                found="pyarrow is not installed",
                expected="the optional extra vlm-adapters[parquet]",
                fix="pip install 'vlm-adapters[parquet]', or write the manifest as JSONL",
            ) from None
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid for any unreadable file
            raise ManifestError(
                "manifest is not a Parquet file",
                found=f"{path.name}: {str(exc)[:120]}",
                expected="a Parquet file with one row per sample",
                fix="write the manifest with pandas.DataFrame.to_parquet or pyarrow",
            ) from None
        _check_columns(list(self.file.schema_arrow.names), f"manifest {path.name}")

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for batch in self.file.iter_batches(batch_size=256):
            yield from batch.to_pylist()

    def __len__(self) -> int:
        return int(self.file.metadata.num_rows)
