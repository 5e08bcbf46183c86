"""Small CNNs for image classification: a teacher and a tiny student."""
from torch import nn

from .registry import register_model


def _conv_block(cin, cout, k=3, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups), nn.ReLU()]


class TeacherCNN(nn.Module):
    """Three conv blocks with a residual add, global average pool, linear head (~100k params)."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, width=32):
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Sequential(*_conv_block(c, width), nn.MaxPool2d(2))
        self.block = nn.Sequential(*_conv_block(width, width), nn.Conv2d(width, width, 3, padding=1))
        self.relu = nn.ReLU()
        self.down = nn.Sequential(*_conv_block(width, 2 * width), nn.MaxPool2d(2))
        self.features = nn.Sequential(*_conv_block(2 * width, 2 * width))
        h, w = input_shape[1] // 4, input_shape[2] // 4
        self.pool = nn.AvgPool2d((h, w))
        self.flatten = nn.Flatten()
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu(x + self.block(x))
        x = self.features(self.down(x))
        return self.head(self.flatten(self.pool(x)))


class StudentCNN(nn.Module):
    """Strided conv, depthwise-separable conv, average pool, linear: a few thousand params."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, width=8):
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, width, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.dw = nn.Conv2d(width, width, 3, stride=2, padding=1, groups=width)
        self.relu2 = nn.ReLU6()
        self.pw = nn.Conv2d(width, 2 * width, 1)
        self.relu3 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        oh, ow = ((h + 1) // 2 + 1) // 2 // 2, ((w + 1) // 2 + 1) // 2 // 2
        self.head = nn.Linear(2 * width * oh * ow, num_classes)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.dw(x))
        x = self.pool(self.relu3(self.pw(x)))
        return self.head(self.flatten(x))


@register_model("teacher_cnn")
def teacher_cnn(input_shape, num_classes, width=32):
    return TeacherCNN(tuple(input_shape), num_classes, width=width)


@register_model("student_cnn")
def student_cnn(input_shape, num_classes, width=8):
    return StudentCNN(tuple(input_shape), num_classes, width=width)
