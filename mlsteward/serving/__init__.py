"""The ONNX Runtime inference server speaking the Open Inference Protocol v2.

Loads only ONNX artifacts: scikit-learn, joblib and pickle never enter this package.
Must not import the operator, the trainer or the monitor.
"""
