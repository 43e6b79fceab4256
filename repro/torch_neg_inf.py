import torch, torch.nn.functional as F
x = torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64)
y = torch.tensor([[0.5, 0.0, 0.5]], dtype=torch.float64)
loss = F.cross_entropy(x, y, reduction="none")
print(loss)  # expected 0.8133 (-0.5*log_softmax[0] - 0.5*log_softmax[2]); torch gives nan
assert torch.isnan(loss).all()
