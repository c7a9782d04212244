"""`notesqa report`: the help-desk lead's numbers (the same as `GET /admin/stats`) in a
terminal."""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from indexer.settings import Settings

console = Console()

_SOURCE_NAMES = {"web": "网页", "slack": "Slack", "api": "API", "cli": "命令行"}


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%m-%d %H:%M")


@click.command()
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True,
              help="统计最近几天（含今天）")
@click.option("--top", type=click.IntRange(1, 100), default=10, show_default=True,
              help="列出前几个未回答的问题和 👎 最多的回答")
@click.option("--json", "as_json", is_flag=True, help="输出与 /admin/stats 相同的 JSON")
def report(days: int, top: int, as_json: bool) -> None:
    """使用统计：每天的提问数、回答率、最常见的未回答问题、👎 最多的回答。"""
    from indexer.tokenization import Tokenizer
    from service.feedback import FeedbackStore
    from service.stats import build_report, max_days

    settings = Settings()
    store = FeedbackStore(settings.feedback_db, settings.retention_days)
    result = build_report(
        store, Tokenizer().tokenize, days=min(days, max_days(store)), top=top
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
        return
    if not result.enabled:
        console.print(
            "[yellow]没有保存任何问答记录（NOTESQA_RETENTION_DAYS=0），所以没有统计数据。[/yellow]"
        )
        return
    sources = "，".join(
        f"{_SOURCE_NAMES.get(k, k)} {v}" for k, v in sorted(result.by_source().items())
    )
    console.print(
        f"[bold]{result.since} 至 {result.until}[/bold]：提问 {result.asked}"
        f"（{sources or '无'}），回答率 {_percent(result.share_answered)}"
        f"  [dim]记录保留 {result.retention_days} 天，来自 {escape(str(store.path))}[/dim]"
    )

    table = Table(title="每天")
    columns = ("日期", "提问", "已回答", "回答率", "网页", "Slack", "API", "命令行", "👍", "👎")
    for column in columns:
        table.add_column(column, justify="left" if column == "日期" else "right")
    for day in reversed(result.per_day):
        table.add_row(
            day.day, str(day.asked), str(day.answered), _percent(day.share_answered),
            *(str(day.by_source.get(k, 0)) for k in ("web", "slack", "api", "cli")),
            str(day.up), str(day.down),
        )
    console.print(table)

    unanswered = Table(title="最常见的未回答问题（相近问法已合并）")
    for column in ("次数", "问题", "相近问法", "最近一次"):
        unanswered.add_column(column)
    for group in result.unanswered:
        unanswered.add_row(
            str(group.count), escape(group.question),
            escape("；".join(group.variants[:5])), _when(group.last_asked),
        )
    console.print(unanswered if result.unanswered else "没有未回答的问题。")

    downvoted = Table(title="👎 最多的回答")
    for column in ("👎", "👍", "问题", "回答", "出处"):
        downvoted.add_column(column)
    for answer in result.downvoted:
        downvoted.add_row(
            str(answer.down), str(answer.up), escape(answer.question),
            escape(answer.answer[:80] + ("…" if len(answer.answer) > 80 else "")),
            escape("\n".join(answer.cited)),
        )
    console.print(downvoted if result.downvoted else "没有回答被点 👎。")
