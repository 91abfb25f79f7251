"""Answer verifier: decides whether the documents really answer the question the neural reader just answered.

The readers' own scores do not separate answer-bearing evidence from merely related evidence (the
heuristic sentence score, and the neural reader's "answers" head, see qa/neural/weights/MODEL_CARD.md).
What helps is whether the quoted evidence mentions what the question asks about: the question's terms
(alias groups, Chinese words, numbers) found in the cited sentences, in the top passages, and anywhere
in the corpus, next to the reader's own scores.

A logistic model over those features gives P(the answer is right). `qa train-verifier` fits it on public
training data only (CMRC 2018 train and DRCD's training part, asked as they are, without their paragraph
and without their answer sentence) and calibrates its cut on CMRC 2018 dev; weights, feature statistics,
languages and provenance ship in qa/neural/weights/verifier.json. It judges Chinese questions only: no
public training set asks English questions over Chinese text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .text import normalize
from .types import Answer, Hit

DEFAULT_VERIFIER = Path(__file__).resolve().parent / "neural" / "weights" / "verifier.json"
# The English-question verifier, fitted on hand-translated CMRC 2018 questions (qa/training/translated/).
DEFAULT_ENGLISH_VERIFIER = DEFAULT_VERIFIER.with_name("verifier-en.json")

FEATURES = (
    "evidence",            # the reader's best score (heuristic: cosine + keyword share of the best sentence)
    "span_probability",    # the neural reader's probability on the cited span's passage (0.5 without one)
    "span_score",          # its span head's start + end logit for the bold span (0 without one)
    "span_gap",            # how much higher the best span elsewhere in that passage scores (0 without one)
    "sentence_coverage",   # share of the question's checkable concepts in the first cited sentence
    "answer_coverage",     # ... in all cited sentences together
    "passage_coverage",    # ... in the top three passages
    "unknown_share",       # share of checkable concepts the whole corpus never mentions
    "attribute_sentence",  # share of the checkable concepts that are not named entities in the first cited sentence
    "attribute_passages",  # ... in the top three passages
    "quantity_mismatch",   # "how many / 多少" asked, and the first cited sentence holds no number
    "entity_in_sentence",  # the first cited sentence names one of the question's entities (1 without entities)
    "checkable",           # how many concepts could be checked (capped at 6, divided by 6)
)

# The direction each feature may push P(answered), fixed before fitting: more coverage or a surer span never
# lowers it, terms missing from the corpus never raise it. Without these bounds the fit leaned on collinear
# pairs (coverage in the sentence against coverage in the passages) and gave the same validation accuracy.
SIGNS = {"evidence": 1, "span_probability": 1, "span_score": 1, "span_gap": -1, "sentence_coverage": 1,
         "answer_coverage": 1, "passage_coverage": 1, "unknown_share": -1, "attribute_sentence": 1,
         "attribute_passages": 1, "quantity_mismatch": -1, "entity_in_sentence": 1, "checkable": 0}

_QUANTITY = re.compile(r"多少|几|多大|多高|多长|多久|多远|多重|数量|how (many|much|long|old|large|big|tall|far)|what (number|percentage|amount)",
                       re.IGNORECASE)
_NUMBER = re.compile(r"[0-9零〇一二三四五六七八九十百千万亿兩两]")


@dataclass
class Concepts:
    """What an answer should mention: one set of alternative (normalized) spellings per concept."""
    all: list[set[str]] = field(default_factory=list)
    entities: list[set[str]] = field(default_factory=list)

    @property
    def checkable(self) -> list[set[str]]:
        """Concepts that can be looked for in Chinese text: some alternative is not plain ASCII, or is a number."""
        return [c for c in self.all if any(not a.isascii() or a.isdigit() or any(ch.isdigit() for ch in a) for a in c)]

    @property
    def non_entities(self) -> list[set[str]]:
        return [c for c in self.checkable if not any(c & e for e in self.entities)]


def names_an_entity(text: str, entities: list[set[str]]) -> bool:
    """Whether `text` names one of the question's entities (any spelling of its alias group); True when the question
    names none. `text` is compared normalized, as the entities are."""
    if not entities:
        return True
    folded = normalize(text)
    return any(any(a in folded for a in e) for e in entities)


def question_concepts(question: str, aliases) -> Concepts:
    """Alias groups named in the question are one concept each (so "01.AI" is matched by 零一萬物); the
    remaining content words are one concept each."""
    from .text import tokenize

    groups = aliases.groups_in(question)
    concepts = [{normalize(name) for name in g} for g in groups]
    entities = [{normalize(name) for name in g} for g in aliases.groups_in(question, entities_only=True)]
    covered = normalize(" ".join(n for g in groups for n in g))
    for term in dict.fromkeys(tokenize(question)):
        if term not in covered and (len(term) > 1 or not term.isascii()):
            concepts.append({term})
    return Concepts(_with_doers(question, concepts, aliases), entities)


def _with_doers(question: str, concepts: list[set[str]], aliases) -> list[set[str]]:
    """"Who founded MiniMax?": a sentence naming MiniMax's 创始人 answers it as well as one saying it was 成立, so
    the verb's concept also takes the doer's spellings (qa/dictionary.doer_spellings)."""
    from .dictionary import doer_spellings

    doers = doer_spellings(question, aliases)
    if not doers:
        return concepts
    out = [set(c) for c in concepts]
    for noun, spellings in doers.items():
        verb_stem = noun[:-2]  # founder -> found: the concept holding "found"/"founded"
        holder = next((c for c in out if any(a.startswith(verb_stem) and a.isascii() for a in c)), None)
        if holder is None:
            out.append(set(spellings))
        else:
            holder |= spellings
    return out


def _share(concepts: list[set[str]], text: str) -> float:
    if not concepts:
        return 1.0
    return sum(any(a in text for a in c) for c in concepts) / len(concepts)


def evidence_features(question: str, answer: Answer, hits: list[Hit], concepts: Concepts,
                      corpus_text: str | None) -> dict[str, float]:
    """The verifier's inputs for one answer (see FEATURES)."""
    checkable = concepts.checkable
    cited = answer.citations
    first = normalize(cited[0].text) if cited else ""
    together = normalize(" ".join(c.text for c in cited))
    passages = normalize(" ".join(h.chunk.text for h in hits[:3]))
    span_hit = next((h for h in hits if h.span is not None and h.reader_score is not None), None)
    entities = concepts.entities
    return {
        "evidence": float(answer.confidence),
        "span_probability": float(span_hit.reader_score) if span_hit is not None else 0.5,
        "span_score": float(answer.verification.get("span_score", 0.0)),
        "span_gap": float(answer.verification.get("span_gap", 0.0)),
        "sentence_coverage": _share(checkable, first),
        "answer_coverage": _share(checkable, together),
        "passage_coverage": _share(checkable, passages),
        "unknown_share": (1.0 - _share(checkable, corpus_text)) if corpus_text is not None and checkable else 0.0,
        "attribute_sentence": _share(concepts.non_entities, first),
        "attribute_passages": _share(concepts.non_entities, passages),
        "quantity_mismatch": float(bool(_QUANTITY.search(normalize(question))) and not _NUMBER.search(first)),
        "entity_in_sentence": float(names_an_entity(first, entities)),
        "checkable": min(len(checkable), 6) / 6.0,
    }


@dataclass(frozen=True)
class AnswerVerifier:
    """A logistic model over FEATURES; `threshold` is the probability below which the answer is withdrawn."""
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    languages: tuple[str, ...] = ("zh-Hans", "zh-Hant")  # question scripts it was trained on (qa.loader.detect_script)
    provenance: dict = field(default_factory=dict, compare=False, hash=False)

    def covers(self, question: str) -> bool:
        """Whether the question is in a script the verifier was trained on (qa.loader.detect_script)."""
        from .loader import detect_script

        return detect_script(question) in self.languages

    def describe(self) -> str:
        """"Chinese (zh-Hans / zh-Hant) questions below P(answered) 0.39": for the app and the eval reports."""
        names = {"zh-Hans": "Chinese", "zh-Hant": "Chinese", "en": "English"}
        label = " and ".join(dict.fromkeys(names.get(lang, lang) for lang in self.languages))
        return f"{label} ({' / '.join(self.languages)}) questions below P(answered) {self.threshold:.2f}"

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * (features[name] - m) / s
                            for w, name, m, s in zip(self.weights, FEATURES, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "weights": list(self.weights), "bias": self.bias, "mean": list(self.mean),
                "scale": list(self.scale), "threshold": self.threshold, "languages": list(self.languages),
                "provenance": self.provenance}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "AnswerVerifier":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path}: verifier trained on features {raw['features']}, this code computes {list(FEATURES)}; "
                             "retrain it with `qa train-verifier`")
        return cls(tuple(raw["weights"]), float(raw["bias"]), tuple(raw["mean"]), tuple(raw["scale"]),
                   float(raw["threshold"]), tuple(raw.get("languages", ("zh-Hans", "zh-Hant"))), raw.get("provenance", {}))


@dataclass(frozen=True)
class VerifierSet:
    """One verifier per group of question scripts: the Chinese one and the English one are fitted on different
    data and cut at different probabilities, so each question is judged by the model of its own script."""
    models: tuple[AnswerVerifier, ...]

    @classmethod
    def of(cls, verifier: "AnswerVerifier | VerifierSet") -> "VerifierSet":
        """A set as given, or a one-model set: the pipeline, the app and the reports handle sets only."""
        return verifier if isinstance(verifier, VerifierSet) else cls((verifier,))

    def for_question(self, question: str) -> AnswerVerifier | None:
        return next((m for m in self.models if m.covers(question)), None)

    def covers(self, question: str) -> bool:
        return self.for_question(question) is not None

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for m in self.models for lang in m.languages)


def load_verifier(settings) -> VerifierSet:
    """The verifiers named by the settings (verifier_path: one file or several separated by commas; empty: the
    shipped Chinese one, and the English one when settings.english_verifier), each cut at settings.verifier_threshold when that is set (>= 0).
    Raises FileNotFoundError when a named file is missing."""
    from dataclasses import replace

    if settings.verifier_path:
        paths = [Path(p.strip()) for p in settings.verifier_path.split(",") if p.strip()]
    else:
        paths = [DEFAULT_VERIFIER] + ([DEFAULT_ENGLISH_VERIFIER] if settings.english_verifier else [])
    models = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"answer verifier weights not found at {path}; rebuild them with `qa train-verifier` "
                                    "or set QA_ANSWER_VERIFIER=0")
        verifier = AnswerVerifier.load(path)
        models.append(replace(verifier, threshold=settings.verifier_threshold) if settings.verifier_threshold >= 0 else verifier)
    return VerifierSet(tuple(models))
