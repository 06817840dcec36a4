"""The web UI: executions moving live, a history as a graph and a timeline, approvals and actions.

Served by the engine process on a port of its own (``--ui-address``), beside the gRPC API, with
the same authentication and access policy. See docs/ui.md.
"""

from .app import WebServices, create_app
from .live import ChangeFeed
from .server import WebServer
from .session import Sessions

__all__ = ["ChangeFeed", "Sessions", "WebServer", "WebServices", "create_app"]
