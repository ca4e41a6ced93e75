#!/usr/bin/env python3
"""PyTorch eager training throughput of the teacher on SST-2, the baseline of `canao train`.

    train_torch.py --teacher DIR [--data DIR] [--steps 60] [--batch-size 32] [--threads 2] [--json]

The same model (the teacher's BertModel with a BertForSequenceClassification head, FP32), the
same data (SST-2 train, tokenized with the teacher's tokenizer.json, truncated at 128, padding
off), the same length-bucketed batching as canao (examples shuffled, sorted by length within
windows of 50 batches, batches shuffled), the same optimizer (AdamW, lr 5e-5, weight decay 0.01,
eps 1e-8, gradient-norm clipping at 1) and the same thread count. Tokens are real (unpadded)
tokens, as canao counts them. Reported: the median over steps of tokens per second, measured in
windows of 10 steps after 5 warm-up steps.
"""
import argparse, json, os, random, statistics, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data"))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import BertForSequenceClassification

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tok = Tokenizer.from_file(os.path.join(a.teacher, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(a.data, "glue/SST-2/train.tsv"), encoding="utf-8")][1:]
    encs = tok.encode_batch([r[0] for r in rows])
    labels = [int(r[1]) for r in rows]
    order = list(range(len(encs)))
    random.Random(17).shuffle(order)
    window = a.batch_size * 50
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: len(encs[i].ids))
        batches += [chunk[i:i + a.batch_size] for i in range(0, len(chunk), a.batch_size)]
    random.Random(18).shuffle(batches)

    model = BertForSequenceClassification.from_pretrained(a.teacher, num_labels=2, attn_implementation="eager")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, eps=1e-8)
    rates, tokens, t0 = [], 0, None
    for step in range(a.steps + 5):
        idx = batches[step]
        seq = max(len(encs[i].ids) for i in idx)
        ids = torch.zeros(len(idx), seq, dtype=torch.long)
        mask = torch.zeros(len(idx), seq, dtype=torch.long)
        for r, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[r, :n] = torch.tensor(encs[i].ids)
            mask[r, :n] = 1
        y = torch.tensor([labels[i] for i in idx])
        if step == 5:
            t0, tokens = time.perf_counter(), 0
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), labels=y)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        tokens += int(mask.sum())
        if step >= 5 and (step - 4) % 10 == 0:
            now = time.perf_counter()
            rates.append(tokens / (now - t0))
            t0, tokens = now, 0
    med = statistics.median(rates)
    print(f"PyTorch {torch.__version__} eager training, batch {a.batch_size}, {a.threads} threads: "
          f"median {med:.0f} tokens/s over {len(rates)} windows of 10 steps", file=sys.stderr)
    if a.json:
        print(json.dumps({"torch": torch.__version__, "threads": a.threads, "batch_size": a.batch_size,
                          "median_tokens_per_s": med, "windows": rates}))
    else:
        print(f"{med:.0f}")


if __name__ == "__main__":
    main()
