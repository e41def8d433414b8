"""ChatAPI: a chat backend for Zhipu's GLM models.

The app factory lives in chatapi.factory and is imported on first use of `create_app`: a process
that needs one part of the package (a compute process runs the tools' parsers) does not load
the web stack, the SDK and the models with it."""
from .config import VERSION

__version__ = VERSION


def __getattr__(name):
    if name == "create_app":
        from .factory import create_app
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
