"""`GET /notes/{path}`: the text of an indexed note, so a citation can be checked."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from indexer.reading import UndecodableError, decode_note
from service.state import ServiceState


def router(state: ServiceState) -> APIRouter:
    routes = APIRouter()

    @routes.get("/notes/{path:path}", summary="笔记原文", response_class=PlainTextResponse)
    def note(path: str) -> Response:
        engine = state.engine
        if engine is None:
            return JSONResponse(status_code=503, content={"message": "服务尚未就绪"})
        entry = engine.index.manifest.files.get(path)
        if entry is None:
            return JSONResponse(status_code=404, content={"message": f"没有这篇笔记：{path}"})
        file = Path(entry.file).resolve()
        root = Path(entry.root).resolve()
        # Only files inside a corpus root, whatever the manifest or a symlink says.
        if not file.is_relative_to(root) or not file.is_file():
            return JSONResponse(status_code=404, content={"message": f"没有这篇笔记：{path}"})
        try:
            text, _ = decode_note(file.read_bytes())
        except (OSError, UndecodableError) as exc:
            return JSONResponse(status_code=404, content={"message": f"无法读取笔记：{exc}"})
        return PlainTextResponse(text)

    return routes
