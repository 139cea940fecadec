"""The web console: server-rendered pages (Jinja2), local CSS and a little JavaScript."""
