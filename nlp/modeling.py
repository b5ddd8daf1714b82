"""The multi-task network: one transformer encoder, a sentiment head and a rumour head.

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

Two encoder families, the same heads: `YuqingMultiTask` (BERT: our own small encoder, and any BERT
checkpoint as a training base) and `YuqingMultiTaskXLMR` (XLM-RoBERTa: the usual pretrained
multilingual base, e.g. a deployer's copy of `xlm-roberta-base`, adapted with LoRA by `yuqing
train`). Each keeps its family's parameter prefix (`bert.*`, `roberta.*`), so a plain checkpoint of
that family loads into it; `ARCHITECTURES` maps the name a manifest records to the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import BertConfig, PretrainedConfig, XLMRobertaConfig
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertModel, BertPreTrainedModel
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaModel, XLMRobertaPreTrainedModel

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


class _Heads:
    """The heads and the forward pass shared by both encoder families (`base_model` is the
    encoder: `self.bert` or `self.roberta`, by the family's `base_model_prefix`)."""

    def _add_heads(self, config: PretrainedConfig) -> None:
        self.num_labels = len(SENTIMENT_LABELS)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        n_feat = int(getattr(config, "yuqing_rumor_features", len(FEATURES)))
        hid = int(getattr(config, "yuqing_rumor_hidden", 64))
        self.rumor_head = nn.Sequential(nn.Linear(config.hidden_size + n_feat, hid), nn.GELU(), nn.Linear(hid, 1))
        self.n_rumor_features = n_feat  # (not read off rumor_head: PEFT may wrap it)
        self.register_buffer("embed_center", torch.zeros(config.hidden_size), persistent=True)

    @property
    def position_offset(self) -> int:
        """Position ids the encoder cannot give a token: RoBERTa-family positions start after the
        padding index, so `max_position_embeddings - position_offset` tokens fit."""
        return 0

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rumor_features: torch.Tensor | None = None,
    ) -> MultiTaskOutput:
        out = self.base_model(input_ids=input_ids, attention_mask=attention_mask)
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


class YuqingMultiTask(_Heads, BertPreTrainedModel):
    """BERT encoder + sentiment (3-way) + rumour (1 logit) + centred mean embedding for topics."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self._add_heads(config)
        self.post_init()


class YuqingMultiTaskXLMR(_Heads, XLMRobertaPreTrainedModel):
    """The same heads on an XLM-RoBERTa encoder (a pretrained multilingual base)."""

    def __init__(self, config: XLMRobertaConfig) -> None:
        super().__init__(config)
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self._add_heads(config)
        self.post_init()

    @property
    def position_offset(self) -> int:
        return int(self.config.pad_token_id or 0) + 1


#: the manifest's `architecture` -> class
ARCHITECTURES: dict[str, type[_Heads]] = {"YuqingMultiTask": YuqingMultiTask, "YuqingMultiTaskXLMR": YuqingMultiTaskXLMR}
#: a base checkpoint's `model_type` -> the class that takes its encoder
BASE_FAMILIES: dict[str, type[_Heads]] = {"bert": YuqingMultiTask, "xlm-roberta": YuqingMultiTaskXLMR}


class PackedInference:
    """A CPU inference path for `YuqingMultiTask` that computes the same function with less waste.

    Why: on the CPU the encoder's matmuls are the arithmetic bound of `yuqing classify`, and the
    module path spends a share of its time elsewhere: every padded position goes through every
    linear layer and GELU, Q, K and V are three matmuls, and each layer runs transformers' Python
    plumbing (mask building, output capture, chunking). Here the real tokens of a batch are packed
    into one (tokens, hidden) matrix for every position-wise step (embeddings, projections, FFN,
    LayerNorm); only the attention itself is padded (it is a few per cent of the FLOPs), and Q, K,
    V are one fused matmul. Eval mode only: no dropout. The outputs equal the module's up to float
    rounding (~1e-6), checked by tests/nlp/test_fast_paths.py.
    """

    ROWS = 64

    def __init__(self, model: YuqingMultiTask) -> None:
        cfg = model.config
        if getattr(cfg, "_attn_implementation", "sdpa") not in ("sdpa", "eager") or cfg.hidden_act != "gelu":
            raise ValueError("packed inference supports BERT layers with GELU and plain attention only")
        if cfg.is_decoder or getattr(cfg, "position_embedding_type", "absolute") != "absolute":
            raise ValueError("packed inference supports encoder-only BERT with absolute positions only")
        emb = model.bert.embeddings
        self.word = emb.word_embeddings.weight.detach()
        self.pos = emb.position_embeddings.weight.detach()
        self.type0 = emb.token_type_embeddings.weight.detach()[0]
        self.emb_ln = (emb.LayerNorm.weight.detach(), emb.LayerNorm.bias.detach(), emb.LayerNorm.eps)
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.hidden = cfg.hidden_size
        self.layers = []
        for layer in model.bert.encoder.layer:
            a = layer.attention
            qkv_w = torch.cat([a.self.query.weight, a.self.key.weight, a.self.value.weight]).detach()
            qkv_b = torch.cat([a.self.query.bias, a.self.key.bias, a.self.value.bias]).detach()
            self.layers.append((
                qkv_w.contiguous(), qkv_b.contiguous(),
                a.output.dense.weight.detach(), a.output.dense.bias.detach(),
                a.output.LayerNorm.weight.detach(), a.output.LayerNorm.bias.detach(), a.output.LayerNorm.eps,
                layer.intermediate.dense.weight.detach(), layer.intermediate.dense.bias.detach(),
                layer.output.dense.weight.detach(), layer.output.dense.bias.detach(),
                layer.output.LayerNorm.weight.detach(), layer.output.LayerNorm.bias.detach(), layer.output.LayerNorm.eps,
            ))
        self.classifier = model.classifier
        self.rumor_head = model.rumor_head
        self.n_rumor_features = model.n_rumor_features
        self.center = model.embed_center.detach()

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 rumor_features: torch.Tensor | None = None) -> MultiTaskOutput:
        """Same inputs and outputs as `YuqingMultiTask.forward` (right-padded rows)."""
        import torch.nn.functional as F

        B, L = input_ids.shape
        mask = attention_mask.bool()
        flat = mask.reshape(-1).nonzero().squeeze(1)  # packed token -> padded position
        lens = mask.sum(1)
        positions = torch.arange(L).expand(B, L).reshape(-1)[flat]
        x = F.embedding(input_ids.reshape(-1)[flat], self.word) + self.type0
        x = x + F.embedding(positions, self.pos)
        x = F.layer_norm(x, (self.hidden,), *self.emb_ln[:2], self.emb_ln[2])
        # the packed matrix is rounded up to a multiple of ROWS rows (zeros, never read back): the
        # matmul library caches one kernel per shape, and thousands of distinct token counts
        # filled that cache with ~150 MB over a 10k-post run (measured); rounded, a few dozen
        T = x.shape[0]
        rows = -(-T // self.ROWS) * self.ROWS
        x = torch.cat([x, x.new_zeros(rows - T, x.shape[1])]) if rows > T else x
        key_mask = mask[:, None, None, :]
        nh, dh, h = self.heads, self.head_dim, self.hidden
        for (qkv_w, qkv_b, o_w, o_b, ln1_w, ln1_b, eps1, i_w, i_b, f_w, f_b, ln2_w, ln2_b, eps2) in self.layers:
            qkv = F.linear(x, qkv_w, qkv_b)
            padded = qkv.new_zeros(B * L, 3 * h).index_copy_(0, flat, qkv[:T])
            q, k, v = padded.view(B, L, 3, nh, dh).permute(2, 0, 3, 1, 4).unbind(0)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
            packed = x.new_zeros(rows, h)
            torch.index_select(ctx.permute(0, 2, 1, 3).reshape(B * L, h), 0, flat, out=packed[:T])
            x = F.layer_norm(F.linear(packed, o_w, o_b) + x, (h,), ln1_w, ln1_b, eps1)
            inter = F.gelu(F.linear(x, i_w, i_b))
            x = F.layer_norm(F.linear(inter, f_w, f_b) + x, (h,), ln2_w, ln2_b, eps2)
        seg = flat // L
        mean = x.new_zeros(B, h).index_add_(0, seg, x[:T]) / lens.clamp(min=1).to(x.dtype)[:, None]
        if rumor_features is None:
            rumor_features = x.new_zeros(B, self.n_rumor_features)
        rumor = self.rumor_head(torch.cat([mean, rumor_features.to(x.dtype)], dim=-1)).squeeze(-1)
        return MultiTaskOutput(sentiment_logits=self.classifier(mean), rumor_logit=rumor,
                               embedding=mean - self.center.to(x.dtype))
