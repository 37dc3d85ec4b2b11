"""Scoring denoisers: the validation protocol, the evaluation matrix, classical
baselines, inference on a user's images, and ONNX (freeze, frozen runners).

``protocol`` is the one PSNR protocol every path uses and sits below ``tasks``;
the rest sits above ``tasks`` (freezing an MRI model uses its validation).
"""
