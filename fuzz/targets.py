"""The fuzz targets: each parser, fed bytes as the file it reads, and the LSP document path."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from companion.architecture.analysis import analyse
from companion.architecture.jsonc import parse as parse_jsonc
from companion.architecture.params import count_params
from companion.architecture.spec import build_spec, load_config
from companion.architecture.tokenizer import load_vocab
from companion.audit.checkpoint import open_checkpoint
from companion.audit.safetensors import parse_header, write_safetensors
from companion.evidence import writers
from companion.evidence.tabular import parse_csv, parse_jsonl, parse_trainer_state
from companion.evidence.textlogs import parse_text
from companion.evidence.tfevents import parse_events
from companion.evidence.trainer import Model, markov_corpus, train
from companion.evidence.wandb_run import parse_wandb_log

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.evidence_binary import tensorboard_events, wandb_run_dir
from helpers.torch_zip import state_dict_pickle, write_zip

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "configs"
WORK = Path(tempfile.mkdtemp(prefix="companion-fuzz-"))
Target = Callable[[bytes], object]


def as_file(name: str, parse: Callable[[Path], object]) -> Target:
    """A target that writes the bytes to a file named `name` and parses that file."""
    path = WORK / name

    def run(data: bytes) -> object:
        path.write_bytes(data)
        return parse(path)

    return run


def _header(data: bytes) -> object:
    """The safetensors header parser on a file's first bytes."""
    return parse_header(data, len(data), "fuzz")


def _config_text(data: bytes) -> object:
    """The tolerant JSON/JSONC parser and the analysis an editor shows."""
    text = data.decode("utf-8", "replace")
    a = analyse(text, None)
    a.problems()
    for off in (0, len(text) // 3, len(text) // 2, len(text) - 1):
        a.hover(max(0, off))
    return parse_jsonc(text)


def _config_file(path: Path) -> object:
    """Load a config file and count its parameters (the CLI path)."""
    return count_params(build_spec(load_config(path)))


def _seed_bytes(write: Callable[[Path], None], name: str) -> bytes:
    """The first bytes of a file written by one of the project's own writers."""
    p = WORK / f"seed-{name}"
    write(p)
    return p.read_bytes()[:3000]


def log_seeds() -> dict[str, bytes]:
    """One real log per format, written from a short run of the project's tiny trainer."""
    corpus = markov_corpus(256, 20_000, seed=1)
    run = train(Model.random(256, seed=0), corpus, steps=40, peak=0.05, warmup=5)
    seeds = {
        "megatron": _seed_bytes(lambda p: writers.megatron(run, p, vocab=256), "m"),
        "nemo": _seed_bytes(lambda p: writers.nemo(run, p), "n"),
        "torchtitan": _seed_bytes(lambda p: writers.torchtitan(run, p), "t"),
        "nanogpt": _seed_bytes(lambda p: writers.nanogpt(run, p, vocab=256), "g"),
        "llmc": _seed_bytes(lambda p: writers.llmc_stdout(run, p, vocab=256), "l"),
        "modded": _seed_bytes(lambda p: writers.modded_nanogpt(run, p, "import torch"), "md"),
        "hf-console": _seed_bytes(lambda p: writers.hf_console(run, p), "h"),
        "deepspeed": _seed_bytes(lambda p: writers.deepspeed_chat(run, p), "d"),
        "csv": _seed_bytes(lambda p: writers.wandb_csv(run, p, every=2), "c"),
        "jsonl": _seed_bytes(lambda p: writers.llamafactory(run, p), "j"),
        "state": _seed_bytes(lambda p: writers.trainer_state(run, p), "s"),
    }
    tb = tensorboard_events(WORK / "tb", run.steps, run.loss, run.lr, tensor=True)
    seeds["tfevents"] = tb.read_bytes()[:3000]
    wandb = next(wandb_run_dir(WORK, run.steps, run.loss, run.lr, vocab=256).glob("*.wandb"))
    seeds["wandb"] = wandb.read_bytes()[:4000]
    return seeds


def config_seeds() -> list[bytes]:
    """The real configs from ../shared when present, else a typed-in Llama config."""
    found = [p.read_bytes() for p in sorted(SHARED.glob("*.json"))] if SHARED.is_dir() else []
    llama = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    }
    return [*found, json.dumps(llama, indent=2).encode(), b"// c\n" + json.dumps(llama).encode()]


def header_seeds() -> list[bytes]:
    """Small real safetensors files (header plus data)."""
    p = WORK / "seed.safetensors"
    write_safetensors(p, {"a.weight": np.ones((4, 4), np.float32), "b": np.zeros(3, np.int8)})
    return [p.read_bytes()]


def tokenizer_seeds() -> list[bytes]:
    """A tokenizer.json in the Hugging Face format (BPE with merges and added tokens)."""
    vocab = {f"t{i}": i for i in range(64)}
    tok = {
        "model": {"type": "BPE", "vocab": vocab, "merges": ["t1 t2", ["t3", "t4"]]},
        "added_tokens": [{"id": 64, "content": "<s>"}],
    }
    return [json.dumps(tok).encode()]


_STORAGES = {"0": np.arange(12, dtype="<f4"), "1": np.ones(6, "<f2")}


def _torch_zip(data: bytes) -> object:
    """A torch.save zip around the bytes as its data.pkl; every tensor it names is read."""
    ck = open_checkpoint(write_zip(WORK / "pytorch_model.bin", data, _STORAGES))
    try:
        return [ref.file.read(name) for name, ref in ck.tensors.items()]
    finally:
        ck.close()


def torch_seeds() -> list[bytes]:
    """data.pkl of state dicts over the two storages (the second names one tensor twice)."""
    specs = [("w", "FloatStorage", "0", 12, (3, 4)), ("h", "HalfStorage", "1", 6, (6,))]
    return [state_dict_pickle(specs), state_dict_pickle(specs[:1] * 2)]


def targets() -> dict[str, tuple[Target, list[bytes]]]:
    """Every target with its seeds."""
    logs = log_seeds()
    text = [logs[k] for k in ("megatron", "nemo", "torchtitan", "nanogpt", "llmc")]
    from fuzz.lsp import document_targets

    out: dict[str, tuple[Target, list[bytes]]] = {
        "safetensors-header": (_header, header_seeds()),
        "config-jsonc": (_config_text, config_seeds()),
        "config-file": (as_file("config.json", _config_file), config_seeds()),
        "text-megatron-nemo-titan": (as_file("a.log", parse_text), text[:3]),
        "text-nanogpt-llmc": (as_file("b.log", parse_text), text[3:]),
        "text-modded-ds-hf": (
            as_file("c.log", parse_text),
            [logs["modded"], logs["deepspeed"], logs["hf-console"]],
        ),
        "trainer-state": (as_file("trainer_state.json", parse_trainer_state), [logs["state"]]),
        "wandb-csv": (as_file("export.csv", parse_csv), [logs["csv"]]),
        "jsonl": (as_file("trainer_log.jsonl", parse_jsonl), [logs["jsonl"]]),
        "wandb-binary": (as_file("run-x.wandb", parse_wandb_log), [logs["wandb"]]),
        "tfevents": (
            as_file("events.out.tfevents.1", lambda p: parse_events([p])),
            [logs["tfevents"]],
        ),
        "torch-pickle": (_torch_zip, torch_seeds()),
        "tokenizer-json": (as_file("tokenizer.json", load_vocab), tokenizer_seeds()),
        "tokenizer-vocab-txt": (as_file("vocab.txt", load_vocab), [b"[PAD]\n[UNK]\nthe\n##s\n"]),
    }
    out.update(document_targets(WORK, config_seeds(), list(logs.values())))
    return out
