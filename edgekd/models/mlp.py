"""A tiny MLP student: flatten, one hidden ReLU layer, linear head."""
import math

from torch import nn

from .registry import register_model


class StudentMLP(nn.Module):
    def __init__(self, input_shape=(1, 28, 28), num_classes=10, hidden=32):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(math.prod(input_shape), hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


@register_model("student_mlp")
def student_mlp(input_shape, num_classes, hidden=32):
    return StudentMLP(tuple(input_shape), num_classes, hidden=hidden)
