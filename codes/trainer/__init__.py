"""Training engine for timm image classifiers; `codes/train.py` is its command line."""
