"""The one exception type for mistakes a person can make; the CLI turns it into one stderr line."""


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and what to do."""
