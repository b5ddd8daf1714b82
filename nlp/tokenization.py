"""A WordPiece tokenizer trained from scratch on the shared texts (zh, en, ar).

Why from scratch: no pretrained multilingual vocabulary can be downloaded here. Why WordPiece with
BERT's normaliser: it splits every CJK character into its own token (Chinese has no spaces, and
characters are the natural unit for a small vocabulary), while English and Arabic get sub-words.
Accents are kept (stripping would damage Arabic); casing and Arabic letter variants are already
folded by `nlp.normalize`, which runs before the tokenizer in training and inference alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 12000, min_frequency: int = 2,
                    max_length: int = 128) -> PreTrainedTokenizerFast:
    """Train on already-normalised texts; returns a transformers fast tokenizer ready to save."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=50))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=False, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=max_length, model_input_names=["input_ids", "attention_mask"],
    )
