"""Serving parity: a saved model must load and run extended in the engines people serve it with.

`reload_check` reloads a saved folder in a fresh process and compares logits past the native window;
`rope_keys` holds the RoPE keys each rope type needs for serving engines to read the scaling; `export`
writes a GGUF for llama.cpp; `hints` prints the vLLM and llama.cpp arguments for a folder.
"""
