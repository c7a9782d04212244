"""Read the question once: a typed analysis that retrieval, abstention, the answer composer
and example matching all take, instead of each re-parsing the text with its own regexes.

What is read:

* **language**: English or Chinese (a Chinese question with English names is Chinese);
* **words**: the user's own tokens (typos in English identifiers fixed) and those plus the
  glossary's other names for the objects named and, in English, the Chinese words the
  notes use for the English ones;
* **objects**: the Kubernetes objects the question names (strongly, by a name or alias),
  hints at (by a related word), and the kinds among them;
* **what is asked**: a definition, a difference, a list, an example manifest, a command,
  or how to do something.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from indexer.bilingual import EnglishToChinese, is_english
from indexer.tokenization import Tokenizer
from service.glossary import Glossary, Mention
from service.spelling import SpellingCorrector

Ask = Literal["definition", "difference", "list", "example", "command", "howto"]
Language = Literal["zh", "en"]

_DIFFERENCE = re.compile(
    r"(区别|不同|差异|差别|对比|比较|异同|vs\.?|versus|differ|difference|compare|comparison)",
    re.IGNORECASE,
)
_DEFINITION = re.compile(
    r"(是什么|什么是|是啥|啥是|是干什么|干嘛的|做什么的|定义|介绍|解释|含义|指的是"
    r"|what\s+is|what's|what\s+does\s+\S+\s+do|explain|meaning\s+of|\bdefine\b)",
    re.IGNORECASE,
)
_LIST = re.compile(
    r"(哪些|哪几|几种|几类|包括什么|包含什么|有什么作用|主要作用|列举|列出"
    r"|\bwhat\s+are\b|\blist\b|\bwhich\b|\btypes\s+of\b|\bkinds\s+of\b)",
    re.IGNORECASE,
)
# Nouns and phrasings that ask for an example manifest whatever else the question says.
_EXAMPLE_STRONG = re.compile(
    r"(示例|例子|样例|范例|模板|模版|声明文件|描述文件|编排文件|资源清单|部署清单|清单文件"
    r"|怎么写|如何写|咋写|写法|写一个|写一份|manifest|example|sample|template|spec\s+file)",
    re.IGNORECASE,
)
# Words that name a manifest without necessarily asking for one: "我提交的 YAML 由谁校验？"
# is a question about YAML, "Service 的 YAML 呢？" a request for it.
_EXAMPLE_WEAK = re.compile(r"(yaml|yml|配置文件|清单)", re.IGNORECASE)
_INTERROGATIVE = re.compile(
    r"(哪|谁|为什么|为何|为啥|是否|什么时候|何时|多少|几个|是什么|什么组件|什么作用"
    r"|\bwhich\b|\bwho\b|\bwhy\b|\bwhen\b|\bwhere\b|\bwhether\b|\bhow\s+many\b)",
    re.IGNORECASE,
)
_COMMAND = re.compile(
    r"(命令|指令|命令行|终端|kubectl|helm|kubeadm|minikube|\bcli\b|command|shell)",
    re.IGNORECASE,
)
# "How do I …": a task, which a command in the cited section may carry out.
_HOWTO = re.compile(
    r"(怎么|怎样|如何|咋|用什么|步骤|方法|\bhow\s+(?:do|can|should|to)\b|\bsteps?\b)",
    re.IGNORECASE,
)
# "如何工作" / "how does it work" ask for an explanation, not a task.
_EXPLANATION = re.compile(
    r"(原理|机制|为什么|为何|如何工作|怎么工作|怎样工作|如何实现|怎么实现|如何运作"
    r"|\bhow\s+does\b|\bwhy\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QueryAnalysis:
    """Everything the pipeline needs to know about one (standalone) question."""

    text: str
    language: Language
    own_tokens: tuple[str, ...]  # the user's words, typos in English identifiers fixed
    tokens: tuple[str, ...]  # own tokens, then glossary names and translations
    mentions: tuple[Mention, ...]  # glossary terms in the question, first mention first
    asks: frozenset[Ask]
    # Each own content token with its other names (glossary, translation): what abstention
    # looks for in the notes.
    forms: dict[str, frozenset[str]]

    @property
    def english(self) -> bool:
        return self.language == "en"

    @property
    def expansion(self) -> tuple[str, ...]:
        return self.tokens[len(self.own_tokens):]

    @property
    def subjects(self) -> frozenset[str]:
        """Objects named by a name or alias ("Service", "svc", "servcie")."""
        return frozenset(m.term.name for m in self.mentions if m.strong and not m.term.word)

    @property
    def hinted_subjects(self) -> frozenset[str]:
        """Objects named or only hinted at by a related word ("机器" for Node)."""
        return frozenset(m.term.name for m in self.mentions if not m.term.word)

    @property
    def named(self) -> tuple[str, ...]:
        """Terms named strongly, question words ("区别") included."""
        return tuple(m.term.name for m in self.mentions if m.strong)

    @property
    def kinds(self) -> tuple[str, ...]:
        """API kinds the question names, first mention first."""
        return tuple(m.term.name for m in self.mentions if m.strong and m.term.is_kind)

    @property
    def example_kinds(self) -> tuple[str, ...]:
        """The kinds whose manifests answer it: those named, or for a request that names
        none ("给我一份暴露应用的清单"), those its words hint at."""
        if self.kinds or not self.wants_example:
            return self.kinds
        return tuple(m.term.name for m in self.mentions if m.term.is_kind)

    @property
    def example_kinds_hinted(self) -> tuple[str, ...]:
        """Kinds the question only hints at by a related word ("配额" for ResourceQuota)."""
        return tuple(m.term.name for m in self.mentions if m.term.is_kind and not m.strong)

    @property
    def wants_example(self) -> bool:
        return "example" in self.asks

    @property
    def wants_command(self) -> bool:
        return "command" in self.asks

    @property
    def asks_difference(self) -> bool:
        return "difference" in self.asks

    @property
    def asks_definition(self) -> bool:
        return "definition" in self.asks

    @property
    def asks_list(self) -> bool:
        return "list" in self.asks

    @property
    def asks_howto(self) -> bool:
        return "howto" in self.asks


def read_asks(text: str) -> frozenset[Ask]:
    """What the question asks for, from its wording alone."""
    asks: set[Ask] = set()
    if _DIFFERENCE.search(text):
        asks.add("difference")
    if _DEFINITION.search(text):
        asks.add("definition")
    if _LIST.search(text):
        asks.add("list")
    if _EXAMPLE_STRONG.search(text) or (
        _EXAMPLE_WEAK.search(text) and not _INTERROGATIVE.search(text)
    ):
        asks.add("example")
    if _COMMAND.search(text):
        asks.add("command")
    if _HOWTO.search(text) and not _EXPLANATION.search(text):
        asks.add("howto")
    return frozenset(asks)


class QueryAnalyzer:
    """Reads questions against one index's vocabulary (for typo fixes and translations)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        glossary: Glossary,
        vocabulary: Collection[str],
        english: EnglishToChinese,
    ):
        self.tokenizer = tokenizer
        self.glossary = glossary
        self.vocabulary = vocabulary
        self.english = english
        glossary_words = tokenizer.tokenize(
            " ".join(w for t in glossary.terms for w in (t.name, *t.aliases) if w.isascii())
        )
        self.speller = SpellingCorrector([*vocabulary, *glossary_words])
        # A token's other names: the same few thousand words come back question after
        # question, and a glossary scan per token was most of the analysis's time.
        self._token_names = lru_cache(maxsize=8192)(self._names_of_token)

    def analyze(self, text: str) -> QueryAnalysis:
        english = is_english(text)
        own = self.speller.correct(self.tokenizer.tokenize(text))
        # The corrected words are read too: "servcie" names Service.
        mentions = tuple(self.glossary.mentions(text + " " + " ".join(own)))
        names = self._names(mentions)
        expansion = self.tokenizer.tokenize(" ".join(names))
        translated: list[str] = []
        if english:
            # In a Chinese question the English words are names, not everyday words.
            translated = [
                zh for t in own if t not in self.vocabulary for zh in self.english.translate(t)
            ]
        tokens = own + [t for t in dict.fromkeys(expansion + translated) if t not in own]
        return QueryAnalysis(
            text=text,
            language="en" if english else "zh",
            own_tokens=tuple(own),
            tokens=tuple(tokens),
            mentions=mentions,
            asks=read_asks(text),
            forms=self._forms(own, mentions, text, english),
        )

    def _names(self, mentions: Iterable[Mention]) -> list[str]:
        """Canonical and Chinese names of the terms mentioned: the keyword query's extra
        words."""
        words: list[str] = []
        for mention in mentions:
            term = mention.term
            words.append(term.name)
            words.extend(a for a in term.aliases if not a.isascii())
        return words

    def _names_of_token(self, token: str) -> tuple[str, ...]:
        return tuple(self.tokenizer.tokenize(" ".join(self._names(self.glossary.mentions(token)))))

    def _forms(
        self, own: list[str], mentions: tuple[Mention, ...], text: str, english: bool
    ) -> dict[str, frozenset[str]]:
        """Each content token with the glossary's other names for it ("difference" ->
        区别) and, in English, its Chinese translations ("validates" -> 验证). Words of a
        multi-word alias found in the question ("roll back") share its names. Bare numbers
        are left out: "layer 7" is about the layer, not the 7."""
        tokenize = self.tokenizer.tokenize
        lowered = text.lower()
        phrase_names: dict[str, set[str]] = {}
        for mention in mentions:
            names = set(tokenize(" ".join(self._names([mention]))))
            for alias in (mention.term.name, *mention.term.aliases):
                if " " in alias and alias.lower() in lowered:
                    for word in tokenize(alias):
                        phrase_names.setdefault(word, set()).update(names)
        forms: dict[str, frozenset[str]] = {}
        for token in dict.fromkeys(own):
            if token.isdigit():
                continue
            forms[token] = frozenset(
                {
                    token,
                    *self._token_names(token),
                    *phrase_names.get(token, ()),
                    *(self.english.translate(token) if english else ()),
                }
            )
        return forms
