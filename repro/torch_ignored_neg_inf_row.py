import torch, torch.nn.functional as F
x = torch.tensor([[float("-inf")]], dtype=torch.float64, requires_grad=True)  # one class, logit -inf
loss = F.cross_entropy(x, torch.tensor([-100]), reduction="none", ignore_index=-100)  # its label is ignored
loss.sum().backward()
print(loss, x.grad)  # expected loss 0 and gradient 0 (an ignored position); torch gives gradient nan
assert loss.item() == 0.0 and torch.isnan(x.grad).all()
