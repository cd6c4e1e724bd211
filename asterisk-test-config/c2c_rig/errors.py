"""The rig's one exception, in its own module so every other module can raise it."""


class RigError(Exception):
    """Anything that stops the rig from doing its job; the message is one line for users."""
