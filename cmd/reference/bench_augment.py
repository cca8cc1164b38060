"""Times the reference augmentation recipe in PyTorch, for comparison with
contrastream's BenchmarkAugment (stages/augment). pairs/s = samples/s, two views each.

  /usr/bin/python3 cmd/reference/bench_augment.py [--seconds 3]

Modes:
  per-sample  torchvision-style transform on one image at a time, as a DataLoader worker runs it
              (RandomResizedCrop params as torchvision, crop by slicing, F.interpolate bilinear
              antialias, flip, brightness, contrast around the mean, clamp, normalise);
              "threads" = torch intra-op threads;
  per-sample-procs  the same in N processes of 1 thread each (DataLoader num_workers=N), summed.
  batched     torch_reference.py's own augment(): affine_grid + grid_sample on a whole batch
              (28x28: batch 256; 224: batch 64), then its jitter and the normalisation.
Each figure is measured in a fresh process.
torchvision is not installed here, so its transforms are written with torch ops (same math)."""
import argparse, json, math, multiprocessing as mp, random, time
import numpy as np
import torch, torch.nn.functional as F

MEAN, STD = 0.286, 0.353


def rrc_params(h, w, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3)):
    area = h * w
    lr = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        ta = area * random.uniform(*scale)
        ar = math.exp(random.uniform(*lr))
        cw = int(round(math.sqrt(ta * ar))); ch = int(round(math.sqrt(ta / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
    return 0, 0, h, w


def view(img, size, mean, std):
    """img: C x H x W float32 in [0,1]."""
    _, h, w = img.shape
    i, j, ch, cw = rrc_params(h, w)
    v = F.interpolate(img[None, :, i:i + ch, j:j + cw], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)[0]
    if random.random() < 0.5:
        v = v.flip(-1)
    b = random.uniform(0.6, 1.4); c = random.uniform(0.6, 1.4)
    v = v * b
    if v.shape[0] == 3:
        m = (0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]).mean()
    else:
        m = v.mean()
    v = ((v - m) * c + m).clamp_(0, 1)
    return (v - mean) / std


def per_sample(images, size, seconds, mean, std):
    n = 0; t0 = time.perf_counter()
    while True:
        for u8 in images:
            img = torch.from_numpy(u8).float().div_(255)  # decode-side conversion, as Go does
            view(img, size, mean, std); view(img, size, mean, std)
            n += 1
        el = time.perf_counter() - t0
        if el > seconds:
            return n / el


def _proc(args):
    images, size, seconds, mean, std = args
    torch.set_num_threads(1)
    return per_sample(images, size, seconds, mean, std)


def ref_theta(x):  # the random part of torch_reference.py's augment(), verbatim
    n = x.shape[0]
    scale = torch.empty(n).uniform_(0.3, 1.0)
    ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3)))
    w = torch.sqrt(scale * ratio).clamp(max=1.0); h = torch.sqrt(scale / ratio).clamp(max=1.0)
    cx = (torch.rand(n) * (1 - w) * 2 - (1 - w)); cy = (torch.rand(n) * (1 - h) * 2 - (1 - h))
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3); theta[:, 0, 0] = w * flip; theta[:, 0, 2] = cx; theta[:, 1, 1] = h; theta[:, 1, 2] = cy
    return theta


def batched(x, size, seconds):
    n = x.shape[0]; done = 0; t0 = time.perf_counter()
    while True:
        for _ in range(2):  # two views
            theta = ref_theta(x)
            grid = F.affine_grid(theta, (n, x.shape[1], size, size), align_corners=False)
            v = F.grid_sample(x, grid, align_corners=False)
            b = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4); c = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4)
            m = v.mean(dim=(2, 3), keepdim=True)
            v = ((v * b - m * b) * c + m * b).clamp(0, 1)
            v = (v - MEAN) / STD
        done += n
        el = time.perf_counter() - t0
        if el > seconds:
            return done / el


def load_cases():
    import gzip
    rng = np.random.default_rng(1)
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        fm = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 1, 28, 28)[:512].copy()
    yy, xx = np.mgrid[0:256, 0:256]
    big = []
    for k in range(16):  # like the Go benchmark's noisy(256, 256)
        noise = rng.integers(0, 40, (3, 256, 256))
        big.append(np.stack([(xx + noise[0]) % 256, (yy + noise[1]) % 256,
                             (xx * yy // 64 + noise[2]) % 256]).astype(np.uint8))
    return {"28x28-gray": (list(fm), 28, MEAN, STD),
            "224-from-256-rgb": (big, 224, torch.tensor([0.485, 0.456, 0.406])[:, None, None],
                                 torch.tensor([0.229, 0.224, 0.225])[:, None, None])}


def one(case, mode, threads, seconds):
    """One measurement, in a fresh process (OpenMP thread pools do not carry over)."""
    imgs, size, mean, std = load_cases()[case]
    random.seed(0); torch.manual_seed(0)
    torch.set_num_threads(threads)
    if mode == "per-sample":
        return per_sample(imgs, size, seconds, mean, std)
    if mode == "per-sample-procs":  # `threads` processes of one thread each, summed
        with mp.get_context("spawn").Pool(threads) as pool:
            return sum(pool.map(_proc, [(imgs, size, seconds, mean, std)] * threads))
    nb = 64 if size == 224 else 256
    xb = torch.from_numpy(np.stack([imgs[k % len(imgs)] for k in range(nb)])).float() / 255
    return batched(xb, size, seconds)


def main():
    import subprocess, sys
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--one", nargs=3, metavar=("CASE", "MODE", "THREADS"))
    a = p.parse_args()
    if a.one:
        print(one(a.one[0], a.one[1], int(a.one[2]), a.seconds)); return
    for case in ("28x28-gray", "224-from-256-rgb"):
        for mode in ("per-sample", "per-sample-procs", "batched"):
            for t in (1, 2):
                if mode == "per-sample-procs" and t == 1:
                    continue
                r = float(subprocess.run([sys.executable, __file__, "--seconds", str(a.seconds), "--one", case, mode, str(t)],
                                         check=True, capture_output=True, text=True).stdout.split()[-1])
                print(json.dumps({"case": case, "mode": mode, "threads" if mode != "per-sample-procs" else "procs": t,
                                  "pairs_per_s": round(r, 1)}), flush=True)


if __name__ == "__main__":
    main()
