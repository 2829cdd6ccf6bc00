# Writes five labelled images (PGM) as the course's infer writes PNGs.
import os

import torch

from data import dataset
from model import Net


def main():
    torch.set_num_threads(1)
    state = torch.load("model/mnist_cnn.pt")
    model = Net()
    model.load_state_dict(state["model"])
    model.eval()
    x, y = dataset(5, seed=2)
    os.makedirs("results", exist_ok=True)
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    for i in range(5):
        pix = (x[i, 0].clamp(0, 1) * 255).to(torch.uint8)
        name = f"results/{i}-true-{y[i].item()}-pred-{pred[i].item()}.pgm"
        with open(name, "wb") as f:
            f.write(b"P5 28 28 255\n" + bytes(pix.flatten().tolist()))
        print(name, flush=True)


if __name__ == "__main__":
    main()
