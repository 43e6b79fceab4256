import numpy as np, paddle, paddle.nn.functional as F
row = np.linspace(-1.0, 1.0, 12).astype("float32")
for bad in (np.nan, np.inf):
    row[6] = bad
    loss, softmax = F.softmax_with_cross_entropy(paddle.to_tensor(row[None]), paddle.to_tensor([[4]], "int64"),
                                                 return_softmax=True)
    print(bad, loss.numpy(), softmax.numpy())  # expected nan everywhere (a NaN or +inf logit)
    assert np.isfinite(loss.numpy()).all()  # float32 on CPU: the poisoned logit is treated as if it were max-64
