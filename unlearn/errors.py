"""Errors a user can cause. They carry one clear paragraph; the runner prints it and exits non-zero."""


class UserError(Exception):
    """A mistake in configuration or input data, reported to the user without a traceback."""


class ConfigError(UserError):
    """Unknown names, incompatible axes, values out of range."""


class DataError(UserError):
    """Missing, corrupt or malformed data files."""
