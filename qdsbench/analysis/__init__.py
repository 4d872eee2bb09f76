"""Attention analysis: sinks, diagonal patterns and oversmoothing measured on any qdsbench model."""
