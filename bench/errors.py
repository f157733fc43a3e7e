"""Error types. Every message is one line that names the thing at fault (file, field, key)."""


class GenbenchError(Exception):
    """Base class: errors a user can fix by changing their input."""


class ConfigError(GenbenchError, ValueError):
    """Bad configuration: unknown key, wrong type, out-of-range value, unknown name."""


class DataError(GenbenchError, FileNotFoundError):
    """A dataset cannot be loaded (missing root, wrong on-disk format)."""


class ConfigErrors(ConfigError):
    """Every problem found in one input, one line each (str(): the lines joined by newlines)."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class StorageError(GenbenchError, OSError):
    """The results folder cannot be used: not a folder, not writable, full, or in use by another run."""


class FieldProblems(ConfigError):
    """Every problem of one typed table that a `problems()` method found, each with its field."""

    def __init__(self, owner: str, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{owner}: {key} {msg}" for key, msg in problems))
        self.problems = list(problems)
