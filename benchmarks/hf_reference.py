#!/usr/bin/env python3
"""Reference outputs from Hugging Face transformers for a local BERT directory.

    hf_reference.py MODEL_DIR --text "A man is eating food." [--text ...] [--normalize]

MODEL_DIR holds config.json, model.safetensors and tokenizer.json (a Hugging Face
BERT export). The model is BertForSequenceClassification when config.json's
`architectures` names it, BertModel otherwise. It runs in float32, eval mode.

The texts are tokenized as one batch with the directory's own tokenizer, padded to
the longest text and truncated at 512 tokens. `padding`/`truncation` are passed
explicitly, which overrides whatever tokenizer.json has built in (the teacher's
has padding and truncation fixed at 128).

The last line of stdout is one JSON object:

    {"input_ids": [[...]], "attention_mask": [[...]], "output": [[...]],
     "kind": "embedding" | "logits"}

`embedding` is sentence-transformers-style mean pooling of last_hidden_state over
the attention mask, sum(h * m) / clamp(sum(m), 1e-9), NOT L2-normalized unless
--normalize is given (sentence-transformers' all-MiniLM-L6-v2 pipeline adds a
Normalize module after pooling). `logits` are the classifier's logits.
Diagnostics go to stderr.
"""

import argparse
import json
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", help="directory with config.json, model.safetensors, tokenizer.json")
    p.add_argument("--text", action="append", required=True, help="input text (repeatable; one batch)")
    p.add_argument("--max-length", type=int, default=512, help="truncation length (default 512)")
    p.add_argument(
        "--normalize",
        action="store_true",
        help="L2-normalize embeddings after pooling (sentence-transformers Normalize module)",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Keep transformers offline and quiet: everything comes from MODEL_DIR.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    with open(os.path.join(args.model_dir, "config.json")) as f:
        raw_config = json.load(f)
    architectures = raw_config.get("architectures") or []
    classify = "BertForSequenceClassification" in architectures

    config = BertConfig.from_pretrained(args.model_dir)
    cls = BertForSequenceClassification if classify else BertModel
    # Eager attention: the plainest formulation, closest to a from-scratch implementation.
    model = cls.from_pretrained(args.model_dir, config=config, attn_implementation="eager")
    model = model.float().eval()  # float32 whatever the checkpoint dtype

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    enc = tokenizer(
        args.text,
        padding=True,  # pad to the longest text in the batch
        truncation=True,
        max_length=args.max_length,
        return_tensors="pt",
    )
    print(
        f"model={cls.__name__} tokenizer={type(tokenizer).__name__} batch={enc['input_ids'].shape[0]} "
        f"seq={enc['input_ids'].shape[1]}",
        file=sys.stderr,
    )

    with torch.inference_mode():
        out = model(**enc)
        if classify:
            result = out.logits
            kind = "logits"
        else:
            h = out.last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            result = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
            if args.normalize:
                result = torch.nn.functional.normalize(result, p=2, dim=1)
            kind = "embedding"

    obj = {
        "input_ids": enc["input_ids"].tolist(),
        "attention_mask": enc["attention_mask"].tolist(),
        "output": result.float().tolist(),
        "kind": kind,
    }
    sys.stdout.flush()
    print(json.dumps(obj, separators=(",", ":")))


if __name__ == "__main__":
    main()
