"""Small tokenizers for the built-in demo model (`--model demo`), embedded into the program.

CLIP: the first 1500 merges of the real CLIP vocabulary (open_clip_torch's bpe_simple_vocab_16e6.txt.gz), saved as a
compact tokenizer.json by transformers' CLIPTokenizer. T5: a SentencePiece unigram model (T5's settings: nmt_nfkc,
pad 0, eos 1, unk 2, no bos) with 1000 pieces, trained on demo-style captions and common prompt words.
Writes tools/demo/tokenizers/{tokenizer,tokenizer_2}/ (not committed). The trained demo (tools/demo_model/) keeps
its own copy of the CLIP one in tools/demo_model/tokenizers/ and trains its T5 model on its captions.
"""
import io
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile

import sentencepiece as spm
from transformers import CLIPTokenizer, T5TokenizerFast

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
import make_tokenizer_fixtures as fixtures  # noqa: E402  (bytes_to_unicode, open_clip_merges, clip_vocab, word lists)

CLIP_MERGES = 1500
T5_VOCAB = 600
COLORS = "red orange yellow green blue purple pink brown black white gray cyan magenta".split()
SHAPES = "circle square triangle star rectangle ellipse hexagon heart cross diamond".split()
WORDS = ("a an the one two three small large big tiny huge on in at of with and background top bottom left right "
         "corner center middle next to above below").split()


def caption(rng):
    n = rng.choice(["a", "one", "two", "three"])
    parts = [n, rng.choice(["", "small ", "large "]) + rng.choice(COLORS), rng.choice(SHAPES) + ("s" if n in ("two", "three") else "")]
    if rng.random() < 0.5:
        parts += ["on", "a", rng.choice(COLORS), "background"]
    if rng.random() < 0.3:
        parts += ["in", "the", rng.choice(["top", "bottom"]), rng.choice(["left", "right"]), "corner"]
    return " ".join(parts)


def main():
    out = HERE / "tokenizers"
    wheel = sys.argv[1] if len(sys.argv) > 1 else None
    if wheel is None:
        tmp = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        "open_clip_torch==3.3.0"], check=True)
        wheel = os.path.join(tmp, os.listdir(tmp)[0])
    merges = fixtures.open_clip_merges(wheel)[:CLIP_MERGES]
    clip = CLIPTokenizer(vocab=fixtures.clip_vocab(merges), merges=merges, model_max_length=77)
    with tempfile.TemporaryDirectory() as tmp:
        clip.save_pretrained(tmp)
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        data = json.load(open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8"))
        (out / "tokenizer" / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                                                          encoding="utf-8")
    (out / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 77, "pad_token": "<|endoftext|>", "bos_token": "<|startoftext|>",
         "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "do_lower_case": True,
         "tokenizer_class": "CLIPTokenizer"}, indent=1) + "\n")

    rng = random.Random(7)
    lines = [caption(rng) for _ in range(20000)] + [" ".join(rng.choice(fixtures.EN_WORDS) for _ in range(8))
                                                    for _ in range(20000)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=T5_VOCAB,
        normalization_rule_name="nmt_nfkc", character_coverage=1.0, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", num_threads=1, byte_fallback=False, minloglevel=2)
    (out / "tokenizer_2").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer_2" / "spiece.model").write_bytes(model.getvalue())
    (out / "tokenizer_2" / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 512, "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
         "extra_ids": 0, "tokenizer_class": "T5Tokenizer"}, indent=1) + "\n")
    t5 = T5TokenizerFast.from_pretrained(out / "tokenizer_2")
    clip2 = CLIPTokenizer.from_pretrained(out / "tokenizer")
    print("clip:", clip2("a red circle").input_ids, "t5:", t5("a red circle").input_ids)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(p.relative_to(HERE), p.stat().st_size)


if __name__ == "__main__":
    main()
