"""The `/ask` contract (request and response models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

MAX_QUESTION_CHARS = 2000


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskRequest(BaseModel):
    question: str = Field(description="用户的问题", examples=["数据库密码应该放在哪里？"])
    top_k: int = Field(3, description="返回的片段数（1–10）")
    mode: Literal["hybrid", "bm25", "dense"] = Field("hybrid", description="检索方式")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=50)
    client: Literal["api", "web"] = Field(
        "api", description="谁在提问：api（默认）或 web（帮助台页面），用于统计"
    )

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("问题不能为空")
        if len(value) > MAX_QUESTION_CHARS:
            raise ValueError(f"问题太长：{len(value)} 个字符，最多 {MAX_QUESTION_CHARS} 个")
        return value.strip()

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int) -> int:
        if not 1 <= value <= 10:
            raise ValueError(f"top_k 必须在 1 到 10 之间，收到 {value}")
        return value


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
