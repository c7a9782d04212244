"""`GET /notes/{path}`: an indexed note, so a citation can be checked.

API clients get the plain text, as always; a browser (`Accept: text/html`) or `?format=html`
gets the note rendered as a page that highlights the cited lines (`#L59-L64`). `?format=text`
forces the text."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from service.note_html import error_page, note_page, render_note
from service.state import ServiceState
from service.web import page_response


def wants_html(request: Request, format: str | None) -> bool:
    """`?format=` decides; otherwise a browser (its Accept names text/html) gets the page."""
    if format is not None:
        return format == "html"
    return "text/html" in request.headers.get("accept", "")


def router(state: ServiceState) -> APIRouter:
    routes = APIRouter()

    def fail(status: int, title: str, message: str, html: bool) -> Response:
        if html:
            return page_response(error_page(title, message, status), status)
        return JSONResponse(status_code=status, content={"message": message})

    @routes.get(
        "/notes/{path:path}",
        summary="笔记原文",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/html": {}}, "description": "纯文本，或网页"}},
    )
    def note(
        path: str,
        request: Request,
        format: str | None = Query(
            None, description="html：渲染成网页；text：纯文本。缺省时按 Accept 头决定"
        ),
    ) -> Response:
        if format not in (None, "html", "text"):
            return JSONResponse(
                status_code=422, content={"message": "请求参数有误：format 只能是 html 或 text"}
            )
        html = wants_html(request, format)
        engine = state.engine
        if engine is None:
            return fail(503, "索引正在加载", "服务尚未就绪，请稍后刷新。", html)
        # The text as indexed, from the index itself: cited line numbers always match what
        # is shown (even after the note is edited, until it is re-indexed), the corpus need
        # not be mounted where the service runs, and nothing but indexed notes is served.
        text = engine.backend.note_text(path)
        if text is None:
            return fail(404, "没有这篇笔记", f"没有这篇笔记：{path}", html)
        if html:
            return page_response(note_page(path, render_note(text)))
        response = PlainTextResponse(text)
        response.headers["Vary"] = "Accept"
        return response

    return routes
