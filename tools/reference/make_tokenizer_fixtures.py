#!/usr/bin/env python3
"""Builds the tokenizer fixtures under Tests/Fixtures/tokenizers/ (see tools/reference/TOKENIZERS.md).

What FluxPipeline (diffusers 0.42.1) does, and what these fixtures pin:
  CLIP  (`tokenizer/`):   CLIPTokenizer(prompt, padding="max_length", max_length=77, truncation=True)
  T5    (`tokenizer_2/`): T5TokenizerFast(prompt, padding="max_length", max_length=N, truncation=True)
With transformers 5 both classes are backed by the Rust `tokenizers` library (there is no separate slow CLIP
tokenizer any more), and the class __init__ rebuilds normalizer / pre-tokenizer itself: from a tokenizer.json
only the vocabulary, merges, precompiled charsmap, added tokens and post-processor are taken.

Outputs (all deterministic for the pinned versions below):
  clip/        the real CLIP vocabulary (open_clip_torch wheel's bpe_simple_vocab_16e6.txt.gz) as vocab.json +
               merges.txt, with tokenizer_config.json / special_tokens_map.json as in FLUX.1-dev's tokenizer/
  clip-json/   a smaller CLIP-style BPE (first 6000 merges of the same file) saved by CLIPTokenizer as
               tokenizer.json only, to test that loading path without shipping a 3.6 MB file
  t5/          a SentencePiece unigram model trained here (nmt_nfkc, pad 0, eos 1, unk 2, no bos), saved as
               spiece.model plus what T5TokenizerFast.from_pretrained(folder).save_pretrained writes (the tests copy
               spiece.model or tokenizer.json alone into temporary folders for the single-file loading paths; this
               script checks that transformers gives the same ids from all three)
  corpus.json  the test strings and, for each, the Python tokenizers' ids (see the note inside)
  report.json  loader agreement and where T5TokenizerFast differs from sentencepiece's own encode
  unicode_classes.json  how the tokenizers regex engine (Oniguruma) classes every code point for CLIP's pattern

Usage: /work/venv-ref/bin/python tools/reference/make_tokenizer_fixtures.py [--wheel PATH] [--out DIR]
"""

import argparse
import base64
import glob
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import Regex, normalizers, pre_tokenizers
from transformers import CLIPTokenizer, T5TokenizerFast

OPEN_CLIP_VERSION = "3.3.0"
OPEN_CLIP_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTHS = (512, 256)  # FLUX.1-dev, FLUX.1-schnell
T5_VOCAB_SIZE = 3000
SMALL_CLIP_MERGES = 6000

# FLUX.1-dev tokenizer/tokenizer_config.json (the openai/clip-vit-large-patch14 one): <|startoftext|> is matched
# on the normalized text, <|endoftext|> on the raw text.
CLIP_TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "added_tokens_decoder": {
        "49406": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False, "special": True},
        "49407": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False,
                  "single_word": False, "special": True},
    },
    "bos_token": "<|startoftext|>",
    "clean_up_tokenization_spaces": True,
    "do_lower_case": True,
    "eos_token": "<|endoftext|>",
    "errors": "replace",
    "model_max_length": 77,
    "pad_token": "<|endoftext|>",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": "<|endoftext|>",
}
CLIP_SPECIAL_TOKENS_MAP = {
    "bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
    "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
    "pad_token": "<|endoftext|>",
    "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False,
                  "single_word": False},
}


def write_json(path, value, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(value, f, ensure_ascii=False, indent=1)
        f.write("\n")


def compact_json_file(path):
    with open(path, encoding="utf-8") as f:
        value = json.load(f)
    write_json(path, value, compact=True)


# ----------------------------------------------------------------------------------------------------------------
# CLIP vocabulary


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable character table (same construction as CLIP's SimpleTokenizer)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, [chr(c) for c in codes]))


def open_clip_merges(wheel):
    with zipfile.ZipFile(wheel) as z:
        data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
    digest = hashlib.sha256(data).hexdigest()
    if digest != OPEN_CLIP_VOCAB_SHA256:
        sys.exit(f"unexpected bpe_simple_vocab_16e6.txt.gz sha256 {digest}")
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    # SimpleTokenizer: the first line is a header; 49152 - 256 - 2 merges follow.
    return [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]


def clip_vocab(merges):
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def build_clip(wheel, out):
    merges = open_clip_merges(wheel)
    vocab = clip_vocab(merges)
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    folder = os.path.join(out, "clip")
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "vocab.json"), vocab, compact=True)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    write_json(os.path.join(folder, "tokenizer_config.json"), CLIP_TOKENIZER_CONFIG)
    write_json(os.path.join(folder, "special_tokens_map.json"), CLIP_SPECIAL_TOKENS_MAP)
    tok = CLIPTokenizer.from_pretrained(folder)
    ids = tok("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407], ids
    assert tok.pad_token_id == 49407

    # A smaller CLIP-style vocabulary, saved as tokenizer.json only.
    small_merges = merges[:SMALL_CLIP_MERGES]
    small_vocab = clip_vocab(small_merges)
    small = CLIPTokenizer(vocab=small_vocab, merges=small_merges)
    with tempfile.TemporaryDirectory() as tmp:
        small.save_pretrained(tmp)
        json_folder = os.path.join(out, "clip-json")
        os.makedirs(json_folder, exist_ok=True)
        shutil.copy(os.path.join(tmp, "tokenizer.json"), os.path.join(json_folder, "tokenizer.json"))
    compact_json_file(os.path.join(json_folder, "tokenizer.json"))
    small_loaded = CLIPTokenizer.from_pretrained(json_folder)
    return tok, small_loaded


# ----------------------------------------------------------------------------------------------------------------
# T5-style SentencePiece model

EN_WORDS = """a the of and to in is was he for it with as his on be at by this had not are but from or have an they
which one you were her all she there would their we him been has when who will more no if out so said what up its
about into than them can only other new some could time these two may then do first any my now such like our over man
me even most made after also did many before must through back years where much your way well down should because
each just those people how too little state good very make world still own see men work long get here between both
life being under never day same another know while last might us great old year off come since against go came right
used take three photo portrait landscape cinematic lighting detailed painting cat dog astronaut horse riding mountain
sunset city night neon street rain forest river ocean castle dragon robot woman girl boy child old young beautiful
dark light red green blue yellow purple orange black white golden silver glass metal wood stone sky cloud sun moon star
galaxy planet flower tree garden house room window door table chair book cup coffee tea bread fruit apple banana
sharp focus bokeh octane render unreal engine trending artstation highly intricate masterpiece best quality ultra
realistic hyperrealistic 8k 4k hdr studio soft shadows volumetric fog wide angle close up macro shot film grain vintage
watercolor oil sketch pencil anime cartoon pixel art low poly isometric minimalist surreal abstract fantasy scifi
cyberpunk steampunk gothic baroque renaissance impressionist don't can't won't it's I'm you're we've they'll he'd""".split()

ACCENTED_WORDS = """café naïve résumé über straße größe mädchen fräulein niño año corazón coração são façade crème
brûlée déjà vu fiancée jalapeño piñata smörgåsbord øre ångström żółć łódź příliš žluťoučký kůň mañana señor garçon
élève hôtel forêt château noël ça où été à très voilà Ελληνικά καλημέρα κόσμε ΟΔΟΣ Москва привет мир Україна
спасибо ёлка İstanbul ışık şehir çiçek Ağrı Æsir Þór Ðað fjörður Đà Nẵng Việt Nam tiếng""".split()

CJK_WORDS = """東京 京都 大阪 北京 上海 中文 日本語 漢字 猫 犬 山 川 花 月 空 海 雨 雪 風 人 大 小 中 国 学 生 先 年 時
本 語 日 火 水 木 金 土 こんにちは ありがとう さようなら カタカナ ひらがな 写真 美しい 夜 街 光 한국어 안녕하세요 감사합니다
서울 고양이 사진 風景 桜 富士山 龍 宇宙 星空""".split()

OTHER_SCRIPT_WORDS = """مرحبا العالم شكرا שלום עולם नमस्ते दुनिया धन्यवाद สวัสดี ขอบคุณ გამარჯობა Բարեւ ሰላም
வணக்கம் ಕನ್ನಡ""".split()

PUNCT = list(".,;:!?()[]{}\"'-—–…/\\@#$%^&*+=<>|~`") + ["...", "--", "!!", "?!", "«", "»", "“", "”", "‘", "’"]


def number(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(10, 10000))
    if kind == 2:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if kind == 3:
        return f"{rng.randrange(0, 1000)}.{rng.randrange(0, 100)}"
    if kind == 4:
        return f"{rng.randrange(1, 24)}:{rng.randrange(0, 60):02d}"
    return f"{rng.randrange(1, 100)}%"


def cjk_run(rng):
    return "".join(chr(rng.randrange(0x4E00, 0x4E00 + 1500)) for _ in range(rng.randrange(1, 6)))


def training_sentence(rng):
    parts = []
    for _ in range(rng.randrange(3, 18)):
        r = rng.random()
        if r < 0.55:
            w = rng.choice(EN_WORDS)
            if rng.random() < 0.1:
                w = w.capitalize()
            parts.append(w)
        elif r < 0.67:
            parts.append(rng.choice(ACCENTED_WORDS))
        elif r < 0.75:
            parts.append(rng.choice(CJK_WORDS))
        elif r < 0.79:
            parts.append(cjk_run(rng))
        elif r < 0.83:
            parts.append(rng.choice(OTHER_SCRIPT_WORDS))
        elif r < 0.92:
            parts.append(number(rng))
        else:
            parts.append(rng.choice(PUNCT))
    sep = " " if rng.random() < 0.9 else ", "
    return sep.join(parts)


def train_t5_model():
    rng = random.Random(20240801)
    lines = [training_sentence(rng) for _ in range(30000)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=T5_VOCAB_SIZE,
        normalization_rule_name="nmt_nfkc", character_coverage=0.9995, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", num_threads=1, byte_fallback=False,
        minloglevel=2)
    return model.getvalue()


def build_t5(out, scratch):
    """t5/ as FLUX.1's tokenizer_2/ holds it; the same files alone in scratch folders for the loader checks."""
    blob = train_t5_model()
    if train_t5_model() != blob:
        sys.exit("sentencepiece training is not deterministic here")
    both = os.path.join(out, "t5")
    only_spiece = os.path.join(scratch, "t5-spiece")
    only_json = os.path.join(scratch, "t5-json")
    for folder in (both, only_spiece, only_json):
        os.makedirs(folder, exist_ok=True)
    for folder in (both, only_spiece):
        with open(os.path.join(folder, "spiece.model"), "wb") as f:
            f.write(blob)
    from_spiece = T5TokenizerFast.from_pretrained(only_spiece)
    saved = os.path.join(scratch, "t5-saved")
    from_spiece.save_pretrained(saved)
    for name in sorted(os.listdir(saved)):
        if name != "spiece.model":
            shutil.copy(os.path.join(saved, name), os.path.join(both, name))
    compact_json_file(os.path.join(both, "tokenizer.json"))
    shutil.copy(os.path.join(both, "tokenizer.json"), os.path.join(only_json, "tokenizer.json"))
    processor = spm.SentencePieceProcessor(model_proto=blob)
    return {
        "t5": T5TokenizerFast.from_pretrained(both),
        "t5-spiece": from_spiece,
        "t5-json": T5TokenizerFast.from_pretrained(only_json),
    }, processor


# ----------------------------------------------------------------------------------------------------------------
# Test corpus

HAND_WRITTEN = [
    "", " ", "  ", "\n", "\t", "\r\n", " \n\t \u3000 ", "a", "A", "a photo of a cat",
    "A photo of a cat", "A PHOTO OF A CAT", "  leading spaces", "trailing spaces   ", "  both  ",
    "runs   of    spaces", "line\nbreaks\n\nand\n\n\nmore", "tabs\tbetween\t\twords", "mixed \t\n \r\n whitespace",
    "windows\r\nline\r\nends", "carriage\rreturn", "vertical\x0btab and\x0cform feed",
    "A cinematic photo of an astronaut riding a horse on Mars, 8k, highly detailed",
    "a beautiful landscape painting, trending on artstation, by greg rutkowski",
    "portrait of a woman, soft lighting, bokeh, 85mm f/1.4",
    "Don't stop: it's what we've done, they'll see, I'm sure he'd agree, you're right",
    "DON'T STOP IT'S WE'VE", "rock'n'roll", "o'clock", "'s", "'", "''", "'''s", "x's y't z're",
    "café au lait", "naïve résumé", "Crème Brûlée", "Straße und Größe", "niño año señor", "coração são",
    "e\u0301 decomposed accent", "cafe\u0301", "A\u030a angstrom", "\u00c5 precomposed", "Z\u0307\u0301 stacked marks",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308 many marks", "\u0301 leading combining mark",
    "東京の夜景", "日本語のテキスト", "中文测试句子", "漢字とかなカナ", "한국어 문장입니다", "안녕하세요 세계",
    "\u1100\u1161\u11a8 conjoining jamo", "富士山と桜の写真", "北京 上海 广州 深圳",
    "emoji 😀 smile", "🐱🐶🐭", "family 👨\u200d👩\u200d👧\u200d👦 zwj", "flag 🇫🇷 🇯🇵 🇺🇸", "thumbs 👍🏽 skin tone",
    "rainbow 🏳️\u200d🌈 flag", "heart ❤️ variation", "keycap 1️⃣ #️⃣", "🧑\u200d🚀 astronaut", "😀😃😄😁😆😅😂🤣",
    "zero\u200bwidth space", "zero\u200cwidth non-joiner", "zero\u200dwidth joiner", "bom\ufeffinside", "soft\u00adhyphen",
    "nbsp\u00a0between", "narrow\u202fnbsp", "ideographic\u3000space", "en\u2002space em\u2003space",
    "line\u2028separator", "para\u2029separator", "next\u0085line", "ogham\u1680space", "mongolian\u180evowel",
    "control \x00 null", "bell \x07 char", "escape \x1b[31m red", "delete \x7f char", "c1 \x80\x9f controls",
    "unit\x1fseparator", "record\x1eseparator", "\x01\x02\x03\x04", "private \ue000\uf8ff use",
    "noncharacter \ufdd0 \ufffe", "replacement \ufffd char", "unassigned \u0378 \u0530",
    "مرحبا بالعالم", "שלום עולם", "mixed English عربي text", "\u202eright-to-left override\u202c",
    "नमस्ते दुनिया", "स्वागत है", "สวัสดีครับ", "ภาษาไทย", "Ελληνικά κείμενο", "ΟΔΟΣ ΣΟΦΟΣ final sigma",
    "Привет, мир!", "ЁЛКА ёлка", "İstanbul ıı İİ", "ǅ titlecase ǈ ǋ", "ẞ capital sharp s", "ﬁ ﬂ ligatures ﬀ ﬃ",
    "ＡＢＣ ｆｕｌｌ ｗｉｄｔｈ １２３", "ｶﾀｶﾅ halfwidth", "① ② ③ circled", "㎏ ㎞ ㎡ squared", "™ © ®", "Ⅻ roman Ⅳ",
    "x² y³ superscripts", "½ ¼ ¾ fractions", "𝐀𝐁𝐂 math bold 𝔸𝔹", "µ micro Ω ohm Å angstrom", "℃ ℉ ‰",
    "…ellipsis…", "—em dash–en dash‐hyphen", "“smart quotes” ‘single’", "«guillemets»", "¿Qué? ¡Sí!",
    "1234567890", "3.14159 2.71828", "2024-05-17 12:30", "$1,000,000.00", "100%", "+1 (555) 123-4567",
    "١٢٣ arabic digits", "०१२ devanagari digits", "٣.١٤", "Ⅷ ⅷ", "0x1F600", "1e-10", "99 bottles",
    "!!!???...", "@#$%^&*()", "<|startoftext|>", "<|endoftext|>", "<|STARTOFTEXT|> upper", "<|ENDOFTEXT|> upper",
    "a<|endoftext|>b", "x <|startoftext|> y <|endoftext|> z", "<|endoftext|><|endoftext|>", "<|endoftext",
    "</s>", "a</s>b", "hello </s> world", "<pad>", "<unk>", "x<unk>y", "<pad><pad> a", "<s>", "<extra_id_0>",
    "a <extra_id_5> b", "<extra_id_99><extra_id_0>", "<extra_id_100>", "＜/s＞ fullwidth", "▁", "▁▁a", "a▁b",
    "▁leading metaspace", "trailing metaspace▁", "under_score snake_case", "CamelCaseWordsHere", "kebab-case-words",
    "http://example.com/path?q=1&r=2", "user@example.com", "#hashtag @mention", "C:\\Windows\\System32",
    "<html><body>tag</body></html>", "{\"json\": [1, 2, 3]}", "print('hello, world')", "x = y + z * 2",
    "ALL CAPS SENTENCE HERE", "MiXeD CaSe TeXt", "iPhone eBay McDonald", "word", "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "abababababababababababab", "the the the the the the", ".", ",", "a.b,c;d:e", "a-b_c/d\\e",
    "\u2581\u2581\u2581", "\u00a0\u00a0", "\u3000", " \u00a0 \u3000 x", "\x00", "\x00\x00abc",
]


def long_texts(rng):
    sentence_rng = random.Random(7)
    mixed = ""
    while len(mixed) < 10000:
        mixed += training_sentence(sentence_rng) + rng.choice([" ", "  ", "\n", ". ", "\n\n", "\t"])
    mixed = mixed[:10000]
    cjk = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(10000))
    emoji = "".join(rng.choice(["😀", "🐱", "👍🏽", "🇫🇷", "❤️", "👨\u200d👩\u200d👧"]) for _ in range(5000))[:10000]
    return [mixed, "a" * 10000, cjk, " " * 10000, ("word " * 2000)[:10000], emoji,
            "".join(rng.choice("abc xyz\n.,!é漢😀") for _ in range(10000))]


CHAR_POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
             + list(" " * 12) + list("\n\t\r") + PUNCT
             + list("éèêëàâäôöûüçñßæøåœ") + list("ÉÈÀÇÑÆØÅ") + list("東京日本語漢字中文猫犬山川")
             + list("ひらがなカタカナ") + list("한국어서울") + list("αβγδΣσςΩ") + list("абвгдЖЗИ")
             + list("مرحبا") + list("שלום") + list("नमस्ते") + list("สวัสดี")
             + ["\u0301", "\u0308", "\u200b", "\u200d", "\u200c", "\ufeff", "\u00a0", "\u3000", "\u2028",
                "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u00ad", "\ufe0f", "😀", "👍", "🏽", "🇫", "🇷", "❤",
                "ﬁ", "①", "㎏", "™", "²", "½", "Ⅻ", "ＡＢ", "ｶ", "İ", "ẞ", "▁", "<|endoftext|>", "</s>",
                "<unk>", "<pad>", "'s", "'ll", "<extra_id_3>"])


def random_texts(rng, count):
    texts = []
    for i in range(count):
        if i % 3 == 0:
            # Prompt-like: words from the training vocabulary lists.
            sentence_rng = random.Random(1000 + i)
            texts.append(training_sentence(sentence_rng))
        else:
            length = rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 80, 200, 400])
            texts.append("".join(rng.choice(CHAR_POOL) for _ in range(length)))
    return texts


def corpus():
    rng = random.Random(424242)
    texts = list(HAND_WRITTEN) + long_texts(rng) + random_texts(rng, 200)
    # Strings long enough to need truncation at 77 / 256 / 512 tokens with few characters.
    texts += [" ".join(["photo"] * n) for n in (74, 75, 76, 77, 100)]
    texts += [" ".join(["cat"] * n) for n in (254, 255, 256, 300, 510, 511, 512, 600)]
    seen = set()
    unique = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


# ----------------------------------------------------------------------------------------------------------------
# Expectations


def padded_encoding(tok, text, max_length):
    """Calls the tokenizer the way FluxPipeline does; returns the unpadded prefix after checking the padding."""
    enc = tok([text], padding="max_length", max_length=max_length, truncation=True)
    ids = enc.input_ids[0]
    mask = enc.attention_mask[0]
    assert len(ids) == max_length and len(mask) == max_length, (text, len(ids))
    used = sum(mask)
    assert mask == [1] * used + [0] * (max_length - used), text
    assert ids[used:] == [tok.pad_token_id] * (max_length - used), text
    return ids[:used]


def unpadded(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def unicode_classes():
    """Classifies every scalar as CLIP's regex sees it: L (\\p{L}), N (\\p{N}), S (\\s) or O (other).

    Uses the regex engine of `tokenizers` itself; stored as runs [first, last, class]."""
    scalars = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(chr(c) for c in scalars)
    classes = ["O"] * len(scalars)
    for name, pattern in (("L", r"\p{L}"), ("N", r"\p{N}"), ("S", r"\s")):
        # "removed" keeps the runs that do not match; every scalar outside them matches the pattern.
        matched = [True] * len(scalars)
        for piece, (start, end) in pre_tokenizers.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text):
            assert text[start:end] == piece  # offsets are in characters
            for i in range(start, end):
                matched[i] = False
        for i, m in enumerate(matched):
            if m:
                assert classes[i] == "O", (hex(scalars[i]), classes[i], name)
                classes[i] = name
    runs = []
    for scalar, cls in zip(scalars, classes):
        if runs and runs[-1][2] == cls and runs[-1][1] == scalar - 1:
            runs[-1][1] = scalar
        else:
            runs.append([scalar, scalar, cls])
    return runs


def lowercase_table():
    """Scalars whose per-character lowercase (tokenizers' Lowercase normalizer) differs from themselves."""
    lower = normalizers.Lowercase()
    table = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        out = lower.normalize_str(chr(c))
        if out != chr(c):
            table.append([c, out])
    return table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheel", help="open_clip_torch wheel (downloaded with pip if absent)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures",
                                                      "tokenizers"))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)

    wheel = args.wheel
    if wheel is None:
        cache = os.path.join(tempfile.gettempdir(), "fluxserve-open-clip-wheel")
        found = glob.glob(os.path.join(cache, f"open_clip_torch-{OPEN_CLIP_VERSION}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache,
                            f"open_clip_torch=={OPEN_CLIP_VERSION}"], check=True)
            found = glob.glob(os.path.join(cache, f"open_clip_torch-{OPEN_CLIP_VERSION}-*.whl"))
        wheel = found[0]

    clip, clip_small = build_clip(wheel, out)
    scratch = tempfile.mkdtemp(prefix="fluxserve-t5-")
    t5s, processor = build_t5(out, scratch)
    texts = corpus()
    assert len(texts) >= 300, len(texts)

    entries = []
    spm_mismatches = []
    loader_mismatches = []
    for text in texts:
        entry = {"text": text}
        entry["clip"] = padded_encoding(clip, text, CLIP_MAX_LENGTH)
        entry["clip_tokens"] = unpadded(clip, text)
        entry["clip_json"] = padded_encoding(clip_small, text, CLIP_MAX_LENGTH)
        reference = t5s["t5"]
        for n in T5_MAX_LENGTHS:
            entry[f"t5_{n}"] = padded_encoding(reference, text, n)
        entry["t5_tokens"] = unpadded(reference, text)
        for name, tok in t5s.items():
            if name == "t5":
                continue
            if (padded_encoding(tok, text, 512) != entry["t5_512"] or unpadded(tok, text) != entry["t5_tokens"]):
                loader_mismatches.append({"loader": name, "text": text})
        own = processor.encode(text)
        if own != entry["t5_tokens"]:
            spm_mismatches.append(text)
        entries.append(entry)

    versions = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "sentencepiece": spm.__version__, "open_clip_torch": OPEN_CLIP_VERSION}
    write_json(os.path.join(out, "corpus.json"), {
        "versions": versions,
        "note": ("Each list is the unpadded prefix of what FluxPipeline's call returns: input_ids continue with "
                 "the pad id (CLIP 49407, T5 0) up to the max length and attention_mask is 1 for the prefix, "
                 "0 after (checked by the generator). *_tokens: no special tokens, no truncation."),
        "clip_max_length": CLIP_MAX_LENGTH, "clip_pad_id": clip.pad_token_id,
        "t5_pad_id": t5s["t5"].pad_token_id, "entries": entries,
    }, compact=True)
    write_json(os.path.join(out, "unicode_classes.json"), {"versions": versions, "runs": unicode_classes(),
                                                           "lowercase": lowercase_table()}, compact=True)
    write_json(os.path.join(out, "report.json"), {
        "versions": versions, "corpus_size": len(entries),
        "t5_loader_mismatches": loader_mismatches,
        "t5_fast_vs_sentencepiece_mismatches": len(spm_mismatches),
        "t5_fast_vs_sentencepiece_texts": [t if len(t) <= 80 else t[:80] + "..." for t in spm_mismatches],
    })
    shutil.rmtree(scratch)
    print(f"{len(entries)} strings; T5 loader mismatches: {len(loader_mismatches)}; "
          f"fast vs sentencepiece mismatches: {len(spm_mismatches)}")


if __name__ == "__main__":
    main()
