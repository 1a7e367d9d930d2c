"""The demo model's tokenizers, and batch tokenisation that gives FluxPipeline's ids without transformers.

- tokenizer/ (CLIP): the real CLIP byte-level BPE vocabulary cut to its first 1500 merges
  (tools/demo/make_demo_tokenizers.py writes it from open_clip's bpe_simple_vocab_16e6.txt.gz); copied as is.
- tokenizer_2/ (T5): a SentencePiece unigram model trained here on captions from scenes.py (plus lines of common
  English words, without which the unigram trainer finds under 80 pieces in so small a language), with T5's
  settings (nmt_nfkc, pad 0, eos 1, unk 2, no bos).

`python text.py` writes both into tools/demo_model/tokenizers/ and checks the fast paths below against transformers'
CLIPTokenizer / T5TokenizerFast (what FluxPipeline uses) on thousands of captions.
"""
import io
import json
import pathlib
import random
import shutil
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
TOKENIZERS = HERE / "tokenizers"
CLIP_LENGTH = 77
T5_VOCAB = 500


class Tokenizers:
    """CLIP ids padded to 77 with <|endoftext|>, T5 ids + </s> padded with <pad>: FluxPipeline's `encode_prompt`."""

    def __init__(self, folder=TOKENIZERS):
        import sentencepiece
        import tokenizers
        self.clip = tokenizers.Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))
        self.clip_pad = self.clip.token_to_id("<|endoftext|>")
        self.t5 = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer_2" / "spiece.model"))

    def clip_ids(self, captions):
        out = np.full((len(captions), CLIP_LENGTH), self.clip_pad, np.int64)
        for i, e in enumerate(self.clip.encode_batch(captions)):
            ids = e.ids
            if len(ids) > CLIP_LENGTH:  # truncation keeps the end token
                ids = ids[:CLIP_LENGTH - 1] + ids[-1:]
            out[i, :len(ids)] = ids
        return out

    def t5_ids(self, captions, length):
        out = np.zeros((len(captions), length), np.int64)
        for i, ids in enumerate(self.t5.encode(captions)):
            ids = ids[:length - 1] + [1]
            out[i, :len(ids)] = ids
        return out


def train_sentencepiece(lines):
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=T5_VOCAB,
        normalization_rule_name="nmt_nfkc", character_coverage=1.0, hard_vocab_limit=False, pad_id=0, eos_id=1,
        unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", num_threads=1,
        byte_fallback=False, minloglevel=2)
    return model.getvalue()


def main():
    import scenes
    from transformers import CLIPTokenizer, T5TokenizerFast
    if not (TOKENIZERS / "tokenizer").exists():  # committed; made by tools/demo/make_demo_tokenizers.py
        shutil.copytree(HERE.parent / "demo" / "tokenizers" / "tokenizer", TOKENIZERS / "tokenizer")
    shutil.rmtree(TOKENIZERS / "tokenizer_2", ignore_errors=True)
    captions = [scenes.scene(12345, i).caption for i in range(30000)]
    captions += [p for p, _ in scenes.heldout_prompts()]
    sys.path.insert(0, str(HERE.parent / "reference"))
    from make_tokenizer_fixtures import EN_WORDS
    rng = random.Random(7)
    words = [" ".join(rng.choice(EN_WORDS) for _ in range(8)) for _ in range(20000)]
    (TOKENIZERS / "tokenizer_2").mkdir(parents=True)
    (TOKENIZERS / "tokenizer_2" / "spiece.model").write_bytes(train_sentencepiece(captions + words))
    (TOKENIZERS / "tokenizer_2" / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 512, "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>",
         "extra_ids": 0, "tokenizer_class": "T5Tokenizer"}, indent=1) + "\n")

    fast = Tokenizers()
    clip = CLIPTokenizer.from_pretrained(TOKENIZERS / "tokenizer")
    t5 = T5TokenizerFast.from_pretrained(TOKENIZERS / "tokenizer_2")
    checks = [scenes.scene(999, i).caption for i in range(3000)]
    checks += ["A Red  circle!", "a red fox in snow", "an astronaut riding a horse, 4k", "", "ünïcödé 日本 🙂",
               " ".join(rng.choice(captions) for _ in range(20))]
    want_clip = clip(checks, padding="max_length", max_length=CLIP_LENGTH, truncation=True).input_ids
    want_t5 = t5(checks, padding="max_length", max_length=32, truncation=True).input_ids
    assert (fast.clip_ids(checks) == np.array(want_clip)).all(), "CLIP ids differ from transformers"
    assert (fast.t5_ids(checks, 32) == np.array(want_t5)).all(), "T5 ids differ from transformers"
    lengths = [int((row != 0).sum()) for row in fast.t5_ids(captions, 64)]
    print(f"T5 vocabulary {fast.t5.get_piece_size()}, CLIP vocabulary {fast.clip.get_vocab_size()}; "
          f"T5 tokens per caption: max {max(lengths)}, mean {np.mean(lengths):.1f}")
    print("ids equal to transformers on", len(checks), "texts;", checks[0], "→", fast.t5_ids(checks[:1], 32)[0])


if __name__ == "__main__":
    main()
