"""Knowledge distillation: losses, alpha schedules, curriculum order, the distill verb."""
from .augment import label_views, make_views, view_plan
from .config import AlphaSchedule, Augment, Curriculum, KDConfig, train_config
from .curriculum import difficulty, easy_first, paced_pool, pool_size
from .kd import feature_loss, kd_loss, soft_labels, soft_target_loss
from .schedules import SCHEDULES, alpha_at
from .trainer import History, distill, evaluate

__all__ = [
    "AlphaSchedule", "Augment", "Curriculum", "KDConfig", "train_config", "difficulty", "easy_first", "pool_size",
    "paced_pool", "label_views", "make_views", "view_plan",
    "feature_loss", "kd_loss", "soft_labels", "soft_target_loss", "SCHEDULES", "alpha_at",
    "History", "distill", "evaluate",
]
