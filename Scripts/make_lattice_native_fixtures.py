#!/usr/bin/env python3
"""Files of every lattice type with llama.cpp's own logits (LatticeModelTests' native-precision check).

Run BY HAND (never in CI; it needs llama-cpp-python), from the repository root, after make_lattice_fixtures.py:

    /work/V/bin/python Scripts/make_lattice_native_fixtures.py

Pinned: llama-cpp-python 0.3.36, gguf 0.19.0, numpy 2.4.6, safetensors (numpy API).

llama.cpp's quantizer writes IQ3_S only without an importance matrix (make_lattice_fixtures.py), but llama.cpp runs
every lattice type. So each file here is Fixtures/quant/iq3_s_pure.gguf (the one-block Llama, every matrix IQ3_S)
with every IQ3_S tensor replaced by random blocks of one lattice type (numpy seed 7 + type id): random bytes, the f16
d of each block (IQ1_M: in the top nibbles of its scale words) taken from the IQ3_S block it replaces, times a
per-type factor that keeps the weights' size near the original's. Then llama.cpp computes the fixtures' 8 ids with
an f32 K/V cache (check_llamacpp_logits.llama_logits), in one batch and one id at a time, written to
quant/lattice_<type>.llamacpp.safetensors (logits_batch, logits_step [8, vocab], float32).
"""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Scripts"))
from check_llamacpp_logits import llama_logits  # noqa: E402

QUANT = REPO / "Tests" / "PersonaModelsTests" / "Fixtures" / "quant"
IDS = [1, 403, 407, 261, 378, 17, 200, 511]
# type name, block bytes, d scale factor (typical |w| per d: IQ3_S ~ 15 * 8, IQ2 ~ 2 * 25, IQ3_XXS ~ 4 * 33, IQ1 ~ 8)
TYPES = [("IQ2_XXS", 66, 2.4), ("IQ2_XS", 74, 2.4), ("IQ2_S", 82, 2.4), ("IQ3_XXS", 98, 1.0), ("IQ3_S", 110, 1.0),
         ("IQ1_S", 50, 15.0), ("IQ1_M", 56, 15.0)]


def random_blocks(src_blocks, name, nbytes, factor, rng):
    n = src_blocks.shape[0]
    d = (src_blocks[:, 0:2].copy().view("<f2").astype(np.float32)[:, 0] * factor).astype("<f2")
    out = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    bits = d.view("<u2").astype(np.uint16)
    if name == "IQ1_M":   # d's 16 bits in the top nibbles of the four scale words (bytes 48..55)
        for k in range(4):
            hi = 49 + 2 * k
            out[:, hi] = (out[:, hi] & 0x0F) | (((bits >> (4 * k)) & 0xF).astype(np.uint8) << 4)
    else:
        out[:, 0] = (bits & 0xFF).astype(np.uint8)
        out[:, 1] = (bits >> 8).astype(np.uint8)
    return out


def main():
    import gguf
    from safetensors.numpy import save_file
    src = QUANT / "iq3_s_pure.gguf"
    r = gguf.GGUFReader(str(src))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    for name, nbytes, factor in TYPES:
        qtype = gguf.GGMLQuantizationType[name]
        rng = np.random.default_rng(7 + int(qtype))
        dst = QUANT / f"lattice_{name.lower()}.gguf"
        w = gguf.GGUFWriter(str(dst), arch=arch)
        for field in r.fields.values():
            if field.name == "general.architecture" or field.name.startswith("GGUF."):
                continue
            vt = field.types[0]
            w.add_key_value(field.name, field.contents(), vt, sub_type=field.types[-1] if vt == gguf.GGUFValueType.ARRAY else None)
        for t in r.tensors:
            shape = [int(x) for x in reversed(t.shape)]   # rows, columns
            if t.tensor_type == gguf.GGMLQuantizationType.IQ3_S:
                blocks = np.asarray(t.data, dtype=np.uint8).reshape(-1, 110)
                data = random_blocks(blocks, name, nbytes, factor, rng).reshape(shape[0], -1)
                w.add_tensor(t.name, data, raw_dtype=qtype)
            else:
                w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        batch = llama_logits(dst, IDS)
        step = llama_logits(dst, IDS, one_by_one=True)
        save_file({"logits_batch": batch.astype(np.float32), "logits_step": step.astype(np.float32)},
                  str(QUANT / f"lattice_{name.lower()}.llamacpp.safetensors"),
                  metadata={"generator": "Scripts/make_lattice_native_fixtures.py, llama-cpp-python 0.3.36"})
        print(f"{dst.name}: {dst.stat().st_size} bytes, batch vs step max |diff| {np.abs(batch - step).max():.3g}, "
              f"max |logit| {np.abs(batch).max():.3g}")


if __name__ == "__main__":
    main()
