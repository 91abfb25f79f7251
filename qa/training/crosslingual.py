"""`qa train-retriever`: the English query encoder, trained on the 2 CPU cores of this machine.

English questions about Chinese documents reach the right passage far less often than Chinese ones (XQuAD en->zh
R@1 0.650 against 0.955), mostly because e5-small does not map "Fan Tingsong" onto 范廷颂 or "bishop" onto 主教.
Passages keep the index's vectors (no rebuild); only the query side moves, and only for English questions
(qa/crosslingual.py routes them), so Chinese retrieval is exactly what it was.

Recipe: a copy of the bundled e5 (the word-embedding table shared and frozen) is the student; the frozen e5 is the
teacher. Each step mixes the routes of qa/training/crosslingual_data.py. Loss per text: the squared distance of the
student's vector to the teacher's vector of the target text (multilingual knowledge distillation, Reimers and
Gurevych 2020), plus, for questions with an answer chunk, cross-entropy of the student's vector against the teacher's
vectors of all CMRC train chunks (the answer's chunk is the class). Validation: the hand-translated CMRC 2018 dev
questions over all CMRC dev chunks; the step with the best English MRR@10 is kept (chosen on that set, said in the
model card). CUDA is used when torch sees a GPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..fast_embed import copy_without_word_table
from ..settings import load_settings
from ..text import fold_script
from .crosslingual_data import PairSet, chunked_paragraphs, training_pairs
from .data import EVAL_DIR, TRANSLATED_DEV, load_translations, read_squad
from .train import training_device

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "neural" / "weights" / "query-en.safetensors"
CMRC_DEV = EVAL_DIR / "cmrc2018" / "cmrc2018_dev.squad.json"
QUERY = "query: "


@dataclass
class RetrieverRecipe:
    seed: int = 13
    train_from_layer: int = 0  # encoder layers >= this are trained (0: all 12); the embeddings always stay frozen
    batch_size: int = 48
    lr: float = 4e-5
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 2400
    temperature: float = 0.02  # cross-entropy over chunks: e5's own training used 0.01
    mse_weight: float = 50.0  # squared distance of unit vectors is ~0.1-0.5: scaled to weigh with the cross-entropy
    max_query_tokens: int = 64
    # route shares of a batch (crosslingual_data.py)
    share_translated: float = 0.35
    share_chinese: float = 0.15
    share_squad: float = 0.10
    share_cedict: float = 0.25
    share_names: float = 0.15
    cedict_pairs: int = 30000
    squad_pairs: int = 6000
    name_pairs: int = 8000
    eval_every: int = 200
    threads: int = 2

    def shares(self) -> dict[str, float]:
        return {"translated": self.share_translated, "chinese": self.share_chinese, "squad": self.share_squad,
                "cedict": self.share_cedict, "names": self.share_names}


def trainable_names(student, from_layer: int) -> list[str]:
    return [n for n, _ in student.named_parameters()
            if n.startswith("encoder.layer.") and int(n.split(".")[2]) >= from_layer]


def encode(student, table, tokenizer, texts: list[str], max_tokens: int, device) -> torch.Tensor:
    """Mean-pooled, normalized vectors of `query: <text>`, as the bundled e5 computes them."""
    batch = tokenizer([QUERY + t for t in texts], padding=True, truncation=True, max_length=max_tokens,
                      return_tensors="pt")
    rows = table(batch["input_ids"]).to(device)
    mask = batch["attention_mask"].to(device)
    out = student(inputs_embeds=rows, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(out.dtype)
    return F.normalize((out * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


class Teacher:
    """The frozen e5's vectors, computed once per text list and cached on disk (they never change)."""

    def __init__(self, settings, root: Path):
        from ..embedding import get_embedder

        self.embedder, self.root = get_embedder(settings), root
        root.mkdir(parents=True, exist_ok=True)

    def vectors(self, name: str, texts: list[str], side: str) -> np.ndarray:
        digest = hashlib.sha256(("\n".join(texts) + side + self.embedder.model_id).encode()).hexdigest()[:16]
        path = self.root / f"xling-{name}-{digest}.npy"
        if path.exists():
            return np.load(path)
        print(f"teacher: {len(texts)} {side} texts ({name})", file=sys.stderr, flush=True)
        folded = [fold_script(t) for t in texts]
        if side == "query":
            def enc(batch):
                return self.embedder.encode_queries(batch, crosslingual=False)
        else:
            enc = self.embedder.encode_documents
        vecs = np.concatenate([enc(folded[i:i + 512]) for i in range(0, len(folded), 512)]).astype(np.float32)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)
        return vecs


@dataclass
class ValidationSet:
    english: list[str]
    chinese: list[str]
    paragraph_of_question: list[int]
    chunk_paragraph: np.ndarray  # chunk -> paragraph
    chunk_vectors: np.ndarray


def validation_set(settings, teacher: Teacher) -> ValidationSet:
    """Translated CMRC 2018 dev questions (and their Chinese wording) over every CMRC dev chunk."""
    data = read_squad(CMRC_DEV)
    english = load_translations(TRANSLATED_DEV)
    chunked = chunked_paragraphs(data, settings)
    en, zh, para_of = [], [], []
    for number, para in enumerate(p for article in data for p in article["paragraphs"]):
        for qa in para["qas"]:
            if str(qa["id"]) in english:
                en.append(english[str(qa["id"])])
                zh.append(qa["question"])
                para_of.append(number)
    return ValidationSet(en, zh, para_of, np.asarray(chunked.paragraph_of_chunk),
                         teacher.vectors("cmrc-dev-chunks", chunked.chunks, "document"))


def ranks(query_vectors: np.ndarray, val: ValidationSet) -> list[int]:
    """1-based rank of the first chunk of each question's own paragraph (0: not in the top 100)."""
    scores = query_vectors @ val.chunk_vectors.T
    out = []
    for q, row in enumerate(scores):
        top = np.argsort(-row)[:100]
        hit = np.nonzero(val.chunk_paragraph[top] == val.paragraph_of_question[q])[0]
        out.append(int(hit[0]) + 1 if len(hit) else 0)
    return out


def retrieval_metrics(rank_list: list[int]) -> dict:
    r = np.asarray(rank_list)
    found = r > 0
    return {"questions": len(r), "r@1": round(float(np.mean(found & (r <= 1))), 4),
            "r@5": round(float(np.mean(found & (r <= 5))), 4),
            "mrr@10": round(float(np.mean(np.where(found & (r <= 10), 1.0 / np.maximum(r, 1), 0.0))), 4)}


@torch.no_grad()
def validate_student(student, table, tokenizer, val: ValidationSet, recipe: RetrieverRecipe, device) -> dict:
    was_training = student.training
    student.eval()
    out = {}
    for lang, texts in (("en", val.english), ("zh", val.chinese)):
        vecs = torch.cat([encode(student, table, tokenizer, [fold_script(t) for t in texts[i:i + 64]],
                                 recipe.max_query_tokens, device) for i in range(0, len(texts), 64)])
        out[lang] = retrieval_metrics(ranks(vecs.float().cpu().numpy(), val))
    student.train(was_training)
    return out


def sample_batch(pairs: PairSet, recipe: RetrieverRecipe, rng: random.Random) -> list[tuple[str, int]]:
    """(route, index) of each pair in one batch, routes drawn by their shares."""
    shares = {r: s for r, s in recipe.shares().items() if s > 0 and pairs.pairs.get(r)}
    routes = list(shares)
    drawn = rng.choices(routes, weights=[shares[r] for r in routes], k=recipe.batch_size)
    return [(r, rng.randrange(len(pairs.pairs[r]))) for r in drawn]


def save_weights(student, names: list[str], out: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    params = dict(student.named_parameters())
    tensors = {n: params[n].detach().to("cpu", torch.float16).contiguous() for n in names}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"qa_query_encoder": json.dumps(meta, ensure_ascii=False)})
    tmp.replace(out)


def train(recipe: RetrieverRecipe, out: Path, resume: bool = False, stop_after: int = 0) -> dict:
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    settings = load_settings()
    root = Path(settings.cache_dir) / "training"
    teacher = Teacher(settings, root)
    bert, tokenizer = teacher.embedder.model[0].auto_model, teacher.embedder.model.tokenizer
    table = bert.embeddings.word_embeddings
    device = training_device()

    started = time.time()
    pairs = training_pairs(settings, recipe.cedict_pairs, recipe.squad_pairs, recipe.name_pairs, recipe.seed)
    targets = {r: torch.from_numpy(teacher.vectors(f"target-{r}", [p.target for p in ps], "query"))
               for r, ps in pairs.pairs.items()}
    chunk_vectors = torch.from_numpy(teacher.vectors("cmrc-train-chunks", pairs.chunks, "document")).to(device)
    val = validation_set(settings, teacher)
    print(json.dumps({"pairs": {r: len(ps) for r, ps in pairs.pairs.items()}, "chunks": len(pairs.chunks),
                      "validation_questions": len(val.english), "prepared_s": round(time.time() - started, 1)}),
          flush=True)

    student = copy_without_word_table(bert).to(device)
    names = trainable_names(student, recipe.train_from_layer)
    for n, p in student.named_parameters():
        p.requires_grad_(n in names)
    params = [p for n, p in student.named_parameters() if n in names]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = recipe.max_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / recipe.warmup_steps, max(0.0, (total - s) / max(1, total - recipe.warmup_steps))))
    rng = random.Random(recipe.seed)
    checkpoint = root / f"{out.stem}.ckpt"
    step, curve, window, spent, best = 0, [], [], 0.0, None
    baseline = validate_student(student, table, tokenizer, val, recipe, device)
    print(json.dumps({"step": 0, "validation": baseline}), flush=True)
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["recipe"] != asdict(recipe):
            raise RuntimeError(f"{checkpoint} belongs to another recipe; remove it or drop --resume")
        student.load_state_dict(state["student"], strict=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        step, curve, window, spent, best = state["step"], state["curve"], state["window"], state["seconds"], state["best"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {checkpoint} at step {step} of {total}", flush=True)
    student.train()
    began = time.time()
    while step < total:
        batch = sample_batch(pairs, recipe, rng)
        texts = [pairs.pairs[r][i].text for r, i in batch]
        target = torch.stack([targets[r][i] for r, i in batch]).to(device)
        positive = torch.tensor([pairs.pairs[r][i].positive for r, i in batch], device=device)
        vecs = encode(student, table, tokenizer, [fold_script(t) for t in texts], recipe.max_query_tokens, device)
        loss = recipe.mse_weight * ((vecs - target) ** 2).sum(-1).mean()
        asked = positive >= 0
        if asked.any():
            logits = vecs[asked] @ chunk_vectors.T / recipe.temperature
            loss = loss + F.cross_entropy(logits, positive[asked])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        window.append(loss.item())
        if step % recipe.eval_every == 0 or step == total or step == stop_after:
            metrics = validate_student(student, table, tokenizer, val, recipe, device)
            curve.append({"step": step, "loss": round(float(np.mean(window)), 4),
                          "seconds": round(spent + time.time() - began, 1), "validation": metrics})
            window = []
            print(json.dumps(curve[-1]), flush=True)
            if best is None or metrics["en"]["mrr@10"] > best["validation"]["en"]["mrr@10"]:
                best = curve[-1]
                save_weights(student, names, out, {"recipe": asdict(recipe), "step": step, "device": device.type,
                                                   "baseline": baseline, "validation": metrics, "curve": curve})
            tmp = Path(str(checkpoint) + ".tmp")
            torch.save({"recipe": asdict(recipe), "student": {n: p for n, p in student.state_dict().items()
                                                               if n in names},
                        "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "step": step, "curve": curve,
                        "window": window, "seconds": spent + time.time() - began, "best": best,
                        "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, tmp)
            tmp.replace(checkpoint)
        if stop_after and step >= stop_after and step < total:
            print(f"stopped after step {step}; continue with --resume", flush=True)
            break
    return {"baseline": baseline, "best": best, "curve": curve, "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    defaults = RetrieverRecipe()
    parser = argparse.ArgumentParser(prog="qa train-retriever", description=__doc__.split("\n\n")[0])
    for name, value in asdict(defaults).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", action="store_true", help="continue the run checkpointed in the cache")
    parser.add_argument("--stop-after", type=int, default=0, help="stop (checkpointed) after this many steps")
    args = parser.parse_args(argv)
    recipe = RetrieverRecipe(**{k: getattr(args, k) for k in asdict(defaults)})
    result = train(recipe, args.out, resume=args.resume, stop_after=args.stop_after)
    print(json.dumps({"baseline": result["baseline"], "best": result["best"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
