"""The `/ask` contract (request and response models)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from service.followup import MAX_TURN_CHARS, MAX_TURNS

MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 10


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(
        description=f"这一轮的文字，最多 {MAX_TURN_CHARS} 个字符",
        json_schema_extra={"maxLength": MAX_TURN_CHARS},
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        _check_encodable(value, "对话历史")
        if len(value) > MAX_TURN_CHARS:
            raise ValueError(
                f"对话历史中的一轮太长：{len(value)} 个字符，每轮最多 {MAX_TURN_CHARS} 个"
            )
        return value


class AskRequest(BaseModel):
    question: str = Field(
        description=f"用户的问题（最多 {MAX_QUESTION_CHARS} 个字符）",
        examples=["数据库密码应该放在哪里？"],
        json_schema_extra={"maxLength": MAX_QUESTION_CHARS, "pattern": r"\S"},
    )
    # Checked by the validators below, with Chinese messages; the bounds are also stated in
    # the schema so clients (and schemathesis) know them.
    top_k: int = Field(
        3, description=f"返回的片段数（1–{MAX_TOP_K}）",
        json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K},
    )
    mode: Literal["hybrid", "bm25", "dense"] = Field("hybrid", description="检索方式")
    history: list[HistoryTurn] = Field(
        default_factory=list,
        description=(
            f"之前的对话，按时间顺序；最多 {MAX_TURNS} 轮，每轮最多 {MAX_TURN_CHARS} 个字符，"
            "超出时返回 422（请只发送最近的几轮）"
        ),
        json_schema_extra={"maxItems": MAX_TURNS},
    )
    client: Literal["api", "web"] = Field(
        "api", description="谁在提问：api（默认）或 web（帮助台页面），用于统计"
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("问题不能为空")
        _check_encodable(value, "问题")
        if len(value) > MAX_QUESTION_CHARS:
            raise ValueError(f"问题太长：{len(value)} 个字符，最多 {MAX_QUESTION_CHARS} 个")
        return value.strip()

    @field_validator("top_k", mode="before")
    @classmethod
    def _top_k_is_an_integer(cls, value: Any) -> Any:
        # JSON true is not 1, and 3.0 or "3" are not integers either.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"top_k 必须是整数，收到 {_shown(value)}")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int) -> int:
        if not 1 <= value <= MAX_TOP_K:
            raise ValueError(f"top_k 必须在 1 到 {MAX_TOP_K} 之间，收到 {value}")
        return value

    @field_validator("history", mode="before")
    @classmethod
    def _history_length(cls, value: Any) -> Any:
        # Counted before the turns are validated one by one: thousands of turns are refused
        # at once, not parsed.
        if isinstance(value, list) and len(value) > MAX_TURNS:
            raise ValueError(
                f"对话历史太长：{len(value)} 轮，最多 {MAX_TURNS} 轮"
                f"（请只发送最近的 {MAX_TURNS} 轮）"
            )
        return value


def _check_encodable(value: str, what: str) -> None:
    # JSON may carry a lone surrogate ("\ud800"), which no UTF-8 text can hold: refused
    # here rather than failing later where the text is hashed, stored or sent back.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what}包含无效的 Unicode 字符（位置 {exc.start}）") from None


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


class Snippet(BaseModel):
    text: str
    citation: int
    score: float


class Scores(BaseModel):
    bm25: float | None
    dense: float | None
    fused: float


class Citation(BaseModel):
    id: int
    source: str
    heading: list[str]
    lines: tuple[int, int]
    url: str
    score: float
    matched_terms: list[str] = Field(default_factory=list)
    scores: Scores


class YamlExampleOut(BaseModel):
    kind: str | None
    api_version: str | None
    name: str | None
    yaml: str
    valid: bool
    citation: int
    k8s_valid: bool | None = None
    problems: list[str] = Field(default_factory=list)


class CommandExampleOut(BaseModel):
    """A shell command from the notes, shown when the question asks how to do something."""

    language: str = Field(description="代码块的语言：bash、console 等；未标注时为 shell")
    text: str = Field(description="命令原文（可能有多行）")
    citation: int = Field(description="所在章节的引用编号")


class Suggestion(BaseModel):
    """A section close to an unanswered question, offered instead of an answer."""

    source: str
    heading: list[str]
    lines: tuple[int, int]
    url: str


class AskResponse(BaseModel):
    id: str | None = Field(
        None, description="这次回答的编号，用于反馈；不保存问题时（保留期为 0）为 null"
    )
    question: str
    rewritten_query: str
    found: bool
    answer: str
    confidence: float
    snippets: list[Snippet]
    citations: list[Citation]
    yaml_examples: list[YamlExampleOut]
    command_examples: list[CommandExampleOut] = Field(
        default_factory=list, description="问题问怎么做时，引用章节中的命令示例"
    )
    suggestions: list[Suggestion] = Field(
        default_factory=list, description="没有找到答案时，最接近的几个笔记章节"
    )
    timings_ms: dict[str, float]


class FeedbackRequest(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="/ask 返回的 id")
    vote: Literal["up", "down"]
    user: str | None = Field(None, max_length=200, description="投票人（匿名时省略）")


class FeedbackResponse(BaseModel):
    id: str
    vote: Literal["up", "down"]
    up: int
    down: int
