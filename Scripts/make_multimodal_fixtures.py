#!/usr/bin/env python3
"""Writes the multimodal fixtures of Tests/PersonaModelsTests/Fixtures: an architecture fixture's language model inside
its multimodal wrapper, with a tiny vision tower and projector beside it, laid out as the Hub's checkpoints are.

gemma3_multimodal: the `gemma3` fixture inside a Gemma3ForConditionalGeneration (SigLIP tower), as
google/gemma-3-4b-it and larger:

  * config.json: model_type "gemma3", a `text_config` that leaves out every key whose value is Gemma3TextConfig's
    default (the Hub's text_config names only hidden_size, intermediate_size, num_hidden_layers, rope_scaling and
    sliding_window), eos_token_id at the top level;
  * model.safetensors: tensor names as transformers 4.50 saved them (language_model.model.*, vision_tower.vision_model.*,
    multi_modal_projector.*; no lm_head, it is tied);
  * reference.safetensors / reference.json: hidden states and logits of that folder as transformers loads it
    (Gemma3ForConditionalGeneration, f32, eager), on the gemma3 fixture's input ids, text only.

mistral3_multimodal: the `mistral` fixture inside a Mistral3ForConditionalGeneration (Pixtral tower), as
mistralai/Mistral-Small-3.1-24B-Instruct-2503 and its successors: model_type "mistral3", the text model's config under
text_config (model_type "mistral"), tensors language_model.model.*, language_model.lm_head.weight (untied),
vision_tower.*, multi_modal_projector.*.

For each, the script checks that transformers reads the folder with no missing or unexpected tensor, and that its
logits equal the wrapped fixture's (the ForCausalLM) reference: the wrapper runs the same language model on text.

Run from the repository root with torch, transformers 5.25, safetensors and numpy:
    /path/to/venv/bin/python Scripts/make_multimodal_fixtures.py
"""
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from safetensors.torch import load_file as torch_load_file, save_file as torch_save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests/PersonaModelsTests/Fixtures"
SRC = FIXTURES / "gemma3"
PINNED = "5.25.0"


def sparse_text_config(src: dict) -> dict:
    """The gemma3 fixture's config.json without the keys a Hub text_config leaves to Gemma3TextConfig's defaults."""
    from transformers import Gemma3TextConfig
    defaults = Gemma3TextConfig().to_dict()
    text = {}
    for k, v in src.items():
        if k in ("architectures", "dtype", "transformers_version", "initializer_range", "use_cache",
                 "attention_dropout", "bos_token_id", "eos_token_id", "pad_token_id"):
            continue
        # rope_theta, rope_local_base_freq and sliding_window_pattern are not attributes of a v5 config: their
        # defaults (1e6, 1e4, 6) are in Gemma3TextConfig's rope_parameters / layer_types code
        legacy_defaults = {"rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0, "sliding_window_pattern": 6}
        if k in legacy_defaults and v == legacy_defaults[k]:
            continue
        if k in defaults and defaults[k] == v and k not in ("hidden_size", "intermediate_size", "num_hidden_layers", "model_type"):
            continue
        text[k] = v
    return text


def hub_layout(saved: dict, renames: tuple, drop_head: bool) -> dict:
    """transformers 5's saved names (model.language_model.*, model.vision_tower.*, ...) as the Hub's 4.x files have them."""
    hub = {}
    for k, v in saved.items():
        if k == "lm_head.weight" and drop_head:
            continue   # tied to the embedding; the Hub's files do not hold it
        for new, old in renames:
            if k.startswith(new):
                k = old + k[len(new):]
                break
        else:
            assert k.startswith(("language_model.", "vision_tower.", "multi_modal_projector.")), k
        hub[k] = v
    assert "language_model.model.embed_tokens.weight" in hub
    return hub


def write_fixture(name: str, src: Path, config: dict, mm, renames: tuple, drop_head: bool, model_cls, check) -> None:
    """Saves `mm` (bf16) in the Hub's layout with `config` and src's tokenizer files, reloads it with transformers
    (no missing or unexpected tensor; `check` on its config), and writes its hidden states and logits on src's input
    ids, which must equal src's reference logits."""
    import transformers
    out = FIXTURES / name
    with tempfile.TemporaryDirectory() as tmp:
        mm.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
        hub = hub_layout(torch_load_file(str(Path(tmp) / "model.safetensors")), renames, drop_head)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    torch_save_file(hub, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(src / f, out / f)
    model, info = model_cls.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager",
                                            output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    model.eval()
    check(model.config.text_config)
    ids = json.loads((src / "reference.json").read_text())["input_ids"]
    with torch.no_grad():
        o = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    L = model.config.text_config.num_hidden_layers
    assert len(o.hidden_states) == L + 1
    tensors = {f"hidden_states.{i}": o.hidden_states[i][0].float().contiguous().numpy() for i in range(L + 1)}
    tensors["logits"] = o.logits[0].float().contiguous().numpy()
    d = float(np.abs(tensors["logits"] - load_file(str(src / "reference.safetensors"))["logits"]).max())
    assert d < 1e-5, f"{name}: the wrapper's logits differ from the {src.name} fixture's by {d}"
    save_file(tensors, str(out / "reference.safetensors"), metadata={"generator": "Scripts/make_multimodal_fixtures.py"})
    meta = {"fixture": name, "architecture": config["architectures"][0], "generator": "Scripts/make_multimodal_fixtures.py",
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]},
            "input_ids": ids, f"logits_max_abs_diff_from_{src.name}_fixture": d,
            "tensors": sorted(tensors, key=lambda k: (k != "logits", k)), "tolerance_abs": 1e-4}
    (out / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}: {len(hub)} tensors, logits vs {src.name} fixture max |diff| {d:.2e}")


def wrapper_config(config: dict) -> dict:
    """The keys of a written config.json that are not constructor arguments."""
    return {k: v for k, v in config.items() if k not in ("architectures", "torch_dtype", "transformers_version")}


def make_gemma3() -> None:
    import transformers
    from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration
    assert transformers.__version__ == PINNED, f"transformers {transformers.__version__}, pinned {PINNED}"
    src_cfg = json.loads((SRC / "config.json").read_text())
    gen = json.loads((SRC / "generation_config.json").read_text())
    text = sparse_text_config(src_cfg)
    for k in ("tie_word_embeddings", "rms_norm_eps", "hidden_activation", "attention_bias"):
        assert k not in text, (k, text)
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": 4, "eoi_token_index": 5, "image_token_index": src_cfg["vocab_size"] - 1,
        "eos_token_id": gen["eos_token_id"],
        "mm_tokens_per_image": 4,
        "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                          "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
                          "vision_use_head": False},
        "torch_dtype": "bfloat16",
        "transformers_version": "4.50.0.dev0",
    }
    causal = Gemma3ForCausalLM.from_pretrained(str(SRC), dtype=torch.float32, attn_implementation="eager")
    torch.manual_seed(7)
    mm = Gemma3ForConditionalGeneration(Gemma3Config(**wrapper_config(config)))
    missing, unexpected = mm.model.language_model.load_state_dict(
        {k.removeprefix("model."): v for k, v in causal.state_dict().items() if k != "lm_head.weight"}, strict=True)
    assert not missing and not unexpected

    def check(tc):
        assert tc.rms_norm_eps == 1e-6 and tc.tie_word_embeddings and tc.query_pre_attn_scalar == 24
        assert list(tc.layer_types) == ["sliding_attention"] * 5 + ["full_attention"], tc.layer_types
    write_fixture("gemma3_multimodal", SRC, config, mm,
                  (("model.language_model.", "language_model.model."), ("model.vision_tower.", "vision_tower.vision_model."),
                   ("model.multi_modal_projector.", "multi_modal_projector.")),
                  drop_head=True, model_cls=Gemma3ForConditionalGeneration, check=check)


def make_mistral3() -> None:
    """The mistral fixture inside a Mistral3ForConditionalGeneration, in the Hub's 4.x tensor layout."""
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralForCausalLM
    src = FIXTURES / "mistral"
    text = {k: v for k, v in json.loads((src / "config.json").read_text()).items()
            if k not in ("architectures", "dtype", "transformers_version")}
    assert text["model_type"] == "mistral" and text["tie_word_embeddings"] is False
    config = {
        "architectures": ["Mistral3ForConditionalGeneration"],
        "model_type": "mistral3",
        "image_token_index": text["vocab_size"] - 1,
        "multimodal_projector_bias": False, "projector_hidden_act": "gelu", "spatial_merge_size": 2,
        "vision_feature_layer": -1, "tie_word_embeddings": False,
        "text_config": text,
        "vision_config": {"model_type": "pixtral", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "head_dim": 8, "image_size": 28, "patch_size": 14},
        "torch_dtype": "bfloat16",
        "transformers_version": "4.50.0.dev0",
    }
    causal = MistralForCausalLM.from_pretrained(str(src), dtype=torch.float32, attn_implementation="eager")
    torch.manual_seed(8)
    mm = Mistral3ForConditionalGeneration(Mistral3Config(**wrapper_config(config)))
    state = causal.state_dict()
    missing, unexpected = mm.model.language_model.load_state_dict(
        {k.removeprefix("model."): v for k, v in state.items() if k != "lm_head.weight"}, strict=True)
    assert not missing and not unexpected
    mm.lm_head.weight.data.copy_(state["lm_head.weight"])

    def check(tc):
        assert tc.model_type == "mistral" and not tc.tie_word_embeddings
    write_fixture("mistral3_multimodal", src, config, mm,
                  (("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head."),
                   ("model.vision_tower.", "vision_tower."), ("model.multi_modal_projector.", "multi_modal_projector.")),
                  drop_head=False, model_cls=Mistral3ForConditionalGeneration, check=check)


if __name__ == "__main__":
    import sys
    only = set(sys.argv[1:])
    if not only or "gemma3" in only:
        make_gemma3()
    if not only or "mistral3" in only:
        make_mistral3()
