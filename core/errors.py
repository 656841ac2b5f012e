"""Domain errors. Each message names the file, line, setting or spec the user should fix."""


class LabError(Exception):
    """Base of every error the engine raises on purpose (shown to users without a traceback)."""


class DatasetError(LabError):
    """A dataset cannot be loaded: missing file or column, bad spec, empty after filters, ..."""


class EncoderUnavailable(LabError):
    """An encoder cannot be built: unknown spec, missing weights offline, missing package."""


class TechniqueUnavailable(LabError):
    """A technique cannot run with the given encoders or data (e.g. cross-modal without CLIP)."""


class CacheError(LabError):
    """The embedding cache cannot be used: incompatible schema, locked by another writer, ..."""
