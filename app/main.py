"""The Faust app as a module, for ``faust -A app.main worker``.

``tact worker`` is the usual entry point: it also creates missing topics and
checks their partition counts before the worker starts.
"""

from app.settings import Settings
from app.streams.pipeline import create_app

app = create_app(Settings.from_env())
