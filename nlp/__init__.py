"""Yuqing NLP engine: one small multilingual encoder, three answers per post.

Modules, each named for what it holds:
  errors        ModelError, the one exception a caller must handle when a model is unusable
  normalize     model-input normalisation shared by training and inference
  langid        offline language identification (lingua), ISO 639-1 codes
  manifest      manifest.json schema, checksums, verification
  modeling      the multi-task network (BERT-shaped encoder + sentiment and rumour heads)
  modeldir      save / load a model directory (HF save_pretrained + manifest), offline
  tokenization  training a WordPiece tokenizer from scratch on the shared texts
  encoding      token ids with head+tail truncation, padding, length bucketing
  rumor_features  numeric context features of the classify contract (user, reposts, stance)
  topics        keyword rules + prototype similarity over the agency's taxonomy
  classifier    Classifier.load / classify: the inference API the worker uses
  contract      `yuqing classify` JSONL contract (main(argv, stdin, stdout, stderr))
  single_task   a deployer's standard sequence-classification model answering one task (overrides)
  data          readers for ../shared/data and the agency's labelled posts (`yuqing export-labels`)
  metrics       accuracy, macro-F1, confusion, AUC, calibration error
  evaluate      dev-set evaluation of a saved model directory and its card (manifest + README.md)
  train         training: `yuqing train --config train.yaml` (MLM pretraining, LoRA, labelled posts)
  onnx_export   `yuqing models export-onnx | checksum | verify`: ONNX int8 export, checksum lists
"""
