"""The API's routers, one module per resource; ``api.app`` mounts them in this order."""

from api.routes import corpora, dashboard, mixtures, runs, sources

ROUTERS = [mixtures.router, sources.router, corpora.router, runs.router, dashboard.router]
