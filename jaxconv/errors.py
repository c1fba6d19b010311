"""The error type of problems a user can fix: a bad config, missing data, a corrupt or foreign
file, a workdir in use. The message names the problem and the fix; launch.py prints it in one
line. Any other exception is a bug and keeps its traceback.

Each subclass is also the built-in exception it refines, so `except ValueError` still works
around the library.
"""


class JaxconvError(Exception):
    """A problem the user can fix; the message says how."""


class ConfigError(JaxconvError, ValueError):
    """A config file, key, value or variant that cannot be used."""


class DataError(JaxconvError, ValueError):
    """Data that is missing, unreadable or does not fit the run."""


class MissingFileError(JaxconvError, FileNotFoundError):
    """A file or folder the command needs does not exist."""


class WorkdirError(JaxconvError, RuntimeError):
    """A workdir that cannot be used as it is: in use, unwritable, or holding another run."""


class CheckpointError(JaxconvError, RuntimeError):
    """A checkpoint that cannot be written or read; complete ones are kept."""


class NonFiniteError(JaxconvError, FloatingPointError):
    """A non-finite loss or gradient stopped the run; the last good checkpoint is kept."""


class StorageError(JaxconvError, OSError):
    """A file of the run could not be written (a full disk, say); complete files are kept."""


class DependencyError(JaxconvError, ImportError):
    """An optional package the command needs is not installed."""


class UnreachableError(JaxconvError, ConnectionError):
    """A download the command needs cannot reach its server."""
