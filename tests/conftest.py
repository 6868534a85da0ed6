"""Shared fixtures: tiny models built from a config, with tokenizers made here (no network, no hub).

- `tiny_llama`: a folder holding a 2-layer Llama-like causal LM (hidden 32) and a byte-level BPE
  tokenizer with a ChatML chat template, as `from_pretrained` and our loaders read it.
- `tiny_bert`: a folder holding a 2-layer BERT-like encoder and a WordPiece tokenizer without a chat
  template (so the loaders' default template is exercised).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch.compile's kernel cache is keyed on the CPU it detects, not on ATEN_CPU_CAPABILITY: a suite run under
# another machine's kernels (`ATEN_CPU_CAPABILITY=avx2`) then reused kernels built for this one's and
# aborted. One cache per kernel set.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"torchinductor-{os.environ.get('USER', 'user')}-"
    f"{os.environ.get('ATEN_CPU_CAPABILITY', 'native')}-{os.environ.get('ONEDNN_MAX_CPU_ISA', 'all')}"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HH_FILE = SHARED_DATA / "hh-rlhf-harmless" / "harmless-base-test-part1.jsonl.gz"
FG_FILE = SHARED_DATA / "finegrained-rlhf-qa" / "dev_feedback.json"

CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "I love this product, it is great and works well. I hate waiting, it is terrible.",
    "Write a short review of the coffee shop. The coffee was wonderful and the staff kind.",
    "def add(a, b):\n    return a + b\n",
    "Human: hello there! Assistant: hi, how can I help you today?",
] * 20

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _chat_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHATML)


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def make_tiny_llama(folder: Path, *, initializer_range: float = 0.02, hidden_size: int = 32) -> str:
    """A 2-layer Llama-like causal LM (hidden 32) with the ChatML BPE tokenizer, saved in `folder`.
    bitsandbytes' CPU kernels need every 4-bit layer's input to hold a 64-value block: `hidden_size=64`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _chat_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
                         initializer_range=initializer_range)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = _wordpiece_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=512,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def hh_file() -> Path:
    if not HH_FILE.is_file():
        pytest.skip(f"shared HH-RLHF data not found at {HH_FILE}")
    return HH_FILE


@pytest.fixture
def fg_file() -> Path:
    if not FG_FILE.is_file():
        pytest.skip(f"shared FineGrainedRLHF data not found at {FG_FILE}")
    return FG_FILE


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class LabelServer:
    """`align label serve` in a real subprocess on a free port, over a store in a temporary folder."""

    def __init__(self, folder: Path, *, k: int = 3, config: str | None = None, store_url: str | None = None,
                 name: str = "server"):
        """`store_url`: default an SQLite file in `folder`; replicas of one store get their own `name`
        (their config and log files)."""
        self.folder, self.name = folder, name
        # an absolute path: sqlite:////...
        self.store_url = store_url or f"sqlite:///{folder.resolve() / 'labels.db'}"
        self.k = k
        from labeling_app import LabelStore

        LabelStore(self.store_url, k=k, change_settings=True)      # the store promises k from the start
        self.config = config
        self.proc = None
        self.url = None

    def start(self, timeout: float = 60.0) -> "LabelServer":
        import socket
        import subprocess
        import sys
        import time
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = self.folder / f"{self.name}.yaml"
        if not config.exists():
            config.write_text(self.config or f"k: {self.k}\n")
        self.log = open(self.folder / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "align.cli", "label", "serve",
                                      "--store", self.store_url, "--port", str(port),
                                      "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.folder / f"{self.name}.log").read_text())
            try:
                urllib.request.urlopen(self.url + "/gradio_api/info", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self   # 401: up, and asking for a login
            except OSError:
                time.sleep(0.3)
        log = (self.folder / f"{self.name}.log").read_text()
        raise RuntimeError("the label server did not start:\n" + log)

    def kill(self) -> None:
        import signal

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.kill()


@pytest.fixture
def label_server(tmp_path):
    servers = []

    def make(**kwargs) -> LabelServer:
        server = LabelServer(tmp_path, **kwargs)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (tests/pg.py); skipped with a reason where the
    binaries are missing (`make test` installs them)."""
    from tests.pg import PostgresServer, postgres_bin

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql; `make test` does)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """`store_url(name, options="")`: the URL of a new, empty store on each backend in turn: an SQLite
    file in tmp_path, or a fresh database on the session's PostgreSQL server."""
    made: dict[str, str] = {}

    def make(name: str = "labels", options: str = "") -> str:
        if name not in made:
            if request.param == "sqlite":
                made[name] = f"sqlite:///{tmp_path}/{name}.db"
            else:
                server = request.getfixturevalue("postgres_server")
                made[name] = server.new_database(f"{name}_{abs(hash(request.node.nodeid)) % 10**8}")
        return made[name] + (f"?{options}" if options else "")

    make.backend = request.param
    return make
