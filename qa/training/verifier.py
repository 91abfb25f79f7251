"""`qa train-verifier`: fit the answer verifier (qa/verifier.py) on public training data, calibrate it on CMRC 2018 dev.

Examples come from the deployed pipeline itself (hybrid retrieval, the neural reader, its cited
sentences): training questions are asked over an in-memory index of their set's paragraphs as they
are ("open": label 1 when the answer quotes a gold answer, else 0), with their own paragraph removed
("removed": label 0), and with only the sentence holding the answer cut out of their paragraph
("sentence-removed": label 0; the topic stays, what is asked is gone). A logistic regression over the
evidence features (each weight's sign fixed in advance) is fitted on CMRC 2018 train and DRCD's training part; the probability cut is the
one with the best balanced accuracy on CMRC 2018 dev, open (answer) against both removed kinds
(abstain). XQuAD and the project's question sets are never used.

`--language en` fits the English-question verifier the same way, on English translations of CMRC 2018 train
questions asked over their Chinese paragraphs, and calibrates it on translated CMRC 2018 dev questions
(qa/training/translated/: no public set asks English questions over Chinese text except XQuAD, a test set).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..evaluation.questions import LANGS
from ..settings import load_settings
from ..verifier import DEFAULT_ENGLISH_VERIFIER, DEFAULT_VERIFIER, FEATURES, SIGNS, AnswerVerifier
from .data import TRANSLATED_DEV, TRANSLATED_TRAIN, load_translations, without_answer_sentence
from .validate import calibrate

TRAIN_SETS = {  # name -> (file under ../shared, paragraphs indexed, DRCD part, share of questions also asked removed)
    "cmrc-train": ("traindata/cmrc2018/cmrc2018_train.squad.json", 400, None, 0.5),
    "drcd-train": ("evaldata/drcd/DRCD_dev.json", 200, "train", 0.5),
}
CALIBRATION_SET = ("cmrc-dev", "evaldata/cmrc2018/cmrc2018_dev.squad.json", 120)
# English questions over Chinese text: hand translations (one CMRC train question per paragraph of the same 400
# paragraphs; two CMRC dev questions per paragraph of the same 120), shipped in qa/training/translated/.
ENGLISH_TRAIN_SETS = {"cmrc-train-en": ("traindata/cmrc2018/cmrc2018_train.squad.json", 400, None, 1.0)}
ENGLISH_CALIBRATION_SET = ("cmrc-dev-en", "evaldata/cmrc2018/cmrc2018_dev.squad.json", 120)
TRANSLATIONS = {"cmrc-train-en": TRANSLATED_TRAIN, "cmrc-dev-en": TRANSLATED_DEV}


def translations_for(name: str) -> dict[str, str]:
    """Question id -> its English translation, for one of TRANSLATIONS."""
    return load_translations(TRANSLATIONS[name])


@dataclass
class Example:
    set: str
    qid: str
    setting: str  # "open" | "removed" (own paragraph gone) | "sentence-removed" (own answer sentence gone)
    label: int
    features: dict[str, float]


def title_lexicon(documents):
    """The articles' titles as named entities (the built-in corpus has its alias lexicon; these sets have titles)."""
    from ..aliases import AliasLexicon

    titles = sorted({d.title for d in documents if d.title and d.title != "untitled" and len(d.title) <= 20})
    return AliasLexicon(entities=tuple((t, t) for t in titles))


def _service(embedder, documents):
    from ..pipeline import QAService

    tmp = Path(tempfile.mkdtemp(prefix="qa-verifier-"))
    settings = load_settings(corpus_dir=tmp / "corpus", index_dir=tmp / "index", reader="neural")
    service = QAService(settings, embedder=embedder)
    # a verifier that never refuses, in every script: the pipeline computes the features for each answer
    service.install_verifier(AnswerVerifier((0.0,) * len(FEATURES), 0.0, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES), 0.0,
                                            languages=LANGS))
    service.aliases = title_lexicon(documents)
    return service


def collect(name: str, path: Path, paragraphs: int, articles: set[str] | None, max_questions: int | None = None,
            removed_share: float = 1.0, progress: bool = True,
            translations: dict[str, str] | None = None) -> tuple[list[Example], dict]:
    """Ask the questions of the first `paragraphs` paragraphs in three settings and keep the verifier's inputs:

    - open: every question over all paragraphs (label 1 when the answer quotes a gold answer);
    - removed: a `removed_share` of them over the paragraphs minus their own (label 0);
    - sentence-removed: one question per paragraph over the paragraphs where its own paragraph lost the
      sentence holding the answer (label 0).

    `translations`: only the questions with a translation are asked, in that wording."""
    from tqdm import tqdm

    from ..embedding import get_embedder
    from ..evaluation.cache import CachingEmbedder, embedding_cache_path
    from ..evaluation.datasets import load_squad
    from ..evaluation.metrics import EvalRecord, answer_is_correct, normalize_for_match
    from ..evaluation.run import answer_text

    data = load_squad(path, translations, paragraphs, articles=articles)
    questions = data.questions[:max_questions] if max_questions else data.questions
    base = get_embedder(load_settings())
    embedder = CachingEmbedder(base, embedding_cache_path(load_settings(), getattr(base, "backend", "torch")))
    out: list[Example] = []
    skipped = {"open": 0, "removed": 0, "sentence-removed": 0}

    def ask(service, q, setting, exclude=None):
        answer = service.ask(q.question, top_k=5, exclude_doc=exclude)
        if "evidence" not in answer.verification:  # abstained before the verifier (a check, no sentence): nothing to learn
            skipped[setting] += 1
            return
        right = setting == "open" and answer_is_correct(EvalRecord(q, [], answer_text(answer.text), False, 0.0))
        out.append(Example(name, q.id, setting, int(right), answer.verification))

    service = _service(embedder, data.documents)
    service.index_documents(data.documents, persist=False)
    step = max(1, round(1 / removed_share)) if removed_share > 0 else 0
    for i, q in enumerate(tqdm(questions, desc=f"{name}: open, removed", unit="q", disable=not progress, file=sys.stderr,
                               mininterval=10)):
        ask(service, q, "open")
        if step and i % step == 0:
            ask(service, q, "removed", data.source[q.id])
    # one question per paragraph, its answer sentence cut out of its paragraph
    chosen, twins = [], {}
    by_doc = {d.doc_id: d for d in data.documents}
    for q in questions:
        doc = data.source[q.id]
        if doc in twins:
            continue
        kept = without_answer_sentence(by_doc[doc].text, q.gold_answers)
        if kept is not None:
            twins[doc] = kept
            chosen.append(q)
    service = _service(embedder, data.documents)
    service.index_documents([replace(d, text=twins.get(d.doc_id, d.text)) for d in data.documents], persist=False)
    corpus = normalize_for_match(" ".join(twins.get(d.doc_id, d.text) for d in data.documents))
    chosen = [q for q in chosen if not any(normalize_for_match(g) in corpus for g in q.gold_answers)]
    for q in tqdm(chosen, desc=f"{name}: sentence removed", unit="q", disable=not progress, file=sys.stderr, mininterval=10):
        ask(service, q, "sentence-removed")
    embedder.save()
    counts = {k: sum(ex.setting == k for ex in out) for k in skipped}
    return out, {"paragraphs": len(data.documents), "questions": len(questions), "language": data.lang,
                 "examples_by_setting": counts,
                 "skipped_before_verifier": skipped}


def matrix(examples: list[Example]) -> np.ndarray:
    return np.array([[ex.features[f] for f in FEATURES] for ex in examples], dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, signs: list[int] | None = None
                 ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """L2-regularized logistic regression on standardized features (L-BFGS-B); `signs` bounds each weight
    (+1: >= 0, -1: <= 0, 0: free). Returns weights, bias, feature means and scales."""
    from scipy.optimize import minimize

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale

    def loss(w):
        s = z @ w[:-1] + w[-1]
        p = 1.0 / (1.0 + np.exp(-np.clip(s, -50, 50)))
        value = np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        return value, np.concatenate([z.T @ (p - y) + l2 * w[:-1], [np.sum(p - y)]])

    bounds = [((0, None) if g > 0 else (None, 0) if g < 0 else (None, None)) for g in (signs or [0] * x.shape[1])]
    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds + [(None, None)])
    return result.x[:-1], float(result.x[-1]), mean, scale


def decisions(probabilities: np.ndarray, settings: list[str], threshold: float) -> dict:
    """Refusal figures at the cut: removed and sentence-removed questions should be refused, open ones answered."""
    answered = probabilities >= threshold
    opened = np.array([s == "open" for s in settings])
    refused_removed = int((~answered & ~opened).sum())
    refused_open = int((~answered & opened).sum())
    by_setting = {k: round(float((~answered[[s == k for s in settings]]).mean()), 4)
                  for k in ("removed", "sentence-removed") if k in settings}
    return {"open": int(opened.sum()), "removed": int((~opened).sum()), "refusal_recall_by_setting": by_setting,
            "refusal_recall": round(refused_removed / max(1, int((~opened).sum())), 4),
            "refusal_precision": round(refused_removed / max(1, refused_removed + refused_open), 4),
            "false_refusal_rate": round(refused_open / max(1, int(opened.sum())), 4),
            "balanced_accuracy": round((float(answered[opened].mean()) + refused_removed / max(1, int((~opened).sum()))) / 2, 4)}


def examples_path(language: str = "zh") -> Path:
    """Where collected examples are kept (for --refit and feature studies; not shipped)."""
    return load_settings().cache_dir / ("verifier-examples.jsonl" if language == "zh" else f"verifier-examples-{language}.jsonl")


def verifier_paragraphs() -> set[str]:
    """The texts of the paragraphs `qa train-verifier` asks its training questions over. `qa train
    --holdout-verifier-paragraphs true` leaves them out of the reader's training, so that the verifier learns the
    reader's scores on text the reader never saw (on its own training paragraphs the reader is surer than on new
    text: MODEL_CARD.md)."""
    from ..evaluation.datasets import load_squad
    from ..settings import PROJECT_ROOT
    from .data import drcd_split

    shared = PROJECT_ROOT.parent / "shared"
    drcd_train, _ = drcd_split()
    return {doc.text for rel, paragraphs, part, _ in TRAIN_SETS.values()
            for doc in load_squad(shared / rel, None, paragraphs, articles=drcd_train if part == "train" else None).documents}


def collect_all(max_questions: int | None = None, progress: bool = True, language: str = "zh"
                ) -> tuple[list[Example], list[Example], dict]:
    """Training examples, calibration examples, and where they came from; saved to examples_path(language)."""
    from ..settings import PROJECT_ROOT
    from .data import drcd_split

    shared = PROJECT_ROOT.parent / "shared"
    drcd_train, _ = drcd_split()
    english = language == "en"
    train: list[Example] = []
    sources: dict = {"trained_on": {}}
    for name, (rel, paragraphs, part, removed_share) in (ENGLISH_TRAIN_SETS if english else TRAIN_SETS).items():
        translations = translations_for(name) if english else None
        examples, info = collect(name, shared / rel, paragraphs, drcd_train if part == "train" else None, max_questions,
                                 removed_share, progress, translations)
        train += examples
        sources["trained_on"][name] = {"file": rel, **info, "examples": len(examples),
                                       **({"translations": f"qa/training/translated/{TRANSLATIONS[name]}"} if english else {})}
    cal_name, cal_rel, cal_paragraphs = ENGLISH_CALIBRATION_SET if english else CALIBRATION_SET
    calibration, cal_info = collect(cal_name, shared / cal_rel, cal_paragraphs, None, max_questions, removed_share=1.0,
                                    progress=progress, translations=translations_for(cal_name) if english else None)
    sources["calibrated_on"] = {"set": cal_name, "file": cal_rel, **cal_info, "examples": len(calibration),
                                "rule": "the cut with the best balanced accuracy: answer open questions, abstain on "
                                        "removed and sentence-removed ones"}
    path = examples_path(language)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"part": part, "set": ex.set, "qid": ex.qid, "setting": ex.setting, "label": ex.label, **ex.features}
            for part, exs in (("train", train), ("calibration", calibration)) for ex in exs]
    path.write_text(json.dumps({"features": list(FEATURES), "sources": sources}, ensure_ascii=False) + "\n"
                    + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return train, calibration, sources


def load_examples(language: str = "zh") -> tuple[list[Example], list[Example], dict]:
    """What the last collect_all() saved (refused when the features have changed since)."""
    lines = examples_path(language).read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[0])
    if tuple(head["features"]) != FEATURES:
        raise SystemExit(f"{examples_path(language)}: collected for other features; run `qa train-verifier` without --refit")
    parts: dict[str, list[Example]] = {"train": [], "calibration": []}
    for line in lines[1:]:
        r = json.loads(line)
        parts[r["part"]].append(Example(r["set"], r["qid"], r["setting"], r["label"], {f: r[f] for f in FEATURES}))
    return parts["train"], parts["calibration"], head["sources"]


def fit_verifier(train: list[Example], calibration: list[Example], sources: dict, l2: float = 1.0) -> tuple[AnswerVerifier, dict]:
    """Logistic regression with sign-bounded weights (qa/verifier.SIGNS) on the training examples; the cut with
    the best balanced accuracy on calibration."""
    if not train or not calibration or len({ex.label for ex in train}) < 2:
        raise SystemExit(f"too few verifier examples to fit on ({len(train)} training, {len(calibration)} calibration, "
                         "both labels needed); were the questions answered at all?")
    x, y = matrix(train), np.array([ex.label for ex in train], dtype=np.float64)
    weights, bias, mean, scale = fit_logistic(x, y, l2, [SIGNS[f] for f in FEATURES])
    verifier = AnswerVerifier(tuple(float(v) for v in weights), bias, tuple(float(v) for v in mean),
                              tuple(float(v) for v in scale), 0.5)
    cal_p = np.array([verifier.probability(ex.features) for ex in calibration])
    cal_settings = [ex.setting for ex in calibration]
    threshold, _ = calibrate([p for p, s in zip(cal_p, cal_settings) if s == "open"],
                             [p for p, s in zip(cal_p, cal_settings) if s != "open"], balanced=True)
    train_p = np.array([verifier.probability(ex.features) for ex in train])
    report = {
        **sources, "l2": l2, "threshold": round(float(threshold), 4),
        "weights": {f: round(float(w), 4) for f, w in zip(FEATURES, weights)}, "bias": round(bias, 4),
        "train": decisions(train_p, [ex.setting for ex in train], threshold),
        "calibration": decisions(cal_p, cal_settings, threshold),
        "never_used": "XQuAD, eval/questions.jsonl; CMRC 2018 dev only for the cut",
    }
    provenance = {k: report[k] for k in ("trained_on", "calibrated_on", "l2", "train", "calibration", "never_used")}
    languages = tuple(sorted({info["language"] for info in sources["trained_on"].values() if info.get("language")}))
    report["languages"] = list(languages)
    return replace(verifier, threshold=float(threshold), languages=languages or verifier.languages,
                   provenance=provenance), report


def train_verifier(out: Path, l2: float = 1.0, progress: bool = True, max_questions: int | None = None,
                   refit: bool = False, language: str = "zh") -> dict:
    started = time.time()
    train, calibration, sources = load_examples(language) if refit else collect_all(max_questions, progress, language)
    verifier, report = fit_verifier(train, calibration, sources, l2)
    verifier.save(out)
    report["seconds"] = round(time.time() - started, 1)
    return report


def cut_on_questions(path: Path, questions_path: Path, service=None) -> dict:
    """Choose the cut of the verifier in `path` again on a question file over the built-in corpus, by the same rule
    as on CMRC 2018 dev (the best balanced accuracy: answer the answerable questions, refuse the others), and save it.

    Why: the cut calibrated on Wikipedia paragraphs refuses a third of the answerable Chinese questions of the
    product-like dev set (eval/dev_questions.jsonl): on news and transcripts the reader is less sure of itself than
    on encyclopedia text. Only the questions the verifier judges count; a question refused before the verifier (the
    number and never-mention checks) counts at P 0, refused at every cut. The cut chosen, the set, and the cut it
    replaces go into the verifier's provenance; the set is then a set chosen on, not a held-out one. `service`: the
    QAService to ask through (default: the one over the configured corpus); its verifier is swapped for the one in
    `path` while asking."""
    from ..evaluation.questions import load_questions
    from ..pipeline import QAService

    verifier = AnswerVerifier.load(path)
    questions = [q for q in load_questions(questions_path) if verifier.covers(q.question)]
    service = service or QAService.open(load_settings())
    service.install_verifier(replace(verifier, threshold=0.0))  # nothing withdrawn: every answer keeps its P
    scores: dict[bool, list[float]] = {True: [], False: []}
    try:
        for q in questions:
            answer = service.ask(q.question, reader="neural")
            scores[q.answerable].append(0.0 if answer.abstained else float(answer.confidence))
    finally:
        service.install_verifier(None)
    if not scores[True] or not scores[False]:
        raise SystemExit(f"{questions_path}: both answerable and unanswerable questions in {', '.join(verifier.languages)} are needed")
    threshold, balanced = calibrate(scores[True], scores[False], balanced=True)
    cut = {"set": Path(questions_path).name, "questions": len(questions), "answerable": len(scores[True]),
           "unanswerable": len(scores[False]), "rule": "the cut with the best balanced accuracy: answer the answerable, "
           "refuse the unanswerable", "threshold": round(float(threshold), 4), "balanced_accuracy": round(balanced, 4),
           "refused_answerable": sum(p < threshold for p in scores[True]),
           "refused_unanswerable": sum(p < threshold for p in scores[False]),
           "replaces": round(verifier.provenance.get("cut", {}).get("replaces", verifier.threshold), 4)}
    replace(verifier, threshold=float(threshold), provenance={**verifier.provenance, "cut": cut}).save(path)
    return cut


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qa train-verifier", description=__doc__.split("\n\n")[0])
    ap.add_argument("--language", choices=("zh", "en"), default="zh",
                    help="zh: Chinese questions (CMRC/DRCD); en: English questions over Chinese text (translated CMRC)")
    ap.add_argument("--out", type=Path, default=None, help="default: the shipped verifier.json / verifier-en.json")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--max-questions", type=int, default=None, help="per set (smoke runs)")
    ap.add_argument("--refit", action="store_true", help="fit again on the examples the last run collected (seconds)")
    ap.add_argument("--cut-on", type=Path, default=None, metavar="QUESTIONS",
                    help="only choose the cut of the verifier at --out again, on this question file over the built-in "
                         "corpus (for example eval/dev_questions.jsonl; the shipped cut is CMRC 2018 dev's)")
    args = ap.parse_args(argv)
    out = args.out or (DEFAULT_ENGLISH_VERIFIER if args.language == "en" else DEFAULT_VERIFIER)
    if args.cut_on:
        print(json.dumps(cut_on_questions(out, args.cut_on), indent=1, ensure_ascii=False))
        return 0
    report = train_verifier(out, args.l2, max_questions=args.max_questions, refit=args.refit, language=args.language)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
