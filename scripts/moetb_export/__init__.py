"""Helpers of scripts/export_hf_routing.py: write routing traces (format v1, see
docs/trace-format.md) from Hugging Face MoE checkpoints. safetensors_io writes and
reads the container by hand, families holds each family's router conventions, capture
finds the MoE blocks of a model and records the routing they actually did."""
