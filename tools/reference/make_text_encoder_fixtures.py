"""Writes the text-encoder parity fixtures (Tests/Fixtures/text_encoders/) from transformers' CLIPTextModel and
T5EncoderModel.

Each case is a tiny model with seeded random weights, saved with save_pretrained (safetensors), one batch of token
ids shaped as FluxPipeline produces them, and the reference outputs:

    NAME/model/                   save_pretrained output (config.json + model.safetensors, or shards + index)
    NAME/inputs.safetensors       `input_ids` (B, L) int64
    NAME/outputs.safetensors      f32 `last_hidden_state` (B, L, D), and `pooler_output` (B, D) for CLIP
    NAME/case.json                what the case is and exercises, plus diagnostics

Some cases rewrite the saved tensor names into the layouts older transformers versions wrote (and the published FLUX
folders hold): CLIP under `text_model.`, T5 with `encoder.embed_tokens.weight` beside `shared.weight`. The model is
loaded back from the folder before the reference is computed, so the folder is exactly what was run.

    bucket_tables.safetensors     T5 relative-position buckets from transformers for several (buckets, max distance)
                                  pairs, relative positions -300..300 (int32), to test the bucket function alone

The reference is computed exactly as FluxPipeline calls the encoders: `model(input_ids)` with no attention mask (CLIP
gets only its causal mask; T5 attends to its padding), eval mode, f32, on the CPU, one thread.

Usage (see README.md):  python make_text_encoder_fixtures.py [--out DIR] [--spec cases.json] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import transformers  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel  # noqa: E402
from transformers.models.t5.modeling_t5 import T5Attention  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures" / "text_encoders"

CASES = [
    {
        "name": "clip_eos_first",
        "kind": "clip", "seed": 3101,
        "config": dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                       layer_norm_eps=1e-5, bos_token_id=998, eos_token_id=999, pad_token_id=999),
        "dtype": "float32", "max_shard_size": None, "layout": "transformers5",
        "batch": 2, "length": 77, "prompt_tokens": [11, 30],
        "exercises": "eos_token_id = vocab-1 (pooled at the FIRST eos; padding is eos as FLUX's CLIP tokenizer pads); "
                     "quick_gelu; full 77-token context; 2 heads x 16",
    },
    {
        "name": "clip_legacy_argmax",
        "kind": "clip", "seed": 3202,
        "config": dict(vocab_size=600, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                       num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
                       layer_norm_eps=1e-5, bos_token_id=597, eos_token_id=2, pad_token_id=1),
        "dtype": "float32", "max_shard_size": "60KB", "layout": "text_model_prefix",
        "batch": 2, "length": 16, "prompt_tokens": [5, 16], "end_id": 598, "pad_id": 598,
        "max_id_inside": [None, 7],
        "exercises": "legacy eos_token_id = 2 (as FLUX.1's CLIP config): pooled at argmax(input_ids), first maximum; "
                     "row 0 is padded with its end token 598 (argmax = first end token); row 1 fills the length and "
                     "holds id 599 at position 7, so argmax is not the end token's position; 4 heads x 12; 3 layers; sharded; tensors under "
                     "text_model. as older transformers (and FLUX folders) store them",
    },
    {
        "name": "clip_gelu_short_bf16",
        "kind": "clip", "seed": 3303,
        "config": dict(vocab_size=300, hidden_size=24, intermediate_size=40, num_hidden_layers=1,
                       num_attention_heads=3, max_position_embeddings=20, hidden_act="gelu",
                       layer_norm_eps=1e-5, bos_token_id=298, eos_token_id=299, pad_token_id=0),
        "dtype": "bfloat16", "max_shard_size": None, "layout": "transformers5",
        "batch": 2, "length": 9, "prompt_tokens": [4, 9], "pad_id": 0, "drop_eos_rows": [1],
        "exercises": "exact gelu; sequence 9 shorter than max_position_embeddings 20; padding with 0; row 1 holds "
                     "no eos at all (transformers then pools position 0); 3 heads x 8; bf16 weights",
    },
    {
        "name": "t5_gated_gelu",
        "kind": "t5", "seed": 4101,
        "config": dict(vocab_size=500, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                       relative_attention_num_buckets=32, relative_attention_max_distance=128,
                       feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6),
        "dtype": "float32", "max_shard_size": None, "layout": "transformers5",
        "batch": 2, "length": 40, "prompt_tokens": [12, 40],
        "exercises": "T5 v1.1 shape (gated gelu_new, 32 buckets, max distance 128); padded with 0 after eos 1 and no "
                     "mask (padding attends, as FluxPipeline); row 1 fills the length with its eos last",
    },
    {
        "name": "t5_relu_small_buckets",
        "kind": "t5", "seed": 4202,
        "config": dict(vocab_size=450, d_model=64, d_kv=8, d_ff=96, num_layers=3, num_heads=4,
                       relative_attention_num_buckets=8, relative_attention_max_distance=20,
                       feed_forward_proj="relu", layer_norm_epsilon=1e-5),
        "dtype": "float32", "max_shard_size": "80KB", "layout": "embed_tokens_copy",
        "batch": 2, "length": 48, "prompt_tokens": [7, 30],
        "exercises": "original-T5 relu feed-forward (wi, wo); 8 buckets, max distance 20 < length 48 (log buckets "
                     "saturate); heads x d_kv = 32 != d_model 64; eps 1e-5; 3 layers sharing layer 0's bias; "
                     "sharded; encoder.embed_tokens.weight stored beside shared.weight",
    },
]

BUCKET_TABLES = [(32, 128), (8, 20), (16, 64), (12, 30), (6, 9), (64, 256), (10, 7), (32, 16)]


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Replaces transformers' init (std 0.02 and smaller, which leaves attention almost uniform) with weights that
    make every part visibly matter: Linear N(0, 1/fan_in), biases N(0, 0.1^2), embeddings N(0, 1), norm weights
    1 + 0.2 N(0, 1), norm biases 0.1 N(0, 1), T5 relative-attention bias N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            n = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name:
                value = 1 + 0.2 * n if name.endswith("weight") else 0.1 * n
            elif name.endswith("bias"):
                value = 0.1 * n
            elif "embed" in name or "shared" in name or "relative_attention_bias" in name:
                value = n
            else:
                value = n / math.sqrt(p.shape[1])
            p.copy_(value)


def make_ids(case: dict) -> torch.Tensor:
    """Token ids as the FLUX tokenizers give them: CLIP `bos prompt eos pad...` padded to the length, T5
    `prompt eos 0...`. Prompt ids avoid the special ids."""
    gen = torch.Generator().manual_seed(case["seed"] + 7)
    cfg = case["config"]
    batch, length = case["batch"], case["length"]
    rows = []
    for r in range(batch):
        n = case["prompt_tokens"][r]
        if case["kind"] == "clip":
            eos = case.get("end_id", cfg["eos_token_id"])
            pad = case.get("pad_id", eos)
            low, high = 3, min(cfg["bos_token_id"], eos)
            prompt = torch.randint(low, high, (n - 2,), generator=gen).tolist()
            inside = case.get("max_id_inside", [None] * batch)[r]
            if inside is not None:
                prompt[inside - 1] = cfg["vocab_size"] - 1  # row position `inside` (after bos): the row's largest id
            row = [cfg["bos_token_id"]] + prompt + [eos]
            if r in case.get("drop_eos_rows", []):
                row[-1] = int(torch.randint(low, high, (1,), generator=gen))
            row += [pad] * (length - n)
        else:
            prompt = torch.randint(2, cfg["vocab_size"], (n - 1,), generator=gen).tolist()
            row = prompt + [1] + [0] * (length - n)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def build(case: dict) -> torch.nn.Module:
    torch.manual_seed(case["seed"])
    if case["kind"] == "clip":
        model = CLIPTextModel(CLIPTextConfig(**case["config"]))
    else:
        model = T5EncoderModel(T5Config(**case["config"], is_encoder_decoder=False))
    randomize(model, case["seed"] + 1)
    return model.eval()


def relayout(folder: Path, case: dict) -> None:
    """Renames the saved tensors into an older layout (see the module doc), keeping the shard split."""
    if case["layout"] == "transformers5":
        return
    index_path = folder / "model.safetensors.index.json"
    files = sorted(folder.glob("*.safetensors"))
    index = json.loads(index_path.read_text()) if index_path.exists() else None
    for file in files:
        tensors = load_file(file)
        if case["layout"] == "text_model_prefix":
            tensors = {"text_model." + k: v for k, v in tensors.items()}
        elif case["layout"] == "embed_tokens_copy" and "shared.weight" in tensors:
            tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].clone()
        save_file(tensors, file, metadata={"format": "pt"})
    if index is not None:
        weight_map = index["weight_map"]
        if case["layout"] == "text_model_prefix":
            weight_map = {"text_model." + k: v for k, v in weight_map.items()}
        elif case["layout"] == "embed_tokens_copy":
            weight_map["encoder.embed_tokens.weight"] = weight_map["shared.weight"]
        index["weight_map"] = dict(sorted(weight_map.items()))
        index_path.write_text(json.dumps(index, indent=2) + "\n")


def forward(model: torch.nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(ids)
    result = {"last_hidden_state": out.last_hidden_state.float().contiguous()}
    if getattr(out, "pooler_output", None) is not None:
        result["pooler_output"] = out.pooler_output.float().contiguous()
    return result


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref.double()).abs().max() / ref.double().abs().max())


def diagnostics(case: dict, model: torch.nn.Module, ids: torch.Tensor, ref: dict) -> dict:
    """How far torch f32 is from f64, and how much the outputs move when one part is removed, so that a 1e-4 test
    cannot pass with that part wrong."""
    out = ref["last_hidden_state"]
    d = {"last_hidden_state_std": float(out.std())}
    double = build(case).double()
    double.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    d["torch_f32_vs_f64"] = rel_err(out, forward(double, ids)["last_hidden_state"])
    with torch.no_grad():
        if case["kind"] == "clip":
            hidden = model.embeddings(input_ids=ids)
            no_causal = model.final_layer_norm(model.encoder(inputs_embeds=hidden, attention_mask=None)
                                               .last_hidden_state)
            d["change_without_causal_mask"] = rel_err(no_causal, out)
            last = model.encoder.layers[-1]
            model.encoder.layers = model.encoder.layers[:-1]
            d["change_without_last_layer"] = rel_err(forward(model, ids)["last_hidden_state"], out)
            model.encoder.layers.append(last)
        else:
            attention = model.encoder.block[0].layer[0].SelfAttention
            table = attention.relative_attention_bias.weight.clone()
            attention.relative_attention_bias.weight.zero_()
            d["change_without_position_bias"] = rel_err(forward(model, ids)["last_hidden_state"], out)
            attention.relative_attention_bias.weight.copy_(table)
            mask = (ids != 0).long()
            d["change_with_padding_mask"] = rel_err(model(ids, attention_mask=mask).last_hidden_state, out)
    return d


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_case(case: dict, out_root: Path) -> dict:
    torch.set_num_threads(1)
    folder = out_root / case["name"]
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "model").mkdir(parents=True)
    model = build(case)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[case["dtype"]]
    kwargs = {"max_shard_size": case["max_shard_size"]} if case["max_shard_size"] else {}
    model.to(dtype).save_pretrained(folder / "model", **kwargs)
    relayout(folder / "model", case)

    cls = CLIPTextModel if case["kind"] == "clip" else T5EncoderModel
    loaded = cls.from_pretrained(folder / "model", dtype=torch.float32).eval()
    saved = {k: v.float() for k, v in model.state_dict().items()}
    for k, v in loaded.state_dict().items():
        if not torch.equal(v, saved[k]):
            raise SystemExit(f"{case['name']}: {k} did not survive save/relayout/load")
    ids = make_ids(case)
    ref = forward(loaded, ids)
    save_file({"input_ids": ids}, folder / "inputs.safetensors")
    save_file(ref, folder / "outputs.safetensors")
    info = {
        "name": case["name"], "kind": case["kind"],
        "class": cls.__name__, "config": case["config"], "dtype": case["dtype"],
        "max_shard_size": case["max_shard_size"], "layout": case["layout"],
        "input_ids": ids.tolist(),
        "outputs": {k: list(v.shape) for k, v in ref.items()},
        "exercises": case["exercises"],
        "diagnostics": diagnostics(case, loaded, ids, ref),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    (folder / "case.json").write_text(json.dumps(info, indent=2) + "\n")
    info["bytes"] = folder_size(folder)
    return info


def write_bucket_tables(out_root: Path) -> None:
    relative = torch.arange(-300, 301, dtype=torch.long)
    tables = {"relative_position": relative.to(torch.int32)}
    for buckets, distance in BUCKET_TABLES:
        table = T5Attention._relative_position_bucket(relative, bidirectional=True, num_buckets=buckets,
                                                      max_distance=distance)
        tables[f"buckets_{buckets}_max_distance_{distance}"] = table.to(torch.int32)
    save_file(tables, out_root / "bucket_tables.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--spec", type=Path, help="JSON list of cases of the same form as CASES")
    parser.add_argument("--only", help="write only this case")
    args = parser.parse_args()
    cases = json.loads(args.spec.read_text()) if args.spec else CASES
    if args.only:
        cases = [c for c in cases if c["name"] == args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.spec and not args.only:
        write_bucket_tables(args.out)
    for case in cases:
        info = write_case(case, args.out)
        d = info["diagnostics"]
        print(f"{info['name']}: {info['bytes'] / 1e6:.2f} MB, outputs {info['outputs']}, "
              + ", ".join(f"{k} {v:.3g}" for k, v in d.items()))


if __name__ == "__main__":
    main()
