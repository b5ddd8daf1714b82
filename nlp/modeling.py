"""The multi-task network: one BERT-shaped encoder, a sentiment head and a rumour head.

Why this shape: a post costs one forward pass for all three answers. Both heads read the
mean-pooled encoder output, not BERT's `[CLS]` pooler: an encoder trained from scratch for minutes
on a CPU learns far sooner through mean pooling (a bag-of-words signal from the first step; measured:
the `[CLS]` variant sat at chance loss for the first few hundred multi-task steps), and the same
vector serves the topic prototypes. Parameter names follow `BertForSequenceClassification`
(`bert.*`, `classifier.*`, `config.id2label`), so plain transformers loads the encoder and the
sentiment layer of the same directory — with a freshly initialised `[CLS]` pooler, so it computes
the same cost but not the same answers; the benchmark uses it only as a speed reference. The rumour
head reads the text vector plus the numeric context of `nlp.rumor_features`. `embed_center` (the
mean embedding of the training texts) is stored with the weights because uncentred transformer
embeddings are all alike (anisotropic) and cosine would not separate topics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel

from nlp.manifest import SENTIMENT_LABELS
from nlp.rumor_features import FEATURES


@dataclass
class MultiTaskOutput(ModelOutput):
    sentiment_logits: torch.Tensor | None = None  # (batch, 3) in SENTIMENT_LABELS order
    rumor_logit: torch.Tensor | None = None  # (batch,)
    embedding: torch.Tensor | None = None  # (batch, hidden), mean-pooled and centred


def make_config(
    vocab_size: int,
    hidden: int = 192,
    layers: int = 4,
    heads: int = 4,
    intermediate: int | None = None,
    max_position: int = 130,
    rumor_hidden: int = 64,
    pad_token_id: int = 0,
) -> BertConfig:
    """A BertConfig for a small encoder, with the task metadata the heads need."""
    cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_position,
        type_vocab_size=1,
        pad_token_id=pad_token_id,
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={lab: i for i, lab in enumerate(SENTIMENT_LABELS)},
        problem_type="single_label_classification",
        architectures=["YuqingMultiTask"],
    )
    cfg.yuqing_rumor_features = len(FEATURES)
    cfg.yuqing_rumor_hidden = rumor_hidden
    return cfg


class YuqingMultiTask(BertPreTrainedModel):
    """Encoder + sentiment (3-way) + rumour (1 logit) + centred mean embedding for topics."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.num_labels = len(SENTIMENT_LABELS)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        n_feat = int(getattr(config, "yuqing_rumor_features", len(FEATURES)))
        hid = int(getattr(config, "yuqing_rumor_hidden", 64))
        self.rumor_head = nn.Sequential(nn.Linear(config.hidden_size + n_feat, hid), nn.GELU(), nn.Linear(hid, 1))
        self.n_rumor_features = n_feat  # (not read off rumor_head: PEFT may wrap it)
        self.register_buffer("embed_center", torch.zeros(config.hidden_size), persistent=True)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rumor_features: torch.Tensor | None = None,
    ) -> MultiTaskOutput:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        seq = out.last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(seq.dtype)
        mean = (seq * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = self.dropout(mean)
        if rumor_features is None:
            rumor_features = seq.new_zeros(seq.shape[0], self.n_rumor_features)
        rumor = self.rumor_head(torch.cat([pooled, rumor_features.to(seq.dtype)], dim=-1)).squeeze(-1)
        return MultiTaskOutput(
            sentiment_logits=self.classifier(pooled),
            rumor_logit=rumor,
            embedding=mean - self.embed_center.to(seq.dtype),
        )
