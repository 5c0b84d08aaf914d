"""The UI build at `/` (with deep links), and the API documentation page with local assets.

Where the UI comes from, first match wins: `api.ui_dir` from the configuration; `web/dist` of
the checkout this package runs from; `flashalpha/api/static` inside an installed package. The
directory is looked up on every request, so a build made while the daemon runs is served at
once. Without a build, `/` answers a short page saying how to make one.

The documentation page is Swagger UI from the `swagger-ui-bundle-v2` wheel, served from this
process: nothing is loaded from the internet.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Request, Response, get
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import PathParameter
from litestar.response import File

#: Paths the UI catch-all never answers with index.html.
RESERVED_PREFIXES = ("api/", "hubs/", "schema/", "metrics")
#: Where the documentation page's assets are served.
DOCS_ASSETS_PATH = "/schema/assets"
_PACKAGE_STATIC = Path(__file__).resolve().parent / "static"
_CHECKOUT_DIST = Path(__file__).resolve().parents[3] / "web" / "dist"

_NO_BUILD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flashalpha: no UI build</title>
<style>body{{background:#0d1117;color:#c9d1d9;font:15px/1.5 system-ui,sans-serif;margin:3em}}
code{{background:#161b22;padding:.15em .4em;border-radius:4px}}a{{color:#58a6ff}}</style></head>
<body><h1>flashalpha is running, but the UI is not built</h1>
<p>No UI build was found at <code>{where}</code>.</p>
<p>Build it with <code>make install</code> (it runs <code>npm ci &amp;&amp; npm run build</code> in
<code>web/</code>), then reload this page. Or point <code>FLASHALPHA_API_UI_DIR</code> at a build.</p>
<p>The API works without it: <a href="/api/v1/health">/api/v1/health</a>,
<a href="/schema">API documentation</a>, <a href="/metrics">/metrics</a>,
hub at <code>/hubs/market</code>.</p></body></html>
"""


def ui_directory(configured: str | None) -> tuple[Path | None, Path]:
    """(directory holding index.html or None, the path searched first, for messages)."""
    if configured:
        path = Path(configured).expanduser().resolve()
        return (path if (path / "index.html").is_file() else None), path
    for candidate in (_CHECKOUT_DIST, _PACKAGE_STATIC):
        if (candidate / "index.html").is_file():
            return candidate, candidate
    return None, _CHECKOUT_DIST


def _no_build(where: Path) -> Response:
    page = _NO_BUILD_PAGE.format(where=html.escape(str(where)))
    return Response(page, media_type=MediaType.HTML, headers={"cache-control": "no-store"})


@get("/", include_in_schema=False, sync_to_thread=False, name="ui-index")
def ui_index(request: Request) -> Response | File:
    return _serve_ui(request, "")


@get("/{path:path}", include_in_schema=False, sync_to_thread=False, name="ui")
def ui(request: Request, path: Annotated[str, PathParameter()]) -> Response | File:
    return _serve_ui(request, path)


def _serve_ui(request: Request, path: str) -> Response | File:
    relative = path.lstrip("/")
    if relative.startswith(RESERVED_PREFIXES):
        raise NotFoundException(detail=f"no such endpoint '/{relative}'")
    directory, searched = ui_directory(request.app.state.daemon.config.api.ui_dir)
    if directory is None:
        return _no_build(searched)
    if relative:
        candidate = (directory / relative).resolve()
        if candidate.is_relative_to(directory) and candidate.is_file():
            immutable = candidate.parent.name == "assets"
            return File(
                candidate,
                content_disposition_type="inline",
                media_type=mimetypes.guess_type(candidate.name)[0] or "application/octet-stream",
                headers={
                    "cache-control": "public, max-age=31536000, immutable"
                    if immutable
                    else "no-cache"
                },
            )
    # Deep links (/chain/SPY, /surface, ...) are routes of the single-page app.
    return File(
        directory / "index.html",
        content_disposition_type="inline",
        media_type=MediaType.HTML,
        headers={"cache-control": "no-cache"},
    )


class LocalSwaggerPlugin(SwaggerRenderPlugin):
    """Swagger UI whose scripts, styles and icon come from this server, not a CDN."""

    def __init__(self, path: str = "/swagger") -> None:
        super().__init__(
            js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-standalone-preset.js",
            path=path,
            favicon=f'<link rel="icon" type="image/png" href="{DOCS_ASSETS_PATH}/favicon-32x32.png">',
        )

    def render(self, request: Request, openapi_schema: dict) -> bytes:
        title = html.escape(openapi_schema["info"]["title"])
        spec = msgspec.json.encode(openapi_schema).replace(b"</", b"<\\/")
        return b"".join(
            [
                f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{title}</title>{self.favicon}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link href="{self.css_url}" rel="stylesheet">
<script src="{self.js_url}"></script>
<script src="{self.standalone_preset_js_url}"></script>
<style>body {{ margin: 0; padding: 0 }}</style></head>
<body><div id="swagger-container"></div><script>
window.ui = SwaggerUIBundle({{
  spec: """.encode(),
                spec,
                b""",
  dom_id: '#swagger-container',
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: 'BaseLayout'
});
</script></body></html>""",
            ]
        )


def docs_assets_directory() -> Path:
    """Swagger UI's dist directory inside the installed `swagger-ui-bundle-v2` wheel."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))
