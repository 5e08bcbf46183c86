"""Host latency runners: torch, onnxruntime, LiteRT, TFLite Micro, native C, tflite-runtime venv."""
