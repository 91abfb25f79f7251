"""`qa` command line: index, ask, eval, serve."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from .loader import DocumentError
from .protocols import ReaderUnavailableError
from .settings import READERS, STORES, settings_from_args
from .store import IndexError_

EXIT_USAGE = 2


def _service(args, build_if_missing=True):
    from .pipeline import QAService

    return QAService.open(settings_from_args(args), build_if_missing=build_if_missing)


def cmd_index(args) -> int:
    from .pipeline import QAService

    settings = settings_from_args(args)
    service = QAService(settings)
    if not args.rebuild:
        from .stores import open_index

        try:
            service.index = open_index(settings)
        except IndexError_ as exc:
            print(f"note: {exc}; building from scratch", file=sys.stderr)
            if settings.store == "milvus":  # migrating: the FAISS index's vectors are reused, nothing re-embedded
                from .stores.faiss_store import load_index

                try:
                    service.index = load_index(settings.index_dir, settings)
                except IndexError_:
                    pass
    report = service.reindex(rebuild=args.rebuild)
    for problem in report.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"indexed {report.documents} documents into {report.chunks} chunks in {report.seconds:.2f}s "
          f"(re-embedded {report.embedded_documents} documents / {report.embedded_chunks} chunks, "
          f"reused {report.reused_documents} unchanged) -> {settings.index_dir}")
    return 0


def cmd_ask(args) -> int:
    from .pipeline import QuestionError, clean_question

    question = " ".join(args.question) if args.question else sys.stdin.read()
    started = time.perf_counter()
    try:
        clean_question(question, settings_from_args(args))  # reject bad input before loading (or building) anything
        service = _service(args)
        for message in service.messages:
            print(f"note: {message}", file=sys.stderr)
        answer = None
        for _, final in service.ask_stream(question, top_k=args.top_k, answer_mode=args.mode):
            answer = final or answer
    except QuestionError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(answer.to_json_dict(), ensure_ascii=False, indent=2))
        return 0
    print(answer.text)
    if answer.english:  # an English question: what the Chinese answer found, in English (qa/gloss.py)
        print(answer.english)
    if answer.notice and answer.mode != "extractive":
        print(f"note: {answer.notice}", file=sys.stderr)
    from .chat import citation_line

    for n, c in enumerate(answer.citations, 1):
        print(citation_line(n, c))
    print(f"({answer.mode}, {time.perf_counter() - started:.2f}s)", file=sys.stderr)
    return 0


def cmd_chat(args) -> int:
    from .chat import run_chat

    service = _service(args)
    for message in service.messages:
        print(f"note: {message}", file=sys.stderr)
    return run_chat(service, top_k=args.top_k, mode=args.mode, as_json=args.json)


def cmd_add(args) -> int:
    from .documents import DocumentLibrary

    service = _service(args)
    bar = _progress_bar()
    report = DocumentLibrary(service).add_paths(args.paths, progress=bar)
    bar(1.0, "")
    for outcome in report.outcomes:
        print(outcome.line, file=sys.stderr if outcome.status == "refused" else sys.stdout)
    print(report.summary)
    return 1 if report.count("refused") and not (report.count("added") + report.count("replaced")) else 0


def _progress_bar():
    """tqdm bar over the files being read (embedding draws its own bar)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc="reading files", unit="‰", leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}|")

    def progress(fraction: float, desc: str) -> None:
        if desc.startswith("reading"):
            bar.set_description_str(desc[:60])
            bar.n = int(fraction * 1000)
            bar.refresh()
        elif fraction >= 1.0:
            bar.close()

    return progress


def cmd_remove(args) -> int:
    from .documents import DocumentLibrary

    service = _service(args)
    library = DocumentLibrary(service)
    for doc_id in args.documents:
        report = library.remove(doc_id)
        print(f"removed {doc_id}: {report.documents} documents, {report.chunks} passages left")
    return 0


def cmd_list(args) -> int:
    from .documents import DocumentLibrary

    rows = DocumentLibrary(_service(args)).list()
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2))
        return 0
    print(f"{'document':40} {'type':5} {'pages':>5} {'passages':>8}  added")
    for r in rows:
        print(f"{r.doc_id[:40]:40} {r.kind:5} {r.pages or '':>5} {r.passages:>8}  {r.added_at}")
    print(f"{len(rows)} documents, {sum(r.passages for r in rows)} passages")
    return 0


def cmd_eval(args) -> int:
    from .evaluation.runner import main as eval_main

    return eval_main(args)


def cmd_serve(args) -> int:
    from .app import launch

    launch(settings_from_args(args), host=args.host, port=args.port)
    return 0


def cmd_train(args) -> int:
    from .training.train import main as train_main

    return train_main(args.train_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Question answering over Chinese documents, with cited sources.")
    parser.add_argument("--corpus", help="corpus folder (default: corpus/)")
    parser.add_argument("--index-dir", help="index folder (default: index/)")
    parser.add_argument("--model", help="sentence-transformers model name or path (default: bundled multilingual-e5-small)")
    parser.add_argument("--llm-base-url", help="OpenAI-compatible endpoint of a local LLM, e.g. http://127.0.0.1:11434/v1 (env QA_LLM_BASE_URL)")
    parser.add_argument("--llm-model", help="model name at that endpoint (env QA_LLM_MODEL)")
    parser.add_argument("--reader", choices=READERS, default=None,
                        help="answer reader: the trained neural reader (default) or the heuristic sentence scorer (env QA_READER)")
    parser.add_argument("--store", choices=STORES, default=None,
                        help="where passages live: faiss files (default) or milvus at QA_MILVUS_URI (env QA_STORE)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index of the corpus")
    p.add_argument("--rebuild", action="store_true", help="re-embed every document")
    p.add_argument("--store", choices=STORES, default=argparse.SUPPRESS,
                   help="where passages live: faiss files (default) or milvus (QA_MILVUS_URI; env QA_STORE)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="ask a question")
    p.add_argument("question", nargs="*", help="the question (read from stdin when omitted)")
    p.add_argument("--json", action="store_true", help="print the answer, citations and hits as JSON")
    p.add_argument("--top-k", type=int, default=None, help="passages to retrieve")
    p.add_argument("--mode", choices=["extractive", "llm"], default="extractive",
                   help="answer with quoted sentences (default) or with the configured local LLM")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive questions: the model is loaded once (faster than repeated `qa ask`)")
    p.add_argument("--json", action="store_true", help="print each answer as JSON (one line)")
    p.add_argument("--top-k", type=int, default=None, help="passages to retrieve")
    p.add_argument("--mode", choices=["extractive", "llm"], default="extractive")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("add", help="add files or folders (recursively) to the corpus and index them")
    p.add_argument("paths", nargs="+", help="files (.pdf .docx .html .htm .epub .md .txt) or folders")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("remove", help="remove documents from the corpus and the index")
    p.add_argument("documents", nargs="+", help="document ids as shown by `qa list`")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("list", help="list the indexed documents (type, pages, passages, added when)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("eval", help="evaluate on a question set or a SQuAD-format benchmark")
    from .evaluation.args import add_eval_arguments

    add_eval_arguments(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train", help="rebuild the neural reader's weights from ../shared/traindata (CPU, ~1 h)",
                       add_help=False)
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="options of `python -m qa.training.train` (--help)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-retriever", help="rebuild the English query encoder (qa/crosslingual.py) from "
                       "../shared/traindata and CC-CEDICT (CPU, ~1 h)", add_help=False)
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="options of `python -m qa.training.crosslingual` (--help)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-verifier", help="refit the answer verifier (qa/verifier.py) on CMRC/DRCD training data, "
                       "calibrated on CMRC 2018 dev (CPU, ~15 min)", add_help=False)
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="options of `python -m qa.training.verifier` (--help)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", help="start the Gradio chat app")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # its options belong to qa.training.train (`qa train --help`)
        from .training.train import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["train-retriever"]:  # options of qa.training.crosslingual (the English query encoder)
        from .training.crosslingual import main as retriever_main

        return retriever_main(argv[1:])
    if argv[:1] == ["train-verifier"]:  # options of qa.training.verifier
        from .training.verifier import main as verifier_main

        return verifier_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (IndexError_, DocumentError, ReaderUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
