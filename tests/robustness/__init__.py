"""Tests for the robustness checkers (history, model, linearizability, watch, report)."""
