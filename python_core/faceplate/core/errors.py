"""One error hierarchy for the whole package.

Library code raises these and never exits; only ``faceplate.cli`` turns them into exit codes.
Every error that concerns a file names it: ``str(err)`` reads ``"<path>: <problem>"``.
"""

from __future__ import annotations

from os import PathLike


class FaceplateError(Exception):
    """Base of every error Faceplate raises on purpose.

    Args:
        problem: What went wrong, in words a user can act on.
        path: The file or folder concerned, when there is one.
    """

    exit_code = 2

    def __init__(self, problem: str, path: str | PathLike[str] | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


class ConfigError(FaceplateError):
    """An option or configuration value is out of range or unknown."""


class InputError(FaceplateError):
    """An input file or folder cannot be used (missing, unreadable, corrupt, empty)."""


class UnsupportedFormatError(InputError):
    """An input file exists but its format is not one Faceplate reads."""


class OutputError(FaceplateError):
    """An output location cannot be written (read-only, full, not a folder)."""


class StoreError(FaceplateError):
    """An alignments store is unusable (corrupt, wrong kind, inconsistent)."""


class StoreConflictError(StoreError):
    """A store changed under a writer that read it earlier (another program wrote the same faces).

    Nothing was written; reload and redo the change.
    """


class SchemaVersionError(StoreError):
    """A store or record was written by a newer Faceplate than this one."""


class RecordError(FaceplateError):
    """A face record (store row or PNG chunk) fails validation: tampered or corrupt."""


class ModelError(FaceplateError):
    """A bundled face model is missing or fails to load."""


class FetchError(FaceplateError):
    """Sample media could not be fetched or failed its checksum."""


class NoFacesError(FaceplateError):
    """A run found no face anywhere in its input."""

    exit_code = 1


class TrainingError(FaceplateError):
    """Training cannot go on (e.g. the loss became NaN/Inf); the last good checkpoint is kept."""
