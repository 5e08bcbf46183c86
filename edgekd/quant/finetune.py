"""The one fine-tuning loop behind quantization-aware training (int8 PT2E and brevitas low-bit)."""
import torch

from ..distill.kd import kd_loss
from ..log import logger


def finetune(model, train, *, epochs, batch_size, lr, generator, teacher=None, kd_alpha=0.0, temperature=4.0,
             set_train=None, label="QAT"):
    """Adam on cross-entropy, mixed with the teacher's soft targets when ``teacher`` and ``kd_alpha`` are set.

    ``set_train(model)`` puts the model in training mode (PT2E graphs need their own helper).
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    use_teacher = teacher is not None and kd_alpha > 0
    for epoch in range(epochs):
        (set_train or (lambda m: m.train()))(model)
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, y = train.x[idx], train.y[idx]
            logits = model(x)
            t_logits = None
            if use_teacher:
                with torch.no_grad():
                    t_logits = teacher(x)
            loss = kd_loss(logits, t_logits, y, alpha=kd_alpha if use_teacher else 0.0, temperature=temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        logger.info(f"{label} epoch {epoch + 1}/{epochs}: loss {total / len(train):.4f}")
    return model
