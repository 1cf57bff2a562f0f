#!/usr/bin/env python3
"""Make the tiny-model reference fixtures for PersonaModelsTests.

Run BY HAND (never in CI), from the repository root:

    /work/V/bin/python Scripts/make_model_fixtures.py

Pinned environment it was run with (checked at start; pass --any-version to override):
    python 3 / torch 2.13.0+cpu / transformers 5.24.0 / tokenizers 0.23.3 /
    safetensors 0.8.0 / gguf 0.19.0 / numpy 2.4.6 / jinja2 3.1.6 / accelerate 1.15.0
    (accelerate only because transformers' GGUF loader requires it; installed with pip --no-deps)

What it writes (Tests/PersonaModelsTests/Fixtures/, described in README.md there):
  * one folder per architecture (llama, llama2, mistral, qwen2, qwen3, gemma, gemma2, gemma3, smollm3, phi3, phi3_longrope,
    phi4_mini, olmo2, qwen2_yarn, olmo3, granite, qwen3_moe, mixtral, olmoe, glm4, cohere, cohere2, ernie4_5,
    exaone4, gpt2, gpt_neox, phi, stablelm, olmo, starcoder2, nemotron, qwen2_moe, granitemoe, arcee, seed_oss, ministral3)
    holding a
    tiny
    random model saved by transformers as bf16 safetensors, its config.json, generation_config.json,
    a tiny byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json with a chat template),
    and reference.safetensors + reference.json with transformers' outputs;
  * llama2-{f32,f16,q8_0}.gguf (arch "llama", Q/K permuted) and qwen2-f16.gguf (arch "qwen2"): fixtures
    converted to GGUF the way llama.cpp's convert_hf_to_gguf.py lays them out (own code), plus
    <name>-<variant>.reference.{safetensors,json} computed from the weights exactly as each GGUF stores them,
    cross-checked against transformers' own GGUF loader and GGUF tokenizer reader;
  * stories260K.reference.{safetensors,json}: transformers' outputs for the real stories260K GGUF in
    ../shared/models/stories260K (the GGUF itself is not copied).

Conventions (checked by assertions below, against transformers 5.24):
  * references are computed in float32 from the bf16 weights (model loaded back from the saved folder,
    upcast exactly), attn_implementation="eager", one thread;
  * hidden_states.{i}, i = 0..L: output_hidden_states=True. 0 = input of block 0 (embeddings after any
    scaling, e.g. Gemma's sqrt(hidden)), i = output of block i-1, and L = output of the last block AFTER the
    final norm: transformers 5 still replaces the last captured hidden state by `last_hidden_state`
    (capture_outputs(tie_last_hidden_states=True)); the script asserts this;
  * logits are the model's final logits (after Gemma-2's final soft-capping; asserted);
  * greedy_ids: 16 new ids (prompt not included) from generate() with the KV cache, do_sample=False, no
    repetition penalty, eos_token_id=None (EOS neither stops nor is suppressed); the script checks they
    equal an uncached recompute (full forward per step, argmax).
Deterministic: fixed seeds, fixed corpus, one thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

PINNED = {
    "torch": "2.13.0",
    "transformers": "5.24.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
    "gguf": "0.19.0",
    "numpy": "2.4.6",
    "accelerate": "1.15.0",
}

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "Tests" / "PersonaModelsTests" / "Fixtures"
STORIES = REPO.parent / "shared" / "models" / "stories260K"

# Small English corpus (written for this script) to train the tiny BPE on.
CORPUS = """\
Once upon a time there was a little girl who lived in a small house near the woods.
Every morning she walked to the river with her dog, and they watched the boats go by.
The sun was warm and the water was bright. She liked to count the birds in the trees.
One day a kind old man asked her where she was going. She said she was going home.
He smiled and gave her a red apple. She thanked him and ran back to tell her mother.
Her mother was happy and they made a pie with the apple and some honey from the shop.
The cat sat on the mat and looked out of the window at the rain.
When the rain stopped, the children went out to play in the park with a big blue ball.
They played until the sky turned orange and the first stars came out over the hill.
Hello! How are you today? I am fine, thank you. What would you like to do this evening?
I would like to read a good book, drink a cup of tea and listen to some quiet music.
The model answers questions, writes short stories and explains ideas in simple words.
A helpful assistant is honest, calm and careful. It says when it does not know something.
Numbers like 1, 2, 3, 10, 42 and 2024 appear in text, and so do names like Anna and Tom.
The quick brown fox jumps over the lazy dog. The lazy dog sleeps in the afternoon sun.
We went to the market to buy bread, milk, eggs, cheese and fresh green vegetables.
In the winter the lake froze and people walked on the ice with their warm coats and hats.
She wrote a letter to her friend and told her about the garden, the flowers and the bees.
He was happy, then sad, then happy again, because the story had a very good ending.
Hi there! Thanks for asking. Let me think about that for a moment before I answer you.
"""

PROMPT_TEXT = "Once upon a time there was a little"
CHAT_MESSAGES = [{"role": "user", "content": "Hi there"}]
T_INPUT = 16
GREEDY_PROMPT_LEN = 6
GREEDY_NEW = 16
TEXT_NEW = 12
TARGET_VOCAB = 384
MIN_GREEDY_MARGIN = 1e-3  # top1 - top2 logit gap at every greedy step, so float noise cannot flip a choice

# ---------------------------------------------------------------------------------------------------------
# Chat templates (short, written for these fixtures in each family's style).

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = none %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{% if loop.first and sys is not none %}{% set content = '<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n' + m['content'] %}"
    "{% else %}{% set content = m['content'] %}{% endif %}"
    "{{ bos_token }}[INST] {{ content | trim }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] | trim }} {{ eos_token }}"
    "{% else %}{{ raise_exception('Unknown role: ' + m['role']) }}{% endif %}{% endfor %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
QWEN2_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN3_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = m['role'] %}{% endif %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
SPM_SPECIALS = ["<unk>", "<s>", "</s>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# Tokenizer "families": special tokens, which ones are bos/eos/pad/unk, whether BOS is added, chat template,
# and the generation eos ids (names) as the real family's generation_config.json lists them.
TOKENIZER_FAMILIES = {
    "llama3": dict(specials=LLAMA3_SPECIALS, bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, unk=None,
                   add_bos=True, template=LLAMA3_TEMPLATE, gen_eos=["<|end_of_text|>", "<|eot_id|>"],
                   config_eos="<|end_of_text|>", config_bos="<|begin_of_text|>"),
    "llama2": dict(specials=SPM_SPECIALS, bos="<s>", eos="</s>", pad=None, unk="<unk>", add_bos=True,
                   template=LLAMA2_TEMPLATE, gen_eos=["</s>"], config_eos="</s>", config_bos="<s>"),
    "mistral": dict(specials=SPM_SPECIALS, bos="<s>", eos="</s>", pad=None, unk="<unk>", add_bos=True,
                    template=MISTRAL_TEMPLATE, gen_eos=["</s>"], config_eos="</s>", config_bos="<s>"),
    "qwen2": dict(specials=QWEN_SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, add_bos=False,
                  template=QWEN2_TEMPLATE, gen_eos=["<|im_end|>", "<|endoftext|>"],
                  config_eos="<|endoftext|>", config_bos="<|endoftext|>"),
    "qwen3": dict(specials=QWEN_SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, add_bos=False,
                  template=QWEN3_TEMPLATE, gen_eos=["<|im_end|>", "<|endoftext|>"],
                  config_eos="<|im_end|>", config_bos="<|endoftext|>"),
    "gemma": dict(specials=GEMMA_SPECIALS, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", add_bos=True,
                  template=GEMMA_TEMPLATE, gen_eos=["<eos>", "<end_of_turn>"], config_eos="<eos>", config_bos="<bos>"),
}

COMMON_SHAPE = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                    max_position_embeddings=256)

# Model fixtures. `legacy_rope`: rewrite config.json in the older Hub layout (top-level rope_theta /
# rope_scaling instead of transformers 5's rope_parameters) so both layouts are covered; verified by reloading.
MODELS = {
    "llama": dict(arch="LlamaForCausalLM", family="llama3", seed=101, layers=2,
                  cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5,
                           rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                                low_freq_factor=1.0, high_freq_factor=4.0,
                                                original_max_position_embeddings=64))),
    "llama2": dict(arch="LlamaForCausalLM", family="llama2", seed=102, layers=2, legacy_rope=True,
                   cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-5,
                            rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    "mistral": dict(arch="MistralForCausalLM", family="mistral", seed=103, layers=2, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, sliding_window=None,
                             rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen2": dict(arch="Qwen2ForCausalLM", family="qwen2", seed=104, layers=2, legacy_rope=True,
                  cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False,
                           rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen3": dict(arch="Qwen3ForCausalLM", family="qwen3", seed=105, layers=2,
                  cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, head_dim=32, attention_bias=False,
                           use_sliding_window=False,
                           rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # Gemma: smaller embeddings (they are multiplied by sqrt(hidden) = 8 and tied to the output), larger linears;
    # Gemma-2: post-norm gains around 2 so block outputs are not swamped by the embedding (otherwise greedy
    # decoding just repeats one token). Seeds picked for varied greedy continuations.
    "gemma": dict(arch="GemmaForCausalLM", family="gemma", seed=106, layers=2,
                  init=dict(embed=0.15, linear=0.3),
                  cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, head_dim=16, hidden_act="gelu_pytorch_tanh",
                           rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    "gemma2": dict(arch="Gemma2ForCausalLM", family="gemma", seed=111, layers=3,
                   init=dict(embed=0.15, linear=0.3, post_norm_offset=1.0),
                   cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, head_dim=16,
                            hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
                            attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=6,
                            rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Gemma-3 (text): Gemma-2's sandwich norms plus q_norm/k_norm ((1 + w), before RoPE), no soft-capping, and RoPE
    # per layer type: sliding layers base 1e4 unscaled, full-attention layers base 1e6 with linear factor 8 (as the
    # 4B-27B checkpoints have it); 6 layers, the 6th full attention (the default pattern). config.json is rewritten
    # in the Hub's layout (rope_theta, rope_scaling, rope_local_base_freq, sliding_window_pattern; no layer_types).
    # Run with transformers 5.25 (--any-version; the other fixtures keep their pins).
    "gemma3": dict(arch="Gemma3ForCausalLM", family="gemma", seed=123, layers=6, legacy_rope="gemma3",
                   init=dict(embed=0.15, linear=0.3, post_norm_offset=1.0),
                   cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, head_dim=16,
                            hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24, sliding_window=6,
                            rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=10000.0),
                                             "full_attention": dict(rope_type="linear", factor=8.0, rope_theta=1000000.0)})),
    # SmolLM3: the Llama block with no RoPE on every 4th layer (no_rope_layers [1, 1, 1, 0], written explicitly as the
    # Hub's config has it), theta 5e6, tied; the Hub's top-level rope_theta layout. transformers 5.25 (--any-version).
    "smollm3": dict(arch="SmolLM3ForCausalLM", family="llama3", seed=131, layers=4, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, no_rope_layer_interval=4,
                             rope_parameters=dict(rope_type="default", rope_theta=5000000.0))),
    # Phi-3 (mini 4k): q|k|v in one qkv_proj and gate|up in one gate_up_proj, untied, and a sliding window (6 here,
    # 2047 in Phi-3-mini-4k) on every layer; the Hub's top-level rope_theta layout. transformers 5.25 (--any-version).
    "phi3": dict(arch="Phi3ForCausalLM", family="llama2", seed=141, layers=2, legacy_rope=True,
                 cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, sliding_window=6,
                          original_max_position_embeddings=256,
                          rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Phi-3.5 style LongRoPE: per-frequency short / long factors, original_max_position_embeddings 64 of 256, so the
    # attention factor is sqrt(1 + ln 4 / ln 64); the 16 input ids stay within 64, where the short factors hold.
    "phi3_longrope": dict(arch="Phi3ForCausalLM", family="llama2", seed=151, layers=2, legacy_rope=True,
                          cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, original_max_position_embeddings=64,
                                   rope_parameters=dict(rope_type="longrope", rope_theta=10000.0, original_max_position_embeddings=64,
                                                        short_factor=[1.0, 1.1, 1.3, 1.6, 2.0, 2.6, 3.3, 4.0],
                                                        long_factor=[1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0, 16.0]))),
    # Phi-4-mini: partial rotary (RoPE on the first 3/4 of each head: 12 of 16 here, 96 of 128 there), LongRoPE
    # factors for those 12 dimensions only, tied embeddings; the Hub's layout (top-level partial_rotary_factor,
    # rope_scaling of type longrope). The 16 input ids stay within the original 64 positions.
    "phi4_mini": dict(arch="Phi3ForCausalLM", family="llama2", seed=161, layers=2, legacy_rope=True,
                      cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-5, original_max_position_embeddings=64,
                               rope_parameters=dict(rope_type="longrope", rope_theta=10000.0, original_max_position_embeddings=64,
                                                    partial_rotary_factor=0.75,
                                                    short_factor=[1.0, 1.2, 1.5, 2.0, 2.8, 4.0],
                                                    long_factor=[1.0, 2.0, 4.0, 7.0, 11.0, 16.0]))),
    # OLMo-2: the Llama block with post norms only (post_attention_layernorm, post_feedforward_layernorm on what each
    # sublayer adds; none before) and q_norm / k_norm over all heads of a token (64 and 32 wide here); untied, theta
    # 5e5, the Hub's top-level rope_theta layout; qwen2 tokenizer family (no BOS, as OLMo-2's). transformers 5.25.
    "olmo2": dict(arch="Olmo2ForCausalLM", family="qwen2", seed=171, layers=3, legacy_rope=True,
                  cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, attention_bias=False,
                           rope_parameters=dict(rope_type="default", rope_theta=500000.0))),
    # YaRN as Qwen2.5's model cards tell users to enable it (rope_scaling {factor 4, original_max_position_embeddings,
    # yarn}): static, so every position turns with the blended frequencies and cos / sin times 0.1 ln 4 + 1; theta 1e4
    # and an original context of 64 put the ramp over frequency pairs 0-3 of 8. transformers 5.25.
    "qwen2_yarn": dict(arch="Qwen2ForCausalLM", family="qwen2", seed=181, layers=2, legacy_rope=True,
                       cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False,
                                rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                                     original_max_position_embeddings=64))),
    # OLMo-3: OLMo-2's block with sliding_window 6 on layers 0-2 and full attention on layer 3 (the default pattern,
    # written as layer_types), the sliding layers' RoPE unscaled and the full layer's YaRN (factor 4, original 64), as
    # the long-context checkpoints have it; the Hub's layout (top-level rope_theta 5e5 and rope_scaling for the full
    # layers). transformers 5.25.
    "olmo3": dict(arch="Olmo3ForCausalLM", family="qwen2", seed=193, layers=4, legacy_rope="olmo3",
                  cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, attention_bias=False, sliding_window=6,
                           rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=500000.0),
                                            "full_attention": dict(rope_type="yarn", rope_theta=500000.0, factor=4.0,
                                                                   original_max_position_embeddings=64)})),
    # Granite 3.x: the Llama block with muP multipliers (embedding 3, attention 0.125 in place of 1/sqrt(16), residual
    # 0.5, logits divided by 2.5; granite-3.3-2b has 12, 1/64, 0.22, 8 and ties, which on random weights makes the
    # embedding swamp the blocks and greedy repeat one token), untied; the Hub's top-level rope_theta layout.
    # transformers 5.25.
    "granite": dict(arch="GraniteForCausalLM", family="llama2", seed=201, layers=2, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, attention_bias=False,
                             embedding_multiplier=3.0, attention_multiplier=0.125, residual_multiplier=0.5,
                             logits_scaling=2.5, rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Qwen3-MoE: Qwen3's attention with a mixture of 4 experts (moe_intermediate_size 32), 2 per token, renormalised
    # (norm_topk_prob, as Qwen3-30B-A3B), on every layer; saved by transformers with the Hub's per-expert tensor names
    # (mlp.experts.{e}.gate_proj ...) and top-level rope_theta layout. transformers 5.25.
    "qwen3_moe": dict(arch="Qwen3MoeForCausalLM", family="qwen3", seed=211, layers=2, legacy_rope=True,
                      cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, head_dim=16, attention_bias=False,
                               num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                               decoder_sparse_step=1, mlp_only_layers=[], use_sliding_window=False,
                               rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # Mixtral: Mistral's block with a mixture of 4 experts of intermediate_size 32, 2 per token (always renormalised);
    # saved by transformers in the Hub's layout (block_sparse_moe.experts.{e}.w1 / w2 / w3). transformers 5.25.
    "mixtral": dict(arch="MixtralForCausalLM", family="mistral", seed=221, layers=2, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, sliding_window=None, intermediate_size=32,
                             num_local_experts=4, num_experts_per_tok=2,
                             rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # OLMoE: pre-norms, q / k norms over all heads of a token (64 wide each: no GQA, as OLMoE-1B-7B, and llama.cpp's
    # olmoe reads k_norm as wide as the model), a mixture of 4 experts of intermediate_size 32, 2 per token, not
    # renormalised (norm_topk_prob false, as OLMoE-1B-7B); untied, the Hub's top-level rope_theta layout; qwen2
    # tokenizer family. transformers 5.25.
    "olmoe": dict(arch="OlmoeForCausalLM", family="qwen2", seed=231, layers=2, legacy_rope=True,
                  cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, attention_bias=False, clip_qkv=None, num_key_value_heads=4,
                           intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                           rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # GLM-4 (0414): four norms (input, post_self_attn, post_attention before the MLP, post_mlp), q / k / v biases, gate
    # and up in one gate_up_proj, RoPE on the first half of each head (8 of 16) with interleaved pairs; untied, the
    # Hub's layout (top-level partial_rotary_factor 0.5 and rope_theta); llama3 tokenizer family. transformers 5.25.
    "glm4": dict(arch="Glm4ForCausalLM", family="llama3", seed=241, layers=2, legacy_rope=True,
                 init=dict(post_norm_offset=1.0),
                 cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, attention_bias=True, head_dim=16,
                          rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5))),
    # Cohere (Command-R, Aya): a parallel block on one LayerNorm (no bias), RoPE in interleaved pairs, tied, logits times
    # logit_scale (0.5 and 0.25 here, 0.0625 in the real ones, which on random weights leaves nearly flat logits); the Hub's
    # top-level rope_theta layout; llama3 tokenizer family. transformers 5.25.
    "cohere": dict(arch="CohereForCausalLM", family="llama3", seed=253, layers=2, legacy_rope=True,
                   cfg=dict(tie_word_embeddings=True, layer_norm_eps=1e-5, attention_bias=False, use_qk_norm=False,
                            logit_scale=0.5, rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Cohere2 (Command-R7B): Cohere's block with sliding_window 6 on layers 0-2 and full attention without RoPE on layer
    # 3 (the default pattern of 4, written as layer_types). transformers 5.25.
    "cohere2": dict(arch="Cohere2ForCausalLM", family="llama3", seed=261, layers=4, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=True, layer_norm_eps=1e-5, attention_bias=False, sliding_window=6,
                             logit_scale=0.25, rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # ERNIE-4.5 (dense, 0.3B): the Llama block with RoPE in interleaved pairs, tied, no biases; the Hub's top-level
    # rope_theta layout; llama2 tokenizer family. transformers 5.25.
    "ernie4_5": dict(arch="Ernie4_5ForCausalLM", family="llama2", seed=273, layers=2, legacy_rope=True,
                     cfg=dict(tie_word_embeddings=True, rms_norm_eps=1e-5, use_bias=False, head_dim=16,
                              rope_parameters=dict(rope_type="default", rope_theta=500000.0))),
    # EXAONE 4.0 (32B layout): post norms only, per-head q / k norms, sliding_window 6 on layers 0-2 and full attention
    # without RoPE on layer 3 (the default pattern of 4, written as layer_types); untied, the Hub's top-level
    # rope_theta layout; qwen2 tokenizer family. transformers 5.25.
    "exaone4": dict(arch="Exaone4ForCausalLM", family="qwen2", seed=291, layers=4, legacy_rope=True,
                    cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, head_dim=16, sliding_window=6,
                             sliding_window_pattern=4, rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # GPT-2: learned positions, LayerNorms with biases, Conv1D q|k|v with biases, a plain gelu_new MLP (n_inner 128), tied;
    # saved as transformers saves it (transformer.h.*; Conv1D weights [in, out]); qwen2 tokenizer family (no BOS added,
    # as GPT-2's). No key/value groups, no RoPE. transformers 5.25.
    "gpt2": dict(arch="GPT2LMHeadModel", family="qwen2", seed=303, layers=2, drop=("num_key_value_heads", "intermediate_size"),
                 cfg=dict(n_inner=128, activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True)),
    # GPT-NeoX (Pythia): a parallel block (x + attn(ln1 x) + mlp(ln2 x)), RoPE on the first quarter of each head (4 of
    # 16, rotate_half), q|k|v interleaved per head, every projection with a bias, exact GELU, untied; the config in
    # Pythia's Hub layout (rotary_pct, rotary_emb_base); llama3 tokenizer family. transformers 5.25.
    # Phi-2: a parallel block on one LayerNorm with bias, q / k / v apart with biases, RoPE on the first 0.4 of each head
    # (6 of 16, rotate_half), a plain gelu_new MLP (fc1 / fc2) with biases, final_layernorm, an output head with a bias,
    # untied; the Hub's layout (top-level partial_rotary_factor and rope_theta); llama2 tokenizer family. transformers 5.25.
    "phi": dict(arch="PhiForCausalLM", family="llama2", seed=321, layers=2, legacy_rope=True, drop=("num_key_value_heads",),
                cfg=dict(tie_word_embeddings=False, layer_norm_eps=1e-5, hidden_act="gelu_new", qk_layernorm=False,
                         rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.4))),
    # StableLM-2 (1.6B layout): Llama's names and SwiGLU with LayerNorms with biases, RoPE on the first quarter of each
    # head (4 of 16, rotate_half), q / k / v biases, sequential block; untied, the Hub's layout (top-level
    # partial_rotary_factor and rope_theta); qwen2 tokenizer family. transformers 5.25.
    "stablelm": dict(arch="StableLmForCausalLM", family="qwen2", seed=331, layers=2, legacy_rope=True,
                     cfg=dict(tie_word_embeddings=False, layer_norm_eps=1e-5, use_qkv_bias=True, qk_layernorm=False,
                              use_parallel_residual=False,
                              rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25))),
    # OLMo (first generation): the Llama block with non-parametric LayerNorms and clip_qkv 1.0 (which clamps many of
    # these random projections; the script checks it changes the logits), tied as OLMo-1B; the Hub's top-level
    # rope_theta layout; qwen2 tokenizer family. transformers 5.25.
    "olmo": dict(arch="OlmoForCausalLM", family="qwen2", seed=341, layers=2, legacy_rope=True,
                 cfg=dict(tie_word_embeddings=True, attention_bias=False, clip_qkv=1.0,
                          rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # StarCoder2: LayerNorms with biases, q / k / v / o with biases, a plain gelu_pytorch_tanh MLP (c_fc / c_proj) with
    # biases, sliding_window 6 on every layer, tied; the Hub's top-level rope_theta layout; llama2 tokenizer family.
    # transformers 5.25.
    "starcoder2": dict(arch="Starcoder2ForCausalLM", family="llama2", seed=351, layers=2, legacy_rope=True,
                       cfg=dict(tie_word_embeddings=True, norm_epsilon=1e-5, use_bias=True, sliding_window=6,
                                hidden_act="gelu_pytorch_tanh", rope_parameters=dict(rope_type="default", rope_theta=100000.0))),
    # Nemotron (Minitron): LayerNorm1P (1 + w, with bias), RoPE on the first half of each head (8 of 16, rotate_half), a
    # plain squared-ReLU MLP, no other biases, untied; the Hub's layout (top-level partial_rotary_factor); llama3
    # tokenizer family. transformers 5.25.
    "nemotron": dict(arch="NemotronForCausalLM", family="llama3", seed=361, layers=2, legacy_rope=True,
                     cfg=dict(tie_word_embeddings=False, norm_eps=1e-5, hidden_act="relu2", attention_bias=False, mlp_bias=False,
                              rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5))),
    # Qwen2-MoE (Qwen1.5-MoE): Qwen2's attention (q / k / v biases) with a mixture of 4 experts (moe_intermediate_size
    # 32), 2 per token, not renormalised, and a shared expert of 48 on every token behind a sigmoid gate; untied, the
    # Hub's per-expert names, legacy config layout; qwen2 tokenizer family. transformers 5.25.
    "qwen2_moe": dict(arch="Qwen2MoeForCausalLM", family="qwen2", seed=379, layers=2, legacy_rope=True,
                      cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, qkv_bias=True, use_sliding_window=False,
                               num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=48,
                               norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                               rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # GraniteMoE (granite-3.x-1b-a400m): Granite's four multipliers with a mixture of 4 experts (intermediate_size 32),
    # 2 per token, the top-2 logits softmaxed among themselves, untied (tied, these random weights only repeat a token); legacy config layout; llama2
    # tokenizer family. transformers 5.25.
    "granitemoe": dict(arch="GraniteMoeForCausalLM", family="llama2", seed=381, layers=2, legacy_rope=True,
                       cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, attention_bias=False, intermediate_size=32,
                                num_local_experts=4, num_experts_per_tok=2,
                                embedding_multiplier=3.0, attention_multiplier=0.125, residual_multiplier=0.5,
                                logits_scaling=2.5, rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Arcee (AFM-4.5B): the Llama block with a plain squared-ReLU MLP (up / down), untied; legacy config layout; llama3
    # tokenizer family. transformers 5.25.
    "arcee": dict(arch="ArceeForCausalLM", family="llama3", seed=391, layers=2, legacy_rope=True,
                  cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, hidden_act="relu2", attention_bias=False, mlp_bias=False,
                           rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Seed-OSS: the Llama block with q / k / v biases and an attention-output bias (attention_out_bias true here; false
    # in Seed-OSS-36B), head_dim 32 of hidden 64 / 4 heads; untied, legacy config layout; qwen2 tokenizer family.
    # transformers 5.25.
    "seed_oss": dict(arch="SeedOssForCausalLM", family="qwen2", seed=401, layers=2, legacy_rope=True,
                     cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, attention_bias=True, attention_out_bias=True,
                              mlp_bias=False, head_dim=32, rope_parameters=dict(rope_type="default", rope_theta=10000000.0))),
    # Ministral 3: Mistral's block with YaRN (factor 16 over an original context of 8, mscale = mscale_all_dim = 1, so
    # cos / sin unscaled) and the Llama-4 query temperature (llama_4_scaling_beta 0.1: queries times 1 + 0.1 ln(1 +
    # floor(pos / 8)), so positions 8+ differ), head_dim 16, untied; rope_parameters layout (as the Hub's text_config);
    # mistral tokenizer family. transformers 5.25.
    "ministral3": dict(arch="Ministral3ForCausalLM", family="mistral", seed=411, layers=2,
                       cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, head_dim=16, sliding_window=None,
                                rope_parameters=dict(rope_type="yarn", rope_theta=1000000.0, factor=16.0,
                                                     original_max_position_embeddings=8, beta_fast=32.0, beta_slow=1.0,
                                                     mscale=1.0, mscale_all_dim=1.0, llama_4_scaling_beta=0.1))),
    # gpt-oss: attention with q / k / v / o biases and a learned sink logit per head, sliding_window 6 on the even
    # layers (layer_types), YaRN (factor 4 over 16, truncate false as gpt-oss's), a mixture of 4 experts (2 per token,
    # the top-2 router logits, with bias, softmaxed among themselves) whose SwiGLU is clamped (alpha 1.702, limit 1.0
    # here, 7 in the real ones, which these random weights would never reach) with biases; untied; rope_parameters
    # layout; qwen2 tokenizer family. transformers 5.25.
    "gpt_oss": dict(arch="GptOssForCausalLM", family="qwen2", seed=421, layers=2, drop=("intermediate_size",),
                    cfg=dict(tie_word_embeddings=False, rms_norm_eps=1e-5, head_dim=16, intermediate_size=32,
                             num_local_experts=4, num_experts_per_tok=2, sliding_window=6, attention_bias=True,
                             swiglu_limit=1.0, layer_types=["sliding_attention", "full_attention"],
                             rope_parameters=dict(rope_type="yarn", rope_theta=150000.0, factor=4.0, beta_fast=32.0,
                                                  beta_slow=1.0, truncate=False, original_max_position_embeddings=16))),
    "gpt_neox": dict(arch="GPTNeoXForCausalLM", family="llama3", seed=311, layers=2, legacy_rope="neox",
                     drop=("num_key_value_heads",),
                     cfg=dict(tie_word_embeddings=False, layer_norm_eps=1e-5, hidden_act="gelu", use_parallel_residual=True,
                              rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25))),
}

# Init scales: large enough that attention is not uniform and logits are not near zero.
STD_EMBED = 0.25
STD_LINEAR = 0.15
STD_BIAS = 0.1
STD_NORM = 0.1


def check_versions(allow_any: bool) -> dict:
    import gguf  # noqa: F401
    import safetensors
    import tokenizers
    import transformers
    from importlib.metadata import version
    found = {
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "gguf": version("gguf"),
        "numpy": np.__version__,
        "accelerate": version("accelerate"),
    }
    bad = {k: (found[k], v) for k, v in PINNED.items() if found[k] != v}
    if bad and not allow_any:
        sys.exit(f"version mismatch (found, pinned): {bad}; rerun with --any-version to override")
    return found


# ---------------------------------------------------------------------------------------------------------
# Tokenizers


def train_tokenizer(family: str):
    """Byte-level BPE (GPT-2 style pre-tokenizer), specials first (ids 0..k-1), BOS post-processor if the family adds it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    fam = TOKENIZER_FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TARGET_VOCAB, special_tokens=fam["specials"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    if fam["add_bos"]:
        bos = fam["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def write_tokenizer(tok, family: str, folder: Path) -> None:
    fam = TOKENIZER_FAMILIES[family]
    tok.save(str(folder / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": fam["bos"],
        "eos_token": fam["eos"],
        "add_bos_token": fam["add_bos"],
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": COMMON_SHAPE["max_position_embeddings"],
        "chat_template": fam["template"],
    }
    if fam["pad"] is not None:
        cfg["pad_token"] = fam["pad"]
    if fam["unk"] is not None:
        cfg["unk_token"] = fam["unk"]
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Models


def make_config(name: str, spec: dict, tok):
    from transformers import AutoConfig
    fam = TOKENIZER_FAMILIES[spec["family"]]
    model_type = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                  "Qwen3ForCausalLM": "qwen3", "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2",
                  "Gemma3ForCausalLM": "gemma3_text", "SmolLM3ForCausalLM": "smollm3", "Phi3ForCausalLM": "phi3",
                  "Olmo2ForCausalLM": "olmo2", "Olmo3ForCausalLM": "olmo3", "GraniteForCausalLM": "granite",
                  "Qwen3MoeForCausalLM": "qwen3_moe", "MixtralForCausalLM": "mixtral", "OlmoeForCausalLM": "olmoe",
                  "Glm4ForCausalLM": "glm4", "CohereForCausalLM": "cohere", "Cohere2ForCausalLM": "cohere2",
                  "Ernie4_5ForCausalLM": "ernie4_5", "Exaone4ForCausalLM": "exaone4", "GPT2LMHeadModel": "gpt2",
                  "GPTNeoXForCausalLM": "gpt_neox", "PhiForCausalLM": "phi",
                  "StableLmForCausalLM": "stablelm", "OlmoForCausalLM": "olmo", "Starcoder2ForCausalLM": "starcoder2",
                  "NemotronForCausalLM": "nemotron", "Qwen2MoeForCausalLM": "qwen2_moe",
                  "GraniteMoeForCausalLM": "granitemoe", "ArceeForCausalLM": "arcee",
                  "SeedOssForCausalLM": "seed_oss", "Ministral3ForCausalLM": "ministral3",
                  "GptOssForCausalLM": "gpt_oss"}[spec["arch"]]
    kw = dict(COMMON_SHAPE)
    for k in spec.get("drop", ()):
        kw.pop(k)
    kw.update(copy.deepcopy(spec["cfg"]))
    kw.update(num_hidden_layers=spec["layers"], vocab_size=tok.get_vocab_size(),
              bos_token_id=tok.token_to_id(fam["config_bos"]), eos_token_id=tok.token_to_id(fam["config_eos"]),
              pad_token_id=tok.token_to_id(fam["pad"]) if fam["pad"] else None,
              architectures=[spec["arch"]])
    return AutoConfig.for_model(model_type, **kw)


def randomize(model, gemma_norm: bool, seed: int, init: dict | None = None) -> None:
    init = init or {}
    std_embed = init.get("embed", STD_EMBED)
    std_linear = init.get("linear", STD_LINEAR)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if pname.endswith("norm.weight") or re.search(r"\bln_(\d|f)\.weight$", pname):
                base = 0.0 if gemma_norm else 1.0  # Gemma RMSNorm multiplies by (1 + w)
                if ".post_" in pname:
                    base += init.get("post_norm_offset", 0.0)
                p.copy_(base + STD_NORM * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in pname or pname.endswith(("wte.weight", "wpe.weight", "embed_in.weight", "embed_out.weight")):
                p.copy_(std_embed * torch.randn(p.shape, generator=g))
            elif pname.startswith("lm_head"):
                p.copy_(std_embed * torch.randn(p.shape, generator=g))
            elif pname.endswith(".bias"):
                p.copy_(STD_BIAS * torch.randn(p.shape, generator=g))
            elif pname.endswith(".weight") and p.dim() == 2:
                p.copy_(std_linear * torch.randn(p.shape, generator=g))
            elif pname.endswith(("experts.gate_up_proj_bias", "experts.down_proj_bias")):   # gpt-oss's expert biases
                p.copy_(STD_BIAS * torch.randn(p.shape, generator=g))
            elif pname.endswith("self_attn.sinks"):   # gpt-oss: one sink logit per head, on the scale of the scores
                p.copy_(torch.randn(p.shape, generator=g))
            elif pname.endswith(("experts.gate_up_proj", "experts.down_proj")) and p.dim() == 3:   # stacked experts
                p.copy_(std_linear * torch.randn(p.shape, generator=g))
            else:
                raise RuntimeError(f"no init rule for parameter {pname}")


def legacy_rope_layout(folder: Path) -> None:
    """Rewrite config.json's rope_parameters into the older top-level rope_theta / rope_scaling layout."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    rope_type = rp.pop("rope_type")
    if rp.get("partial_rotary_factor") == 1.0:
        rp.pop("partial_rotary_factor")   # Phi-3's default, which the Hub's configs leave out
    elif "partial_rotary_factor" in rp:
        cfg["partial_rotary_factor"] = rp.pop("partial_rotary_factor")   # Phi-4-mini's config has it at the top level
    cfg["rope_scaling"] = None if rope_type == "default" and not rp else dict(rope_type=rope_type, **rp)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def neox_hub_layout(folder: Path) -> None:
    """Rewrite a GPT-NeoX config.json as Pythia's Hub configs have it: rotary_pct and rotary_emb_base. (The weights
    are already in the Hub's layout: transformers 5 names the head lm_head but saves it as embed_out.weight.)"""
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert "embed_out.weight" in f.keys() and "lm_head.weight" not in f.keys(), list(f.keys())
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    assert rp["rope_type"] == "default", rp
    cfg["rotary_pct"], cfg["rotary_emb_base"] = rp["partial_rotary_factor"], rp["rope_theta"]
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def gemma3_hub_layout(folder: Path) -> None:
    """Rewrite a Gemma-3 config.json as the Hub's checkpoints have it: rope_theta / rope_scaling for the full-attention
    layers, rope_local_base_freq for the sliding ones, sliding_window_pattern instead of layer_types."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    full, local = dict(rp["full_attention"]), rp["sliding_attention"]
    cfg["rope_theta"] = full.pop("rope_theta")
    cfg["rope_local_base_freq"] = local["rope_theta"]
    rope_type = full.pop("rope_type")
    cfg["rope_scaling"] = None if rope_type == "default" else dict(rope_type=rope_type, **full)
    types = cfg.pop("layer_types")
    pattern = cfg.pop("_sliding_window_pattern")
    assert types == ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(len(types))], types
    cfg["sliding_window_pattern"] = pattern
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def olmo3_hub_layout(folder: Path) -> None:
    """Rewrite an OLMo-3 config.json as the Hub's checkpoints have it: top-level rope_theta, rope_scaling for the
    full-attention layers (the sliding ones take rope_theta unscaled), layer_types kept."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rp = cfg.pop("rope_parameters")
    full, local = dict(rp["full_attention"]), rp["sliding_attention"]
    cfg["rope_theta"] = full.pop("rope_theta")
    assert local == {"rope_type": "default", "rope_theta": cfg["rope_theta"]}, local
    rope_type = full.pop("rope_type")
    cfg["rope_scaling"] = None if rope_type == "default" else dict(rope_type=rope_type, **full)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def load_f32(folder: Path, **kw):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager", **kw)
    m.eval()
    return m


def fixed_input_ids(seed: int, first_id: int, n_special: int, vocab: int) -> list[int]:
    rng = np.random.default_rng(seed)
    rest = rng.integers(n_special, vocab, size=T_INPUT - 1)
    return [int(first_id)] + [int(x) for x in rest]


def model_parts(model) -> dict:
    """The blocks, embeddings, final norm and head of a causal LM, whatever its family names them."""
    if hasattr(model, "transformer"):   # GPT-2
        t = model.transformer
        return dict(layers=t.h, embed=t.wte, positions=t.wpe, norm=t.ln_f, head=model.lm_head)
    if hasattr(model, "gpt_neox"):
        t = model.gpt_neox
        return dict(layers=t.layers, embed=t.embed_in, norm=t.final_layer_norm, head=model.get_output_embeddings())
    norm = model.model.final_layernorm if hasattr(model.model, "final_layernorm") else model.model.norm   # Phi's name
    return dict(layers=model.model.layers, embed=model.model.embed_tokens, norm=norm, head=model.lm_head)


@torch.no_grad()
def forward_reference(model, ids: list[int], gemma_scale: float | None) -> tuple[dict, dict]:
    """hidden_states.{i} and logits as F32 numpy arrays, with checks of the conventions."""
    x = torch.tensor([ids])
    captured = {}
    parts = model_parts(model)
    last_block = parts["layers"][-1]
    h = last_block.register_forward_hook(lambda mod, a, out: captured.__setitem__(
        "pre_norm", out[0] if isinstance(out, tuple) else out))
    out = model(input_ids=x, output_hidden_states=True, use_cache=False)
    h.remove()
    hs = out.hidden_states
    L = model.config.num_hidden_layers
    assert len(hs) == L + 1, (len(hs), L)
    # 0 = embeddings (after any scaling)
    emb = parts["embed"].weight[x[0]]
    if gemma_scale is not None:
        emb = emb * gemma_scale
    if "positions" in parts:   # GPT-2: the stream starts as token + position embeddings
        emb = emb + parts["positions"].weight[: len(ids)]
    assert torch.equal(hs[0][0], emb), "hidden_states[0] is not the (scaled) embedding"
    # L = last block output after the final norm
    assert torch.equal(hs[L][0], parts["norm"](captured["pre_norm"])[0]), "hidden_states[L] is not final-normed"
    logits = out.logits[0]
    raw = parts["head"](hs[L])[0] / getattr(model.config, "logits_scaling", 1.0)   # Granite divides
    raw = raw * getattr(model.config, "logit_scale", 1.0)   # Cohere multiplies
    cap = getattr(model.config, "final_logit_softcapping", None)
    expect = raw if cap is None else torch.tanh(raw / cap) * cap
    assert torch.allclose(logits, expect, atol=1e-6, rtol=0), "logits are not lm_head(hidden_states[L]) (+softcap)"
    tensors = {f"hidden_states.{i}": hs[i][0].float().contiguous().numpy() for i in range(L + 1)}
    tensors["logits"] = logits.float().contiguous().numpy()
    probs = torch.softmax(logits, -1)
    stats = {"mean_max_prob": round(float(probs.max(-1).values.mean()), 4),
             "logits_std": round(float(logits.std()), 4)}
    return tensors, stats


@torch.no_grad()
def greedy_checked(model, prompt: list[int], n_new: int, check_uncached: bool = True) -> tuple[list[int], float]:
    """Greedy ids with the KV cache (generate), checked against an uncached recompute; returns min top1-top2 gap."""
    from transformers import GenerationConfig
    gc = GenerationConfig(do_sample=False, max_new_tokens=n_new, min_new_tokens=0, eos_token_id=None,
                          repetition_penalty=1.0, pad_token_id=0, temperature=None, top_k=None, top_p=None)
    x = torch.tensor([prompt])
    gc.use_cache = True
    # generate() fills unset (None) fields from the model's own generation config; clear its EOS so none stops us.
    saved = model.generation_config
    model.generation_config = copy.deepcopy(saved)
    model.generation_config.eos_token_id = None
    try:
        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
    finally:
        model.generation_config = saved
    cached = out[0, len(prompt):].tolist()
    assert len(cached) == n_new, f"generate returned {len(cached)} new tokens, expected {n_new}"
    if not check_uncached:
        return cached, float("nan")
    seq = list(prompt)
    margin = float("inf")
    for _ in range(n_new):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        seq.append(int(torch.argmax(logits)))
    uncached = seq[len(prompt):]
    assert cached == uncached, f"cached {cached} != uncached {uncached}"
    return cached, margin


@torch.no_grad()
def text_generation(model, tokenizer, gen_eos: list[int]) -> dict:
    from transformers import GenerationConfig
    enc = tokenizer(PROMPT_TEXT)
    prompt_ids = list(enc["input_ids"])
    gc = GenerationConfig(do_sample=False, max_new_tokens=TEXT_NEW, eos_token_id=gen_eos, repetition_penalty=1.0,
                          pad_token_id=0, temperature=None, top_k=None, top_p=None)
    x = torch.tensor([prompt_ids])
    out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
    new = out[0, len(prompt_ids):].tolist()
    chat_text = tokenizer.apply_chat_template(CHAT_MESSAGES, add_generation_prompt=True, tokenize=False)
    chat_ids = list(tokenizer(chat_text, add_special_tokens=False)["input_ids"])
    return {
        "prompt_text": PROMPT_TEXT,
        "prompt_ids": prompt_ids,
        "greedy_text_ids": new,
        "greedy_text": tokenizer.decode(new, skip_special_tokens=True),
        "greedy_text_stopped_on_eos": bool(new and new[-1] in gen_eos),
        "chat_messages": CHAT_MESSAGES,
        "chat_prompt_text": chat_text,
        "chat_prompt_ids": chat_ids,
    }


def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def save_reference(path_stem: Path, tensors: dict, meta: dict) -> None:
    from safetensors.numpy import save_file
    for k, v in tensors.items():
        assert v.dtype == np.float32, k
    save_file(tensors, str(path_stem) + ".safetensors", metadata={"generator": "Scripts/make_model_fixtures.py"})
    Path(str(path_stem) + ".json").write_text(dump_json(meta))


def check_tokenizer(folder: Path, tok, family: str) -> None:
    """The HF AutoTokenizer loaded from the folder must agree with the raw tokenizers object."""
    from transformers import AutoTokenizer
    fam = TOKENIZER_FAMILIES[family]
    hf = AutoTokenizer.from_pretrained(str(folder))
    for text in [PROMPT_TEXT, "Hello world! 42 apples.", " leading space", "naïve café"]:
        a = list(hf(text)["input_ids"])
        b = tok.encode(text).ids
        assert a == b, (family, text, a, b)
        if fam["add_bos"]:
            assert a[0] == tok.token_to_id(fam["bos"]) and a.count(a[0]) == 1, (family, a)
        else:
            assert all(i >= len(fam["specials"]) for i in a), (family, a)
    assert len(hf) == tok.get_vocab_size(), (len(hf), tok.get_vocab_size())


def make_model_fixture(name: str, spec: dict, tokenizers_by_family: dict, versions: dict) -> dict:
    from transformers import AutoModelForCausalLM, GenerationConfig
    fam_name = spec["family"]
    fam = TOKENIZER_FAMILIES[fam_name]
    tok = tokenizers_by_family[fam_name]
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    config = make_config(name, spec, tok)
    torch.manual_seed(spec["seed"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    randomize(model, gemma_norm=name.startswith("gemma") or name == "nemotron", seed=spec["seed"], init=spec.get("init"))
    model.to(torch.bfloat16).save_pretrained(str(folder), safe_serialization=True)
    gen_eos = [tok.token_to_id(t) for t in fam["gen_eos"]]
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=gen_eos if len(gen_eos) > 1 else gen_eos[0],
                     pad_token_id=config.pad_token_id).save_pretrained(str(folder))
    write_tokenizer(tok, fam_name, folder)
    check_tokenizer(folder, tok, fam_name)

    before = load_f32(folder).config
    rope_before, types_before = dict(getattr(before, "rope_parameters", None) or {}), getattr(before, "layer_types", None)
    if spec.get("legacy_rope") == "neox":
        neox_hub_layout(folder)
    elif spec.get("legacy_rope") == "gemma3":
        gemma3_hub_layout(folder)
    elif spec.get("legacy_rope") == "olmo3":
        olmo3_hub_layout(folder)
    elif spec.get("legacy_rope"):
        legacy_rope_layout(folder)
    # References always come from the files as written: reload (bf16 -> f32 is exact).
    model = load_f32(folder)
    rope_after = dict(getattr(model.config, "rope_parameters", None) or {})
    assert rope_after == rope_before, (name, rope_after, rope_before)
    assert getattr(model.config, "layer_types", None) == types_before, (name, model.config.layer_types, types_before)
    assert model.config.vocab_size == tok.get_vocab_size()
    if name == "gemma2":
        lt = list(model.config.layer_types)
        assert lt == ["sliding_attention", "full_attention", "sliding_attention"], lt
        assert model.config.sliding_window == 6
    if name == "gemma3":
        assert list(model.config.layer_types) == ["sliding_attention"] * 5 + ["full_attention"], model.config.layer_types
        assert model.config.sliding_window == 6 and model.config.final_logit_softcapping is None
        rp = model.config.rope_parameters
        assert rp["sliding_attention"]["rope_theta"] == 1e4 and rp["full_attention"]["factor"] == 8.0, rp
    gemma_scale = float(config.hidden_size) ** 0.5 if name.startswith("gemma") else None
    if name in ("granite", "granitemoe"):
        gemma_scale = config.embedding_multiplier   # the same check: hidden_states[0] is the scaled embedding

    ids = fixed_input_ids(spec["seed"], config.bos_token_id, len(fam["specials"]), config.vocab_size)
    tensors, stats = forward_reference(model, ids, gemma_scale)
    greedy, margin = greedy_checked(model, ids[:GREEDY_PROMPT_LEN], GREEDY_NEW)
    assert margin > MIN_GREEDY_MARGIN, f"{name}: greedy top1-top2 gap {margin} too small; change the seed"
    from transformers import AutoTokenizer
    text = text_generation(model, AutoTokenizer.from_pretrained(str(folder)), gen_eos)
    if name == "olmo3":
        assert list(model.config.layer_types) == ["sliding_attention"] * 3 + ["full_attention"], model.config.layer_types
        rp = model.config.rope_parameters
        assert rp["full_attention"]["rope_type"] == "yarn" and rp["sliding_attention"]["rope_type"] == "default", rp
        assert "layer_types" in json.loads((folder / "config.json").read_text())
    if name in ("cohere2", "exaone4"):
        assert list(model.config.layer_types) == ["sliding_attention"] * 3 + ["full_attention"], model.config.layer_types
    if name in ("gemma2", "gemma3", "phi3", "olmo3", "cohere2", "exaone4"):
        assert T_INPUT > 2 * config.sliding_window
    if name == "qwen2_yarn":
        assert abs(model.model.rotary_emb.attention_scaling - (0.1 * np.log(4) + 1)) < 1e-6
        assert json.loads((folder / "config.json").read_text())["rope_scaling"]["rope_type"] == "yarn"
    if name == "olmo2":
        layer = model.model.layers[0]
        assert not hasattr(layer, "input_layernorm") and layer.self_attn.q_norm.weight.numel() == 64
        assert layer.self_attn.k_norm.weight.numel() == 32
    if name == "phi4_mini":
        assert model.config.rope_parameters["partial_rotary_factor"] == 0.75, model.config.rope_parameters
        assert model.model.rotary_emb.inv_freq.numel() == 6 and config.hidden_size // config.num_attention_heads == 16
        assert json.loads((folder / "config.json").read_text())["partial_rotary_factor"] == 0.75
    if name == "phi3_longrope":
        assert model.config.rope_parameters["rope_type"] == "longrope", model.config.rope_parameters
        assert T_INPUT <= model.config.rope_parameters["original_max_position_embeddings"] == 64
        assert abs(model.model.rotary_emb.attention_scaling - (1 + np.log(4) / np.log(64)) ** 0.5) < 1e-6
    if name == "smollm3":
        assert list(model.config.no_rope_layers) == [1, 1, 1, 0], model.config.no_rope_layers
    if name == "gpt2":
        saved = json.loads((folder / "config.json").read_text())
        assert saved["n_inner"] == 128 and "num_key_value_heads" not in saved and "rope_parameters" not in saved, saved
        assert tuple(model.transformer.h[0].attn.c_attn.weight.shape) == (64, 192)   # Conv1D: [in, out]
    if name == "qwen2_moe":
        block = model.model.layers[0].mlp
        assert block.shared_expert.gate_proj.weight.shape[0] == 48 and tuple(block.shared_expert_gate.weight.shape) == (1, 64)
        from safetensors import safe_open
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            assert "model.layers.0.mlp.experts.3.down_proj.weight" in f.keys(), sorted(f.keys())[:20]
    if name == "ministral3":
        rp = model.config.rope_parameters
        assert rp["rope_type"] == "yarn" and rp["llama_4_scaling_beta"] == 0.1 and rp["original_max_position_embeddings"] == 8, rp
        assert abs(model.model.rotary_emb.attention_scaling - 1.0) < 1e-9
        cold = load_f32(folder, rope_parameters={**rp, "llama_4_scaling_beta": 0.0})
        with torch.no_grad():
            flat = cold(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
        assert np.abs(flat[:8] - tensors["logits"][:8]).max() == 0 and np.abs(flat[8:] - tensors["logits"][8:]).max() > 0.01
    if name == "gpt_oss":
        assert list(model.config.layer_types) == ["sliding_attention", "full_attention"] and model.config.sliding_window == 6
        assert model.config.rope_parameters["truncate"] is False
        # the clamp, the sinks and the router's bias all move the logits (so the reference checks each)
        for change in (dict(swiglu_limit=7.0),):
            other = load_f32(folder, **change)
            with torch.no_grad():
                moved = other(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            assert np.abs(moved - tensors["logits"]).max() > 0.05, change
    if name == "olmo":
        assert model.config.clip_qkv == 1.0 and not any("norm" in n for n, _ in model.named_parameters())
        unclipped = load_f32(folder, clip_qkv=None)
        with torch.no_grad():
            free = unclipped(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
        assert np.abs(free - tensors["logits"]).max() > 0.05, "clip_qkv 1.0 clamps nothing on these weights"
    if name == "starcoder2":
        assert model.config.sliding_window == 6 and T_INPUT > 2 * 6 and model.model.layers[0].mlp.c_fc.bias is not None
    if name == "nemotron":
        assert model.model.layers[0].self_attn.q_proj.bias is None and model.model.layers[0].mlp.up_proj.bias is None
        assert json.loads((folder / "config.json").read_text())["partial_rotary_factor"] == 0.5
    if name == "stablelm":
        assert model.model.layers[0].self_attn.rotary_ndims == 4 and model.model.layers[0].self_attn.q_proj.bias is not None
        assert model.model.layers[0].post_attention_layernorm.bias is not None and not model.config.use_parallel_residual
        # the same weights in a parallel block (use_parallel_residual true: the MLP reads the input norm): logits only
        par = load_f32(folder, use_parallel_residual=True)
        with torch.no_grad():
            tensors["logits_parallel"] = par(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().contiguous().numpy()
        assert np.abs(tensors["logits_parallel"] - tensors["logits"]).max() > 0.05
    if name == "phi":
        saved = json.loads((folder / "config.json").read_text())
        assert saved["partial_rotary_factor"] == 0.4 and model.model.layers[0].self_attn.rotary_ndims == 6, saved
        assert model.lm_head.bias is not None and not hasattr(model.model.layers[0], "post_attention_layernorm")
    if name == "gpt_neox":
        saved = json.loads((folder / "config.json").read_text())
        assert saved["rotary_pct"] == 0.25 and "rope_parameters" not in saved, saved
        assert model.gpt_neox.layers[0].attention.rotary_ndims == 4 and model.config.use_parallel_residual
        # the same weights in a sequential block (use_parallel_residual false, as GPT-NeoX-20B's ancestors): logits only
        seq = load_f32(folder, use_parallel_residual=False)
        assert not seq.config.use_parallel_residual
        with torch.no_grad():
            tensors["logits_sequential"] = seq(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().contiguous().numpy()
        assert np.abs(tensors["logits_sequential"] - tensors["logits"]).max() > 0.05

    meta = {
        "fixture": name,
        "architecture": spec["arch"],
        "generator": "Scripts/make_model_fixtures.py",
        "versions": versions,
        "weights_dtype": "bf16 (model.safetensors); references computed in float32 from these weights, eager attention",
        "input_ids": ids,
        "greedy_prompt_ids": ids[:GREEDY_PROMPT_LEN],
        "greedy_ids": greedy,
        "greedy_note": "new ids only; KV-cache generate, do_sample=False, no repetition penalty, EOS ignored; "
                       "equal to an uncached full recompute",
        "greedy_min_top2_margin": round(margin, 6),
        **text,
        "config": {
            "num_layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "vocab_size": config.vocab_size,
            "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": getattr(config, "num_key_value_heads", config.num_attention_heads),
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
            "config_json_rope_layout": "legacy rope_theta/rope_scaling" if spec.get("legacy_rope") else "rope_parameters",
        },
        "tensors": sorted(tensors.keys(), key=lambda k: (k != "logits", k)),
        "tensor_shapes": {k: list(v.shape) for k, v in tensors.items()},
        "output_stats": stats,
        "tolerance_abs": 1e-4,
    }
    save_reference(folder / "reference", tensors, meta)
    print(f"{name}: vocab {config.vocab_size}, greedy {greedy}, margin {margin:.4f}, stats {stats}, "
          f"text {text['greedy_text']!r}")
    return meta


# ---------------------------------------------------------------------------------------------------------
# GGUF (llama architecture), written with the gguf package following llama.cpp's layout (own code).


def permute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """HF rotate-half (NeoX) row order -> llama.cpp's interleaved pair order, per head.

    Rows of one head [x0..x_{d/2-1}, y0..y_{d/2-1}] become [x0, y0, x1, y1, ...]."""
    rows = w.shape[0]
    d = rows // n_heads
    return w.reshape(n_heads, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    rows = w.shape[0]
    d = rows // n_heads
    return w.reshape(n_heads, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_VARIANTS = {"f32": 0, "f16": 1, "q8_0": 7}  # general.file_type (LLAMA_FTYPE_ALL_F32, MOSTLY_F16, MOSTLY_Q8_0)


def hf_to_gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")  # model.layers.N.<sub>.<name>.weight
    n = parts[2]
    sub = ".".join(parts[3:])
    if sub not in GGUF_BLOCK_NAMES:
        raise KeyError(f"no GGUF name for {hf}")
    return f"blk.{n}.{GGUF_BLOCK_NAMES[sub]}"


GGUF_BLOCK_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def write_gguf(src: Path, dst: Path, variant: str, arch: str) -> None:
    """arch "llama" (Q/K rows permuted for llama.cpp's interleaved RoPE) or "qwen2" (NeoX RoPE, no permutation)."""
    import gguf
    from safetensors.torch import load_file
    cfg = json.loads((src / "config.json").read_text())
    tcfg = json.loads((src / "tokenizer_config.json").read_text())
    tokj = json.loads((src / "tokenizer.json").read_text())
    state = {k: v.float().numpy() for k, v in load_file(str(src / "model.safetensors")).items()}
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rope_theta = cfg["rope_theta"] if "rope_theta" in cfg else cfg["rope_parameters"]["rope_theta"]

    w = gguf.GGUFWriter(str(dst), arch)
    w.add_name(f"PersonaScope fixture {src.name} ({variant})")
    w.add_file_type(GGUF_VARIANTS[variant])
    if variant == "q8_0":
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope_theta)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])

    # Tokenizer: GPT-2 style byte-level BPE ("gpt2" model, "gpt-2" pre-tokenizer regex).
    vocab = tokj["model"]["vocab"]
    added = {a["id"]: a for a in tokj["added_tokens"]}
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    for i, a in added.items():
        tokens[i] = a["content"]
    assert all(t is not None for t in tokens) and len(tokens) == cfg["vocab_size"]
    types = [gguf.TokenType.CONTROL if (i in added and added[i]["special"]) else
             gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    # Like llama.cpp's SpecialVocab: tokenizer_config first, then config.json (Qwen has no bos_token there).
    w.add_bos_token_id(vocab_id(tokens, tcfg["bos_token"]) if tcfg.get("bos_token") else cfg["bos_token_id"])
    w.add_eos_token_id(vocab_id(tokens, tcfg["eos_token"]))
    if tcfg.get("unk_token"):
        w.add_unk_token_id(vocab_id(tokens, tcfg["unk_token"]))
    w.add_add_bos_token(bool(tcfg["add_bos_token"]))
    w.add_add_eos_token(False)
    w.add_chat_template(tcfg["chat_template"])

    for hf_name in sorted(state, key=_tensor_order):
        data = state[hf_name]
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = permute_qk(data, n_head)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = permute_qk(data, n_kv)
        name = hf_to_gguf_name(hf_name)
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim == 1 or variant == "f32":
            w.add_tensor(name, data)
        elif variant == "f16":
            w.add_tensor(name, data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def vocab_id(tokens: list[str], tok: str) -> int:
    return tokens.index(tok)


def _tensor_order(hf_name: str):
    if hf_name.startswith("model.embed_tokens"):
        return (0, 0, hf_name)
    if hf_name.startswith("model.layers."):
        return (1, int(hf_name.split(".")[2]), hf_name)
    return (2, 0, hf_name)


def read_gguf_state(path: Path, n_head: int, n_kv: int, arch: str) -> dict:
    """Read a GGUF back (dequantising), undo the Q/K permutation, and return HF-named float32 tensors."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    inv = {}
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]  # ggml ne is fastest-first
        data = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float32)
        inv[t.name] = data
    out = {}
    for gname, data in inv.items():
        hf = gguf_to_hf_name(gname)
        if arch == "llama" and hf.endswith("q_proj.weight"):
            data = unpermute_qk(data, n_head)
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            data = unpermute_qk(data, n_kv)
        out[hf] = torch.from_numpy(np.ascontiguousarray(data))
    return out


def gguf_to_hf_name(g: str) -> str:
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if g in fixed:
        return fixed[g]
    _, n, rest = g.split(".", 2)
    table = {v: k for k, v in GGUF_BLOCK_NAMES.items()}
    return f"model.layers.{n}.{table[rest]}"


def make_gguf_fixtures(src_name: str, arch: str, variants: list[str], versions: dict) -> None:
    from transformers import AutoTokenizer
    src = OUT / src_name
    base_meta = json.loads((src / "reference.json").read_text())
    cfg = json.loads((src / "config.json").read_text())
    ids = base_meta["input_ids"]
    for variant in variants:
        path = OUT / f"{src_name}-{variant}.gguf"
        write_gguf(src, path, variant, arch)
        # Reference: the HF model with exactly the weights this GGUF stores.
        model = load_f32(src)
        state = read_gguf_state(path, cfg["num_attention_heads"], cfg["num_key_value_heads"], arch)
        if "lm_head.weight" not in state:
            assert model.config.tie_word_embeddings
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected, unexpected
        assert set(missing) <= {"lm_head.weight"}, missing
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        if variant == "f32":
            ref = load_f32(src)
            for k, v in ref.state_dict().items():
                assert torch.equal(v, model.state_dict()[k]), f"f32 GGUF round trip changed {k}"
        tensors, stats = forward_reference(model, ids, None)
        greedy, margin = greedy_checked(model, ids[:GREEDY_PROMPT_LEN], GREEDY_NEW)
        assert margin > MIN_GREEDY_MARGIN, (variant, margin)
        # Independent check of the file layout: transformers' own GGUF loader must give the same logits.
        with tempfile.TemporaryDirectory() as tmp:
            os.symlink(path, Path(tmp) / path.name)
            tf = load_f32(Path(tmp), gguf_file=path.name)
            tf_logits = tf(input_ids=torch.tensor([ids]), use_cache=False).logits[0].detach().numpy()
            # ... and its GGUF tokenizer reader must tokenize like the source folder's tokenizer.json.
            gtok = AutoTokenizer.from_pretrained(tmp, gguf_file=path.name)
        diff = float(np.abs(tf_logits - tensors["logits"]).max())
        assert diff < 1e-4, f"{variant}: transformers' GGUF loader differs from reference by {diff}"
        htok = AutoTokenizer.from_pretrained(str(src))
        for text_in in [PROMPT_TEXT, "Hello world! 42 apples.", "naïve café", CHAT_MESSAGES[0]["content"]]:
            assert gtok(text_in)["input_ids"] == htok(text_in)["input_ids"], (path.name, text_in)
        gen_eos = json.loads((src / "generation_config.json").read_text())["eos_token_id"]
        text = text_generation(model, htok, gen_eos if isinstance(gen_eos, list) else [gen_eos])
        base = np.abs(tensors["logits"] - load_reference(src / "reference.safetensors")["logits"]).max()
        meta = {
            "fixture": path.name,
            "architecture": f"{arch} (GGUF)",
            "source_fixture": src_name,
            "generator": "Scripts/make_model_fixtures.py",
            "versions": versions,
            "gguf_variant": variant,
            "gguf_tensor_types": "2-D weights " + {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[variant]
                                 + ", 1-D norm weights and biases F32; no output.weight (tied to token_embd)",
            "weights_note": "references computed in float32 from the weights exactly as stored in the GGUF "
                            f"(dequantised{', Q/K permutation undone' if arch == 'llama' else ''}) "
                            f"in transformers' {base_meta['architecture']}",
            "qk_permutation": ("attn_q/attn_k rows permuted per head like llama.cpp's convert_hf_to_gguf.py "
                               "(interleaved pairs): use normal (non-NeoX) RoPE on them") if arch == "llama" else
                              "none (qwen2 uses NeoX / rotate-half RoPE, rows as in the HF checkpoint)",
            "input_ids": ids,
            "greedy_prompt_ids": ids[:GREEDY_PROMPT_LEN],
            "greedy_ids": greedy,
            "greedy_min_top2_margin": round(margin, 6),
            **text,
            "config": base_meta["config"],
            "transformers_gguf_loader_max_abs_logit_diff": diff,
            "max_abs_logit_diff_vs_bf16_reference": float(base),
            "tensors": sorted(tensors.keys(), key=lambda k: (k != "logits", k)),
            "tensor_shapes": {k: list(v.shape) for k, v in tensors.items()},
            "output_stats": stats,
            "tolerance_abs": 1e-4,
        }
        save_reference(OUT / f"{src_name}-{variant}.reference", tensors, meta)
        print(f"{path.name}: {path.stat().st_size} bytes, greedy {greedy}, tf-loader diff {diff:.2e}, "
              f"vs bf16 {base:.2e}")


def load_reference(path: Path) -> dict:
    from safetensors.numpy import load_file
    return load_file(str(path))


# ---------------------------------------------------------------------------------------------------------
# stories260K (real model, read from ../shared; not copied)


def make_stories_fixture(versions: dict) -> None:
    from transformers import AutoTokenizer
    gguf_path = STORIES / "stories260K.gguf"
    if not gguf_path.exists():
        print(f"skip stories260K: {gguf_path} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(gguf_path, Path(tmp) / gguf_path.name)
        # Its GGUF stores pad id 0xFFFFFFFF ("none"), which transformers would take as a padding index.
        model = load_f32(Path(tmp), gguf_file=gguf_path.name, pad_token_id=None)
        # The same pad id breaks transformers' GGUF tokenizer reader; give it a temporary copy with pad = <unk> (0).
        import gguf
        patched = Path(tmp) / "patched" / gguf_path.name
        patched.parent.mkdir()
        shutil.copyfile(gguf_path, patched)
        reader = gguf.GGUFReader(str(patched), "r+")
        reader.fields["tokenizer.ggml.padding_token_id"].parts[-1][0] = 0
        del reader
        tok = AutoTokenizer.from_pretrained(str(patched.parent), gguf_file=patched.name)
    ids = list(tok("Once upon a time")["input_ids"])
    assert ids[0] == 1, ids
    tensors, stats = forward_reference(model, ids, None)
    greedy, margin = greedy_checked(model, ids, 32)
    text = tok.decode(ids + greedy, skip_special_tokens=True)
    # Sanity check of transformers itself: its long greedy run must reproduce the author's documented text.
    readme = (STORIES / "README.md").read_text()
    doc = readme.split("```")[1].strip("\n")
    long_ids, _ = greedy_checked(model, ids, 256, check_uncached=False)
    long_text = tok.decode(ids + long_ids, skip_special_tokens=True)
    documented_match = long_text.startswith(doc)
    assert documented_match, f"transformers does not reproduce the documented text:\n{long_text!r}\n{doc!r}"
    assert doc.startswith(text), (text, doc[:200])
    c = model.config
    meta = {
        "fixture": "stories260K",
        "source": "../shared/models/stories260K/stories260K.gguf (not copied)",
        "generator": "Scripts/make_model_fixtures.py",
        "versions": versions,
        "weights_note": "loaded by transformers' GGUF loader (F32; it undoes the Q/K permutation), float32, eager",
        "prompt_text": "Once upon a time",
        "input_ids": ids,
        "greedy_prompt_ids": ids,
        "greedy_ids": greedy,
        "greedy_text": text,
        "greedy_min_top2_margin": round(margin, 6),
        "transformers_reproduces_documented_256_token_text": documented_match,
        "config": {"num_layers": c.num_hidden_layers, "hidden_size": c.hidden_size, "vocab_size": c.vocab_size,
                   "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads},
        "tensors": sorted(tensors.keys(), key=lambda k: (k != "logits", k)),
        "tensor_shapes": {k: list(v.shape) for k, v in tensors.items()},
        "output_stats": stats,
        "tolerance_abs": 1e-4,
    }
    save_reference(OUT / "stories260K.reference", tensors, meta)
    print(f"stories260K: ids {ids}, greedy text {text!r}, margin {margin:.4f}")


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--any-version", action="store_true", help="run even if library versions differ from the pins")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)make (default: all)")
    args = ap.parse_args()
    versions = check_versions(args.any_version)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)

    # One training per family (deterministic); trained twice to prove it.
    toks = {}
    for fam in TOKENIZER_FAMILIES:
        a, b = train_tokenizer(fam), train_tokenizer(fam)
        assert a.to_str() == b.to_str(), f"BPE training for {fam} is not deterministic"
        toks[fam] = a

    only = set(args.only) if args.only else None
    for name, spec in MODELS.items():
        if only is None or name in only:
            make_model_fixture(name, spec, toks, versions)
    if only is None or "llama2-gguf" in only:
        make_gguf_fixtures("llama2", "llama", ["f32", "f16", "q8_0"], versions)
    if only is None or "qwen2-gguf" in only:
        make_gguf_fixtures("qwen2", "qwen2", ["f16"], versions)
    if only is None or "stories260K" in only:
        make_stories_fixture(versions)

    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            assert p.stat().st_size < 700_000, f"{p} is too large ({p.stat().st_size} bytes)"
    print(f"total fixture bytes: {total}")


if __name__ == "__main__":
    main()
