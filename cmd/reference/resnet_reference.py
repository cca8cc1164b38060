"""The training step of the CIFAR-style ResNet-18 in PyTorch, timed as torch_reference.py's
--bench-steps times convnet-s: fixed random batches, the same MoCo (InfoNCE against a 4096-key queue,
momentum encoder) or SimCLR (NT-Xent) step, SGD with momentum. To set beside

  contrastream bench --flow moco --mode step --set stages.encode.arch=resnet18 \
      --set stages.augment.size=32 --set stages.augment.channels=3 ...

The network is stages/encode's resnet18 (torchvision names; 3×3 stride-1 stem, no max-pool), with the
head Linear(512,128)-ReLU-Linear(128,128).

  /usr/bin/python3 cmd/reference/resnet_reference.py --method moco --batch 256 --steps 5

Prints one JSON line: median step, samples/s, encoder images/s, peak RSS."""
import argparse, json, resource, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False); self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(o)
        self.downsample = None
        if s != 1 or i != o:
            self.downsample = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, c=3, w=64, dim=128):
        super().__init__()
        self.conv1 = nn.Conv2d(c, w, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(w)
        layers, i = [], w
        for n, (o, s) in enumerate([(w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)]):
            setattr(self, f"layer{n + 1}", nn.Sequential(BasicBlock(i, o, s), BasicBlock(o, o, 1)))
            i = o
        self.head = nn.Sequential(nn.Linear(8 * w, 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return F.normalize(self.head(h.mean((2, 3))), dim=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="moco", choices=["moco", "simclr"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    q = ResNet18(a.channels, a.width); k = ResNet18(a.channels, a.width); k.load_state_dict(q.state_dict())
    for pk in k.parameters(): pk.requires_grad = False
    opt = torch.optim.SGD(q.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    queue = F.normalize(torch.randn(4096, 128), dim=1)
    v1 = torch.randn(a.batch, a.channels, a.size, a.size); v2 = torch.randn_like(v1)
    times = []
    for _ in range(a.steps + 1):  # the first step is a warm-up
        ts = time.perf_counter()
        if a.method == "moco":
            zq = q(v1)
            with torch.no_grad():
                for pq, pk in zip(q.parameters(), k.parameters()): pk.mul_(0.99).add_(pq.detach(), alpha=0.01)
                zk = k(v2)
            logits = torch.cat([(zq * zk).sum(1, keepdim=True), zq @ queue.T], 1) / 0.2
            loss = F.cross_entropy(logits, torch.zeros(a.batch, dtype=torch.long))
        else:
            z = q(torch.cat([v1, v2])); n = a.batch
            sim = z @ z.T / 0.5; sim.fill_diagonal_(-1e9)
            loss = F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))
        opt.zero_grad(); loss.backward(); opt.step()
        if a.method == "moco":
            queue = torch.cat([zk.detach(), queue[:-a.batch]])
        times.append(time.perf_counter() - ts)
    med = statistics.median(times[1:])
    print(json.dumps({"arch": "resnet18", "method": a.method, "batch": a.batch, "input": [a.channels, a.size, a.size],
                      "threads": torch.get_num_threads(), "median_step_s": round(med, 3),
                      "min_step_s": round(min(times[1:]), 3), "max_step_s": round(max(times[1:]), 3),
                      "samples_per_s": round(a.batch / med, 1), "encoder_img_per_s": round(2 * a.batch / med, 1),
                      "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
