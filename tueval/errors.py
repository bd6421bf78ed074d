"""Error types that name the file, the row and the field at fault."""
from __future__ import annotations


class TuevalError(Exception):
    """Base class of every error tueval raises on purpose."""


class DataError(TuevalError, ValueError):
    """Bad input data: names the file, the row and the field, and what was expected."""

    def __init__(self, file: str | None, row: int | None, field: str | None, message: str):
        self.file, self.row, self.field, self.message = file, row, field, message
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class WriteError(TuevalError):
    """A file or folder that cannot be written: names the path and the operating system's reason."""

    def __init__(self, path: str | object, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot write {path}: {reason}")


class ModelLoadError(TuevalError, ValueError):
    """A model folder or file that cannot be loaded (missing tokenizer, weights, config)."""


class SpecError(TuevalError, ValueError):
    """An invalid run spec, unknown registry name or out-of-range setting."""


class MissingRunsError(TuevalError):
    """An analysis needs runs that are not in the store; lists the specs and the command that computes them."""
