"""The read-only web console: traits, runs, profiles, each page with a JSON twin.

``views`` builds each page's data, ``app`` serves it (Starlette, Jinja2 templates and the
assets in ``static/``, shipped in the package), ``serve`` runs it with uvicorn in a thread
(the daemon) or in the foreground (``traits console``), ``auth`` decides who may read it.
"""
