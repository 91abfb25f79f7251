"""The model card written next to the trained weights: data, recipe, time, validation numbers."""

from __future__ import annotations

from pathlib import Path

from .validate import NEGATIVE_KINDS

SOURCES = [
    ("CMRC 2018 train", "ymcui/cmrc2018 @ c0eb1b6b (via CLUE's byte-identical copy)", "CC BY-SA 4.0"),
    ("CMRC 2018 trial", "ymcui/cmrc2018 @ c0eb1b6b", "CC BY-SA 4.0"),
    ("DRCD dev, training part (split by article, validation ids in qa/training/drcd_validation_articles.txt)",
     "DRCKnowledgeTeam/DRCD @ b944790d", "CC BY-SA 3.0"),
    ("SQuAD 2.0 dev, one half without XQuAD paragraphs", "chrischute/squad @ 85623ade", "CC BY-SA 4.0"),
    ("SQuAD v1.1 train, first N articles", "rajpurkar/SQuAD-explorer @ 13f82e35 (rebuilt)", "CC BY-SA 4.0"),
    ("CMRC 2018 train, one question per paragraph translated into English by hand, over the Chinese paragraph "
     "(translate-train; qa/training/translated/)", "this project, from ymcui/cmrc2018 @ c0eb1b6b", "CC BY-SA 4.0"),
]


def _num(value) -> str:
    """Three decimals, or a dash where the set has no such negatives (not a NaN in the table)."""
    return "—" if value is None or value != value else f"{value:.3f}"


NOTES_MARKER = "<!-- notes: kept when `qa train` rewrites this card -->"


def write_model_card(path: Path, report: dict, weights: Path) -> None:
    r = report["recipe"]
    lines = [
        "# Reader model card", "",
        f"Weights: `{weights.name}` ({weights.stat().st_size / 1e6:.1f} MB, float16). Rebuild with `qa train` "
        f"(fixed seed {r['seed']}); this card is written by that command.", "",
        "## Architecture", "",
        f"multilingual-e5-small (bundled, see qa/embedding.py): embeddings and layers 1-{r['lower_layers']} frozen, run on "
        "the question and on each passage alone (\"query: \" / \"passage: \" prefixes, script-folded text). Layers "
        f"{r['lower_layers'] + 1}-12 are copied from e5 and fine-tuned on the concatenated question + passage states, "
        "with a learned segment vector, a start/end span head and an \"answers the question\" head "
        "(question <s> state + max-pooled passage states -> logit)." + (
            " The span head also reads the question's <s> state as a \"no answer\" slot that competes with every span "
            "(SQuAD 2.0 style): negatives are trained to point there, and the reader's probability that a passage "
            "answers is sigmoid(best span score - no-answer score)." if r.get("null_slot") else ""), "",
        "## Data (never XQuAD, never CMRC 2018 dev, never the project's question sets)", "",
        "| set | source @ commit | licence | questions | examples | negatives |", "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    names = list(report["data"])
    for (label, source, licence), name in zip(SOURCES, ["cmrc-train", "cmrc-trial", "drcd-train", "squad2-half", "squad1-train", "cmrc-train-en"]):
        d = report["data"].get(name, {})
        lines.append(f"| {label} | {source} | {licence} | {d.get('questions', 0):,} | {d.get('examples', 0):,} | {d.get('negatives', 0):,} |")
    for name in names:
        if name.endswith("-cut"):  # derived from the set above it: that set's questions, their answer sentence cut out
            d = report["data"][name]
            lines.append(f"| {name}: {name[:-4]} with the answer's sentence cut out | (same) | (same) | {d['questions']:,} | "
                         f"{d['examples']:,} | {d['negatives']:,} |")
    lines += ["", f"Sets used: {', '.join(names)}. Negatives are chunks of the question's own paragraph that do not "
              "hold the answer (SQuAD 2.0 unanswerable questions: chunks of their paragraph)" + (
                  f"; about {r['next_negatives']} per question are chunks of the next paragraph of the set without a "
                  "gold answer" if r.get("next_negatives") else "") + (
                  f"; about {r['sentence_negatives']:.0%} of the Chinese questions also get their own paragraph with the "
                  "answer's sentence cut out, re-chunked (the chunk covering the cut; sets named *-cut)"
                  if r.get("sentence_negatives") else "") + ".", "",
              "## Recipe", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in r.items()]
    lines += ["", f"## Time (device: {report.get('device', 'cpu')}; this machine: 2 CPU cores, no GPU)", "",
              f"- caching lower-layer states: {report['caching_seconds']:.0f} s (reused from disk on a rerun)",
              f"- training: {report['training_seconds']:.0f} s for {report['steps']} steps of {r['batch_size']} "
              f"({report['train_items']:,} items)", f"- this process (the last of a resumed or extended run), caching and validation included: "
              f"{report['total_seconds']:.0f} s", "",
              "## Validation (held out; the threshold is calibrated here)", "",
              "| set | questions | closed F1 | closed EM | threshold | decision accuracy | refusal precision | refusal recall "
              "| removed AUC | same-paragraph AUC | same-article AUC | other-article AUC | sentence-removed AUC "
              "| sentence-removed refused |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, v in report["validation"].items():
        lines.append(f"| {name} | {v['questions']} | {v['closed_f1']:.1f} | {v['closed_em']:.1f} | {v['threshold']:.3f} | "
                     f"{v['decision_accuracy']:.3f} | {v['refusal_precision']:.3f} | {v['refusal_recall']:.3f} | "
                     f"{_num(v.get('removed_auc'))} | "
                     + "".join(f"{_num(v.get(f'{kind}_auc'))} | " for kind in NEGATIVE_KINDS)
                     + f"{_num(v.get('sentence_removed_auc'))} | {_num(v.get('sentence_removed_recall'))} |")
    lines += ["", "closed: the question's own paragraph (all its chunks) is given. Refusal: the same questions over chunks "
              "without the answer (rest of the paragraph + the next paragraph), also by kind: the same paragraph, the next paragraph "
              "of the same article, a paragraph of another article. Sentence removed: the same questions over "
              "their own paragraph with the answer's sentence cut out (AUC against the closed readings; refused at the "
              "threshold). CMRC 2018 char F1/EM.", "",
              "## Training loss", "", "| step | mean loss | seconds |", "| ---: | ---: | ---: |"]
    lines += [f"| {c['step']} | {c['loss']:.3f} | {c['seconds']:.0f} |" for c in report["curve"]]
    notes = ""
    if path.exists() and NOTES_MARKER in path.read_text(encoding="utf-8"):  # hand-written findings survive a retrain
        notes = path.read_text(encoding="utf-8").split(NOTES_MARKER, 1)[1]
    path.write_text("\n".join(lines) + "\n\n" + NOTES_MARKER + notes.rstrip("\n") + "\n", encoding="utf-8")
