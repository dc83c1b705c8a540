"""Sub-commands that are only commands (their `Config` and `run`); nothing in the library imports them."""
