"""Watchlist matching: a post is kept only if it matches a watchlist (the agency's names and
aliases, a leader, a programme).

Each watchlist term is a query in the language of `crawlers.query`; a plain name is simply a
phrase. Terms and posts are compared after `yuqing.text.fold` (NFKC, case folding, Traditional
-> Simplified Chinese, Arabic normalisation), so "衛生健康委員會" matches the term "卫生健康委员会"
and "وزاره" matches "وزارة". Where a term starts or ends with a Latin letter or digit it must
stand as a word there ("MWR" does not match "MWRA"); Chinese has no word boundaries and Arabic
attaches clitics ("والوزارة"), so on those sides a substring is a match.

A watchlist matches when any of its terms matches and none of its `exclude` queries does
("水利部门" is not "水利部" the agency). A post records the watchlists it matched (highest
priority first) and the terms: a plain name as configured, for a query the words and phrases
of it that were found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crawlers.query import Doc, Leaf, Node, QuerySyntaxError, parse
from yuqing.config import ConfigError, WatchlistConfig


@dataclass(frozen=True)
class Match:
    watchlists: list[str]  # highest priority first
    terms: list[str]  # in watchlist order, no repeats


class _Compiled:
    def __init__(self, wl: WatchlistConfig) -> None:
        self.name = wl.name
        self.priority = wl.priority
        self.terms = [(t, _parse(wl.name, "terms", i, t)) for i, t in enumerate(wl.terms)]
        self.exclude = [_parse(wl.name, "exclude", i, t) for i, t in enumerate(wl.exclude)]


def _parse(watchlist: str, key: str, index: int, term: str) -> Node:
    try:
        return parse(term)
    except QuerySyntaxError as e:
        raise ConfigError(f"watchlist {watchlist!r}: {key}[{index}]: {e}") from None


class Matcher:
    """Compiled watchlists. Build once per crawl (raises ConfigError, naming the watchlist, the
    term and the column, for a query that does not parse); `match` is pure and thread-safe."""

    def __init__(self, watchlists: Sequence[WatchlistConfig]) -> None:
        self._lists = sorted((_Compiled(w) for w in watchlists), key=lambda c: -c.priority)

    def __bool__(self) -> bool:
        return bool(self._lists)

    def merge(self, own: Match | None, inherited: Match | None) -> Match | None:
        """A post's own match joined with the match of the thread / post it answers: the
        watchlists of both (priority order), the terms the post itself contains."""
        if own is None or inherited is None:
            return own or (Match(list(inherited.watchlists), []) if inherited else None)
        names = set(own.watchlists) | set(inherited.watchlists)
        return Match([w.name for w in self._lists if w.name in names], list(own.terms))

    def match(
        self, *texts: str | None, url: str | None = None, author: str | None = None, lang: str | None = None
    ) -> Match | None:
        """Which watchlists the post (its texts: title, body; its URL, author and language for
        `site:`, `author:`, `lang:`) matches, or None for none."""
        doc = Doc.of(*texts, url=url, author=author, lang=lang)
        names: list[str] = []
        terms: list[str] = []
        for wl in self._lists:
            hits: list[str] = []
            for original, node in wl.terms:
                if not node.matches(doc):
                    continue
                if isinstance(node, Leaf):
                    hits.append(original)
                else:
                    hits.extend(leaf.original for leaf in node.leaves() if leaf.matches(doc))
            if not hits or any(x.matches(doc) for x in wl.exclude):
                continue
            names.append(wl.name)
            terms.extend(h for h in hits if h not in terms)
        return Match(names, terms) if names else None
