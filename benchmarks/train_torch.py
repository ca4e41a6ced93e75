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

    train_torch.py --teacher DIR --epochs 2 [--lr 5e-5] [--warmup 0.06] [--eval-every 500] [--seed 17]
        [--device cuda] [--clip global|tensor|none] [--llrd 0.9] [--dropout 0.1] [--weight-decay 0.01]
        [--label-smoothing 0.1]

With `--epochs`, a whole fine-tuning run instead, as `canao train --phase teacher` does it but in
`transformers` (BERT's dropout 0.1 on hidden states and attention probabilities, a fresh head,
linear warm-up then linear decay to zero, the batches shuffled again each epoch): the SST-2 dev
accuracy every `--eval-every` steps and at the end, the reference for canao's teacher score.
The recipe's knobs: `--clip tensor` clips each parameter's gradient to norm 1 on its own as canao
does (burn's `GradientClipping::Norm`), `global` the norm of all of them together (PyTorch's usual);
`--llrd D` scales the learning rate of encoder layer i (of L) by D^(L-i) and of the embeddings by
D^(L+1), the head keeping the full rate; `--dropout` sets hidden and attention dropout together.
`--device cuda` runs it on a GPU (benchmarks/sweep_teacher.py runs many such runs side by side).
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
    ap.add_argument("--epochs", type=float, help="a whole fine-tuning run with dev evaluations")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clip", choices=["global", "tensor", "none"], default="global")
    ap.add_argument("--llrd", type=float, default=1.0, help="layer-wise learning-rate decay")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
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
    def epoch_batches(seed):
        order = list(range(len(encs)))
        random.Random(seed).shuffle(order)
        window = a.batch_size * 50
        batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w:w + window], key=lambda i: len(encs[i].ids))
            batches += [chunk[i:i + a.batch_size] for i in range(0, len(chunk), a.batch_size)]
        random.Random(seed + 1).shuffle(batches)
        return batches

    def tensors(idx, ids_of):
        seq = max(len(ids_of(i)) for i in idx)
        ids = torch.zeros(len(idx), seq, dtype=torch.long)
        mask = torch.zeros(len(idx), seq, dtype=torch.long)
        for r, i in enumerate(idx):
            n = len(ids_of(i))
            ids[r, :n] = torch.tensor(ids_of(i))
            mask[r, :n] = 1
        return ids, mask

    model = BertForSequenceClassification.from_pretrained(
        a.teacher, num_labels=2, attn_implementation="eager", torch_dtype=torch.float32,
        hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout).to(a.device)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, a.lr, a.llrd), lr=a.lr, weight_decay=a.weight_decay, eps=1e-8,
                            fused=a.device.startswith("cuda") or None)
    if a.epochs:
        finetune(a, torch, tok, model, opt, encs, labels, epoch_batches, tensors)
        return
    batches = epoch_batches(17)
    rates, tokens, t0 = [], 0, None
    for step in range(a.steps + 5):
        idx = batches[step]
        ids, mask = tensors(idx, lambda i: encs[i].ids)
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


def param_groups(model, lr, decay):
    """One group per learning rate: the head at `lr`, encoder layer i of L at lr·decay^(L-i), the
    embeddings at lr·decay^(L+1)."""
    layers = model.config.num_hidden_layers
    groups = {}
    for name, p in model.named_parameters():
        if ".encoder.layer." in name:
            depth = layers - int(name.split(".encoder.layer.")[1].split(".")[0])
        elif ".embeddings." in name:
            depth = layers + 1
        else:
            depth = 0
        groups.setdefault(depth, []).append(p)
    return [{"params": ps, "lr": lr * decay ** d} for d, ps in sorted(groups.items())]


def clip(torch, model, how):
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if how == "global":
        torch.nn.utils.clip_grad_norm_(grads, 1.0)
    elif how == "tensor":
        norms = torch._foreach_norm(grads)
        torch._foreach_mul_(grads, [torch.clamp(1.0 / (n + 1e-6), max=1.0) for n in norms])


def finetune(a, torch, tok, model, opt, encs, labels, epoch_batches, tensors):
    """A whole fine-tuning run: warm-up and linear decay, dev accuracy on the way and at the end."""
    torch.manual_seed(a.seed)
    per_epoch = len(epoch_batches(a.seed))
    total = int(per_epoch * a.epochs + 0.5)
    warm = max(1, int(total * a.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
    dev = [l.rstrip("\n").split("\t") for l in open(os.path.join(a.data, "glue/SST-2/dev.tsv"), encoding="utf-8")][1:]
    dev_encs = tok.encode_batch([r[0] for r in dev])
    dev_labels = torch.tensor([int(r[1]) for r in dev]).to(a.device)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)

    def accuracy():
        model.eval()
        right = 0
        with torch.no_grad():
            for b in range(0, len(dev_encs), 128):
                idx = list(range(b, min(b + 128, len(dev_encs))))
                ids, mask = (t.to(a.device) for t in tensors(idx, lambda i: dev_encs[i].ids))
                logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
                right += int((logits.argmax(-1) == dev_labels[b:b + len(idx)]).sum())
        model.train()
        return right / len(dev_encs)

    history, step, epoch, t0 = [], 0, 0, time.perf_counter()
    while step < total:
        for idx in epoch_batches(a.seed + 2 * epoch):
            if step == total:
                break
            ids, mask = (t.to(a.device) for t in tensors(idx, lambda i: encs[i].ids))
            y = torch.tensor([labels[i] for i in idx]).to(a.device)
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
            loss_fn(logits, y).backward()
            clip(torch, model, a.clip)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % a.eval_every == 0 or step == total:
                acc = accuracy()
                history.append({"step": step, "dev_accuracy": acc})
                print(f"step {step}/{total}: dev accuracy {acc:.4f} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
        epoch += 1
    result = {"torch": torch.__version__, "threads": a.threads, "device": a.device, "epochs": a.epochs,
              "lr": a.lr, "seed": a.seed, "batch_size": a.batch_size, "warmup": a.warmup, "clip": a.clip,
              "llrd": a.llrd, "dropout": a.dropout, "weight_decay": a.weight_decay,
              "label_smoothing": a.label_smoothing, "steps": total, "seconds": time.perf_counter() - t0, "dev_accuracy": history[-1]["dev_accuracy"], "history": history}
    print(json.dumps(result) if a.json else f"dev accuracy {result['dev_accuracy']:.4f}")


if __name__ == "__main__":
    main()
