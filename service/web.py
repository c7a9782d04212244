"""The help-desk pages: the chat page (`GET /`), its static assets, and the help-desk lead's
statistics (`GET /admin/stats`, a page for browsers and JSON for everyone else).

The pages are plain HTML/CSS/JS committed under `service/static/` (no CDN, no build step) and
talk only to the public API, so what they show is what API clients get. Every page is sent
with a strict Content-Security-Policy: script only from files of this origin, never inline,
so text from a note or a question that looks like HTML cannot run.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from service.state import ServiceState
from service.stats import build_report, max_days

STATIC = Path(__file__).resolve().parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def page_response(html: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Vary"] = "Accept"
    # Pages are small and change with each release; assets are revalidated too.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _static_page(name: str) -> HTMLResponse:
    return page_response((STATIC / name).read_text(encoding="utf-8"))


def router(state: ServiceState) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    def chat_page() -> HTMLResponse:
        return _static_page("index.html")

    @routes.get("/static/{name:path}", include_in_schema=False)
    def asset(name: str) -> Response:
        missing = JSONResponse(status_code=404, content={"message": f"没有这个文件：{name}"})
        if "\x00" in name:  # no file has one, and Path.resolve() raises on it
            return missing
        file = (STATIC / name).resolve()
        if not file.is_relative_to(STATIC) or not file.is_file() or name.endswith(".html"):
            return missing
        media_type, _ = mimetypes.guess_type(file.name)
        response = FileResponse(file, media_type=media_type)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response

    @routes.get(
        "/admin/stats",
        summary="使用统计（提问数、回答率、未回答的问题、👎 最多的回答）",
        responses={200: {"content": {"text/html": {}}, "description": "JSON，或网页"}},
    )
    def stats(
        request: Request,
        days: int = Query(14, description="统计最近几天（含今天）"),
        format: str | None = Query(
            None, description="json 或 html；缺省时按 Accept 头决定（浏览器得到网页）"
        ),
    ) -> Response:
        if format not in (None, "json", "html"):
            return JSONResponse(
                status_code=422, content={"message": "请求参数有误：format 只能是 json 或 html"}
            )
        html = format == "html" or (format is None and "text/html" in request.headers.get(
            "accept", ""
        ))
        if html:
            return _static_page("stats.html")
        limit = max_days(state.feedback)
        if not 1 <= days <= 366:
            return JSONResponse(
                status_code=422,
                content={"message": f"请求参数有误：days 必须在 1 到 366 之间，收到 {days}"},
            )
        report = build_report(state.feedback, state.tokenizer.tokenize, days=min(days, limit))
        return JSONResponse(report.to_json(), headers={"Vary": "Accept"})

    return routes
