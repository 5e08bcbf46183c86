"""Knowledge-distillation losses."""
import torch
import torch.nn.functional as F


def kd_loss(student_logits, teacher_logits, targets, *, alpha: float, temperature: float):
    """Hinton et al. 2015: alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(q, y).

    ``alpha`` is the teacher's weight; p_T, q_T are teacher/student softmaxes at temperature T.
    The T^2 keeps the soft-target gradients on the scale of the hard-label ones. ``targets`` are
    class indices (N,) or class probabilities (N, C), e.g. the mixed labels of mixup views.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hard = F.cross_entropy(student_logits, targets)
    if alpha == 0.0 or teacher_logits is None:
        return hard
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    return alpha * soft + (1.0 - alpha) * hard


def soft_target_loss(student_logits, teacher_logits, temperature: float):
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch."""
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()
    return temperature**2 * kl


def feature_loss(student_features, teacher_features, projection=None):
    """FitNets-style hint loss: MSE between (projected) student and teacher features.

    Spatial maps are average-pooled to one vector per channel first, so a student and a teacher
    with different resolutions can be matched; ``projection`` maps student to teacher width.
    """
    s = _pool(student_features)
    t = _pool(teacher_features).detach()
    if projection is not None:
        s = projection(s)
    if s.shape != t.shape:
        raise ValueError(f"feature shapes differ after projection: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
    return F.mse_loss(s, t)


def _pool(features):
    return features.mean(dim=(2, 3)) if features.dim() == 4 else features.flatten(1)


@torch.no_grad()
def soft_labels(model, x, batch_size=512):
    """The teacher's logits for ``x``, computed once in eval mode."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
