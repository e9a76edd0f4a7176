"""Seconds of a fused Adam step over 8 M fp32 values whose gradients are normal, tiny or subnormal, with and
without flushing subnormals to zero (one thread): why DIP-Linear-2048 slows down after its collapse."""
import torch, time
torch.set_num_threads(1)
for scale in [1.0, 1e-20, 1e-39]:
    for ftz in [False, True]:
        torch.set_flush_denormal(ftz)
        p = torch.nn.Parameter(torch.randn(8_000_000))
        p.grad = torch.randn_like(p) * scale
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
        opt.step(); t = time.perf_counter()
        for _ in range(5): opt.step()
        print(f"grad scale {scale:g} ftz={ftz}: {(time.perf_counter()-t)/5*1000:.1f} ms")
