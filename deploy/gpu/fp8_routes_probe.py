# What fp8 routes PyTorch on this machine offers for SDXL's attention and convolutions,
# and their speed against fp16 at SDXL-base shapes (batch 16 = 8 images x 2 CFG halves).
import json, sys, time, torch
import torch.nn.functional as F
dev = "cuda"
out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "cudnn": torch.backends.cudnn.version()}

def bench(fn, n=20):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e3

# Attention at the 64x64 level: 4096 tokens, 10 heads of 64.
for tokens, heads in [(4096, 10), (1024, 20)]:
    q = torch.randn(16, heads, tokens, 64, device=dev, dtype=torch.float16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    row = {"fp16_ms": bench(lambda: F.scaled_dot_product_attention(q, k, v))}
    for name, dt in [("e4m3", torch.float8_e4m3fn)]:
        try:
            q8, k8, v8 = q.to(dt), k.to(dt), v.to(dt)
            row[f"sdpa_{name}_ms"] = bench(lambda: F.scaled_dot_product_attention(q8, k8, v8))
        except Exception as e:
            row[f"sdpa_{name}"] = str(e).splitlines()[0][:200]
        for backend in ["cudnn", "flash"]:
            try:
                from torch.nn.attention import sdpa_kernel, SDPBackend
                b = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[backend]
                with sdpa_kernel([b]):
                    row[f"sdpa_{name}_{backend}_ms"] = bench(lambda: F.scaled_dot_product_attention(q8, k8, v8))
            except Exception as e:
                row[f"sdpa_{name}_{backend}"] = str(e).splitlines()[0][:200]
    out[f"attention_{tokens}x{heads}"] = row

# A 3x3 convolution at the 128x128 level (320 channels) and at 32x32 (1280).
for hw, c in [(128, 320), (64, 640), (32, 1280)]:
    x = torch.randn(16, c, hw, hw, device=dev, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, device=dev, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    row = {"fp16_ms": bench(lambda: F.conv2d(x, w, padding=1))}
    try:
        row["conv_e4m3_ms"] = bench(lambda: F.conv2d(x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn), padding=1))
    except Exception as e:
        row["conv_e4m3"] = str(e).splitlines()[0][:200]
    # The same arithmetic as one GEMM (what an im2col-free fp8 kernel could reach): M = pixels, K = 9c.
    a = torch.randn(16 * hw * hw, 9 * c, device=dev, dtype=torch.float16)
    b = torch.randn(c, 9 * c, device=dev, dtype=torch.float16)
    row["gemm_fp16_ms"] = bench(lambda: a @ b.t())
    try:
        a8, b8 = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn)
        one = torch.ones((), device=dev)
        row["gemm_e4m3_ms"] = bench(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.float16))
    except Exception as e:
        row["gemm_e4m3"] = str(e).splitlines()[0][:200]
    out[f"conv3x3_{hw}x{hw}x{c}"] = row
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps(out, indent=1))
