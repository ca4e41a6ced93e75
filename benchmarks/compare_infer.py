#!/usr/bin/env python3
"""`canao infer` against Hugging Face transformers on the same checkpoint and texts.

    compare_infer.py MODEL_DIR --text "..." [--text ...] [--canao PATH] [--tiny-classifier DIR]

Runs `canao infer --json` and `hf_reference.py` on the same inputs, checks that both tokenized
identically, and prints the largest absolute difference of their outputs (embeddings or logits).
Exits 1 when it exceeds 1e-4. With --tiny-classifier DIR it first writes a small random
BertForSequenceClassification checkpoint there (the teacher's tokenizer) and compares on that,
so that the logits path is checked too. Run with the venv from setup-python.sh.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def last_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def make_tiny_classifier(teacher_dir, out_dir):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    shutil.copy(os.path.join(teacher_dir, "tokenizer.json"), out_dir)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--text", action="append", required=True)
    p.add_argument("--canao", default=os.path.join(HERE, "..", "target", "release", "canao"))
    p.add_argument("--tiny-classifier", metavar="DIR", help="write and compare a random classifier here")
    args = p.parse_args()
    model = args.model_dir
    if args.tiny_classifier:
        make_tiny_classifier(model, args.tiny_classifier)
        model = args.tiny_classifier
    texts = sum([["--text", t] for t in args.text], [])
    ours = last_json([args.canao, "infer", "--model", model, "--json", *texts])
    theirs = last_json([sys.executable, os.path.join(HERE, "hf_reference.py"), model, *texts])
    if ours["input_ids"] != theirs["input_ids"] or ours["attention_mask"] != theirs["attention_mask"]:
        print("tokenization differs:", ours["input_ids"], theirs["input_ids"])
        return 1
    if ours["kind"] != theirs["kind"]:
        print(f"output kinds differ: canao {ours['kind']}, transformers {theirs['kind']}")
        return 1
    diff = max(abs(a - b) for ra, rb in zip(ours["output"], theirs["output"]) for a, b in zip(ra, rb))
    width = len(ours["output"][0])
    print(json.dumps({"model": model, "kind": ours["kind"], "texts": len(args.text), "width": width,
                      "max_abs_diff": diff, "ok": diff <= 1e-4}))
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
