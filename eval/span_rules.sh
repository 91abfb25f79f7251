#!/usr/bin/env bash
# Re-checks the span rules (docs/reader.md, "How the span is chosen") on validation questions only: the DRCD
# validation part (150 questions, seed 7, open setting) and the dev set's answerable questions, with abstention off
# (verifier off, evidence cut 0) so that only the choice of the answer counts. One run per rule setting; then a table.
#   bash eval/span_rules.sh                  # default variants below;  OUT=... to write elsewhere
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${QA_EVALDATA:-../shared/evaldata}
OUT=${OUT:-runs/span}
mkdir -p "$OUT"
VARIANTS=${VARIANTS:-"shipped: off:QA_SPAN_SENTENCE_CHOICE=0,QA_SPAN_FREE_CHOICE=0 rule2:QA_SPAN_FREE_CHOICE=0 rule3:QA_SPAN_SENTENCE_CHOICE=0 noguard:QA_SPAN_KEEP_ENTITY=0"}
names=()
for variant in $VARIANTS; do
  name=${variant%%:*}; envs=${variant#*:}; names+=("$name")
  echo "== $name ($envs) $(date +%T)" >&2
  ( export QA_ANSWER_VERIFIER=0 QA_ABSTAIN_THRESHOLD=0
    [ -n "$envs" ] && for kv in ${envs//,/ }; do export "$kv"; done
    "$PYTHON" -m qa.cli eval --squad "$DATA/drcd/DRCD_dev.json" --articles qa/training/drcd_validation_articles.txt \
      --limit 150 --sample-seed 7 --settings open --readers neural --out "$OUT" --name "drcd-$name" >/dev/null 2>&1
    "$PYTHON" -m qa.cli eval --questions eval/dev_questions.jsonl --readers neural --out "$OUT" --name "dev-$name" >/dev/null 2>&1 )
done
"$PYTHON" - "$OUT" "${names[@]}" <<'PY'
import json, sys
out, names = sys.argv[1], sys.argv[2:]
answerable = {r["id"]: r["answerable"] for r in map(json.loads, open("eval/dev_questions.jsonl", encoding="utf-8"))}
print("| variant | DRCD val open char-F1 | DRCD val acc | dev answerable acc |\n| --- | ---: | ---: | ---: |")
for name in names:
    drcd = json.load(open(f"{out}/drcd-{name}.json"))["systems"]["hybrid+neural"]["overall"]
    dev = [r for r in map(json.loads, open(f"{out}/dev-{name}.records.jsonl", encoding="utf-8"))
           if r["system"] == "hybrid+neural" and answerable[r["id"]]]
    acc = sum(r["metrics"]["answer_accuracy"] for r in dev) / len(dev)
    print(f"| {name} | {100 * drcd['char_f1']:.1f} | {drcd['answer_accuracy']:.3f} | {acc:.3f} (n={len(dev)}) |")
PY
