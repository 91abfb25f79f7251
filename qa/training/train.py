"""`qa train`: rebuild the shipped reader weights from public data on a CPU.

Recipe (choices made on the CMRC 2018 dev validation sample, never on XQuAD or the seed set):
e5-small's embeddings and first `lower_layers` layers stay frozen and read each passage and each
question alone; their states are cached once (qa/training/cache.py). The upper layers are copied
from e5 and fine-tuned, together with a span head and an "answers the question" head, on question +
passage pairs: one positive passage per question and hard negatives from the same paragraph.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..neural.encoder import EncodedText, LowerEncoder
from ..neural.model import ReaderModel
from ..neural.reading import answer_mask, pad_states
from ..settings import load_settings
from .cache import StateBank, bank_path
from .data import (EVAL_DIR, TRAIN_DIR, TRANSLATED_DEV, TRANSLATED_TRAIN, Example, ReadingSet, answer_sentence_cut,
                   drcd_split, examples_for, load_set, load_translations)
from .validate import validate

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "neural" / "weights" / "reader.safetensors"


@dataclass
class Recipe:
    """The shipped reader's recipe (qa/neural/weights/MODEL_CARD.md). The shipped weights are this run stopped at step
    715 and extended to one epoch: `qa train --stop-after 715`, then `qa train --max-steps 2796 --extend`."""
    lower_layers: int = 7
    seed: int = 13
    batch_size: int = 16
    lr_layers: float = 1.5e-4
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.06
    epochs: float = 1.0
    max_steps: int = 1600  # 0: as many as the epochs give (2,796 of 16, the shipped length, reached with --extend)
    negatives_zh: float = 1.0  # hard negatives per Chinese question
    negatives_en: float = 0.3
    next_negatives: float = 0.0  # per question, chunks of the next paragraph in the set (often the same article)
    sentence_negatives: float = 0.4  # share of Chinese questions that also get their paragraph without the answer sentence
    holdout_verifier_paragraphs: bool = False  # leave the answer verifier's training paragraphs out (stacking)
    null_slot: bool = False  # SQuAD 2.0 style: "no answer" competes with every span; P(answer) from the margin
    squad1_articles: int = 25  # the first N SQuAD v1.1 train articles (about 200 questions each)
    translate_train: bool = False  # also CMRC train questions hand-translated into English, over their Chinese paragraphs
    cmrc_train_questions: int = 0  # 0: all 10,142
    val_cmrc_questions: int = 300
    val_drcd_questions: int = 200
    threads: int = 2


def training_sets(recipe: Recipe, settings) -> list[tuple[ReadingSet, float]]:
    drcd_train, _ = drcd_split()
    held_out = None
    if recipe.holdout_verifier_paragraphs:
        from .verifier import verifier_paragraphs

        held_out = verifier_paragraphs()
    return [
        (load_set("cmrc-train", TRAIN_DIR / "cmrc2018" / "cmrc2018_train.squad.json", settings,
                  max_questions=recipe.cmrc_train_questions or None, seed=recipe.seed, exclude_paragraphs=held_out),
         recipe.negatives_zh),
        (load_set("cmrc-trial", TRAIN_DIR / "cmrc2018" / "cmrc2018_trial.squad.json", settings), recipe.negatives_zh),
        (load_set("drcd-train", EVAL_DIR / "drcd" / "DRCD_dev.json", settings, articles=drcd_train,
                  exclude_paragraphs=held_out), recipe.negatives_zh),
        (load_set("squad2-half", TRAIN_DIR / "squad2" / "squad2-dev-half.noxquad.json", settings), recipe.negatives_en),
        (_squad1(recipe, settings), recipe.negatives_en),
    ] + ([(load_set("cmrc-train-en", TRAIN_DIR / "cmrc2018" / "cmrc2018_train.squad.json", settings, seed=recipe.seed,
                    exclude_paragraphs=held_out, translations=load_translations(TRANSLATED_TRAIN)), recipe.negatives_zh)]
         if recipe.translate_train else [])


def _squad1(recipe: Recipe, settings) -> ReadingSet:
    from .data import read_squad

    path = TRAIN_DIR / "squad1" / "squad1.1-train.explorer.json.gz"
    titles = {str(a.get("title")) for a in read_squad(path)[: recipe.squad1_articles]}
    return load_set("squad1-train", path, settings, articles=titles)


def validation_sets(recipe: Recipe, settings) -> list[ReadingSet]:
    _, drcd_val = drcd_split()
    return [
        load_set("cmrc-dev", EVAL_DIR / "cmrc2018" / "cmrc2018_dev.squad.json", settings,
                 max_questions=recipe.val_cmrc_questions, seed=recipe.seed),
        load_set("drcd-val", EVAL_DIR / "drcd" / "DRCD_dev.json", settings, articles=drcd_val,
                 max_questions=recipe.val_drcd_questions, seed=recipe.seed),
        # English questions over Chinese text: the hand-translated CMRC 2018 dev questions (first 120 paragraphs)
        load_set("cmrc-dev-en", EVAL_DIR / "cmrc2018" / "cmrc2018_dev.squad.json", settings,
                 translations=load_translations(TRANSLATED_DEV)),
    ]


def token_span(enc: EncodedText, start: int, end: int) -> tuple[int, int] | None:
    valid = enc.starts >= 0
    first = np.nonzero(valid & (enc.ends > start))[0]
    last = np.nonzero(valid & (enc.starts < end))[0]
    if not len(first) or not len(last) or last[-1] < first[0]:
        return None
    return int(first[0]), int(last[-1])


@dataclass
class Item:
    q: str
    p: str
    start: int  # token indices; -1 for a negative
    end: int


def build_items(examples: list[Example], rs: ReadingSet, bank: StateBank) -> list[Item]:
    items = []
    asked = rs.question_source or rs.name
    for ex in examples:
        enc = bank.items[f"p:{rs.name}:{ex.chunk}"]
        if ex.start is None:
            items.append(Item(f"q:{asked}:{ex.qid}", f"p:{rs.name}:{ex.chunk}", -1, -1))
            continue
        span = token_span(enc, ex.start, ex.end)
        if span is not None:
            items.append(Item(f"q:{asked}:{ex.qid}", f"p:{rs.name}:{ex.chunk}", *span))
    return items


CHINESE_SETS = ("cmrc-train", "cmrc-trial", "drcd-train", "cmrc-dev", "drcd-val")


def cut_sets(sets: list[ReadingSet], share: float, settings, seed: int) -> list[ReadingSet]:
    """The answer-sentence-cut negatives of the Chinese sets (qa/training/data.answer_sentence_cut)."""
    if share <= 0:
        return []
    return [answer_sentence_cut(rs, settings, share, seed) for rs in sets if rs.name in CHINESE_SETS]


def fill_bank(bank: StateBank, encoder: LowerEncoder, sets: list[ReadingSet], chunk_keys: dict[str, set[str]] | None) -> int:
    added = 0
    for rs in sets:
        wanted = chunk_keys.get(rs.name) if chunk_keys else None
        passages = {f"p:{rs.name}:{k}": c.text for k, c in rs.chunks.items() if wanted is None or k in wanted}
        questions = {f"q:{rs.name}:{q.qid}": q.text for q in rs.questions.values()}
        added += bank.fill(encoder, passages, "passage", f"passages {rs.name}")
        if not rs.question_source:  # a derived set's questions are in its source's bank
            added += bank.fill(encoder, questions, "query", f"questions {rs.name}")
    return added


def batches(items: list[Item], bank: StateBank, size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches (less padding), in random order, as indices into `items`."""
    order = sorted(range(len(items)), key=lambda i: (len(bank.items[items[i].p].ids) + rng.random() * 8))
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


def loss_on(model: ReaderModel, group: list[Item], bank: StateBank) -> torch.Tensor:
    hidden = model.config["hidden"]
    device = next(model.parameters()).device
    q, qm = pad_states([bank.items[it.q].states for it in group], hidden)
    passages = [bank.items[it.p] for it in group]
    p, pm = pad_states([x.states for x in passages], hidden)
    start, end, answerable, null = model(q.to(device), qm.to(device), p.to(device), pm.to(device))
    valid = answer_mask(passages, p.shape[1]).to(device)
    neg = torch.finfo(start.dtype).min
    start, end = start.masked_fill(~valid, neg), end.masked_fill(~valid, neg)
    has = torch.tensor([it.start >= 0 for it in group], device=device)
    loss = F.binary_cross_entropy_with_logits(answerable, has.float())
    if model.config.get("null_slot"):  # slot 0 is "no answer"; a span's token i is slot i + 1
        s = torch.tensor([it.start + 1 if it.start >= 0 else 0 for it in group], device=device)
        e = torch.tensor([it.end + 1 if it.start >= 0 else 0 for it in group], device=device)
        start, end = torch.cat([null[:, :1], start], dim=1), torch.cat([null[:, 1:], end], dim=1)
        return loss + (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2
    if has.any():
        s = torch.tensor([it.start for it in group], device=device)[has]
        e = torch.tensor([it.end for it in group], device=device)[has]
        loss = loss + (F.cross_entropy(start[has], s) + F.cross_entropy(end[has], e)) / 2
    return loss


def training_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU (the shipped weights' device is in the model card)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit(model: ReaderModel, items: list[Item], bank: StateBank, recipe: Recipe, log_every: int = 25,
        progress: bool = True, checkpoint: Path | None = None, checkpoint_minutes: float = 5.0,
        resume: bool = False, stop_after: int = 0, extend: bool = False) -> tuple[list[dict], int]:
    """AdamW with warmup and linear decay; a higher rate for the new heads than for the copied layers.

    With `checkpoint`, the whole run (weights, optimizer, schedule, data order, random states, loss curve) is
    saved there every `checkpoint_minutes` and at the end, so that `resume` continues a stopped run exactly
    where it was: the resumed loss curve equals an uninterrupted one (same seed, same machine).
    `stop_after` > 0 stops (after a checkpoint) once that many steps are done: for tests and time budgets.
    `extend` (with `resume`) continues a run that finished, or stopped, to the larger `recipe.max_steps`: the same
    data order goes on (so a run that stopped inside its epoch reads the batches it has not read yet), and the rate
    follows the longer run's schedule from the step reached (a warm restart: up from the old schedule's end).

    Returns the loss curve (mean loss per `log_every` steps) and the number of steps taken."""
    rng = random.Random(recipe.seed)
    device = training_device()
    model.to(device).train()
    head = [p for n, p in model.named_parameters() if not n.startswith("layers.")]
    body = [p for n, p in model.named_parameters() if n.startswith("layers.")]
    opt = torch.optim.AdamW([{"params": body, "lr": recipe.lr_layers}, {"params": head, "lr": recipe.lr_head}],
                            weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(items) / recipe.batch_size)
    total = recipe.max_steps or max(1, round(steps_per_epoch * recipe.epochs))
    warmup = max(1, int(total * recipe.warmup_share))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    curve, window = [], []
    step, groups, spent = 0, [], 0.0
    if extend and (checkpoint is None or not Path(checkpoint).exists()):
        raise RuntimeError(f"--extend continues a run from its checkpoint, and there is none at {checkpoint}")
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        same = state["recipe"] == asdict(recipe) or (extend and {**state["recipe"], "max_steps": recipe.max_steps} == asdict(recipe))
        if not same or state["items"] != len(items):
            raise RuntimeError(f"{checkpoint} belongs to another run (recipe or data differ); remove it or drop --resume")
        if extend and state["step"] >= total:
            raise RuntimeError(f"{checkpoint} is at step {state['step']}: --extend needs a larger --max-steps than that")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        if extend:  # the saved rates belong to the shorter schedule: take the longer one's at this step
            for group, base, rule in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * rule(sched.last_epoch)
        step, groups, curve, window, spent = state["step"], state["groups"], state["curve"], state["window"], state["seconds"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        print(f"resumed {checkpoint} at step {step} of {total}", flush=True)

    def save_checkpoint() -> None:
        tmp = Path(str(checkpoint) + ".tmp")
        torch.save({"recipe": asdict(recipe), "items": len(items), "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "step": step, "groups": groups,
                    "curve": curve, "window": window, "seconds": spent + time.time() - started,
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}, tmp)
        tmp.replace(checkpoint)

    started = last_save = time.time()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    while step < total:
        if not groups:
            groups = batches(items, bank, recipe.batch_size, rng)
        loss = loss_on(model, [items[i] for i in groups.pop()], bank)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        window.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(window):.3f}")
        if step % log_every == 0 or step == total:
            curve.append({"step": step, "loss": round(float(np.mean(window)), 4),
                          "seconds": round(spent + time.time() - started, 1)})
            window = []
            if not progress:
                print(json.dumps(curve[-1]), flush=True)
        if checkpoint is not None and (time.time() - last_save > 60 * checkpoint_minutes or step == total
                                       or step == stop_after):
            save_checkpoint()
            last_save = time.time()
        if stop_after and step >= stop_after and step < total:
            break
    bar.close()
    model.cpu().eval()
    return curve, step


def filled_bank(rs: ReadingSet, encoder: LowerEncoder, recipe: Recipe, settings, root: Path,
                needed: dict[str, set[str]] | None = None) -> StateBank:
    """The set's cached lower-layer states, encoding (and saving) what the cache does not hold yet."""
    signature = (f"cut|{rs.question_source}|{settings.chunk_tokens}" if rs.question_source
                 else f"{len(rs.chunks) + rs.excluded_chunks}|{settings.chunk_tokens}")  # chunk keys are positional
    bank = StateBank(bank_path(root, rs.name, recipe.lower_layers, signature))
    if fill_bank(bank, encoder, [rs], needed if needed and rs.name in needed else None):
        bank.save()
    return bank


def partial_weights_path(out: Path, step: int) -> Path:
    """Where a stopped run leaves its weights so far: beside `out`, named by the step (never `out` itself)."""
    return out.with_name(f"{out.stem}-step{step}{out.suffix}")


def validate_all(model: ReaderModel, vals: list[ReadingSet], val_cuts: dict[str, ReadingSet],
                 banks: dict[str, StateBank]) -> dict:
    return {v.name: validate(model, v, StateBank.merged([banks[v.name], banks[val_cuts[v.name].name]]), val_cuts[v.name])
            if v.name in val_cuts else validate(model, v, banks[v.name]) for v in vals}


def validate_weights(weights: Path, recipe: Recipe, cache_dir: Path | None = None) -> dict:
    """`qa train --validate WEIGHTS`: the validation block of the card for any weights file (same questions,
    same cached states), so that two runs compare on equal terms."""
    torch.set_num_threads(recipe.threads)
    settings = load_settings()
    from ..embedding import get_embedder

    model = ReaderModel.load(weights)
    encoder = LowerEncoder.from_embedder(get_embedder(settings), int(model.config["lower_layers"]))
    vals = validation_sets(recipe, settings)
    val_cuts = {c.question_source: c for c in cut_sets(vals, 1.0, settings, recipe.seed)}
    root = cache_dir or settings.cache_dir
    banks = {rs.name: filled_bank(rs, encoder, recipe, settings, root) for rs in vals + list(val_cuts.values())}
    return validate_all(model, vals, val_cuts, banks)


def train(recipe: Recipe, out: Path, cache_dir: Path | None = None, log_every: int = 25, resume: bool = False,
          checkpoint_minutes: float = 5.0, stop_after: int = 0, extend: bool = False) -> dict | None:
    """The whole run; None when it stopped early (`stop_after`) with its state in the checkpoint. `extend`: see fit()."""
    started = time.time()
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    settings = load_settings()
    from ..embedding import get_embedder

    embedder = get_embedder(settings)
    bert = embedder.model[0].auto_model
    encoder = LowerEncoder.from_embedder(embedder, recipe.lower_layers)

    sets = training_sets(recipe, settings)
    vals = validation_sets(recipe, settings)
    cuts = cut_sets([rs for rs, _ in sets], recipe.sentence_negatives, settings, recipe.seed)
    val_cuts = {c.question_source: c for c in cut_sets(vals, 1.0, settings, recipe.seed)}
    examples = {rs.name: examples_for(rs, neg, recipe.seed, recipe.next_negatives) for rs, neg in sets}
    examples.update({c.name: [Example(q.qid, q.paragraph, None, None) for q in c.questions.values()] for c in cuts})
    needed = {name: {ex.chunk for ex in exs} for name, exs in examples.items()}
    root = cache_dir or settings.cache_dir
    banks: dict[str, StateBank] = {}
    train_sets = [rs for rs, _ in sets] + cuts
    for rs in train_sets + vals + list(val_cuts.values()):  # one bank per data set, reused by any later run
        banks[rs.name] = filled_bank(rs, encoder, recipe, settings, root, needed)
    caching_s = time.time() - started

    items = [it for rs in train_sets for it in build_items(examples[rs.name], rs, banks[rs.name])]
    bank = StateBank.merged([banks[rs.name] for rs in train_sets])
    per_set = {rs.name: {"questions": len(rs.questions), "examples": len(examples[rs.name]),
                         "negatives": sum(ex.start is None for ex in examples[rs.name])} for rs in train_sets}
    model = ReaderModel.from_bert(bert, recipe.lower_layers, base="bundled:multilingual-e5-small", null_slot=recipe.null_slot)
    smoke = vals[0]
    probe = ReadingSet(smoke.name, dict(list(smoke.questions.items())[:3]), smoke.chunks, smoke.paragraph_chunks)
    validate(model.eval(), probe, banks[smoke.name])  # fail now, not after the training run
    checkpoint = root / "training" / f"{out.stem}-{recipe.lower_layers}.ckpt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(items)} training items; checkpoint {checkpoint}", flush=True)
    curve, total = fit(model, items, bank, recipe, log_every, progress=sys.stderr.isatty(), checkpoint=checkpoint,
                       checkpoint_minutes=checkpoint_minutes, resume=resume or extend, stop_after=stop_after,
                       extend=extend)  # eval mode
    if total < (recipe.max_steps or total):
        partial = partial_weights_path(out, total)
        model.save(partial, {"partial": {"step": total, "of": recipe.max_steps, "recipe": asdict(recipe)}})
        print(f"stopped after step {total}; weights so far in {partial} (validate with --validate); "
              "continue with --resume", flush=True)
        return None
    training_s = curve[-1]["seconds"] if curve else 0.0
    model.save(out)  # before validation: a crash there must not lose the run
    validation = validate_all(model, vals, val_cuts, banks)
    report = {
        "recipe": asdict(recipe), "device": f"{training_device().type} ({torch.get_num_threads()} threads)", "data": per_set, "train_items": len(items), "steps": total,
        "caching_seconds": round(caching_s, 1), "training_seconds": round(training_s, 1),
        "total_seconds": round(time.time() - started, 1), "curve": curve, "validation": validation,
    }
    model.save(out, {"report": {k: report[k] for k in ("recipe", "steps", "validation")}})
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    from .card import write_model_card

    write_model_card(out.parent / "MODEL_CARD.md", report, out)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="qa train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    for name, value in asdict(Recipe()).items():
        kind = (lambda text: text.lower() in {"1", "true", "yes", "on"}) if isinstance(value, bool) else type(value)
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--resume", action="store_true", help="continue the stopped run from its checkpoint (same recipe and cache)")
    ap.add_argument("--extend", action="store_true",
                    help="continue the run in the checkpoint to a larger --max-steps (same recipe otherwise)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--stop-after", type=int, default=0, help="stop after this many steps (a checkpoint is kept)")
    ap.add_argument("--validate", type=Path, default=None, metavar="WEIGHTS",
                    help="only validate this weights file (closed F1/EM, removed and sentence-removed refusal)")
    args = ap.parse_args(argv)
    recipe = Recipe(**{k: getattr(args, k) for k in asdict(Recipe())})
    if args.validate:
        print(json.dumps(validate_weights(args.validate, recipe, args.cache_dir), indent=1, ensure_ascii=False))
        return 0
    report = train(recipe, args.out, args.cache_dir, resume=args.resume, checkpoint_minutes=args.checkpoint_minutes,
                   stop_after=args.stop_after, extend=args.extend)
    if report is None:
        return 0
    print(json.dumps({k: report[k] for k in ("steps", "total_seconds", "validation")}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
