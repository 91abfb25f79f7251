#!/usr/bin/env bash
# Regenerates everything committed under eval/results/ (both readers side by side everywhere):
#   seed.{md,json,png,records.jsonl}   eval/questions.jsonl over the built-in corpus: BM25 / dense / hybrid,
#                                      hybrid + neural reader, hybrid + heuristic reader (the test set)
#   dev.{md,json,png,records.jsonl}    eval/dev_questions.jsonl, the same systems: 66 questions written later by
#                                      someone who never saw the seed set (validation; nothing fitted on it yet)
#   calibration.{md,json,png}          the heuristic reader's abstain_threshold sweep (seed set only); the
#                                      neural reader's threshold is calibrated on CMRC 2018 dev by `qa train`
#   xquad-zh, xquad-en-zh, drcd-val, cmrc2018-dev .{md,json,png,records.jsonl}
#                                      public SQuAD-format sets in three settings: closed (gold paragraph given),
#                                      open (end to end), answer removed (abstaining is right)
#   cmrc-dev-en-{base,dict,enc,both}  hand-translated CMRC 2018 dev questions (English) over their Chinese paragraphs:
#                                      without / with the English routes (docs/english.md); validation of the
#                                      English query encoder (its step was chosen on these questions)
#   english-refusal-cmrc-dev           eval/english_refusal.py: refusal of those English questions, open vs removed
#   benchmarks.{md,json,png}           all of the above in one table / plot
#   pipeline.{md,json}                 speed per reader (eval/bench_pipeline.py)
#
# Nothing here was trained on: XQuAD and CMRC 2018 dev are never trained on; the DRCD run indexes only
# the validation articles (qa/training/drcd_validation_articles.txt), whose questions were held out.
# Samples (2-core CPU): XQuAD all 240 paragraphs; DRCD validation part all paragraphs; CMRC 2018 dev the
# first $CMRC_PARAGRAPHS paragraphs; a seeded sample of $QUESTIONS questions each (same ids zh->zh and en->zh).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
DATA=${QA_EVALDATA:-../shared/evaldata}
OUT=${OUT:-eval/results}
QUESTIONS=${QUESTIONS:-200}
CMRC_PARAGRAPHS=${CMRC_PARAGRAPHS:-150}
SEED=${SEED:-0}
READERS=${READERS:-neural,heuristic}

qa() { "$PYTHON" -m qa.cli "$@"; }
sample=(--limit "$QUESTIONS" --sample-seed "$SEED" --readers "$READERS" --baselines)
started=$(date +%s)
step() { echo "== $* ($(( $(date +%s) - started ))s)" >&2; }

step "seed set"
qa eval --baselines --readers "$READERS" --out "$OUT" --name seed
step "product-like validation set (hand-written over the built-in corpus, kept apart from the seed set)"
qa eval --questions eval/dev_questions.jsonl --baselines --readers "$READERS" --out "$OUT" --name dev
step "calibration of the heuristic reader (seed set)"
qa --reader heuristic eval --calibrate --out "$OUT" --name calibration
step "XQuAD zh -> zh"
qa eval --squad "$DATA/xquad/xquad.zh.json" "${sample[@]}" --out "$OUT" --name xquad-zh
step "XQuAD en -> zh (questions paired by id)"
qa eval --squad "$DATA/xquad/xquad.zh.json" --questions-from "$DATA/xquad/xquad.en.json" "${sample[@]}" \
  --out "$OUT" --name xquad-en-zh
step "DRCD dev, validation articles only (Traditional)"
qa eval --squad "$DATA/drcd/DRCD_dev.json" --articles qa/training/drcd_validation_articles.txt "${sample[@]}" \
  --out "$OUT" --name drcd-val
step "CMRC 2018 dev"
qa eval --squad "$DATA/cmrc2018/cmrc2018_dev.squad.json" --paragraphs "$CMRC_PARAGRAPHS" "${sample[@]}" \
  --out "$OUT" --name cmrc2018-dev
step "translated CMRC 2018 dev: English questions (hand-translated) over the first 120 paragraphs, before and after the English routes"
run_en() {  # $1: QA_ENGLISH_QUERY_ENCODER ("" = the shipped one, none = off), $2: QA_ENGLISH_DICTIONARY, $3: name
  QA_ENGLISH_QUERY_ENCODER=$1 QA_ENGLISH_DICTIONARY=$2 qa eval --squad "$DATA/cmrc2018/cmrc2018_dev.squad.json" \
    --questions-from qa/training/translated/cmrc2018_dev.en.jsonl --paragraphs 120 --settings open --readers neural \
    --baselines --out "$OUT" --name "cmrc-dev-en-$3"
}
run_en none 0 base; run_en none 1 dict; run_en "" 0 enc; run_en "" 1 both
step "English refusal sweep (translated CMRC 2018 dev: validation; XQuAD en->zh refusal is in its removed setting)"
"$PYTHON" eval/english_refusal.py --squad "$DATA/cmrc2018/cmrc2018_dev.squad.json" \
  --questions-from qa/training/translated/cmrc2018_dev.en.jsonl --paragraphs 120 --out "$OUT" --name english-refusal-cmrc-dev
step "combined table"
qa eval --combine "$OUT"/seed.json "$OUT"/dev.json "$OUT"/xquad-zh.json "$OUT"/xquad-en-zh.json "$OUT"/drcd-val.json \
  "$OUT"/cmrc2018-dev.json --out "$OUT" --name benchmarks
step "pipeline speed"
"$PYTHON" eval/bench_pipeline.py --out "$OUT"
step "done"
