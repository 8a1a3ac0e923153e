"""The bisection's one error for the user: input it cannot start from."""


class BadInput(Exception):
    """Input the bisection cannot start from: one line for the user."""
