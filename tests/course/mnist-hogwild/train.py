# Hogwild training (torch.multiprocessing, shared parameters), resuming
# from the checkpoint in the named volume when there is one.
import os

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from data import dataset
from model import Net

CKPT = "model/mnist_cnn.pt"


def train_shard(rank, model, nproc, epochs):
    torch.manual_seed(1 + rank)
    x, y = dataset(512, seed=0)
    x, y = x[rank::nproc], y[rank::nproc]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    for _ in range(epochs):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            loss = F.nll_loss(model(x[i : i + 32]), y[i : i + 32])
            loss.backward()
            opt.step()
    print(f"process {rank}: loss {loss.item():.4f}", flush=True)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nproc = int(os.environ.get("NUM_PROCESSES", "2"))
    epochs = int(os.environ.get("EPOCHS", "1"))
    model = Net()
    done = 0
    if os.path.exists(CKPT):
        state = torch.load(CKPT)
        model.load_state_dict(state["model"])
        done = state["epochs"]
        print(f"resuming from {CKPT} after {done} epoch(s)", flush=True)
    if nproc == 1:
        train_shard(0, model, 1, epochs)
    else:
        model.share_memory()
        procs = [mp.Process(target=train_shard, args=(r, model, nproc, epochs)) for r in range(nproc)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                raise SystemExit(f"a training process failed ({p.exitcode})")
    os.makedirs("model", exist_ok=True)
    torch.save({"model": model.state_dict(), "epochs": done + epochs}, CKPT + ".tmp")
    os.replace(CKPT + ".tmp", CKPT)
    print(f"saved {CKPT} after {done + epochs} epoch(s)", flush=True)


if __name__ == "__main__":
    main()
