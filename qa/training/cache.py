"""Lower-layer states of every passage and question a run needs, computed once and kept on disk.

The lower layers are frozen, so their output for a given text never changes: a second training
run (or the validation pass) reuses the file instead of running e5 again.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from tqdm import tqdm

from ..neural.encoder import EncodedText, LowerEncoder

CACHE_VERSION = 1


class StateBank:
    """key -> EncodedText for passages ("p:<chunk key>") and questions ("q:<id>")."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.items: dict[str, EncodedText] = {}
        if self.path.exists():
            with open(self.path, "rb") as f:
                self.items = pickle.load(f)

    def fill(self, encoder: LowerEncoder, texts: dict[str, str], kind: str, desc: str, batch: int = 64) -> int:
        todo = [k for k in texts if k not in self.items]
        for b in tqdm(range(0, len(todo), batch * 8), desc=desc, unit_scale=batch * 8, leave=False):
            keys = todo[b : b + batch * 8]
            for key, enc in zip(keys, encoder.encode([texts[k] for k in keys], kind, batch)):
                self.items[key] = enc
        return len(todo)

    @classmethod
    def merged(cls, banks: list["StateBank"]) -> "StateBank":
        out = cls.__new__(cls)
        out.path, out.items = Path("/dev/null"), {}
        for bank in banks:
            out.items.update(bank.items)
        return out

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(self.items, f, protocol=5)
        tmp.replace(self.path)


def bank_path(cache_dir: Path, name: str, lower_layers: int, signature: str) -> Path:
    digest = hashlib.sha256(f"{CACHE_VERSION}|{lower_layers}|{signature}".encode()).hexdigest()[:12]
    return Path(cache_dir) / "reader-train" / f"{name}-L{lower_layers}-{digest}.pkl"
