"""Training pairs for the English query encoder (`qa train-retriever`, qa/training/crosslingual.py).

Every pair is (text the student reads, text whose frozen-e5 vector is the target), plus, for questions, the
chunk that answers them. The routes, all from ../shared/traindata and pip packages (never XQuAD, never CMRC dev):

- `translated`: the hand-translated CMRC 2018 train questions (qa/training/translated/) -> their Chinese wording;
  the answer's chunk of the CMRC train paragraph is the positive;
- `chinese`: CMRC 2018 train questions -> themselves (keeps the student's Chinese where it was), answer chunk;
- `squad`: SQuAD v1.1 train questions -> themselves (English questions over English documents stay as they were);
- `cedict`: a CC-CEDICT sense ("Shanghai", "bishop") -> its headword (上海, 主教): 120k word pairs;
- `names`: pinyin of person names found by jieba in CMRC train paragraphs ("Fan Tingsong") -> the name (范廷颂),
  the romanization English questions use for Chinese names.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ..chunking import chunk_document, token_counter
from ..settings import Settings
from ..text import fold_script
from ..types import Document
from .data import TRAIN_DIR, TRANSLATED_TRAIN, answer_start, load_translations, read_squad

CMRC_TRAIN = TRAIN_DIR / "cmrc2018" / "cmrc2018_train.squad.json"
SQUAD_TRAIN = TRAIN_DIR / "squad1" / "squad1.1-train.explorer.json.gz"


@dataclass(frozen=True)
class Pair:
    route: str
    text: str  # what the student encodes (as a query)
    target: str  # what the frozen teacher encodes (as a query): the vector the student should land on
    positive: int = -1  # index of the answering chunk in the chunk list, -1: none


@dataclass
class PairSet:
    pairs: dict[str, list[Pair]]  # route -> pairs
    chunks: list[str]  # chunk texts the question routes rank (their teacher vectors are fixed)


@dataclass
class ChunkedParagraphs:
    chunks: list[str]  # chunk texts of every paragraph, in file order
    paragraph_of_chunk: list[int]  # chunk -> paragraph number (file order)
    answer_chunk: dict[str, int]  # question id -> the chunk holding its answer's first character


def chunked_paragraphs(data: list[dict], settings: Settings) -> ChunkedParagraphs:
    """Every paragraph chunked as the index chunks it, with where each question's answer lies."""
    count = token_counter(settings)
    chunks: list[str] = []
    paragraph_of_chunk: list[int] = []
    answer_chunk: dict[str, int] = {}
    paragraphs = [para for article in data for para in article["paragraphs"]]
    for number, para in enumerate(paragraphs):
        pieces = chunk_document(Document(doc_id=str(number), text=para["context"]), settings, count)
        first = len(chunks)
        paragraph_of_chunk.extend([number] * len(pieces))
        chunks.extend(c.text for c in pieces)
        for qa in para["qas"]:
            answers = [x for x in qa.get("answers", []) if x.get("text")]
            start = answer_start(para["context"], answers[0]) if answers else -1
            if start < 0:
                continue
            n = next((i for i, c in enumerate(pieces) if c.start <= start < c.end), len(pieces) - 1)
            answer_chunk[str(qa["id"])] = first + n
    return ChunkedParagraphs(chunks, paragraph_of_chunk, answer_chunk)


def question_pairs(settings: Settings) -> tuple[list[Pair], list[Pair], list[str]]:
    """The `translated` and `chinese` routes over CMRC 2018 train, and the chunks they rank."""
    data = read_squad(CMRC_TRAIN)
    chunked = chunked_paragraphs(data, settings)
    chunks, answer_chunk = chunked.chunks, chunked.answer_chunk
    english = load_translations(TRANSLATED_TRAIN)
    translated, chinese = [], []
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                qid = str(qa["id"])
                if qid not in answer_chunk:
                    continue
                zh = fold_script(qa["question"])
                chinese.append(Pair("chinese", zh, zh, answer_chunk[qid]))
                if qid in english:
                    translated.append(Pair("translated", english[qid], zh, answer_chunk[qid]))
    return translated, chinese, chunks


def squad_pairs(limit: int, seed: int = 0) -> list[Pair]:
    questions = [qa["question"] for article in read_squad(SQUAD_TRAIN) for para in article["paragraphs"]
                 for qa in para["qas"]]
    return [Pair("squad", q, q) for q in random.Random(seed).sample(questions, min(limit, len(questions)))]


_USABLE = re.compile(r"^[A-Za-z][A-Za-z '\-.]{1,40}$")


def cedict_pairs(limit: int, seed: int = 0) -> list[Pair]:
    """One pair per headword of 2+ characters: its first usable sense, cleaned as the English line cleans it."""
    from ..gloss import _SKIP_SENSE, _clean_sense, cedict

    pairs = []
    for word, entries in cedict().items():
        if len(word) < 2 or word != fold_script(word):  # Simplified headwords only: queries are folded
            continue
        for entry in entries:
            sense = next((s for s in entry.senses if not _SKIP_SENSE.match(s)), None)
            english = _clean_sense(sense) if sense else ""
            if english and _USABLE.match(english):
                pairs.append(Pair("cedict", english, word))
                break
    rng = random.Random(seed)
    return rng.sample(pairs, min(limit, len(pairs)))


def romanized(name: str) -> str:
    """范廷颂 -> "Fan Tingsong": surname, then the given name as one word (how English texts write Chinese names)."""
    from pypinyin import lazy_pinyin

    syllables = lazy_pinyin(name, v_to_u=True)
    surname_len = 2 if len(name) == 4 else 1
    return " ".join(s.capitalize() for s in ("".join(syllables[:surname_len]), "".join(syllables[surname_len:])) if s)


def name_pairs(limit: int, seed: int = 0) -> list[Pair]:
    """Person names jieba tags (nr) in CMRC train paragraphs, 2-4 characters, with their pinyin."""
    import jieba.posseg as pseg

    names: set[str] = set()
    for article in read_squad(CMRC_TRAIN):
        for para in article["paragraphs"]:
            for w in pseg.cut(para["context"]):
                if w.flag == "nr" and 2 <= len(w.word) <= 4 and all("\u4e00" <= ch <= "\u9fff" for ch in w.word):
                    names.add(w.word)
    ranked = sorted(names)
    chosen = random.Random(seed).sample(ranked, min(limit, len(ranked)))
    return [Pair("names", romanized(n), n) for n in chosen]


def training_pairs(settings: Settings, cedict_limit: int = 30000, squad_limit: int = 6000, name_limit: int = 8000,
                   seed: int = 0) -> PairSet:
    translated, chinese, chunks = question_pairs(settings)
    return PairSet({"translated": translated, "chinese": chinese, "squad": squad_pairs(squad_limit, seed),
                    "cedict": cedict_pairs(cedict_limit, seed), "names": name_pairs(name_limit, seed)}, chunks)
