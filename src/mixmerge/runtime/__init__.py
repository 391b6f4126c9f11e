"""The model runtime below the stages: HF and vLLM generation, the lm-eval model, device and
dtype handling, memory release, and the generation cache they share. It imports no stage."""
