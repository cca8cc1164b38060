"""The tiny Vision Transformer of contrastream's `arch: vit` in PyTorch, to time its training step
beside `go test -bench ViTStep ./stages/encode/` on the same machine.

  /usr/bin/python3 cmd/reference/vit_reference.py --check   # compare with testdata/vit_tiny.safetensors
  /usr/bin/python3 cmd/reference/vit_reference.py --bench-steps 20 --threads 2

The network is stages/encode/vit.go's (timm's VisionTransformer, pre-norm, state_dict names
included): a stride-P convolution into D dims, a class token, position embeddings, `depth` blocks
x + proj(MHSA(LN x)), x + fc2(GELU(fc1(LN x))) with LayerNorm eps 1e-6 and exact GELU, a final
LayerNorm, the class token as features, head Linear(D,128)-ReLU-Linear(128,128). A step is what
BenchmarkViTStep times: forward in training mode on a fixed batch of 256 28×28 gray images, then
backward of sum(projection ⊙ g) to every parameter (no optimizer). Prints one JSON line: median
step time over the steps after the first two."""
import argparse, json, math, statistics, struct, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp)
        self.fc2 = nn.Linear(mlp, d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1) * hd ** -0.5).softmax(dim=-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, c=1, side=28, patch=7, d=64, depth=2, heads=4, mlp=128, hidden=128, out=128):
        super().__init__()
        t = 1 + (side // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, t, d))
        self.patch_embed = nn.Conv2d(c, d, patch, stride=patch)
        self.blocks = nn.ModuleList([Block(d, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out))
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        f = self.norm(x)[:, 0]
        return f, self.head(f)


def read_safetensors(path):
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[h["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dt).reshape(h["shape"]).copy())
    return out


def check(path):
    v = read_safetensors(path)
    m = ViT()
    m.load_state_dict({k[len("param."):]: t for k, t in v.items() if k.startswith("param.")})
    f, p = m(v["input"])
    (p * v["upstream_grad"]).sum().backward()
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
    errs = {"features": rel(f, v["features"]), "projection": rel(p, v["projection"])}
    for name, q in m.named_parameters():
        errs["grad." + name] = rel(q.grad, v["grad." + name])
    print(json.dumps({"check": path, "max_rel_err": max(errs.values())}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--bench-steps", type=int, default=20)
    ap.add_argument("--check", nargs="?", const="stages/encode/testdata/vit_tiny.safetensors", default=None,
                    help="compare with the test vectors and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.check:
        check(a.check)
        return
    m = ViT().train()
    x = torch.randn(a.batch, 1, 28, 28)
    g = torch.randn(a.batch, 128) / a.batch
    times = []
    for _ in range(a.bench_steps + 2):
        ts = time.perf_counter()
        for p in m.parameters():
            p.grad = None
        _, proj = m(x)
        (proj * g).sum().backward()
        times.append(time.perf_counter() - ts)
    med = statistics.median(times[2:])
    print(json.dumps({"net": "vit tiny", "batch": a.batch, "threads": torch.get_num_threads(), "steps": a.bench_steps,
                      "ms_per_step": round(med * 1e3, 1), "images_per_s": round(a.batch / med, 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
