#!/usr/bin/env python3
"""Golden tokenizer fixtures for Tests/PersonaTokenizersTests/Fixtures.

Trains small tokenizers locally with Hugging Face `tokenizers` (no downloads) in each family the
Swift code supports, saves each tokenizer.json + tokenizer_config.json, and records what
`tokenizers` itself returns (ids with and without special tokens, decoded text) for a varied
text set. Also records transformers' ids for the stories260K GGUF tokenizer.

Run by hand:  /work/V/bin/python Scripts/make_tokenizer_fixtures.py
Training is not bit-reproducible across runs (the Rust trainer's hash maps break ties differently),
so re-running rewrites the fixtures; each golden.json always matches the tokenizer.json saved beside it.
Pinned to the versions it was run with: tokenizers 0.23.3, transformers 5.24.0 (checked below).
"""
import json
import os
import sys

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

EXPECTED = {"tokenizers": "0.23.3", "transformers": "5.24.0"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "PersonaTokenizersTests", "Fixtures")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")

LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CORPUS = """Once upon a time, there was a little girl named Lily. She loved to play outside in the park.
One day, she saw a big, red ball. She wanted to play with it, but it was too high.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
It's a truth universally acknowledged that we'll need tokenizers, and they're hard; I'd say you've been warned.
def fibonacci(n: int) -> int:
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)

for (int i = 0; i < 10; ++i) { printf("%d\\n", i * 42); }
let x = [1, 2, 3].map { $0 * 2 } // Swift closure
The year 2024 had 366 days; 3.14159 is pi and 2.71828 is e. Call 555-0199 or +1 (800) 123-4567.
Prices: $19.99, €25, £7.50, 100% sure, 1,000,000 users.
Café, naïve, résumé, Zürich, São Paulo, Ærøskøbing, façade, coöperate.
Привет, как дела? Это тест токенизатора.
Γειά σου κόσμε. Καλημέρα!
日本語のテキストです。東京は大きい都市です。
中文文本测试。我们喜欢机器学习。
한국어 텍스트입니다.
Emoji: 😀 😃 🎉 👍 🚀 ❤️ 👨‍👩‍👧 🇫🇷
   indented text with    multiple   spaces	and	tabs
line one
line two

paragraph after blank line
"""
CORPUS = CORPUS * 3

TEXTS = [
    "",
    "Hello world",
    " Hello world",
    "Hello, world! How are you doing today?",
    "Once upon a time",
    "It's, they're, we'll, I'd, you've, DON'T, She'S",
    "def f(x):\n    return x * 2\n",
    "if (a < b && c != d) { return a->b[0]; }",
    "1234567890 3.14159 1,000,000 0xDEADBEEF 2024-11-27",
    "Numbers: 7 77 777 7777 77777",
    "Emoji: 🦙 😶‍🌫️ 👍🏽 🇯🇵 ✅",
    "日本語とEnglishの混在テキスト、そして中文。",
    "한국어와 Ελληνικά и кириллица",
    "Combining: e\u0301 a\u0308 n\u0303 — precomposed: é ä ñ",
    "Zero\u200bwidth\u200djoiner and \u00a0nbsp and\u3000ideographic space",
    "   leading spaces",
    "trailing spaces   ",
    "multiple     inner     spaces",
    "tabs\tand\ttabs\t\t\tend",
    "\n\nnewlines\n\n\nmany\n",
    "\r\nwindows\r\nline endings\r\n",
    " ",
    "  ",
    "\t",
    "\n",
    "Ünïcödé Çàfé naïve façade",
    "<|im_start|>user\nHello there!<|im_end|>\n<|im_start|>assistant\n",
    "text<|im_end|>more text",
    "<s>Hello</s> world <unk>",
    "<|begin_of_text|>Hi<|eot_id|>",
    "a<|im_start|>b <|im_end|> c",
    "special token in the middle <|endoftext|> of text",
    "Mixed 中文 and emoji 🚀 with numbers 42 and code `x = 1`",
    "ÆØÅ æøå ß ẞ ﬁ ﬂ ① ² ½",
    "The quick brown fox jumps over the lazy dog.",
    "!!!!!! ???? ... ---- ____ ====",
    "🤖🤖🤖🤖",
]


def check_versions():
    import transformers
    got = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}
    if got != EXPECTED:
        print(f"warning: fixtures were pinned with {EXPECTED}, running {got}", file=sys.stderr)


def byte_tokens():
    return [f"<0x{b:02X}>" for b in range(256)]


def golden(tok, texts=TEXTS):
    cases = []
    for t in texts:
        with_sp = tok.encode(t, add_special_tokens=True).ids
        without = tok.encode(t, add_special_tokens=False).ids
        cases.append({
            "text": t,
            "ids": without,
            "ids_special": with_sp,
            "tokens": tok.encode(t, add_special_tokens=False).tokens,
            "decoded": tok.decode(without, skip_special_tokens=False),
            "decoded_special_skip": tok.decode(with_sp, skip_special_tokens=True),
            "decoded_special_keep": tok.decode(with_sp, skip_special_tokens=False),
        })
    return cases


ADDED_TEXTS = [
    "I love New York and new york and NEW YORK",
    "the cat sat; concatenate cat. cats cat_x (cat)",
    "fill <mask> here   <mask>and<mask>",
    "end<|end|>   next<|end|>\n\nline",
    "a <sep>  b\t<sep>\nc",
    "think</think>done </think> ok",
    "Digits 12345 and ½ ﬁ Ⅻ",
    "<mask>",
    "   <mask>   ",
]


def save(name, tok, config, extra=None, texts=TEXTS):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
    g = {"name": name, "generator": f"tokenizers {tokenizers.__version__}", "cases": golden(tok, texts)}
    if extra:
        g.update(extra)
    with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, indent=0)


def train_byte_level(name, pre, normalizer=None, post=None, ignore_merges=False, specials=(), config=None, vocab=800):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    if post is not None:
        tok.post_processor = post(tok)
    save(name, tok, config or {})


def with_bytes_first(tok, specials):
    """Rebuild a trained BPE so ids are <unk>,<s>,</s>,<0x00>..<0xFF>, then learned pieces (Llama-2 layout)."""
    j = json.loads(tok.to_str())
    old = j["model"]["vocab"]
    order = list(specials) + byte_tokens() + [t for t, _ in sorted(old.items(), key=lambda kv: kv[1]) if t not in specials]
    j["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    for a in j["added_tokens"]:
        a["id"] = j["model"]["vocab"][a["content"]]
    return Tokenizer.from_str(json.dumps(j))


def train_spm_bpe(name, normalizer, pre, decoder, post_bos=True, config=None):
    specials = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if normalizer:
        tok.normalizer = normalizer
    if pre:
        tok.pre_tokenizer = pre
    tok.decoder = decoder
    # limit_alphabet keeps rare characters (emoji, most CJK) out so byte fallback is exercised.
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, limit_alphabet=120, show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok = with_bytes_first(tok, specials)
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    if post_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    save(name, tok, config or {})


def train_unigram(name):
    specials = ["<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=600, special_tokens=specials, unk_token="<unk>", show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    save(name, tok, {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})

    # Same model with byte fallback: byte pieces appended to the vocabulary.
    j = json.loads(tok.to_str())
    low = min(s for _, s in j["model"]["vocab"])
    j["model"]["vocab"] += [[b, low - 1.0] for b in byte_tokens()]
    j["model"]["byte_fallback"] = True
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        {"type": "ByteFallback"}]}
    tok2 = Tokenizer.from_str(json.dumps(j))
    save(name + "_bytefallback", tok2, {"eos_token": "</s>", "unk_token": "<unk>"})


def train_wordpiece(name):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    save(name, tok, {"cls_token": "[CLS]", "sep_token": "[SEP]"})


def train_added_tokens(name):
    """lstrip / rstrip / single_word / normalized added tokens, with a normalizer that changes text."""
    from tokenizers import AddedToken
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False),
                            AddedToken("<|end|>", rstrip=True, special=True, normalized=False),
                            AddedToken("<sep>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("New York", normalized=True, special=False),
                    AddedToken("cat", single_word=True, normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    save(name, tok, {}, texts=TEXTS + ADDED_TEXTS)


def train_misc(name):
    """Non-byte-level BPE with unk, regex Replace / Strip / NFD+StripAccents, Whitespace + Punctuation + Digits, no decoder."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.NFD(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(),
                                                 pre_tokenizers.Digits(individual_digits=False)])
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["[UNK]", "[BOS]"], limit_alphabet=80,
                                  continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", tok.token_to_id("[BOS]"))])
    save(name, tok, {"bos_token": "[BOS]"})


def stories260k():
    """transformers' own GGUF tokenizer conversion for stories260K (llama SentencePiece, BOS=1)."""
    from transformers import AutoTokenizer
    import transformers.integrations.gguf.reader as reader
    path = os.path.join(SHARED, "models", "stories260K")
    orig = reader.read_gguf_metadata

    def patched(*a, **k):
        # The file stores padding/separator ids as 0xFFFFFFFF ("none"), which transformers indexes blindly.
        md, rest = orig(*a, **k)
        toks = md["tokenizer.ggml.tokens"]
        n = toks if isinstance(toks, int) else len(toks)
        for key in [k for k, v in md.items() if k.endswith("_token_id") and isinstance(v, int) and v >= n]:
            del md[key]
        return md, rest

    reader.read_gguf_metadata = patched
    tok = AutoTokenizer.from_pretrained(path, gguf_file="stories260K.gguf")
    texts = ["Once upon a time", "Once upon a time, there was a little girl named Lily.",
             "Lily's mom said, \"Don't worry.\"", "Hello world", "The end.\nThe next day",
             "She saw a big, red ball!", "café 日本 🚀", "", "a  b   c"]
    cases = [{"text": t, "ids_special": tok.encode(t), "ids": tok.encode(t, add_special_tokens=False),
              "decoded": tok.decode(tok.encode(t, add_special_tokens=False))} for t in texts]
    d = os.path.join(OUT, "stories260K")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"name": "stories260K", "generator": f"transformers {__import__('transformers').__version__} AutoTokenizer(gguf_file=...)",
                   "cases": cases}, f, ensure_ascii=False, indent=0)


def main():
    check_versions()
    os.makedirs(OUT, exist_ok=True)
    sp = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"]
    train_byte_level(
        "bpe_llama3",
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
                                 pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        post=lambda t: processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))])]),
        ignore_merges=True, specials=sp,
        config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    train_byte_level(
        "bpe_qwen2",
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
                                 pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
        normalizer=normalizers.NFC(), post=lambda t: processors.ByteLevel(trim_offsets=False),
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        config={"bos_token": None, "eos_token": "<|im_end|>", "add_bos_token": False})
    train_byte_level(
        "bpe_gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False), specials=["<|endoftext|>"],
        config={"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    train_byte_level(
        "bpe_prefix_space", pre_tokenizers.ByteLevel(add_prefix_space=True), specials=["<|endoftext|>"],
        post=lambda t: processors.RobertaProcessing(("<|endoftext|>", 0), ("<|endoftext|>", 0)),
        config={"eos_token": "<|endoftext|>"})

    spm_decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    # Llama-2 (legacy conversion): Prepend + Replace normalizer, no pre-tokenizer.
    train_spm_bpe("spm_llama2",
                  normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]), None, spm_decoder,
                  config={"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True})
    # Mistral / newer Llama conversions: Metaspace pre-tokenizer, prepend_scheme "first", no split.
    train_spm_bpe("spm_metaspace", None,
                  pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
                  decoders.Sequence([decoders.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
                                     decoders.ByteFallback(), decoders.Fuse()]),
                  config={"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    # Gemma: Replace only (no prefix space), decoder without Strip.
    train_spm_bpe("spm_gemma", normalizers.Replace(" ", "\u2581"), None,
                  decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]),
                  config={"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True})
    train_added_tokens("bpe_added_tokens")
    train_misc("bpe_misc")
    train_unigram("unigram")
    train_wordpiece("wordpiece")
    stories260k()


if __name__ == "__main__":
    main()
