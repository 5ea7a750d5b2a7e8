"""The API's routers, one module per resource; ``api.app`` mounts them in this order."""

from api.routes import mixtures

ROUTERS = [mixtures.router]
