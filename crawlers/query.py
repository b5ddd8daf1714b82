"""The watchlist query language analysts write, parsed once and evaluated per post.

    国家水资源管理局 OR 水管局 OR "National Water Resources Administration"
    (NWRA OR 水管局) AND (溃坝 OR 裂缝 OR dam*) AND NOT 演习
    水管局 NEAR/5 溃坝          site:weibo.com          lang:ar AND سد*
    author:"Li Wei"

- `AND`, `OR`, `NOT` (upper case: lower-case "and" in a name is a word), parentheses.
  Precedence: NOT, then NEAR, then AND, then OR.
- Adjacent bare words form one phrase, so a plain name such as `Ministry of Water Resources`
  means what it says; any other adjacency (`site:x 水管局`, `"a" (b OR c)`) is an implicit AND.
- `"exact phrase"`; `word*` a prefix (for Chinese, where there are no word ends, a substring).
- `a NEAR/n b`: `a` and `b` with at most `n` tokens between them, in either order (a Chinese
  character is one token, a Latin or Arabic word is one token).
- Fields: `site:` (the URL's host is the value or ends with "."+value), `author:` (the author's
  display name contains the value), `lang:` (the post's language).
- Terms are compared after `yuqing.text.fold` (Traditional/Simplified, Arabic variants, width,
  case), with word edges for Latin words (see `crawlers.matching`).

A query must contain a positive term: `NOT x` alone would match nearly every post. Syntax
errors raise `QuerySyntaxError` with the column (1-based) and a caret line to show the analyst.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from yuqing.text import fold

FIELDS = ("site", "author", "lang")
_EDGE = r"0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_WORDISH = re.compile(rf"[{_EDGE}]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]|[^\W_]+")
_NEAR = re.compile(r"^NEAR/(\d+)$")


class QuerySyntaxError(ValueError):
    def __init__(self, message: str, query: str, column: int) -> None:
        self.message = message
        self.query = query
        self.column = column  # 1-based
        super().__init__(f"{message} at column {column}\n  {query}\n  {' ' * (column - 1)}^")


# -- what a query is evaluated against ------------------------------------------------------
@dataclass
class Doc:
    """A post as the matcher sees it: folded text once, tokens only if a NEAR needs them."""

    text: str  # folded
    url: str | None = None
    author: str | None = None
    lang: str | None = None

    @classmethod
    def of(cls, *texts: str | None, url: str | None = None, author: str | None = None,
           lang: str | None = None) -> "Doc":
        return cls(fold("\n".join(t for t in texts if t)), url, fold(author) if author else None, lang)

    @cached_property
    def chars(self) -> frozenset[str]:
        """The text's characters: a term with a character the text lacks cannot occur in it
        (a set test is ~10x cheaper than a substring search; most terms fail it)."""
        return frozenset(self.text)

    @cached_property
    def token_starts(self) -> list[int]:
        return [m.start() for m in _TOKEN.finditer(self.text)]

    def token_at(self, offset: int) -> int:
        """Index of the token at or before a character offset."""
        from bisect import bisect_right

        return max(bisect_right(self.token_starts, offset) - 1, 0)

    @cached_property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "") if self.url else ""


# -- nodes ------------------------------------------------------------------------------------
class Node:
    def matches(self, doc: Doc) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def leaves(self) -> Iterator["Leaf"]:
        return iter(())

    def positive(self) -> bool:
        """True if a match needs something to be present (not only absent)."""
        return True


@dataclass
class Leaf(Node):
    """A phrase or a prefix, matched on folded text with word edges where the term is Latin."""

    original: str
    prefix: bool = False
    folded: str = field(init=False)
    pattern: re.Pattern[str] | None = field(init=False)
    chars: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.folded = fold(self.original.rstrip("*") if self.prefix else self.original)
        self.chars = frozenset(self.folded)
        left = bool(_WORDISH.match(self.folded[:1]))
        right = bool(_WORDISH.match(self.folded[-1:])) and not self.prefix
        if left or right or self.prefix:
            tail = rf"[{_EDGE}]*" if self.prefix and _WORDISH.match(self.folded[-1:]) else ""
            self.pattern = re.compile(
                (rf"(?<![{_EDGE}])" if left else "") + re.escape(self.folded) + tail + (rf"(?![{_EDGE}])" if right else "")
            )
        else:
            self.pattern = None

    def matches(self, doc: Doc) -> bool:
        if not self.chars <= doc.chars or self.folded not in doc.text:  # cheap rejects first
            return False
        return self.pattern is None or self.pattern.search(doc.text) is not None

    def spans(self, doc: Doc) -> list[tuple[int, int]]:
        """(start, end) character offsets of every occurrence, in text order."""
        if self.folded not in doc.text:
            return []
        if self.pattern is not None:
            return [(m.start(), m.end()) for m in self.pattern.finditer(doc.text)]
        found, i = [], doc.text.find(self.folded)
        while i >= 0:
            found.append((i, i + len(self.folded)))
            i = doc.text.find(self.folded, i + len(self.folded))
        return found

    def leaves(self) -> Iterator["Leaf"]:
        yield self


@dataclass
class Field(Node):
    name: str
    value: str

    def matches(self, doc: Doc) -> bool:
        v = self.value
        if self.name == "site":
            v = v.lower().removeprefix("www.")
            return doc.host == v or doc.host.endswith("." + v)
        if self.name == "author":
            return bool(doc.author) and fold(v) in doc.author  # type: ignore[operator]
        return (doc.lang or "").lower().split("-")[0] == v.lower().split("-")[0]


@dataclass
class Not(Node):
    child: Node

    def matches(self, doc: Doc) -> bool:
        return not self.child.matches(doc)

    def positive(self) -> bool:
        return False


@dataclass
class And(Node):
    children: list[Node]

    def matches(self, doc: Doc) -> bool:
        return all(c.matches(doc) for c in self.children)

    def leaves(self) -> Iterator[Leaf]:
        for c in self.children:
            if not isinstance(c, Not):
                yield from c.leaves()

    def positive(self) -> bool:
        return any(c.positive() for c in self.children)


@dataclass
class Or(Node):
    children: list[Node]

    def matches(self, doc: Doc) -> bool:
        return any(c.matches(doc) for c in self.children)

    def leaves(self) -> Iterator[Leaf]:
        for c in self.children:
            yield from c.leaves()

    def positive(self) -> bool:
        return all(c.positive() for c in self.children)


@dataclass
class Near(Node):
    left: Leaf
    right: Leaf
    distance: int

    def matches(self, doc: Doc) -> bool:
        if not (self.left.matches(doc) and self.right.matches(doc)):
            return False
        a, b = self.left.spans(doc), self.right.spans(doc)
        starts = [s for s, _ in b]
        from bisect import bisect_left

        tok = doc.token_at
        for a0, a1 in a:
            # only the right-hand occurrences around this one can be the nearest
            i = bisect_left(starts, a0)
            for b0, b1 in b[max(i - 1, 0) : i + 2]:
                if (b0, b1) == (a0, a1):
                    continue
                # tokens strictly between the two occurrences (negative: they overlap)
                if b0 >= a1:
                    between = tok(b0) - tok(a1 - 1) - 1
                else:
                    between = tok(a0) - tok(b1 - 1) - 1
                if between <= self.distance:
                    return True
        return False

    def leaves(self) -> Iterator[Leaf]:
        yield self.left
        yield self.right


# -- lexer and parser -------------------------------------------------------------------------
@dataclass
class Tok:
    kind: str  # WORD PHRASE FIELD LP RP AND OR NOT NEAR END
    value: str
    col: int  # 1-based
    extra: str = ""  # FIELD: the field name; NEAR: the distance


def tokenize(q: str) -> list[Tok]:
    out: list[Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            out.append(Tok("LP" if c == "(" else "RP", c, i + 1))
            i += 1
            continue
        if c == '"':
            j = q.find('"', i + 1)
            if j < 0:
                raise QuerySyntaxError("unterminated quote", q, i + 1)
            if not q[i + 1 : j].strip():
                raise QuerySyntaxError("empty phrase", q, i + 1)
            out.append(Tok("PHRASE", q[i + 1 : j], i + 1))
            i = j + 1
            continue
        j = i
        while j < n and not q[j].isspace() and q[j] not in '()"':
            j += 1
        word = q[i:j]
        name, sep, value = word.partition(":")
        if sep and name.lower() in FIELDS:
            if not value and j < n and q[j] == '"':  # site:"x y"
                k = q.find('"', j + 1)
                if k < 0:
                    raise QuerySyntaxError("unterminated quote", q, j + 1)
                value, j = q[j + 1 : k], k + 1
            if not value.strip():
                raise QuerySyntaxError(f"{name.lower()}: needs a value", q, i + 1)
            out.append(Tok("FIELD", value, i + 1, name.lower()))
        elif word in ("AND", "OR", "NOT"):
            out.append(Tok(word, word, i + 1))
        elif word.startswith("NEAR"):
            m = _NEAR.match(word)
            if not m:
                raise QuerySyntaxError("NEAR needs a distance, like NEAR/5", q, i + 1)
            out.append(Tok("NEAR", word, i + 1, m.group(1)))
        else:
            if word.strip("*") == "":
                raise QuerySyntaxError("a wildcard needs a prefix, like water*", q, i + 1)
            if "*" in word[:-1]:
                raise QuerySyntaxError("a wildcard may only end a word", q, i + 1 + word.index("*"))
            out.append(Tok("WORD", word, i + 1))
        i = j
    out.append(Tok("END", "", n + 1))
    return out


_STARTS_OPERAND = {"WORD", "PHRASE", "FIELD", "LP", "NOT"}


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.toks = tokenize(q)
        self.i = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, msg: str, tok: Tok | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(msg, self.q, (tok or self.tok).col)

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.fail("empty query")
        node = self.or_expr()
        if self.tok.kind == "RP":
            raise self.fail("unmatched closing parenthesis")
        if self.tok.kind != "END":
            raise self.fail(f"unexpected {self.tok.value!r}")
        if not node.positive():
            raise QuerySyntaxError("a query needs a term to look for, not only NOT", self.q, 1)
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.tok.kind == "OR":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(parts)

    def and_expr(self) -> Node:
        parts = [self.near_expr()]
        while self.tok.kind == "AND" or self.tok.kind in _STARTS_OPERAND:
            if self.tok.kind == "AND":
                self.take()
            parts.append(self.near_expr())
        return parts[0] if len(parts) == 1 else And(parts)

    def near_expr(self) -> Node:
        left = self.unary()
        while self.tok.kind == "NEAR":
            op = self.take()
            right = self.unary()
            if not isinstance(left, Leaf) or not isinstance(right, Leaf):
                raise self.fail("NEAR joins two words or phrases", op)
            left = Near(left, right, int(op.extra))  # type: ignore[assignment]
        return left

    def unary(self) -> Node:
        if self.tok.kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "LP":
            self.take()
            if self.tok.kind == "RP":
                raise self.fail("empty parentheses")
            node = self.or_expr()
            if self.tok.kind != "RP":
                raise self.fail("missing closing parenthesis for the one", t) if self.tok.kind == "END" else self.fail(
                    f"expected ')' but found {self.tok.value!r}"
                )
            self.take()
            return node
        if t.kind == "PHRASE":
            self.take()
            return Leaf(t.value)
        if t.kind == "FIELD":
            self.take()
            return Field(t.extra, t.value)
        if t.kind == "WORD":
            words = [self.take().value]
            # adjacent bare words are one phrase (a plain name); a wildcard ends the run
            while self.tok.kind == "WORD" and not words[-1].endswith("*"):
                words.append(self.take().value)
            text = " ".join(words)
            return Leaf(text, prefix=text.endswith("*"))
        if t.kind == "END":
            raise self.fail(f"expected a term after {self.toks[self.i - 1].value!r}" if self.i else "empty query")
        raise self.fail(f"expected a term but found {t.value!r}")


def parse(query: str) -> Node:
    """The query's tree; raises QuerySyntaxError (with the column) when it is not valid."""
    return _Parser(query).parse()
